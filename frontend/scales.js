// The tab's colour scales for attention weights, one choice for every map
// it draws (heads grid, enlarged map, text view, model view, runs side by
// side, image view):
//   fixed   0 to 1: a weight has the same colour at every step (default);
//   stretch 0 to the largest weight shown (the step's, or in the image view
//           each heatmap's own): patterns within faint maps, colours that
//           differ between steps;
//   ratio   ratio to uniform: weight x the number of keys its query sees
//           (visibility.js: causal, sliding window; padding is not in the
//           map), on a log scale from 1/4 to 4, 1 (uniform) the middle
//           colour: weights near uniform (0.04 against 1/41) show.
// Pure functions: unit-tested with node (frontend/tests/scales.test.mjs).

import { visibleRange } from './visibility.js';

export const SCALES = [
  { value: 'fixed', label: 'fixed scale 0 to 1' },
  { value: 'stretch', label: "stretch to this step's max" },
  { value: 'ratio', label: 'ratio to uniform (weight × visible keys)' },
];
export const SCALE_NAMES = SCALES.map((s) => s.value);

/** The painters' vmax for ratios to uniform (heatmap.js paintMap): values are ratios, painted on the log scale. */
export const RATIO = 'ratio';
/** The ratio scale spans 2^-RATIO_LOG2 .. 2^RATIO_LOG2 (1/4 .. 4); beyond, the ends' colours. */
export const RATIO_LOG2 = 2;

/** Index into the colour table (0..255) of a ratio to uniform: 1 is 128, 1/4 and under 0, 4 and over 255; 0 (no weight) 0. */
export function ratioIndex(r) {
  if (!(r > 0)) return 0;
  const t = (Math.log2(r) + RATIO_LOG2) / (2 * RATIO_LOG2);
  return Math.round(Math.min(Math.max(t, 0), 1) * 255);
}

/** The number of keys the query of each row sees: Int32Array(rows), from visibility ranges (null: every one of `cols`). */
export function visibleCounts(ranges, rows, cols) {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    if (!ranges) {
      out[r] = cols;
      continue;
    }
    const first = Math.max(0, ranges[2 * r]);
    const last = Math.min(cols - 1, ranges[2 * r + 1]);
    out[r] = Math.max(0, last - first + 1);
  }
  return out;
}

/** The keys row `row` sees under visibility facts (null: all k). */
export function rowCount(row, facts, k) {
  if (!facts) return k;
  const [first, last] = visibleRange(row, facts);
  return Math.max(0, Math.min(last, k - 1) - Math.max(first, 0) + 1);
}

/**
 * Ratios to uniform of a rows x cols map: weight x the row's visible keys
 * (cells {values, levels}: a weight is value / levels, levels 0 for
 * weights). Float32Array; a cell the query cannot see gets 0 (it is
 * painted as not visible anyway).
 */
export function ratioValues(values, levels, rows, cols, ranges = null) {
  const counts = visibleCounts(ranges, rows, cols);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const f = counts[r] / (levels || 1);
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[base + c] = values[base + c] * f;
  }
  return out;
}

/** '1.6× uniform' (2 significant digits; '0× uniform' for none). */
export function ratioText(r) {
  if (!(r > 0)) return '0× uniform';
  return `${r >= 10 ? r.toFixed(0) : r.toPrecision(2)}× uniform`;
}

/**
 * A colour scale's legend: {min, max} (the ends of the strip) and text (what
 * the scale is). kind: 'fixed' | 'stretch' | 'ratio'; vmax: the stretched
 * scale's top; stretchedTo: what it was stretched to.
 */
export function scaleLegend(kind, vmax = 1, stretchedTo = "this step's max") {
  if (kind === 'ratio') {
    return {
      min: '≤ ¼', max: '≥ 4',
      text: 'ratio to uniform: weight × the keys its query sees; 1 = uniform (the middle colour), log scale',
    };
  }
  if (kind === 'stretch') {
    return { min: '0', max: vmax.toFixed(3), text: `stretched to ${stretchedTo} (${vmax.toFixed(3)}): colours differ between maps and steps` };
  }
  return { min: '0', max: '1.000', text: 'fixed scale 0 to 1: the same weight has the same colour at every step' };
}

/** The tab's scale or 'fixed' (an unknown one: an older link). */
export const knownScale = (s) => (SCALE_NAMES.includes(s) ? s : 'fixed');
