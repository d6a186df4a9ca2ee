// Head metrics (docs/HEAD_METRICS.md) for the heads view and the image view:
// colour ranges, the largest jump of a series, ranking heads, and a cache of
// the head_metrics route's replies. Pure functions apart from the cache's
// fetch: unit-tested with node.

import { isMissing, servedIndex } from './charts.js';
import { visibleRange } from './visibility.js';

/** Metrics that lie in [0, 1] by definition: one fixed colour scale for every step. */
export const BOUNDED_METRICS = new Set([
  'normalized_entropy', 'confidence', 'first_key_mass', 'special_token_mass', 'previous_token',
  'same_position', 'induction', 'monotone_alignment',
]);

export const DEFAULT_METRIC = 'entropy';

/**
 * Metrics that mean nothing for a kind of layer, with why. Cross attention's
 * rows are decoder positions and its columns encoder positions: a distance
 * |query - key| between them, or a patch distance, mixes two sequences.
 */
export const MEANINGLESS = {
  cross: {
    names: new Set(['mean_distance', 'patch_distance']),
    why: 'means nothing for cross attention: its rows are decoder positions, its columns encoder positions',
  },
};

/** Why `metric` means nothing for `layer` (its kind), or '' where it does. */
export function meaninglessWhy(layer, metric) {
  const rule = MEANINGLESS[layer.kind];
  return rule && rule.names.has(metric) ? rule.why : '';
}

/**
 * Why `metric` is missing (NaN) for every head of `layer` at every step by
 * its definition (docs/HEAD_METRICS.md), or '' where it can have values:
 * monotone_alignment is measured for cross attention only, patch_distance
 * over an image's patch grid only.
 */
export function alwaysMissingWhy(layer, metric) {
  if (metric === 'monotone_alignment' && layer.kind !== 'cross') return 'is measured for cross attention only';
  if (metric === 'patch_distance' && !layer.grid) return "is measured over an image's patch grid only";
  return '';
}

/** Why a metric is not offered for a layer (it means nothing there, or is always missing), or ''. */
export const notOfferedWhy = (layer, metric) => meaninglessWhy(layer, metric) || alwaysMissingWhy(layer, metric);

/** The head metrics a layer stores that mean something for it and can have values (/index's metric_names, in order). */
export function offeredMetrics(layer) {
  return (layer.metric_names || []).filter((name) => !notOfferedWhy(layer, name));
}

/** Units of the unbounded metrics, for legends and axis titles. */
export const METRIC_UNITS = {
  entropy: 'nats', mean_distance: 'token positions', change: 'mean |difference| per cell', patch_distance: 'patch widths',
};

/**
 * The colour range of a metric at one step: fixed 0..1 for bounded metrics,
 * else min..max of the finite `values` (every layer and head at the step).
 * Returns {min, max, fixed, empty}; min === max when all values are equal;
 * empty when no value is present.
 */
export function colourRange(metric, values) {
  if (BOUNDED_METRICS.has(metric)) return { min: 0, max: 1, fixed: true, empty: false };
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (isMissing(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min > max) return { min: 0, max: 0, fixed: false, empty: true };
  return { min, max, fixed: false, empty: false };
}

/** Where v lies on a range, 0..1 (0.5 when the range is a single value); NaN for a missing v. */
export function rangePosition(v, { min, max }) {
  if (isMissing(v)) return NaN;
  if (!(max > min)) return 0.5;
  return Math.min(Math.max((v - min) / (max - min), 0), 1);
}

/** The sentence under the legend: what the colours span. */
export function rangeText(metric, range, step) {
  if (range.fixed) return `${metric}: fixed scale 0 to 1 (the metric's bounds): the same value has the same colour at every step`;
  const unit = METRIC_UNITS[metric] ? ` ${METRIC_UNITS[metric]}` : '';
  if (range.empty) return `${metric} at step ${step}: no values (every head missing)`;
  return `${metric} at step ${step}: min ${range.min.toFixed(3)} to max ${range.max.toFixed(3)}${unit} ` +
    'over every layer and head at this step: colours differ between steps';
}

/**
 * The largest jump of a series: the largest |values[t] - values[t - 1]| over
 * consecutive served points that are both present (a missing point breaks
 * the series). Returns {index: t (the point after the jump), step:
 * steps[t], delta: values[t] - values[t - 1]} or null when no two
 * consecutive points are present. The earliest wins a tie.
 */
export function largestJump(steps, values) {
  let best = null;
  for (let t = 1; t < values.length; t++) {
    const a = values[t - 1];
    const b = values[t];
    if (isMissing(a) || isMissing(b)) continue;
    const delta = b - a;
    if (!best || Math.abs(delta) > Math.abs(best.delta)) best = { index: t, step: steps[t], delta };
  }
  return best;
}

/** |last - first| over the present values of a series (NaN with fewer than two). */
export function changeOverTraining(values) {
  let first = -1;
  let last = -1;
  values.forEach((v, t) => {
    if (isMissing(v)) return;
    if (first < 0) first = t;
    last = t;
  });
  return first >= 0 && last > first ? Math.abs(values[last] - values[first]) : NaN;
}

export const RANKINGS = [
  { value: 'model', label: 'model order' },
  { value: 'value', label: 'by value at this step (highest first)' },
  { value: 'change', label: 'by change over training |last − first|' },
  { value: 'jump', label: 'by largest jump between captures' },
];

/**
 * Cells in the order of a ranking. cells: [{order, value, change, jump}]
 * (order: model order; jump: {delta} or null). 'model' keeps model order;
 * the others sort by value, change or |jump delta|, highest first, missing
 * last, ties in model order. Returns a new array.
 */
export function rankCells(cells, ranking) {
  const key = {
    value: (c) => c.value,
    change: (c) => c.change,
    jump: (c) => (c.jump ? Math.abs(c.jump.delta) : NaN),
  }[ranking];
  const byOrder = (a, b) => a.order - b.order;
  if (!key) return [...cells].sort(byOrder);
  return [...cells].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    const ma = isMissing(ka);
    const mb = isMissing(kb);
    if (ma !== mb) return ma ? 1 : -1;
    if (!ma && ka !== kb) return kb - ka;
    return byOrder(a, b);
  });
}

