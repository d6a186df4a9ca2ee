// Comparing runs and steps: which runs TensorBoard shows and in which
// colour, difference maps, their largest changes and the heads that changed
// most. Pure functions: unit-tested with node (frontend/tests/compare.test.mjs).

/**
 * TensorBoard's default run palette (its settings' colorPalette "default",
 * tensorboard 2.21): runs without a colour from the host get these in the
 * host's run order.
 */
export const TB_PALETTE = [
  { light: '#425066', dark: '#8e98a3' }, // Slate
  { light: '#12b5cb', dark: '#12b5cb' }, // Cyan
  { light: '#e52592', dark: '#e52592' }, // Pink
  { light: '#f9ab00', dark: '#f9ab00' }, // Yellow
  { light: '#9334e6', dark: '#9334e6' }, // Purple
  { light: '#7cb342', dark: '#7cb342' }, // Light Green
  { light: '#e8710a', dark: '#e8710a' }, // Orange
];

/**
 * The runs to offer and their colours.
 * runs: the index's run names; hostRuns: the host's run names in its order
 * (experimental.GetRuns) or null; table: what TensorBoard's runs selector
 * shows, [{run, selected, color}] or null when it has not been built (no
 * dashboard with a run selector was opened: every run is selected, as
 * TensorBoard selects all runs at first). Returns [{run, color}] in the
 * index's order: the runs selected there (and, in the table, listed: a run
 * its regex filter hides is hidden here too).
 */
export function visibleRuns(runs, hostRuns, table, dark = false) {
  const order = hostRuns && hostRuns.length ? hostRuns : runs;
  const paletteColor = (run) => {
    const i = order.indexOf(run);
    const entry = TB_PALETTE[(i >= 0 ? i : order.length + runs.indexOf(run)) % TB_PALETTE.length];
    return dark ? entry.dark : entry.light;
  };
  const rows = table ? new Map(table.map((r) => [r.run, r])) : null;
  const out = [];
  for (const run of runs) {
    if (rows) {
      const row = rows.get(run);
      if (!row || !row.selected) continue;
      out.push({ run, color: row.color || paletteColor(run) });
    } else {
      out.push({ run, color: paletteColor(run) });
    }
  }
  return out;
}

/** A CSS colour as 'r,g,b' ('#12b5cb', 'rgb(18, 181, 203)' -> '18,181,203'); other forms as written, lower case. */
export function colorKey(color) {
  const c = String(color || '').trim().toLowerCase();
  let m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/.exec(c);
  if (m) {
    const hex = m[1].length === 3 ? [...m[1]].map((x) => x + x).join('') : m[1];
    return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(',');
  }
  m = /^rgba?\(\s*(\d+)[,\s]+(\d+)[,\s]+(\d+)\s*(?:[,/]\s*([\d.]+%?)\s*)?\)$/.exec(c);
  if (m) return [m[1], m[2], m[3]].map(Number).join(',');
  return c;
}

// How runs of one colour are told apart, in their order (the first keeps the
// plain colour): a pattern in the swatch and a border style in the columns
// of runs side by side. More runs of one colour than patterns: the letter
// (A, B, ...) in the swatch tells them apart too.
export const RUN_PATTERNS = ['solid', 'stripes', 'dots', 'checks', 'rings'];
export const RUN_BORDERS = ['solid', 'dashed', 'dotted', 'double', 'groove'];

/**
 * How each shown run is marked: TensorBoard's colour, and where runs share a
 * colour (its palette cycles over every run it knows, so 'imdb' and
 * 'imdb_1epoch' may get one) a distinct pattern, border and letter.
 * visible: [{run, color}] -> Map run -> {color, pattern, border, letter,
 * shared: the other runs of that colour ([] where the colour is its own)}.
 */
export function runMarks(visible) {
  const groups = new Map();
  for (const r of visible) {
    const key = colorKey(r.color);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r.run);
  }
  const out = new Map();
  for (const r of visible) {
    const group = groups.get(colorKey(r.color));
    const i = group.indexOf(r.run);
    const shared = group.filter((x) => x !== r.run);
    out.set(r.run, {
      color: r.color,
      pattern: shared.length ? RUN_PATTERNS[i % RUN_PATTERNS.length] : 'solid',
      border: shared.length ? RUN_BORDERS[i % RUN_BORDERS.length] : 'solid',
      letter: shared.length ? String.fromCharCode(65 + (i % 26)) : '',
      shared,
    });
  }
  return out;
}

/** a - b cell by cell (Float32Array); both of one length. */
export function diffMap(a, b) {
  if (a.length !== b.length) throw new Error(`maps of ${a.length} and ${b.length} cells`);
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}

/** Largest |value| (0 for none). */
export function maxAbs(values) {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    if (v > m) m = v;
  }
  return m;
}

/** Mean |value| (0 for none). */
export function meanAbs(values) {
  if (!values.length) return 0;
  let s = 0;
  for (let i = 0; i < values.length; i++) s += Math.abs(values[i]);
  return s / values.length;
}

/**
 * The n cells of a q x k difference with the largest |change|, largest
 * first, ties in cell order; zero changes are left out:
 * [{row, col, delta}].
 */
