"""Head metrics on maps built by hand, with values a person can check."""

import math

import numpy as np
import pytest

from tb_attention_plugin.math import head_metrics as hm
from tb_attention_plugin.math import numerics

# Metrics run on float32 cells, as stored: 1/5 is 0.2 + 3e-9 there, and a
# row of 6 such cells sums with an error below 1e-7.
EXACT = 1e-7


def uniform(n, heads=1):
    return np.full((heads, n, n), 1.0 / n)


def shifted(n, offset, heads=1):
    """Row i attends one key: i - offset (row i attends itself when i < offset)."""
    maps = np.zeros((heads, n, n))
    for i in range(n):
        maps[:, i, i - offset if i >= offset else i] = 1.0
    return maps


def test_uniform_attention():
    maps = uniform(4)
    np.testing.assert_allclose(hm.entropy(maps), [math.log(4)], atol=EXACT)
    np.testing.assert_allclose(hm.normalized_entropy(maps), [1.0], atol=EXACT)
    np.testing.assert_allclose(hm.confidence(maps), [0.25], atol=EXACT)
    np.testing.assert_allclose(hm.first_key_mass(maps), [0.25], atol=EXACT)
    np.testing.assert_allclose(hm.previous_token_score(maps), [0.25], atol=EXACT)
    np.testing.assert_allclose(hm.same_position_score(maps), [0.25], atol=EXACT)
    # E|i-j| for uniform rows of 4: rows 0..3 give 1.5, 1, 1, 1.5.
    np.testing.assert_allclose(hm.mean_distance(maps), [1.25], atol=EXACT)
    np.testing.assert_allclose(hm.monotone_alignment(maps), [0.25], atol=EXACT)


def test_causal_uniform_attention_is_normalised_by_the_keys_each_row_can_see():
    maps = np.tril(np.ones((1, 4, 4)))
    maps /= maps.sum(axis=-1, keepdims=True)  # row i: 1/(i+1) on keys 0..i
    np.testing.assert_allclose(hm.normalized_entropy(maps, causal=True), [1.0], atol=EXACT)
    # Row 0 of a causal map has one key: left out rather than counted as 0/0.
    assert hm.normalized_entropy(maps, causal=False)[0] < 1


def test_uniform_attention_within_a_sliding_window_is_normalised_by_the_window():
    # window 2, causal: row 0 sees key 0, rows 1..3 see keys i-1 and i
    assert list(hm.visible_keys(4, 4, causal=True, window=2)) == [1, 2, 2, 2]
    # window 2, both sides: row i sees i-1, i, i+1 within 0..3
    assert list(hm.visible_keys(4, 4, window=2)) == [2, 3, 3, 2]
    # a crop whose first query is one position after its first key
    assert list(hm.visible_keys(3, 4, causal=True, offset=1)) == [2, 3, 4]
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 1.0
    for i in range(1, 4):
        maps[0, i, i - 1 : i + 1] = 0.5
    np.testing.assert_allclose(hm.normalized_entropy(maps, causal=True, window=2), [1.0], atol=EXACT)
    # counted as plain causal attention, rows 2 and 3 would look peaked:
    # rows 1..3 give log 2 / log 2, log 2 / log 3, log 2 / log 4
    expected = (1 + math.log(2) / math.log(3) + 0.5) / 3
    np.testing.assert_allclose(hm.normalized_entropy(maps, causal=True), [expected], atol=EXACT)


def test_a_previous_token_head():
    maps = shifted(5, 1)
    np.testing.assert_allclose(hm.previous_token_score(maps), [1.0], atol=EXACT)
    np.testing.assert_allclose(hm.same_position_score(maps), [0.2], atol=EXACT)  # row 0 only
    np.testing.assert_allclose(hm.entropy(maps), [0.0], atol=EXACT)
    np.testing.assert_allclose(hm.confidence(maps), [1.0], atol=EXACT)
    np.testing.assert_allclose(hm.mean_distance(maps), [0.8], atol=EXACT)  # 4 rows of 1, one of 0


def test_an_induction_head_on_a_repeated_sequence():
    tokens = ["a", "b", "c", "a", "b", "c"]
    # Targets: position 3 ("a") -> 1, 4 -> 2, 5 -> 3; earlier rows have none.
    assert hm.induction_targets(tokens) == [[], [], [], [1], [2], [3]]
    induction = shifted(6, 2)  # row i attends i - 2: the successor of i - 3
    np.testing.assert_allclose(hm.induction_score(induction, tokens), [1.0], atol=EXACT)
    # A previous-token head on the same sequence is no induction head.
    np.testing.assert_allclose(hm.induction_score(shifted(6, 1), tokens), [0.0], atol=EXACT)
    # Uniform rows 3, 4, 5 put 1/4, 1/5, 1/6 on the target.
    uniform_causal = np.tril(np.ones((1, 6, 6)))
    uniform_causal /= uniform_causal.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(hm.induction_score(uniform_causal, tokens), [(1 / 4 + 1 / 5 + 1 / 6) / 3], atol=EXACT)
    # Nothing repeats: nothing to measure.
    assert np.isnan(hm.induction_score(uniform(3), ["x", "y", "z"])[0])


