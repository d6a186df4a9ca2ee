"""What kind of head is this, and is it forming? Per-head metrics of one
example's attention at one capture, for the head-dynamics view.

Pure numpy, like `numerics`: `maps` is (heads, q, k), cropped to the
example's real tokens, rows distributions over keys. Every function returns
(heads,) float64; NaN where the metric has nothing to measure (no row that
qualifies). Definitions, with the papers they come from, are in
docs/HEAD_METRICS.md; each function's docstring is its formula.
"""

import functools

import numpy as np

from tb_attention_plugin.math import numerics

# Tokens that mark a sequence's start, end or separation in the tokenizers
# users have (BERT, RoBERTa/BART, GPT-2, Llama, T5): "sink" candidates.
SPECIAL_TOKENS = frozenset({
    "[CLS]", "[SEP]", "[BOS]", "[EOS]", "<s>", "</s>", "<bos>", "<eos>",
    "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<pad>", "[PAD]",
})


def _float(maps):
    # float32, like the scores: float64 copies of a 12 x 512 x 512 map cost
    # more than the metrics; sums over a row of probabilities lose < 1e-6.
    return np.asarray(maps, dtype=np.float32)


def _nan(maps):
    return np.full(np.shape(maps)[0], np.nan)


def entropy(maps):
    """Mean over query rows of each row's Shannon entropy, in nats."""
    if 0 in np.shape(maps)[1:]:
        return _nan(maps)
    return numerics.row_entropy(maps)


def visible_keys(q, k, causal=False, window=0, offset=0):
    """(q,) how many keys row i of a (q, k) map could see: all k; with
    `causal`, keys j <= i; with a sliding `window`, keys |i - j| < window.
    `offset`: the first query's position minus the first key's (cropped
    maps of self attention start at the same position: 0)."""
    rows = np.arange(q)[:, None] + offset
    cols = np.arange(k)[None, :]
    visible = np.ones((q, k), dtype=bool)
    if causal:
        visible &= cols <= rows
    if window:
        visible &= np.abs(rows - cols) < window
    return visible.sum(axis=1)


def normalized_entropy(maps, causal=False, row_entropies=None, window=0, offset=0):
    """Mean over rows of H(row) / log(n), n the keys the row can see
    (visible_keys: k; i + 1 for row i of causal attention; fewer within a
    sliding window): 1 for uniform attention over what the row could see, 0
    for one key, comparable across lengths. Rows with n = 1 are left out.
    `row_entropies`: (heads, q), when already computed."""
    heads, q, k = np.shape(maps)
    allowed = visible_keys(q, k, causal, window, offset)
    rows = allowed > 1
    if not rows.any():
        return _nan(maps)
    if row_entropies is None:
        row_entropies = numerics.row_entropies(maps)
    per_row = row_entropies / np.log(np.where(rows, allowed, 2))
    return per_row[:, rows].mean(axis=1)


def confidence(maps, row_maxima=None):
    """Mean over rows of the row's largest weight (Voita et al. 2019).
    `row_maxima`: (heads, q), when already computed (numerics.RowFacts)."""
    if 0 in np.shape(maps)[1:]:
        return _nan(maps)
    if row_maxima is None:
        row_maxima = _float(maps).max(axis=2)
    return row_maxima.mean(axis=1, dtype=np.float64)


def first_key_mass(maps):
    """Mean over rows of the weight on the first key: an attention sink
    (Xiao et al. 2023)."""
    p = _float(maps)
    if p.shape[1] == 0 or p.shape[2] == 0:
        return _nan(maps)
    return p[:, :, 0].mean(axis=1, dtype=np.float64)


def special_token_mass(maps, key_tokens):
    """Mean over rows of the weight on keys whose token is special ([CLS],
    [SEP], <s>, BOS, ...: SPECIAL_TOKENS), the "no-op" target of Clark et
    al. 2019. NaN when no key is special."""
    p = _float(maps)
    special = np.array([t in SPECIAL_TOKENS for t in key_tokens], dtype=bool)
    if p.shape[1] == 0 or not special.any():
        return _nan(maps)
    return p[:, :, special].sum(axis=2, dtype=np.float64).mean(axis=1)


def previous_token_score(maps):
    """Mean over rows i >= 1 of the weight on key i - 1 (self attention)."""
    p = _float(maps)
    q, k = p.shape[1:]
    rows = np.arange(1, min(q, k + 1))
    if rows.size == 0:
        return _nan(maps)
    return p[:, rows, rows - 1].mean(axis=1, dtype=np.float64)


