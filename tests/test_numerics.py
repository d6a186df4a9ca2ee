"""Attention math checked against values computed by hand."""

import math
import zlib

import numpy as np

from tb_attention_plugin.format import encoding
from tb_attention_plugin.math import numerics

# One head, 3 queries x 3 keys; each row sums to 1.
A = np.array(
    [
        [
            [0.5, 0.25, 0.25],
            [0.1, 0.8, 0.1],
            [0.0, 0.2, 0.8],
        ]
    ]
)


def test_received_attention_sums_each_key_over_queries_3x3():
    # key 0: 0.5 + 0.1 + 0.0; key 1: 0.25 + 0.8 + 0.2; key 2: 0.25 + 0.1 + 0.8
    np.testing.assert_allclose(numerics.received_attention(A), [[0.6, 1.25, 1.15]])


def test_given_attention_of_softmax_rows_is_one_for_every_query():
    np.testing.assert_allclose(numerics.given_attention(A), [[1.0, 1.0, 1.0]])


# Each p log p is computed in float32, the scores' own precision (unit
# roundoff 6e-8; the log adds a few ulps), and summed in float64.
FLOAT32_ELEMENTWISE = 1e-6


def test_row_entropy_is_log_k_for_uniform_rows_and_zero_for_one_hot():
    uniform = np.full((1, 2, 4), 0.25)
    one_hot = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    assert math.isclose(numerics.row_entropy(uniform)[0], math.log(4), rel_tol=FLOAT32_ELEMENTWISE)
    assert numerics.row_entropy(one_hot)[0] == 0.0


def _float64_statistics(maps):
    """The head statistics' definitions written out in float64, row by row."""
    heads, q, k = maps.shape
    out = np.zeros((heads, 3))
    for h in range(heads):
        entropies, distances = [], []
        for i in range(q):
            row = maps[h, i].astype(np.float64)
            entropies.append(-sum(p * math.log(p) for p in row if p > 0))
            distances.append(sum(p * abs(i - j) for j, p in enumerate(row)))
        out[h] = [np.mean(entropies), maps[h].max(), np.mean(distances)]
    return out


def _softmax_maps(rng, heads, q, k):
    logits = 3 * rng.normal(size=(heads, q, k))
    return (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)


def test_head_statistics_of_examples_of_any_length_together_equal_the_float64_definitions():
    rng = np.random.default_rng(3)
    sparse = _softmax_maps(rng, 2, 5, 7)
    sparse[:, :, 4:] = 0.0  # keys no query looks at (0 log 0 = 0)
    sparse /= sparse.sum(-1, keepdims=True)
    maps = [_softmax_maps(rng, 2, 5, 7), _softmax_maps(rng, 2, 3, 4), np.zeros((2, 0, 4), np.float32),
            np.zeros((2, 3, 0), np.float32), sparse, _softmax_maps(rng, 2, 6, 2)]
    examples = numerics.Examples(maps)
    assert examples.maps.shape == (6, 2, 6, 7)
    together = numerics.head_statistics_of(examples)
    for i, m in enumerate(maps):
        if m.size == 0:  # an example that is all padding has no statistics
            assert np.isnan(together[i]).all() and np.isnan(numerics.head_statistics(m)).all()
            continue
        np.testing.assert_allclose(together[i], _float64_statistics(m), rtol=FLOAT32_ELEMENTWISE)
        # The padding is zeros, which add nothing to any row's numbers.
        np.testing.assert_allclose(together[i], numerics.head_statistics(m), rtol=1e-12)
        np.testing.assert_allclose(examples.rows.sums[i, :, : m.shape[1]], numerics.given_attention(m), rtol=1e-12)
        np.testing.assert_array_equal(examples.example(i), m)
        assert numerics.rows_sum_to_one(m, sums=examples.rows.sums[i, :, : m.shape[1]])
    assert not numerics.rows_sum_to_one(maps[0], sums=examples.rows.sums[0] * 1.01)


def test_max_weight_and_mean_distance_by_hand():
    assert numerics.max_weight(A)[0] == 0.8
    # row 0: 0.25*1 + 0.25*2 = 0.75; row 1: 0.1*1 + 0.1*1 = 0.2; row 2: 0.2*1 + 0 = 0.2
    np.testing.assert_allclose(numerics.mean_distance(A), [(0.75 + 0.2 + 0.2) / 3])


