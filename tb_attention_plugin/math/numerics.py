"""Attention math on numpy arrays: importance, head statistics, rollout.

Pure functions, no I/O and no TensorFlow, so every number the tab shows can be
checked by hand against these definitions. Shapes are given per example:
`maps` is (heads, q, k), already cropped to the example's real tokens, with
each row a distribution over keys (a softmax) for ordinary attention.
"""

import dataclasses
import functools

import numpy as np


def received_attention(maps):
    """Attention each key token receives: the sum over the query axis.

    Args:
      maps: (..., heads, q, k) attention weights, cropped (or zero-padded:
        Examples.maps; leading axes are kept).

    Returns:
      (..., heads, k): `out[h, j] = sum_i maps[h, i, j]`. Over all keys it sums to
      the number of query rows (each row is a distribution).
    """
    return np.asarray(maps).sum(axis=-2, dtype=np.float64)


def given_attention(maps):
    """Attention each query token gives: the sum over the key axis.

    This is what seed 000 called importance; for softmax rows it is 1 for
    every query and carries no information. It is kept, labelled as such, as a
    check that rows are normalised.

    Returns:
      (heads, q).
    """
    return np.asarray(maps).sum(axis=2, dtype=np.float64)


def row_entropies(maps):
    """(..., heads, q) Shannon entropy of each row of (..., heads, q, k)
    maps, in nats (0 log 0 = 0).

    Each p log p is computed in float32, the precision of the scores
    themselves (relative error about 1e-7), and summed in float64: a float64
    copy of every map cost more than the rest of a capture's statistics.
    """
    p = np.asarray(maps, dtype=np.float32)
    return -(p * np.log(np.maximum(p, np.float32(1e-30)))).sum(axis=-1, dtype=np.float64)


