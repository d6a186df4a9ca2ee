"""The head layouts attention layers compute (writing/layouts.py), sliding
windows read from masks (masks.sliding_window) and the row-sum tolerance of
low-precision layers (numerics.row_sum_tolerance), on arrays built by hand."""

import ml_dtypes
import numpy as np
import pytest

from tb_attention_plugin.math import numerics
from tb_attention_plugin.writing import layouts, masks


def test_grouped_layout_gives_query_head_kv_times_groups_plus_group():
    # value of every cell: 10 * kv_head + group, so each head says where it came from
    batch, kv, groups, q, k = 2, 3, 2, 4, 5
    scores = np.zeros((batch, kv, groups, q, k))
    for h in range(kv):
        for g in range(groups):
            scores[:, h, g] = 10 * h + g
    out, mask, kv_heads = layouts.query_heads(scores)
    assert out.shape == (batch, 6, q, k) and kv_heads == 3 and mask is None
    assert [out[0, n, 0, 0] for n in range(6)] == [0, 1, 10, 11, 20, 21]


def test_grouped_masks_follow_their_heads():
    scores = np.zeros((1, 2, 2, 3, 3))
    shared = np.tril(np.ones((1, 1, 1, 3, 3), bool))  # Gemma: one mask for every head
    assert layouts.query_heads(scores, shared)[1].shape == (1, 1, 3, 3)
    per_kv = np.ones((1, 2, 1, 3, 3), bool)
    per_kv[0, 1, 0, :, 2] = False  # kv head 1 may not see key 2
    mask = layouts.query_heads(scores, per_kv)[1]
    assert mask.shape == (1, 4, 3, 3)
    assert [bool(mask[0, n, 0, 2]) for n in range(4)] == [True, True, False, False]


def test_heads_after_the_query_axis_are_told_apart_by_the_query_length():
    scores = np.arange(2 * 5 * 3 * 5).reshape(2, 5, 3, 5)  # (batch, q=5, heads=3, k=5)
    out, _, _ = layouts.query_heads(scores, query_length=5)
    assert out.shape == (2, 3, 5, 5) and out[1, 2, 4, 0] == scores[1, 4, 2, 0]
    # (batch, heads, q, k) is left as it is, and so is any layout without the length
    assert layouts.query_heads(scores.reshape(2, 3, 5, 5), query_length=5)[0].shape == (2, 3, 5, 5)
    assert layouts.query_heads(scores)[0].shape == (2, 5, 3, 5)


def _band(n, window, causal):
    i, j = np.indices((n, n))
    cells = np.abs(i - j) < window
    return (cells & (j <= i) if causal else cells)[None, None]


@pytest.mark.parametrize("causal", [True, False])
def test_a_sliding_window_is_read_from_the_mask(causal):
    assert masks.sliding_window(_band(8, 3, causal)) == 3
    # a window as long as the sequence hides nothing: no window
    assert masks.sliding_window(_band(8, 8, causal)) == 0


def test_padding_does_not_hide_a_window_and_a_ragged_mask_is_none():
    real = np.ones((2, 8), bool)
    real[1, 5:] = False  # example 1: 5 real tokens
    cells = _band(8, 3, True) & real[:, None, None, :]
    assert masks.sliding_window(cells, real, real) == 3
    ragged = _band(8, 3, True).copy()
    ragged[0, 0, 7, 6] = False  # one key inside the band masked: no band describes it
    assert masks.sliding_window(ragged) == 0
    assert masks.sliding_window(np.tril(np.ones((1, 1, 8, 8), bool))) == 0  # plain causal


def test_row_sum_tolerance_follows_the_dtype_and_the_keys():
    # (ceil(log2 k) + 2) x unit roundoff; never under 1e-3
    assert numerics.row_sum_tolerance(ml_dtypes.bfloat16, 10) == pytest.approx((4 + 2) * 2.0 ** -8)
    assert numerics.row_sum_tolerance(np.float16, 1024) == pytest.approx((10 + 2) * 2.0 ** -11)
    assert numerics.row_sum_tolerance(np.float32, 8192) == 1e-3
    assert numerics.row_sum_tolerance(np.int32, 4) == 1e-3
