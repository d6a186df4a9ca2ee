"""Head metrics on maps built by hand, with values a person can check."""

import math

import numpy as np
import pytest

from tb_attention_plugin.math import head_metrics as hm

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