def test_rollout_mixes_identity_and_multiplies_layers():
    layer = np.array([[[0.0, 1.0], [1.0, 0.0]]])  # swap tokens
    # one layer: 0.5 * swap + 0.5 * I = all 0.5
    np.testing.assert_allclose(numerics.attention_rollout([layer]), [[0.5, 0.5], [0.5, 0.5]])
    first = np.array([[[1.0, 0.0], [1.0, 0.0]]])  # both attend to token 0
    # A_hat1 = [[1, 0], [0.5, 0.5]]; A_hat2 = [[0.5, 0.5], [0.5, 0.5]]
    # A_hat2 @ A_hat1 = [[0.75, 0.25], [0.75, 0.25]]
    rollout = numerics.attention_rollout([first, layer])
    np.testing.assert_allclose(rollout, [[0.75, 0.25], [0.75, 0.25]])
    np.testing.assert_allclose(numerics.rollout_importance(rollout), [0.75, 0.25])


def test_rollout_importances_from_the_top_down_equal_the_mean_row_of_the_product():
    # Three examples of 50, 30 and 0 real tokens, zero-padded to 50, through
    # 5 layers: the row vector carried down the stack (float32 layers) gives
    # each layer's mean row of A_hat_l @ ... @ A_hat_1 (float64) within
    # float32 rounding, and zeros beyond each example's tokens.
    rng = np.random.default_rng(0)
    lengths = np.array([50, 30, 0])
    product, layers = None, []
    for _ in range(5):
        maps = rng.random((3, 2, 50, 50)).astype(np.float32)
        for e, n in enumerate(lengths):
            maps[e, :, n:, :] = maps[e, :, :, n:] = 0
        maps /= np.maximum(maps.sum(-1, keepdims=True), 1e-30)
        product = numerics.rollout_step(product, maps)
        layers.append(numerics.rollout_layer(maps).astype(np.float32))
        importance = numerics.rollout_importances(layers, lengths)
        for e, n in enumerate(lengths):
            np.testing.assert_allclose(importance[e, :n], numerics.rollout_importance(product[e, :n, :n]), atol=1e-6)
            assert not importance[e, n:].any()


def test_real_span_of_front_and_back_padding():
    assert numerics.real_span([False, False, True, True, True]) == (2, 3)
    assert numerics.real_span([True, True, False]) == (0, 2)
    assert numerics.real_span([False, False]) == (0, 0)


def test_uint8_encoding_error_is_within_half_a_step():
    weights = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    data = encoding.encode_raw(weights, encoding.UINT8)
    assert len(data) == weights.size  # one byte per cell
    decoded = encoding.decode(data, encoding.UINT8, weights.shape)
    assert np.abs(decoded - weights).max() <= encoding.UINT8_MAX_ERROR + 1e-7


def test_float32_encoding_is_exact():
    weights = np.random.default_rng(1).random((2, 5, 7)).astype(np.float32)
    decoded = encoding.decode(encoding.encode(weights, encoding.FLOAT32), encoding.FLOAT32, weights.shape)
    assert np.array_equal(decoded, weights)


def test_stored_blobs_are_compressed_only_when_smaller_and_decode_the_same():
    peaked = np.zeros((2, 32, 32), np.float32)
    peaked[:, np.arange(32), np.arange(32)] = 1.0
    blob = encoding.encode(peaked, encoding.UINT8)
    assert len(blob) < peaked.size  # compressed
    assert np.array_equal(encoding.decode(blob, encoding.UINT8, peaked.shape), peaked)
    noisy = np.random.default_rng(2).random((1, 8, 8)).astype(np.float32)
    blob = encoding.encode(noisy, encoding.FLOAT32)
    assert len(blob) == noisy.size * 4  # incompressible: stored raw
    assert np.array_equal(encoding.decode(blob, encoding.FLOAT32, noisy.shape), noisy)


def _refusal(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def test_checking_a_blob_in_chunks_refuses_what_inflating_it_whole_refuses():
    # A map bigger than one chunk (1 MB of uint8 cells), healthy and damaged
    # every way a stored blob can be; both say the same, a healthy one nothing.
    cells = 4 * encoding.CHECK_CHUNK_BYTES
    raw = bytes(range(256)) * (cells // 256)
    packed = zlib.compress(raw, 1)
    blobs = {
        "healthy compressed": packed,
        "healthy raw": raw,
        "not zlib": b"\x01" * 31,
        "inflates to less": zlib.compress(raw[:-1]),
        "inflates to more": zlib.compress(raw + b"\x00"),
        "a bomb": zlib.compress(bytes(64 << 20), 9),
        "truncated": packed[:-2],
        "cut in the middle": packed[: len(packed) // 2],
        "bytes after the stream": packed + b"\x00" * 3,
        "empty": b"",
    }
    for name, blob in blobs.items():
        whole = _refusal(lambda: encoding.raw_bytes(blob, encoding.UINT8, cells))
        assert _refusal(lambda: encoding.check(blob, encoding.UINT8, cells)) == whole, name
        assert (whole is None) == name.startswith("healthy"), name
