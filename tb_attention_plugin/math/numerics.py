"""Attention math on numpy arrays: importance, head statistics, rollout.

Pure functions, no I/O and no TensorFlow, so every number the tab shows can be
checked by hand against these definitions. Shapes are given per example:
`maps` is (heads, q, k), already cropped to the example's real tokens, with
each row a distribution over keys (a softmax) for ordinary attention.
"""

import numpy as np


def received_attention(maps):
    """Attention each key token receives: the sum over the query axis.

    Args:
      maps: (heads, q, k) attention weights of one example, cropped.

    Returns:
      (heads, k): `out[h, j] = sum_i maps[h, i, j]`. Over all keys it sums to
      the number of query rows (each row is a distribution).
    """
    return np.asarray(maps, dtype=np.float64).sum(axis=1)


def given_attention(maps):
    """Attention each query token gives: the sum over the key axis.

    This is what seed 000 called importance; for softmax rows it is 1 for
    every query and carries no information. It is kept, labelled as such, as a
    check that rows are normalised.

    Returns:
      (heads, q).
    """
    return np.asarray(maps, dtype=np.float64).sum(axis=2)


def row_entropy(maps):
    """Mean over query rows of the Shannon entropy of each row, in nats.

    0 for a row on one key; log(k) for a uniform row.

    Returns:
      (heads,).
    """
    p = np.asarray(maps, dtype=np.float64)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -plogp.sum(axis=2).mean(axis=1)


def max_weight(maps):
    """Largest single weight of each head. Returns (heads,)."""
    return np.asarray(maps, dtype=np.float64).max(axis=(1, 2))


def mean_distance(maps):
    """Mean over query rows of the expected |i - j| under each row's weights.

    Positions are counted within the cropped map, so for cross attention it
    compares positions in two different sequences.

    Returns:
      (heads,).
    """
    p = np.asarray(maps, dtype=np.float64)
    q, k = p.shape[1:]
    distance = np.abs(np.arange(q)[:, None] - np.arange(k)[None, :])
    return (p * distance).sum(axis=2).mean(axis=1)


def head_statistics(maps):
    """(heads, 3): row entropy, max weight and mean distance, in that order.

    A map without cells (an example that is all padding: q or k is 0) has
    no statistics: every value is NaN.
    """
    heads, q, k = np.shape(maps)
    if q == 0 or k == 0:
        return np.full((heads, 3), np.nan)
    return np.stack(
        [row_entropy(maps), max_weight(maps), mean_distance(maps)], axis=1
    )


def rollout_step(previous, maps):
    """One layer of attention rollout (Abnar & Zuidema 2020).

    Args:
      previous: (n, n) rollout up to the layer below, or None for the first.
      maps: (heads, n, n) self-attention of this layer.

    Returns:
      (n, n): `A_hat @ previous` with `A_hat` the head-mean map mixed half and
      half with the identity (the residual path), rows renormalised.
    """
    mean = np.asarray(maps, dtype=np.float64).mean(axis=0)
    mixed = 0.5 * mean + 0.5 * np.eye(mean.shape[0])
    mixed /= mixed.sum(axis=1, keepdims=True)
    return mixed if previous is None else mixed @ previous


def attention_rollout(stack):
    """Rollout through a list of (heads, n, n) maps, first layer first.

    Returns:
      (n, n): row i is how much token i's representation at the top draws on
      each input token.
    """
    result = None
    for maps in stack:
        result = rollout_step(result, maps)
    return result


def rollout_importance(rollout):
    """Mean over query rows of a rollout matrix: (n, n) -> (n,), sums to 1.
    An empty example (n = 0) gives an empty vector."""
    rollout = np.asarray(rollout, dtype=np.float64)
    if rollout.shape[0] == 0:
        return np.zeros(rollout.shape[1:], dtype=np.float64)
    return rollout.mean(axis=0)


def real_span(mask):
    """(offset, length) of the span from the first to the last True entry.

    Padding in Keras is contiguous at the front (`pad_sequences` default) or
    the back, so the span is exactly the real tokens. An all-False mask gives
    (0, 0).
    """
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    if positions.size == 0:
        return 0, 0
    return int(positions[0]), int(positions[-1] - positions[0] + 1)


def is_lower_triangular(maps, atol=0.0):
    """True when every weight above the diagonal is within atol of 0."""
    p = np.asarray(maps)
    if p.shape[-1] != p.shape[-2]:
        return False
    upper = np.triu(np.ones(p.shape[-2:], dtype=bool), k=1)
    return bool(np.all(np.abs(p[..., upper]) <= atol))


def rows_sum_to_one(maps, atol=1e-3):
    """True when every row of (..., q, k) sums to 1 within atol."""
    sums = np.asarray(maps, dtype=np.float64).sum(axis=-1)
    return bool(np.all(np.abs(sums - 1.0) <= atol))