def test_sinks_on_the_first_key_and_on_special_tokens():
    maps = np.zeros((2, 3, 3))
    maps[0, :, 0] = 1.0  # head 0: everything on [CLS]
    maps[1, :, 2] = 1.0  # head 1: everything on [SEP]
    tokens = ["[CLS]", "hello", "[SEP]"]
    np.testing.assert_allclose(hm.first_key_mass(maps), [1.0, 0.0], atol=EXACT)
    np.testing.assert_allclose(hm.special_token_mass(maps, tokens), [1.0, 1.0], atol=EXACT)
    assert np.isnan(hm.special_token_mass(maps, ["a", "b", "c"])).all()


def test_change_since_the_previous_capture():
    before, after = uniform(2), shifted(2, 0)  # identity
    # |1 - 0.5| on the diagonal and |0 - 0.5| off it: 0.5 everywhere.
    np.testing.assert_allclose(hm.change(after, before), [0.5], atol=EXACT)
    assert np.isnan(hm.change(after, None)).all()
    assert np.isnan(hm.change(uniform(3), before)).all()  # the probe changed shape


def test_monotone_alignment_of_cross_attention():
    diagonal = shifted(4, 0)
    np.testing.assert_allclose(hm.monotone_alignment(diagonal), [1.0], atol=EXACT)
    anti = diagonal[:, ::-1, :]  # row i on key 3 - i: a monotone path meets one cell
    np.testing.assert_allclose(hm.monotone_alignment(anti), [0.25], atol=EXACT)
    # Two query rows on key 1 then key 0 of 3 keys, half on key 2 in row 1:
    maps = np.array([[[0, 1, 0], [0.5, 0, 0.5]]], dtype=float)
    np.testing.assert_allclose(hm.monotone_alignment(maps), [0.75], atol=EXACT)  # 1 + 0.5 over 2 rows


@pytest.mark.parametrize("shape", [(2, 0, 0), (2, 0, 3), (2, 3, 0)])
def test_an_empty_example_has_no_metrics_and_no_warnings(shape, recwarn):
    maps = np.zeros(shape)
    for values in hm.self_attention_metrics(maps, []).values():
        assert values.shape == (2,) and np.isnan(values).all()
    for values in hm.cross_attention_metrics(maps, []).values():
        assert values.shape == (2,) and np.isnan(values).all()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_patch_distance_on_a_2_by_2_grid_with_a_class_token():
    # tokens: CLS, then patches (0,0) (0,1) (1,0) (1,1)
    grid = (2, 2, 1)
    itself = np.zeros((1, 5, 5))
    itself[0, np.arange(5), np.arange(5)] = 1.0
    np.testing.assert_allclose(hm.patch_distance(itself, grid), [0.0], atol=EXACT)
    # each patch on the diagonally opposite patch: sqrt(2) patch widths
    opposite = np.zeros((1, 5, 5))
    opposite[0, 0, 0] = 1.0
    for patch, other in ((1, 4), (2, 3), (3, 2), (4, 1)):
        opposite[0, patch, other] = 1.0
    np.testing.assert_allclose(hm.patch_distance(opposite, grid), [math.sqrt(2)], atol=EXACT)
    # half on the class token, half spread over the patches: the class token
    # has no place on the image, so each row is the mean distance to all 4
    # patches: (0 + 1 + 1 + sqrt 2) / 4
    spread = np.full((2, 5, 5), 0.125)
    spread[:, :, 0] = 0.5
    np.testing.assert_allclose(hm.patch_distance(spread, grid), [(2 + math.sqrt(2)) / 4] * 2, atol=EXACT)
    # only on the class token: nothing to measure
    on_cls = np.zeros((1, 5, 5))
    on_cls[0, :, 0] = 1.0
    assert np.isnan(hm.patch_distance(on_cls, grid)).all()
    # no grid, or maps that do not fit it: NaN (text layers)
    assert np.isnan(hm.patch_distance(itself, None)).all() and np.isnan(hm.patch_distance(itself, (2, 3, 0))).all()
    # all_metrics puts it in its column for self attention only
    column = hm.METRIC_NAMES.index("patch_distance")
    assert hm.all_metrics(opposite, ["CLS", "0,0", "0,1", "1,0", "1,1"], "self", grid=grid)[0, column] == \
        pytest.approx(math.sqrt(2), abs=EXACT)
    assert np.isnan(hm.all_metrics(opposite, ["t"] * 5, "cross", grid=grid)[0, column])