def row_distances(maps):
    """(..., heads, q) expected |i - j| under each row's weights.

    Positions are counted within the cropped map, so for cross attention it
    compares positions in two different sequences.
    """
    p = np.asarray(maps, dtype=np.float32)
    q, k = p.shape[-2:]
    return (p * _distance_matrix(q, k)).sum(axis=-1, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _distance_matrix(q, k):
    """float32 (q, k) of |i - j|, read-only (shared between calls)."""
    distance = np.abs(np.arange(q, dtype=np.float32)[:, None] - np.arange(k, dtype=np.float32)[None, :])
    distance.flags.writeable = False
    return distance


def row_entropy(maps):
    """Mean over query rows of the Shannon entropy of each row, in nats.

    0 for a row on one key; log(k) for a uniform row.

    Returns:
      (heads,).
    """
    return row_entropies(maps).mean(axis=1)


def max_weight(maps):
    """Largest single weight of each head. Returns (heads,)."""
    return np.asarray(maps).max(axis=(1, 2)).astype(np.float64)


def mean_distance(maps):
    """Mean over query rows of the expected |i - j| under each row's weights
    (row_distances).

    Returns:
      (heads,).
    """
    return row_distances(maps).mean(axis=1)


def value_weighted(maps, norms):
    """Value-weighted attention as shares of each row (Kobayashi et al.,
    EMNLP 2020): a_ij ||f(x_j)|| / sum_j' a_ij' ||f(x_j')||.

    Args:
      maps: (..., q, k) attention weights.
      norms: (..., k) the norm of what each key sends (value_vectors).

    Returns:
      (..., q, k) float32; each row sums to 1, or is all 0 where every
      weighted cell is 0 (a row of padding, or keys that send nothing).
    """
    weighted = np.asarray(maps, dtype=np.float32) * np.asarray(norms, dtype=np.float32)[..., None, :]
    sums = weighted.sum(axis=-1, keepdims=True)
    np.divide(weighted, sums, out=weighted, where=sums > 0)
    return weighted


def relevance_shares(products):
    """Gradient-weighted relevance (Chefer, Gur and Wolf, ICCV 2021) as
    shares of each query row.

    Args:
      products: (..., q, k) d target / d a_ij * a_ij, the gradient of the
        explained output by each attention weight times the weight.

    Returns:
      (shares, rows): float32 (..., q, k) each row's positive part divided by
      its sum, all 0 where the row has none; float32 (..., q) those sums.
    """
    positive = np.maximum(np.asarray(products, dtype=np.float32), 0.0)
    rows = positive.sum(axis=-1)
    np.divide(positive, rows[..., None], out=positive, where=rows[..., None] > 0)
    return positive, rows


def relevance_layer(products):
    """(..., heads, n, n) d target / d A * A of one self-attention layer ->
    (..., n, n) float64 `I + mean_h (d target / d A_h * A_h)^+`: one step of
    relevance rollout, R <- R + A_bar R (Chefer et al. 2021, eq. 6-7), the
    identity the residual path. Zero-padded rows become identity rows."""
    mean = np.maximum(np.asarray(products), 0.0).mean(axis=-3, dtype=np.float64)
    return mean + np.eye(mean.shape[-1])


def padded(maps):
    """Per example (heads, q_i, k_i) maps -> one float32 (examples, heads,
    Q, K) array, each at the top left, zeros beyond (Q, K the longest); the
    maps stacked as they are when all are alike."""
    maps = [np.asarray(m, dtype=np.float32) for m in maps]
    heads = maps[0].shape[0] if maps else 0
    shape = (len(maps), heads, max((m.shape[1] for m in maps), default=0), max((m.shape[2] for m in maps), default=0))
    if maps and all(m.shape == shape[1:] for m in maps):
        return np.stack(maps)
    out = np.zeros(shape, dtype=np.float32)
    for i, m in enumerate(maps):
        out[i, :, : m.shape[1], : m.shape[2]] = m
    return out


@dataclasses.dataclass(frozen=True)
class RowFacts:
    """What every per-head number is made of, per query row: each a (...,
    heads, q) float64 array of (..., heads, q, k) maps. Computed once per
    capture (`row_facts`) and shared by the head statistics, the head
    metrics, given attention and the rows-sum-to-one check, which each made
    these passes over the maps on their own before."""

    sums: np.ndarray  # sum over keys: given attention; 1 for a softmax row
    entropies: np.ndarray  # row_entropies
    maxima: np.ndarray  # the row's largest weight
    distances: np.ndarray  # row_distances


def row_facts(maps):
    """RowFacts of (..., heads, q, k) maps; every fact is along the last
    axis, so any leading axes (examples) are kept. A map without keys has
    rows that sum to 0 and no maximum (NaN)."""
    p = np.asarray(maps, dtype=np.float32)
    if p.shape[-1] == 0:
        zeros = np.zeros(p.shape[:-1])
        return RowFacts(sums=zeros, entropies=zeros, maxima=np.full(p.shape[:-1], np.nan), distances=zeros)
    return RowFacts(
        sums=p.sum(axis=-1, dtype=np.float64),
        entropies=row_entropies(p),
        maxima=p.max(axis=-1).astype(np.float64),
        distances=row_distances(p),
    )


class Examples:
    """One layer's examples at one capture, for computing per-head numbers
    of all of them at once: each example's cropped (heads, q_i, k_i) maps
    at the top left of one zero-padded float32 (examples, heads, Q, K)
    array, Q and K the longest. Positions are those of the cropped maps.

    Zeros add nothing to a row's sum, entropy (0 log 0 = 0) or expected
    distance, so the row facts of the padded array are each example's own;
    means over rows take each example's real rows only (`row_mean`). One
    pass over the padded array replaces a dozen small ones per example
    (docs/PERFORMANCE.md change 22).
    """

    def __init__(self, maps, stacked=None):
        """`stacked`: the maps already as one float32 (examples, heads, Q,
        K) array (nothing cropped), used as it is: at 8 heads x 2048 tokens
        a copy is 134 MB per example and layer."""
        maps = [np.asarray(m, dtype=np.float32) for m in maps]
        self.heads = maps[0].shape[0] if maps else 0
        self.q = np.array([m.shape[1] for m in maps], dtype=np.int64)
        self.k = np.array([m.shape[2] for m in maps], dtype=np.int64)
        shape = (len(maps), self.heads, int(self.q.max(initial=0)), int(self.k.max(initial=0)))
        if stacked is not None and stacked.shape == shape and stacked.dtype == np.float32:
            self.maps = stacked
        else:
            self.maps = padded(maps)
        self.rows = row_facts(self.maps)
        # (examples, Q): the example's real rows
        self.real_rows = np.arange(shape[2])[None, :] < self.q[:, None]

    def __len__(self):
        return len(self.q)

    def example(self, i):
        """Example i's cropped (heads, q_i, k_i) maps (a view)."""
        return self.maps[i, :, : self.q[i], : self.k[i]]

    def row_mean(self, values, rows=None):
        """(examples, heads) mean of (examples, heads, Q) `values` over each
        example's real rows (and among them `rows`, an (examples, Q) mask,
        if given); NaN for an example without cells or without such rows."""
        rows = self.real_rows if rows is None else rows & self.real_rows
        counts = rows.sum(axis=1)
        total = np.where(rows[:, None, :], values, 0.0).sum(axis=2, dtype=np.float64)
        has = (counts > 0) & (self.q > 0) & (self.k > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(has[:, None], total / np.maximum(counts, 1)[:, None], np.nan)


def head_statistics(maps):
    """(heads, 3): row entropy, max weight and mean distance, in that order
    (head_statistics_of one example).

    A map without cells (an example that is all padding: q or k is 0) has
    no statistics: every value is NaN.
    """
    return head_statistics_of(Examples([maps]))[0]


def head_statistics_of(examples):
    """(examples, heads, 3) of an Examples: row entropy, max weight and mean
    distance of each example."""
    rows = examples.rows
    maxima = np.where(examples.real_rows[:, None, :], rows.maxima, -np.inf).max(axis=2, initial=-np.inf)
    maxima = np.where((examples.q > 0)[:, None] & (examples.k > 0)[:, None], maxima, np.nan)
    return np.stack(
        [examples.row_mean(rows.entropies), maxima, examples.row_mean(rows.distances)], axis=2
    )


def rollout_step(previous, maps):
    """One layer of attention rollout (Abnar & Zuidema 2020).

    Args:
      previous: (..., n, n) rollout up to the layer below, or None for the first.
      maps: (..., heads, n, n) self-attention of this layer; leading axes
        (examples) are kept. Zero padding (Examples.maps) stays apart: a
        padded row becomes an identity row no real row draws on.

    Returns:
      (..., n, n): `A_hat @ previous` with `A_hat` the head-mean map mixed
      half and half with the identity (the residual path), rows renormalised.
    """
    mixed = rollout_layer(maps)
    return mixed if previous is None else mixed @ previous


def rollout_layer(maps):
    """(..., heads, n, n) self-attention of one layer -> (..., n, n) float64
    `A_hat`: the head mean mixed half and half with the identity (the
    residual path), rows renormalised. Padded (zero) rows become identity rows."""
    mean = np.asarray(maps).mean(axis=-3, dtype=np.float64)
    mixed = 0.5 * mean + 0.5 * np.eye(mean.shape[-1])
    mixed /= mixed.sum(axis=-1, keepdims=True)
    return mixed


def rollout_importances(layers, lengths):
    """(examples, n) float64: the rollout importance of the top of a stack,
    `rollout_importance(A_hat_L @ ... @ A_hat_1)` of every example, without
    the matrix product.

    Args:
      layers: the stack's `rollout_layer`s, first layer first, each
        (examples, n, n), zero-padded beyond each example's length.
      lengths: (examples,) each example's real tokens.

    The mean over real rows of the product is a row vector times the layers
    from the top down: L n^2 work instead of the product's n^3 per layer
    (at 2048 tokens, 8.5 of a capture's 42 s were these products).
    Entries beyond an example's length are 0.
    """
    lengths = np.asarray(lengths)
    top = np.asarray(layers[-1], dtype=np.float64)
    real = np.arange(top.shape[-1])[None, :] < lengths[:, None]
    vector = np.einsum("en,enm->em", real.astype(np.float64), top) / np.maximum(lengths, 1)[:, None]
    for layer in reversed(layers[:-1]):
        vector = np.einsum("en,enm->em", vector, layer)
    return np.where(real, vector, 0.0)


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


# The floor of row_sum_tolerance: float32 rows (and the uint8 maps read back)
# sum to 1 far closer than this; anything that is not a softmax (a layer's
# output, a position bias) misses it by far more.
ROW_SUM_TOLERANCE = 1e-3


def row_sum_tolerance(dtype, keys):
    """How far from 1 a softmax row over `keys` keys, computed in `dtype`,
    may sum once cast to float32.

    With u the dtype's unit roundoff (eps / 2: 2^-8 for bfloat16, 2^-11 for
    float16), each weight is rounded once (at most u of the row in all), the
    normaliser is a sum over the keys (at most ceil(log2 keys) u with the
    tree reductions TensorFlow, XLA and torch use) and the division rounds
    once more (u): |sum - 1| <= (ceil(log2 keys) + 2) u. bfloat16 over 10
    keys: 0.023 (rows seen summing within 6e-3); never below
    ROW_SUM_TOLERANCE. A map that is not a softmax misses 1 by far more (a
    layer's output, T5's position bias).
    """
    try:
        unit = float(_finfo(dtype).eps) / 2
    except (TypeError, ValueError):  # an integer or odd dtype: no rounding of its own to allow for
        return ROW_SUM_TOLERANCE
    steps = int(np.ceil(np.log2(max(int(keys), 2)))) + 2
    return max(ROW_SUM_TOLERANCE, steps * unit)


def _finfo(dtype):
    """np.finfo, also for bfloat16 (ml_dtypes, which TensorFlow and JAX
    return bfloat16 arrays as)."""
    try:
        return np.finfo(dtype)
    except (TypeError, ValueError):
        import ml_dtypes  # installed with TensorFlow, JAX and Keras

        return ml_dtypes.finfo(dtype)


def rows_sum_to_one(maps, atol=ROW_SUM_TOLERANCE, sums=None):
    """True when every row of (..., q, k) sums to 1 within atol. `sums`:
    the rows' sums (RowFacts.sums), when already computed."""
    if sums is None:
        sums = np.asarray(maps).sum(axis=-1, dtype=np.float64)
    return bool(np.all(np.abs(sums - 1.0) <= atol))