def same_position_score(maps):
    """Mean over rows i of the weight on key i (self attention)."""
    p = _float(maps)
    n = min(p.shape[1], p.shape[2])
    if n == 0:
        return _nan(maps)
    rows = np.arange(n)
    return p[:, rows, rows].sum(axis=1, dtype=np.float64) / p.shape[1]


def mean_distance(maps, row_distances=None):
    """Mean over rows of the expected |i - j| under the row's weights
    (numerics.mean_distance). `row_distances`: (heads, q), when already
    computed."""
    if 0 in np.shape(maps)[1:]:
        return _nan(maps)
    if row_distances is None:
        row_distances = numerics.row_distances(maps)
    return row_distances.mean(axis=1)


def induction_targets(tokens):
    """For each position i, the keys an induction head attends to: the
    successors j + 1 of the earlier occurrences j < i of token i, with
    j + 1 < i (Olsson et al. 2022: "[A][B] ... [A] -> [B]")."""
    targets = []
    for i, token in enumerate(tokens):
        targets.append(sorted({j + 1 for j in range(i) if tokens[j] == token and j + 1 < i}))
    return targets


def induction_score(maps, tokens):
    """Mean, over the rows whose token occurred before (with a successor
    before the row), of the weight on those successors. NaN when the
    example repeats no token. `tokens`: the example's query tokens (ids or
    strings), one per row; self attention."""
    p = _float(maps)
    q, k = p.shape[1:]
    found = _induction_mask(tuple(np.asarray(list(tokens)[:q]).tolist()), k)
    if found is None:
        return _nan(maps)
    rows, targets = found
    weight = (p[:, rows, :] * targets).sum(axis=2, dtype=np.float64)
    return weight.mean(axis=1)


@functools.lru_cache(maxsize=256)
def _induction_mask(tokens, k):
    """(row indices, targets (rows, k) bool) of induction_score for the
    query `tokens` (a tuple) over `k` keys, or None when no row has a
    target. A probe's tokens are the same at every capture: computed once."""
    tokens = np.asarray(tokens)
    n = min(len(tokens), k + 1)
    if n < 3:
        return None
    # targets[i, j + 1]: token j equals token i, j + 1 < i (induction_targets)
    same = tokens[:n, None] == tokens[None, :n]
    targets = np.zeros((n, k), dtype=bool)
    targets[:, 1:n] = np.tril(same, k=-2)[:, : n - 1]
    rows = np.flatnonzero(targets.any(axis=1))
    if rows.size == 0:
        return None
    targets = targets[rows]
    rows.flags.writeable = targets.flags.writeable = False
    return rows, targets


def change(maps, previous):
    """Mean absolute change of every weight since the previous capture; NaN
    without one or when the shapes differ (the probe changed)."""
    if previous is None or np.shape(previous) != np.shape(maps) or np.size(maps) == 0:
        return _nan(maps)
    return np.abs(_float(maps) - _float(previous)).mean(axis=(1, 2), dtype=np.float64)


def patch_distance(maps, grid):
    """The ViT paper's "mean attention distance" (Dosovitskiy et al. 2021,
    Fig. 7), in patch widths: over the query rows that are patches, the mean
    of sum_j P[i,j] d(i,j) / sum_j P[i,j] over the keys j that are patches,
    d(i,j) the Euclidean distance between the two patches' centres on the
    grid (one patch right: 1, one down and one right: sqrt 2). Attention on
    class or register tokens has no place on the image and is left out (the
    row is renormalised over the patches). Times the patch size in pixels it
    is the paper's figure. `grid` is (rows, cols, prefix): tokens 0..prefix-1
    are class/register tokens, token prefix + r*cols + c is patch (r, c).
    NaN without a grid, or when no row has weight on a patch."""
    if grid is None:
        return _nan(maps)
    rows, cols, prefix = grid
    n = rows * cols
    heads, q, k = np.shape(maps)
    if q != prefix + n or k != prefix + n or n == 0:
        return _nan(maps)
    r, c = np.divmod(np.arange(n), cols)
    distance = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :]).astype(np.float32)
    patches = _float(maps)[:, prefix:, prefix:]
    mass = patches.sum(axis=2, dtype=np.float64)
    weighted = (patches * distance).sum(axis=2, dtype=np.float64)
    rows_with_mass = mass > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_row = np.where(rows_with_mass, weighted / np.where(rows_with_mass, mass, 1), np.nan)
    counted = rows_with_mass.sum(axis=1)
    return np.where(counted > 0, np.nansum(per_row, axis=1) / np.maximum(counted, 1), np.nan)