def _softmax(rng, heads, q, k, scale=3.0):
    logits = scale * rng.normal(size=(heads, q, k))
    return (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind, window", [("self", 0), ("causal", 0), ("causal", 3), ("cross", 0)])
def test_examples_of_different_lengths_together_give_each_examples_own_metrics(kind, window):
    # What a capture does: every example of a layer in one padded array. An
    # example's numbers must be those it has alone, whatever the others' lengths.
    rng = np.random.default_rng(7)
    shapes = [(6, 6), (3, 3), (0, 0), (5, 5), (1, 1)] if kind != "cross" else [(4, 6), (3, 2), (0, 5), (5, 5)]
    maps, previous, tokens, offsets = [], [], [], []
    for n, (q, k) in enumerate(shapes):
        m = _softmax(rng, 2, q, k)
        if kind == "causal":
            m = np.tril(m)
            m /= np.maximum(m.sum(-1, keepdims=True), 1e-30)
        maps.append(m)
        previous.append(None if n == 1 else _softmax(rng, 2, q, k))  # one example without a previous capture
        # Repeats (induction) and a special token, in some examples only.
        tokens.append((["[CLS]"] if n % 2 == 0 else []) + ["a", "b", "c", "a", "b", "c"][: k - (n % 2 == 0)])
        offsets.append(n % 2)
    together = hm.metrics_of(numerics.Examples(maps), tokens, kind, previous, [None] * len(maps),
                             window=window, offsets=offsets)
    assert together.shape == (len(maps), 2, len(hm.METRIC_NAMES))
    for i, m in enumerate(maps):
        alone = hm.all_metrics(m, tokens[i], kind, previous[i], window=window, offset=offsets[i])
        # Padding adds zero cells, which change no sum; float64 sums of the
        # same float32 terms in another grouping differ in the last bits.
        np.testing.assert_allclose(together[i], alone, rtol=1e-12, atol=1e-15, equal_nan=True)
    assert np.isnan(together[2]).all()  # all padding: nothing to measure


def test_a_short_example_beside_a_long_one_by_hand():
    # 3 x 3 uniform beside a 5 x 5 one-hot diagonal: the short one's numbers
    # are those of uniform attention over 3 keys, whatever the padding.
    short, long = uniform(3).astype(np.float32), np.eye(5, dtype=np.float32)[None]
    both = hm.metrics_of(numerics.Examples([short, long]), [list("abc"), list("abcde")], "self",
                         [None, None], [None, None])
    names = list(hm.METRIC_NAMES)
    value = lambda example, name: both[example, 0, names.index(name)]
    assert math.isclose(value(0, "entropy"), math.log(3), rel_tol=1e-6)
    assert math.isclose(value(0, "confidence"), 1 / 3, rel_tol=1e-6)
    assert math.isclose(value(0, "previous_token"), 1 / 3, rel_tol=1e-6)  # rows 1, 2 each 1/3 on key i - 1
    assert math.isclose(value(0, "same_position"), 1 / 3, rel_tol=1e-6)
    assert math.isclose(value(0, "mean_distance"), (1 + 2 + 1 + 1 + 2 + 1) / 9, rel_tol=1e-6)
    assert value(1, "entropy") == 0 and value(1, "same_position") == 1 and value(1, "mean_distance") == 0


def test_position_scores_of_a_map_with_more_rows_than_keys_by_hand():
    # 4 query rows over 2 keys (self attention whose keys were cropped
    # shorter): previous_token counts rows 1..min(q, k + 1) - 1 = 1..2, each
    # putting 0.7 on key i - 1; same_position sums key i over rows 0..1 and
    # divides by all 4 rows.
    maps = np.array([[[0.6, 0.4], [0.7, 0.3], [0.2, 0.7], [0.5, 0.5]]], dtype=np.float32)
    np.testing.assert_allclose(hm.previous_token_score(maps), [(0.7 + 0.7) / 2], atol=EXACT)
    np.testing.assert_allclose(hm.same_position_score(maps), [(0.6 + 0.3) / 4], atol=EXACT)


def test_induction_of_a_map_with_more_rows_than_keys_by_hand():
    # Tokens a b a b over 2 keys: row 2 (the second "a") has its target in
    # key 1 (the "b" after the first "a"); row 3's target would be key 2,
    # which is not a key. This shape raised a ValueError before.
    maps = np.array([[[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [0.5, 0.5]]], dtype=np.float32)
    np.testing.assert_allclose(hm.induction_score(maps, ["a", "b", "a", "b"]), [0.8], atol=EXACT)
