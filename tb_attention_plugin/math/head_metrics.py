"""What kind of head is this, and is it forming? Per-head metrics of one
layer's examples at one capture, for the head-dynamics view.

Pure numpy, like `numerics`. Each metric is written once, over a
numerics.Examples (every example of a layer in one zero-padded array,
cropped to its real tokens, rows distributions over keys) and returns
(examples, heads) float64: one pass over all examples instead of a dozen
small ones per example. The function of the same name without the leading
underscore takes one example's (heads, q, k) maps and returns (heads,).
NaN where the metric has nothing to measure (no row that qualifies).
Definitions, with the papers they come from, are in docs/HEAD_METRICS.md;
each function's docstring is its formula.
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


def _one(maps):
    """numerics.Examples of one example's (heads, q, k) maps."""
    return numerics.Examples([_float(maps)])


def _nans(examples):
    return np.full((len(examples), examples.heads), np.nan)


def entropy(maps):
    """Mean over query rows of each row's Shannon entropy, in nats."""
    return _entropy(_one(maps))[0]


def _entropy(examples):
    return examples.row_mean(examples.rows.entropies)


@functools.lru_cache(maxsize=256)
def visible_keys(q, k, causal=False, window=0, offset=0):
    """(q,) how many keys row i of a (q, k) map could see: all k; with
    `causal`, keys j <= i; with a sliding `window`, keys |i - j| < window.
    `offset`: the first query's position minus the first key's (cropped
    maps of self attention start at the same position: 0). Read-only (the
    same every capture: computed once)."""
    rows = np.arange(q)[:, None] + offset
    cols = np.arange(k)[None, :]
    visible = np.ones((q, k), dtype=bool)
    if causal:
        visible &= cols <= rows
    if window:
        visible &= np.abs(rows - cols) < window
    counts = visible.sum(axis=1)
    counts.flags.writeable = False
    return counts


def normalized_entropy(maps, causal=False, window=0, offset=0):
    """Mean over rows of H(row) / log(n), n the keys the row can see
    (visible_keys: k; i + 1 for row i of causal attention; fewer within a
    sliding window): 1 for uniform attention over what the row could see, 0
    for one key, comparable across lengths. Rows with n = 1 are left out."""
    return _normalized_entropy(_one(maps), causal, window, [offset])[0]


def _normalized_entropy(examples, causal, window, offsets):
    allowed = np.zeros(examples.real_rows.shape, dtype=np.int64)
    for i, (q, k, offset) in enumerate(zip(examples.q, examples.k, offsets)):
        allowed[i, :q] = visible_keys(int(q), int(k), causal, window, int(offset))
    rows = allowed > 1
    per_row = examples.rows.entropies / np.log(np.where(rows, allowed, 2))[:, None, :]
    return examples.row_mean(per_row, rows)


def confidence(maps):
    """Mean over rows of the row's largest weight (Voita et al. 2019)."""
    return _confidence(_one(maps))[0]


def _confidence(examples):
    return examples.row_mean(examples.rows.maxima)


def first_key_mass(maps):
    """Mean over rows of the weight on the first key: an attention sink
    (Xiao et al. 2023)."""
    return _first_key_mass(_one(maps))[0]


def _first_key_mass(examples):
    if examples.maps.shape[3] == 0:
        return _nans(examples)
    return examples.row_mean(examples.maps[:, :, :, 0])


def special_token_mass(maps, key_tokens):
    """Mean over rows of the weight on keys whose token is special ([CLS],
    [SEP], <s>, BOS, ...: SPECIAL_TOKENS), the "no-op" target of Clark et
    al. 2019. NaN when no key is special."""
    return _special_token_mass(_one(maps), [key_tokens])[0]


def _special_token_mass(examples, key_tokens):
    out = _nans(examples)
    for i, tokens in enumerate(key_tokens):
        special = [j for j, t in enumerate(list(tokens)[: examples.k[i]]) if t in SPECIAL_TOKENS]
        if special and examples.q[i]:
            mass = examples.example(i)[:, :, special].sum(axis=2, dtype=np.float64)
            out[i] = mass.mean(axis=1)
    return out


def previous_token_score(maps):
    """Mean over rows i >= 1 of the weight on key i - 1 (self attention)."""
    return _previous_token_score(_one(maps))[0]


def _previous_token_score(examples):
    # diagonal t is P[t + 1, t]: row t + 1 of an example counts while
    # t + 1 < min(q, k + 1); the mean is over those rows.
    rows = np.minimum(examples.q, examples.k + 1) - 1
    return _diagonal_mean(examples, -1, rows, rows)


def same_position_score(maps):
    """Mean over rows i of the weight on key i (self attention)."""
    return _same_position_score(_one(maps))[0]


def _same_position_score(examples):
    # rows beyond the keys have no key i: they count as 0 weight (sum / q)
    return _diagonal_mean(examples, 0, np.minimum(examples.q, examples.k), examples.q)