def monotone_alignment(maps):
    """How much attention lies on the best monotone alignment: the path that
    picks one key per query row, never moving back (keys non-decreasing down
    the rows), maximising the weight it collects; its weight divided by the
    rows. 1 for attention on a monotone path (translation's diagonal), 1/k
    for uniform attention, about 1/q for an anti-diagonal. For cross
    attention."""
    p = _float(maps)
    heads, q, k = p.shape
    if q == 0 or k == 0:
        return _nan(maps)
    best = p[:, 0, :].astype(np.float64)  # best[h, j]: path over rows 0..i ending at key j
    for i in range(1, q):
        best = np.maximum.accumulate(best, axis=1) + p[:, i, :]
    return best.max(axis=1) / q


# The metrics every capture stores, in this order (the HEAD_METRICS tensor's
# last axis; its metadata repeats the names, so readers go by name). NaN
# where a metric does not apply: induction and the position scores to cross
# attention, the alignment to self attention, patch_distance to layers that
# are not over an image's patches.
METRIC_NAMES = (
    "entropy", "normalized_entropy", "confidence", "first_key_mass", "special_token_mass",
    "previous_token", "same_position", "mean_distance", "induction", "monotone_alignment",
    "change", "patch_distance",
)


def all_metrics(maps, key_tokens, kind, previous=None, ids=None, grid=None, window=0, offset=0, rows=None):
    """(heads, len(METRIC_NAMES)) of one example: `key_tokens` its key token
    strings (special tokens are looked up there), `kind` 'self', 'causal' or
    'cross', `previous` its maps at the previous capture or None, `ids` its
    token ids (self attention: induction compares them; the strings when
    None), `grid` (rows, cols, prefix) when its tokens are image patches,
    `window` the layer's sliding window (0: none), `offset` the first
    query's position minus the first key's (visible_keys) and `rows` the
    maps' numerics.RowFacts when already computed."""
    if kind == "cross":
        values = cross_attention_metrics(maps, key_tokens, previous, rows=rows)
    else:
        values = self_attention_metrics(maps, key_tokens, previous, causal=kind == "causal", ids=ids,
                                        window=window, offset=offset, rows=rows)
        values["patch_distance"] = patch_distance(maps, grid)
    heads = np.shape(maps)[0]
    return np.stack([values.get(name, np.full(heads, np.nan)) for name in METRIC_NAMES], axis=1)


def _row_based_metrics(p, key_tokens, previous, rows, causal=False, window=0, offset=0):
    """The metrics every kind of attention has, several of them means of the
    per-row facts (numerics.RowFacts, computed here when `rows` is None)."""
    if 0 in p.shape[1:]:
        return {name: _nan(p) for name in ("entropy", "normalized_entropy", "confidence", "first_key_mass",
                                           "special_token_mass", "mean_distance", "change")}
    rows = numerics.row_facts(p) if rows is None else rows
    return {
        "entropy": rows.entropies.mean(axis=1),
        "normalized_entropy": normalized_entropy(p, causal, rows.entropies, window, offset),
        "confidence": confidence(p, rows.maxima),
        "first_key_mass": first_key_mass(p),
        "special_token_mass": special_token_mass(p, key_tokens),
        "mean_distance": mean_distance(p, rows.distances),
        "change": change(p, previous),
    }


def self_attention_metrics(maps, tokens, previous=None, causal=False, ids=None, window=0, offset=0, rows=None):
    """{metric name: (heads,)} of one self-attention example; `tokens` are
    its (query = key) token strings, `ids` its token ids if known (what
    induction compares: two words may print alike); `window`, `offset` as
    for visible_keys; `rows` as for all_metrics."""
    p = _float(maps)
    values = _row_based_metrics(p, tokens, previous, rows, causal, window, offset)
    values.update({
        "previous_token": previous_token_score(p),
        "same_position": same_position_score(p),
        "induction": induction_score(p, tokens if ids is None else ids),
    })
    return values


def cross_attention_metrics(maps, key_tokens, previous=None, rows=None):
    """{metric name: (heads,)} of one cross-attention example (special
    tokens looked up among its keys); `rows` as for all_metrics."""
    p = _float(maps)
    values = _row_based_metrics(p, key_tokens, previous, rows)
    values["monotone_alignment"] = monotone_alignment(p)
    return values