/** Per step, the mean over heads of the present values (NaN when none): [[v per head] per step] -> [v per step]. */
export function headMeanSeries(rows) {
  return rows.map((row) => {
    let sum = 0;
    let n = 0;
    for (const v of row) {
      if (isMissing(v)) continue;
      sum += v;
      n += 1;
    }
    return n ? sum / n : NaN;
  });
}

/** A head's series out of a reply: values[s][head] for every served step. */
export const headSeries = (reply, head) => reply.values.map((row) => row[head]);

/** Index of the served step for `step` and whether it is that step (a downsampled reply may hold a neighbour). */
export function servedAt(reply, step) {
  const index = servedIndex(reply.steps, step);
  return { index, exact: reply.steps[index] === step };
}

/**
 * Replies of head_metrics, one request per (run, layer, example, metric)
 * and the layer's steps (new data is fetched again). fetch(run, tag,
 * example, metric) -> Promise of the reply. A failed request is forgotten.
 */
export class HeadMetricsCache {
  constructor(fetch) {
    this.fetch = fetch;
    this.replies = new Map();
  }

  /** `of`: 'weights' (the maps' metrics) or 'value_weighted' (those of the value-weighted maps). */
  get(run, layer, example, metric, of = 'weights') {
    const steps = layer.steps || [];
    const key = JSON.stringify([run, layer.tag, example, metric, of, steps.length, steps[steps.length - 1]]);
    let reply = this.replies.get(key);
    if (!reply) {
      reply = this.fetch(run, layer.tag, example, metric, of);
      this.replies.set(key, reply);
      reply.catch(() => this.replies.delete(key));
    }
    return reply;
  }

  clear() {
    this.replies.clear();
  }
}

/**
 * Layer names without the path parts every name shares ("encoder/layer_3/
 * self_attention" among its siblings -> "layer_3"), for cells that name
 * their layer in little room. A name left empty keeps its last part.
 */
export function shortLayerNames(names) {
  const parts = names.map((n) => String(n).split('/'));
  const shortest = Math.min(...parts.map((p) => p.length));
  const same = (at) => parts.every((p) => p[at(p)] === parts[0][at(parts[0])]);
  let head = 0;
  while (names.length > 1 && head < shortest - 1 && same(() => head)) head += 1;
  let tail = 0;
  while (names.length > 1 && head + tail < shortest - 1 && same((p) => p.length - 1 - tail)) tail += 1;
  return parts.map((p) => p.slice(head, p.length - tail).join('/') || p[p.length - 1]);
}

/**
 * What mean_distance (docs/HEAD_METRICS.md: mean over rows of sum_j P[i,j]
 * |i - j|, positions in the map) is for uniform attention over the keys each
 * query sees (visibility.js facts; causal, sliding window): the chart's
 * reference. A row that sees no key adds 0, as it does to the metric.
 * E.g. causal 10 x 10: row i gives i / 2, the mean 2.25; self 3 x 3: 8 / 9.
 */
export function uniformMeanDistance(facts, q, k) {
  if (!(q > 0 && k > 0)) return NaN;
  let sum = 0;
  for (let i = 0; i < q; i++) {
    const [first, last] = visibleRange(i, { ...facts, keys: k });
    const a = Math.max(first, 0);
    const b = Math.min(last, k - 1);
    if (a > b) continue;
    let d = 0;
    for (let j = a; j <= b; j++) d += Math.abs(i - j);
    sum += d / (b - a + 1);
  }
  return sum / q;
}

/**
 * What patch_distance (the ViT paper's mean attention distance, in patch
 * widths) is for uniform attention over the patches each patch query sees:
 * over the patch rows that see a patch, the mean Euclidean distance to
 * them. grid {rows, cols, prefix}; facts as for visibility (null: every key).
 */
export function uniformPatchDistance(grid, facts = null) {
  const n = grid.rows * grid.cols;
  if (!(n > 0)) return NaN;
  let sum = 0;
  let counted = 0;
  for (let i = 0; i < n; i++) {
    const token = grid.prefix + i;
    const [first, last] = facts ? visibleRange(token, { ...facts, keys: grid.prefix + n }) : [0, grid.prefix + n - 1];
    const a = Math.max(first, grid.prefix) - grid.prefix;
    const b = Math.min(last, grid.prefix + n - 1) - grid.prefix;
    if (a > b) continue;
    const [ri, ci] = [Math.floor(i / grid.cols), i % grid.cols];
    let d = 0;
    for (let j = a; j <= b; j++) d += Math.hypot(ri - Math.floor(j / grid.cols), ci - (j % grid.cols));
    sum += d / (b - a + 1);
    counted += 1;
  }
  return counted ? sum / counted : NaN;
}