export function topChanges(diff, k, n = 10) {
  const cells = [];
  for (let i = 0; i < diff.length; i++) if (diff[i] !== 0) cells.push(i);
  cells.sort((x, y) => Math.abs(diff[y]) - Math.abs(diff[x]) || x - y);
  return cells.slice(0, n).map((i) => ({ row: Math.floor(i / k), col: i % k, delta: diff[i] }));
}

/**
 * Heads ranked by mean |a - b| over their cells, largest first, ties in
 * the order given: entries [{tag, head, a, b}] (a, b Float32Arrays of one
 * head at the two steps) -> [{tag, head, change}].
 */
export function rankHeadChanges(entries) {
  return entries
    .map((e, i) => ({ tag: e.tag, head: e.head, change: meanAbs(diffMap(e.a, e.b)), i }))
    .sort((x, y) => y.change - x.change || x.i - y.i)
    .map(({ tag, head, change }) => ({ tag, head, change }));
}

// A diverging scale centred on 0: blue (negative), white (0), red
// (positive), as ColorBrewer's RdBu; 256 entries, entry 128 is 0.
const DIVERGING_ANCHORS = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];

// The same scale for the dark theme: 0 is the dark grey of a dark page and
// a larger |change| is brighter (light blue lower, light red higher), so an
// unchanged map is not a white square on a dark page.
export const DARK_ZERO = [48, 48, 48];
const DARK_DIVERGING_ANCHORS = [
  [146, 197, 222], [67, 147, 195], [33, 102, 172], [30, 68, 112], [38, 52, 70], DARK_ZERO,
  [72, 42, 40], [120, 36, 40], [178, 24, 43], [214, 96, 77], [244, 165, 130],
];

function divergingLut(anchors) {
  const lut = new Uint8ClampedArray(257 * 3);
  const last = anchors.length - 1;
  for (let i = 0; i <= 256; i++) {
    const t = (i / 256) * last;
    const lo = Math.min(Math.floor(t), last);
    const hi = Math.min(lo + 1, last);
    const f = t - lo;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(anchors[lo][c] * (1 - f) + anchors[hi][c] * f);
  }
  return lut;
}

export const DIVERGING_LUT = divergingLut(DIVERGING_ANCHORS);
export const DARK_DIVERGING_LUT = divergingLut(DARK_DIVERGING_ANCHORS);

/** The diverging table of a theme. */
export const divergingLutFor = (dark) => (dark ? DARK_DIVERGING_LUT : DIVERGING_LUT);

/** Index into DIVERGING_LUT of d on a -m..m scale: 128 is 0 (also when m is 0). */
export function divergingIndex(d, m) {
  if (!(m > 0)) return 128;
  const t = Math.max(-1, Math.min(1, d / m));
  return Math.round(128 + t * 128);
}

/** [r, g, b] of d on a -m..m scale (in the dark theme's table when `dark`). */
export function divergingColor(d, m, dark = false) {
  const lut = divergingLutFor(dark);
  const i = divergingIndex(d, m) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

/** The captured step of `steps` (ascending) nearest to `step`, the earlier on a tie; undefined for none. */
export function nearestStep(steps, step) {
  let best;
  for (const s of steps) if (best === undefined || Math.abs(s - step) < Math.abs(best - step)) best = s;
  return best;
}

/**
 * Why run `other` has no map comparable with `layer`'s example `example`
 * (index), or '' when it has one: a layer of the same tag, of the same kind
 * (self, causal, cross) and with that example of the same shape (query x key
 * tokens). Runs that share only a layer's name (a seq2seq's cross
 * 'attention' and a classifier's self 'attention') are not compared.
 */
export function comparableWhy(layer, example, other) {
  const o = other.layers.find((l) => l.tag === layer.tag);
  if (!o) return `no layer ${layer.tag}`;
  if (o.kind !== layer.kind) return `its ${layer.tag} is ${o.kind} attention, this one ${layer.kind}`;
  const ex = o.examples[example];
  const a = layer.examples[example];
  if (!ex || !a) return `no example ${example}`;
  if (ex.query_length !== a.query_length || ex.key_length !== a.key_length) {
    return `its example ${example} is ${ex.query_length} x ${ex.key_length} tokens, this one ${a.query_length} x ${a.key_length}`;
  }
  return '';
}

/**
 * Cells of `px` CSS px for labels: a font of `cell - 2` px, at most 11,
 * from MIN_LABEL_FONT_PX up (under it no labels: the tooltip names the
 * tokens); returns the font size, or 0 for no labels.
 */
export const MIN_LABEL_FONT_PX = 9;
export function labelFontPx(cell) {
  const font = Math.min(11, Math.floor(cell) - 2);
  return font >= MIN_LABEL_FONT_PX ? font : 0;
}

/** Whether two examples hold the same tokens (then runs were given the same probe). */
export function sameTokens(a, b) {
  const eq = (x, y) => x.length === y.length && x.every((t, i) => t === y[i]);
  return eq(a.query_tokens, b.query_tokens) && eq(a.key_tokens, b.key_tokens);
}