def _diagonal_mean(examples, offset, lengths, divisors):
    """(examples, heads): the sum of the first lengths[i] weights of the
    diagonal `offset` (0: P[t, t]; -1: P[t + 1, t]) of each example, over
    divisors[i]; NaN where lengths[i] <= 0."""
    diagonal = np.diagonal(examples.maps, offset=offset, axis1=2, axis2=3)
    kept = np.arange(diagonal.shape[2])[None, :] < lengths[:, None]
    total = np.where(kept[:, None, :], diagonal, 0.0).sum(axis=2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((lengths > 0)[:, None], total / np.maximum(divisors, 1)[:, None], np.nan)


def mean_distance(maps):
    """Mean over rows of the expected |i - j| under the row's weights
    (numerics.mean_distance)."""
    return _mean_distance(_one(maps))[0]


def _mean_distance(examples):
    return examples.row_mean(examples.rows.distances)


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
    return _induction_score(_one(maps), [tokens])[0]


def _induction_score(examples, tokens):
    out = _nans(examples)
    for i, example_tokens in enumerate(tokens):
        q, k = int(examples.q[i]), int(examples.k[i])
        found = _induction_mask(tuple(np.asarray(list(example_tokens)[:q]).tolist()), k)
        if found is not None:
            rows, targets = found
            weight = (examples.example(i)[:, rows, :] * targets).sum(axis=2, dtype=np.float64)
            out[i] = weight.mean(axis=1)
    return out


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
    width = min(n, k) - 1  # successors j + 1 that are keys (more rows than keys: fewer)
    targets[:, 1 : 1 + width] = np.tril(same, k=-2)[:, :width]
    rows = np.flatnonzero(targets.any(axis=1))
    if rows.size == 0:
        return None
    targets = targets[rows]
    rows.flags.writeable = targets.flags.writeable = False
    return rows, targets


def change(maps, previous):
    """Mean absolute change of every weight since the previous capture; NaN
    without one or when the shapes differ (the probe changed)."""
    return _change(_one(maps), [previous])[0]


def _change(examples, previous):
    out = _nans(examples)
    for i, before in enumerate(previous):
        now = examples.example(i)
        if before is not None and np.shape(before) == now.shape and now.size:
            out[i] = np.abs(now - _float(before)).mean(axis=(1, 2), dtype=np.float64)
    return out


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


def all_metrics(maps, key_tokens, kind, previous=None, ids=None, grid=None, window=0, offset=0):
    """(heads, len(METRIC_NAMES)) of one example: `key_tokens` its key token
    strings (special tokens are looked up there), `kind` 'self', 'causal' or
    'cross', `previous` its maps at the previous capture or None, `ids` its
    token ids (self attention: induction compares them; the strings when
    None), `grid` (rows, cols, prefix) when its tokens are image patches,
    `window` the layer's sliding window (0: none) and `offset` the first
    query's position minus the first key's (visible_keys)."""
    return metrics_of(_one(maps), [key_tokens], kind, [previous], [ids], grid, window, [offset])[0]


def metrics_of(examples, key_tokens, kind, previous, ids, grid=None, window=0, offsets=None):
    """(examples, heads, len(METRIC_NAMES)) of a numerics.Examples: the
    arguments of all_metrics, one per example in lists (`grid` and `window`
    are the layer's)."""
    count = len(examples)
    offsets = offsets if offsets is not None else [0] * count
    causal = kind == "causal"
    values = {
        "entropy": _entropy(examples),
        "normalized_entropy": _normalized_entropy(examples, causal, 0 if kind == "cross" else window,
                                                  [0] * count if kind == "cross" else offsets),
        "confidence": _confidence(examples),
        "first_key_mass": _first_key_mass(examples),
        "special_token_mass": _special_token_mass(examples, key_tokens),
        "mean_distance": _mean_distance(examples),
        "change": _change(examples, previous),
    }
    if kind == "cross":
        values["monotone_alignment"] = np.stack(
            [monotone_alignment(examples.example(i)) for i in range(count)]) if count else _nans(examples)
    else:
        values["previous_token"] = _previous_token_score(examples)
        values["same_position"] = _same_position_score(examples)
        values["induction"] = _induction_score(
            examples, [keys if example_ids is None else example_ids for keys, example_ids in zip(key_tokens, ids)])
        values["patch_distance"] = np.stack(
            [patch_distance(examples.example(i), grid) for i in range(count)]) if count else _nans(examples)
    missing = _nans(examples)
    return np.stack([values.get(name, missing) for name in METRIC_NAMES], axis=2)


def self_attention_metrics(maps, tokens, previous=None, causal=False, ids=None, window=0, offset=0):
    """{metric name: (heads,)} of one self-attention example; `tokens` are
    its (query = key) token strings, `ids` its token ids if known (what
    induction compares: two words may print alike); `window`, `offset` as
    for visible_keys. The metrics that do not apply are left out."""
    values = all_metrics(maps, tokens, "causal" if causal else "self", previous, ids, None, window, offset)
    return {name: values[:, i] for i, name in enumerate(METRIC_NAMES)
            if name not in ("monotone_alignment", "patch_distance")}


def cross_attention_metrics(maps, key_tokens, previous=None):
    """{metric name: (heads,)} of one cross-attention example (special
    tokens looked up among its keys). The metrics that do not apply are
    left out."""
    values = all_metrics(maps, key_tokens, "cross", previous)
    return {name: values[:, i] for i, name in enumerate(METRIC_NAMES)
            if name not in ("previous_token", "same_position", "induction", "patch_distance")}
