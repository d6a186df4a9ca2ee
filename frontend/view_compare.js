// Comparing: runs side by side (one column per run, the same layer, head,
// example and step, one colour scale) and the difference of two steps (of
// one run or two) on a diverging scale, with its largest changes and the
// heads that changed most. The numbers come from compare.js.

import {
  comparableWhy, diffMap, divergingIndex, divergingLutFor, labelFontPx, maxAbs, nearestStep, rankHeadChanges, runMarks, sameTokens,
  topChanges,
} from './compare.js';
import { headMap, headMeanMax } from './decode.js';
import {
  el, fillSelect, markSwatch, notVisibleKey, runLegendItem, runLetter, showNotVisibleKey,
} from './dom.js';
import { RATIO, SCALES, ratioText, ratioValues, rowCount, scaleLegend } from './scales.js';
import { paintMap, paintLegend } from './heatmap.js';
import { cellAt } from './layout.js';
import { cellName, cellValue, tokenName } from './naming.js';
import {
  exampleRanges, hiddenReason, notVisibleText, unionRanges, visibilityFacts,
} from './visibility.js';

const LABELS_UP_TO = 64; // tokens: longer maps are drawn without token labels
const COLUMN_PX = 360; // a run's column is about this wide (before zoom)
export const ZOOM_MIN = 2; // cell px of the side-by-side maps' zoom
export const ZOOM_MAX = 32;

/** The side-by-side maps' cell px: the chosen zoom, else what fits COLUMN_PX for the longest side. */
export function compareCell(zoom, longest) {
  if (Number.isInteger(zoom) && zoom >= ZOOM_MIN && zoom <= ZOOM_MAX) return zoom;
  return Math.max(ZOOM_MIN, Math.min(24, Math.floor(COLUMN_PX / Math.max(longest, 1))));
}
const TOP_CHANGES = 10;
const TOP_HEADS = 10;

/** One head ('mean', 'max' or a number) of a step's maps as weights, Float32Array(q*k). */
export function headFloats(maps, head) {
  if (head === 'mean') return headMeanMax(maps).mean;
  if (head === 'max') return headMeanMax(maps).max;
  return headMap(maps, Number(head));
}

const headName = (head) => `head ${head}`;

/** A map with its tokens: rotated key labels on top, query labels on the left. */
class LabelledMap {
  constructor(className) {
    this.canvas = el('canvas', { className: `map ${className}` });
    this.cols = el('div', { className: 'cmp-cols' });
    this.rows = el('div', { className: 'cmp-rows' });
    this.element = el('div', { className: 'cmp-map' }, [el('div'), this.cols, this.rows, this.canvas]);
  }

  /**
   * Sizes the canvas for q x k cells of `cell` px and writes the labels:
   * none above LABELS_UP_TO tokens or where the font would be under
   * MIN_LABEL_FONT_PX (compare.js labelFontPx; the hover line names the cell's tokens).
   */
  layout(example, cell) {
    const q = example.query_length;
    const k = example.key_length;
    this.canvas.style.width = `${k * cell}px`;
    this.canvas.style.height = `${q * cell}px`;
    const fontPx = labelFontPx(cell);
    const labels = q <= LABELS_UP_TO && k <= LABELS_UP_TO && fontPx > 0;
    const font = `${fontPx}px`;
    this.canvas.dataset.labelFont = String(labels ? fontPx : 0);
    const label = (side, size) => (text, i) => {
      const span = el('span', { text, title: tokenName(side, i, text) });
      span.style[size] = `${cell}px`;
      span.style.fontSize = font;
      return span;
    };
    this.cols.replaceChildren(...(labels ? example.key_tokens.map(label('key', 'width')) : []));
    this.rows.replaceChildren(...(labels ? example.query_tokens.map(label('query', 'height')) : []));
    this.cols.hidden = this.rows.hidden = !labels;
  }

  cellUnder(event, q, k) {
    const rect = this.canvas.getBoundingClientRect();
    return cellAt(event.clientX - rect.left, event.clientY - rect.top, rect.width, rect.height, q, k);
  }
}

/**
 * Paints a difference on the diverging scale -m..m, one pixel per cell;
 * cells outside `ranges` (visibility.js; null: none) stay transparent, the
 * canvas's not-visible hatch (heatmap.js paintMap).
 */
function paintDiff(canvas, diff, q, k, m, ranges = null, dark = false) {
  const lut = divergingLutFor(dark);
  canvas.width = Math.max(k, 1);
  canvas.height = Math.max(q, 1);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < q * k; i++) {
    if (ranges) {
      const row = Math.floor(i / k);
      const col = i - row * k;
      if (col < ranges[2 * row] || col > ranges[2 * row + 1]) continue; // left transparent
    }
    const c = divergingIndex(diff[i], m) * 3;
    image.data[i * 4] = lut[c];
    image.data[i * 4 + 1] = lut[c + 1];
    image.data[i * 4 + 2] = lut[c + 2];
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.vmax = String(m);
}

function paintDivergingLegend(canvas, dark = false) {
  const lut = divergingLutFor(dark);
  canvas.width = 257;
  canvas.height = 1;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(257, 1);
  for (let i = 0; i <= 256; i++) image.data.set([lut[i * 3], lut[i * 3 + 1], lut[i * 3 + 2], 255], i * 4);
  ctx.putImageData(image, 0, 0);
}

const fmt = (v) => (v >= 0 ? '+' : '') + v.toFixed(3);

export class CompareView {
  /**
   * mapsOf(run, layer, example, step) -> Promise of decoded maps;
   * onChoice(change) applies a state change; onOpen(tag, head) opens a head;
   * onZoom(cell px) keeps the side-by-side maps' zoom (no reload: they are redrawn here).
   */
  constructor({ status, mapsOf, missingOf = () => '', onChoice, onOpen, onZoom = () => {}, onScale = () => {} }) {
    Object.assign(this, { status, mapsOf, missingOf, onChoice, onOpen, onZoom });
    this.scale = el('select', { id: 'compare-scale-select', title: 'colour scale of every map of the tab' });
    fillSelect(this.scale, SCALES);
    this.scale.addEventListener('change', () => onScale(this.scale.value));
    this.legendMin = el('span', { id: 'compare-legend-min', text: '0' });
    this.runBoxes = el('span', { id: 'compare-runs' });
    this.notComparable = el('div', { id: 'compare-not', className: 'info', hidden: true });
    this.zoom = el('input', { id: 'compare-zoom', type: 'range', min: ZOOM_MIN, max: ZOOM_MAX, value: 8, title: 'cell size of the maps side by side (px)' });
    this.zoomLabel = el('span', { id: 'compare-zoom-label', className: 'info' });
    this.zoom.addEventListener('input', () => {
      const cell = Number(this.zoom.value);
      this.onZoom(cell);
      if (this.ctx) {
        this.ctx.state.compareZoom = cell;
        this.showRuns(this.ctx, this.token);
      }
    });
    this.note = el('div', { id: 'compare-note', className: 'note', hidden: true });
    this.columns = el('div', { id: 'compare-columns', className: 'cmp-columns' });
    this.legend = el('canvas', { id: 'compare-legend', className: 'legend' });
    this.legendText = el('span', { id: 'compare-scale', className: 'info' });
    this.hover = el('div', { id: 'compare-hover', className: 'info', text: 'hover a cell for its tokens and weight' });
    this.hiddenKey = notVisibleKey('compare-hidden');
    this.element = el('section', { className: 'panel', id: 'compare-panel', hidden: true }, [
      el('div', { className: 'panel-head' }, [el('h3', { text: 'Runs side by side' }),
        el('span', { className: 'info', text: 'compare with:' }), this.runBoxes]),
      this.notComparable, this.note,
      (this.legendRow = el('div', { className: 'panel-head', id: 'compare-legend-row', hidden: true }, [this.scale, this.legendMin, this.legend, this.legendText,
        el('label', { text: 'zoom ', htmlFor: 'compare-zoom' }), this.zoom, this.zoomLabel])),
      this.hiddenKey, this.columns, this.hover,
    ]);

    this.diffToggle = el('input', { id: 'diff-toggle', type: 'checkbox' });
    this.diffRun = el('select', { id: 'diff-run', title: 'run B' });
    this.diffStep = el('select', { id: 'diff-step', title: 'step B' });
    this.diffA = el('span', { id: 'diff-a', className: 'info' });
    this.diffMap = new LabelledMap('diff');
    this.diffMap.canvas.id = 'diff-map';
    this.diffLegend = el('canvas', { id: 'diff-legend', className: 'legend' });
    this.diffLegendMin = el('span', { id: 'diff-legend-min' });
    this.diffLegendMax = el('span', { id: 'diff-legend-max' });
    this.diffSummary = el('div', { id: 'diff-summary', className: 'info' });
    this.diffHover = el('div', { id: 'diff-hover', className: 'info', text: ' ' });
    this.diffHiddenKey = notVisibleKey('diff-hidden');
    this.diffTop = el('ol', { id: 'diff-top', className: 'cmp-list' });
    this.changedHeads = el('ol', { id: 'changed-heads', className: 'cmp-list' });
    this.changedNote = el('div', { id: 'changed-heads-note', className: 'info' });
    this.diffBody = el('div', { id: 'diff-body', hidden: true }, [
      el('div', { className: 'panel-head' }, [this.diffA, el('span', { text: '−  B: run' }), this.diffRun, el('span', { text: 'step' }), this.diffStep]),
      el('div', { className: 'panel-head' }, [this.diffLegendMin, this.diffLegend, this.diffLegendMax,
        (this.diffLegendText = el('span', { id: 'diff-legend-text', className: 'info', text: 'A − B: blue where A is lower, red where A is higher, white unchanged; stretched to the largest |change|' }))]),
      this.diffSummary, this.diffHiddenKey,
      el('div', { className: 'cmp-diff' }, [
        el('div', {}, [this.diffMap.element, this.diffHover]),
        el('div', {}, [el('h3', { text: 'Largest changes (query → key: A, B, A − B)' }), this.diffTop]),
        el('div', {}, [el('h3', { text: 'What changed most: heads by mean |A − B| (click to open)' }), this.changedNote, this.changedHeads]),
      ]),
    ]);
    this.diffElement = el('section', { className: 'panel', id: 'diff-panel' }, [
      el('div', { className: 'panel-head' }, [
        el('label', { htmlFor: 'diff-toggle' }, [this.diffToggle, el('span', { text: ' Difference of two steps (or runs): A − B' })]),
      ]),
      this.diffBody,
    ]);
    paintDivergingLegend(this.diffLegend);
    paintLegend(this.legend, 1);

    this.diffToggle.addEventListener('change', () => {
      const s = this.ctx.state;
      this.onChoice({ diff: this.diffToggle.checked ? { run: s.run, step: this.defaultStepB() } : null });
    });
    this.diffRun.addEventListener('change', () => {
      const run = this.ctx.runs.find((r) => r.run === this.diffRun.value);
      const layer = run && run.layers.find((l) => l.tag === this.ctx.state.tag);
      const step = layer ? nearestStep(layer.steps, this.ctx.state.diff.step) : this.ctx.state.diff.step;
      this.onChoice({ diff: { run: this.diffRun.value, step } });
    });
    this.diffStep.addEventListener('change', () => {
      this.onChoice({ diff: { run: this.ctx.state.diff.run, step: Number(this.diffStep.value) } });
    });
    this.diffMap.canvas.addEventListener('mousemove', (e) => this.hoverDiff(e));
    this.columnsShown = [];
  }

  /** Step B when the difference is opened: the captured step before A's (A's own when it is the first). */
  defaultStepB() {
    const { layer, state } = this.ctx;
    const i = layer.steps.indexOf(state.step);
    return layer.steps[Math.max(0, i - 1)];
  }

  /**
   * Shows both panels for ctx {state, runs (the index's), visible
   * [{run, color}], layer, example}; resolves when painted.
   */
  async show(ctx) {
    this.ctx = ctx;
    this.token = {};
    const token = this.token;
    await Promise.all([this.showRuns(ctx, token), this.showDiff(ctx, token)]);
  }

  colorOf(run) {
    const v = this.ctx.visible.find((r) => r.run === run);
    return v ? v.color : 'transparent';
  }

  async showRuns(ctx, token) {
    const { state, visible } = ctx;
    // TensorBoard's colours, and a pattern, letter and border style where shown runs share one.
    const marks = runMarks(visible);
    const all = visible.filter((r) => r.run !== state.run);
    // Only runs whose layer of this name is of the same kind and shape are offered; the others are named with why.
    const why = new Map(all.map((r) => {
      const run = ctx.runs.find((x) => x.run === r.run);
      return [r.run, run ? comparableWhy(ctx.layer, state.example, run) : 'not in the index'];
    }));
    const others = all.filter((r) => !why.get(r.run));
    const refused = all.filter((r) => why.get(r.run));
    this.element.hidden = all.length === 0;
    this.notComparable.hidden = refused.length === 0;
    this.notComparable.textContent = refused.length
      ? `Not comparable with ${state.tag}, example ${state.example} of this run: ${refused.map((r) => `${r.run} (${why.get(r.run)})`).join('; ')}`
      : '';
    this.runBoxes.replaceChildren(...others.map((r) => {
      const box = el('input', { type: 'checkbox', checked: state.compare.includes(r.run), dataset: { run: r.run } });
      box.addEventListener('change', () => {
        const chosen = others.filter((o) => (o.run === r.run ? box.checked : state.compare.includes(o.run))).map((o) => o.run);
        this.onChoice({ compare: chosen });
      });
      return el('label', { className: 'cmp-run' }, [box, runLegendItem(marks.get(r.run), r.run)]);
    }));
    const runs = [state.run, ...state.compare.filter((r) => others.some((o) => o.run === r))];
    this.element.dataset.runs = JSON.stringify(runs.length > 1 ? runs : []);
    // The scale's legend only beside maps: alone it read as a stray "0".
    this.legendRow.hidden = runs.length < 2;
    if (runs.length < 2) {
      showNotVisibleKey(this.hiddenKey, '');
      this.columns.replaceChildren();
      this.note.hidden = true;
      this.element.dataset.painted = 'true';
      return;
    }
    this.element.dataset.painted = 'false';
    // Each run's column: its layer, example and nearest step (or why not).
    const columns = runs.map((name) => {
      const run = ctx.runs.find((r) => r.run === name);
      const layer = run && run.layers.find((l) => l.tag === state.tag);
      if (!layer) return { name, why: `no layer ${state.tag} in this run` };
      const example = layer.examples[state.example];
      if (!example) return { name, why: `no example ${state.example} in this run` };
      if (!(example.query_length > 0 && example.key_length > 0)) return { name, why: `example ${state.example} is all padding` };
      if (state.head !== 'mean' && state.head !== 'max' && state.head >= layer.num_heads) return { name, why: `no head ${state.head} in this run` };
      // value-weighted or relevance the run did not store: marked missing, never asked for
      if (this.missingOf(layer)) return { name, why: this.missingOf(layer) };
      return { name, layer, example, step: nearestStep(layer.steps, state.step) };
    });
    const differ = columns.filter((c) => c.example && !sameTokens(c.example, ctx.example)).map((c) => c.name);
    this.note.hidden = differ.length === 0;
    this.note.textContent = differ.length
      ? `The runs' probes differ (${differ.join(', ')}): they are compared by example index ${state.example}, each run with its own tokens.`
      : '';
    this.note.dataset.differ = JSON.stringify(differ);
    let loaded;
    try {
      loaded = await Promise.all(columns.map((c) => (c.layer ? this.mapsOf(c.name, c.layer, state.example, c.step) : null)));
    } catch (e) {
      if (token === this.token) this.status.failed('maps of compared runs', e);
      return;
    }
    if (token !== this.token) return;
    const values = loaded.map((maps) => (maps ? headFloats(maps, state.head) : null));
    const ratio = state.scale === 'ratio';
    const vmax = state.scale === 'stretch' ? Math.max(1e-12, ...values.filter(Boolean).map((v) => v.reduce((a, b) => Math.max(a, b), 0)))
      : ratio ? RATIO : 1;
    this.scale.value = state.scale;
    this.legend.dataset.vmax = String(vmax);
    this.legend.dataset.scale = state.scale;
    const legend = scaleLegend(state.scale, ratio ? 1 : vmax, "the largest weight of these runs' maps");
    this.legendMin.textContent = legend.min;
    this.legendText.textContent = `${state.scale === 'fixed' ? '1' : legend.max} · one scale for every run: ${ratio ? '1 = uniform (the middle colour), log scale'
      : state.scale === 'stretch' ? "stretched to the largest weight of these runs' maps" : 'fixed 0 to 1'}`;
    const longest = Math.max(...columns.filter((c) => c.example).map((c) => Math.max(c.example.query_length, c.example.key_length)), 1);
    const cell = compareCell(state.compareZoom, longest);
    this.zoom.value = String(cell);
    this.zoomLabel.textContent = `${cell} px`;
    // Each run's map hides the cells its own layer and example hide.
    this.columnsShown = columns.map((c, i) => ({
      ...c, values: values[i],
      ranges: c.layer ? exampleRanges(c.layer, c.example) : null,
      facts: c.layer ? visibilityFacts(c.layer, c.example) : null,
    }));
    const hiding = this.columnsShown.find((c) => c.values && c.ranges);
    showNotVisibleKey(this.hiddenKey, hiding ? notVisibleText(hiding.facts) : '');
    this.columns.replaceChildren(...this.columnsShown.map((c) => {
      const mark = marks.get(c.name);
      const swatch = markSwatch(el('span'), mark, c.name);
      const stepText = !c.layer ? '' : c.step === state.step ? `step ${c.step}` : `step ${c.step} (nearest captured to ${state.step})`;
      const head = el('div', { className: 'cmp-col-head' }, [
        swatch, ...[runLetter(mark)].filter(Boolean), el('b', { text: c.name }), el('span', { className: 'info', text: ` ${stepText}` })]);
      const col = el('div', { className: 'cmp-col', dataset: { run: c.name } }, [head]);
      col.style.borderTopColor = this.colorOf(c.name);
      col.style.borderTopStyle = mark ? mark.border : 'solid';
      if (!c.layer || !c.values) {
        col.append(el('div', { className: 'info cmp-why', text: c.why }));
        return col;
      }
      col.dataset.step = String(c.step);
      const map = new LabelledMap('cmp');
      map.canvas.dataset.run = c.name;
      map.layout(c.example, cell);
      const [q, k] = [c.example.query_length, c.example.key_length];
      paintMap(map.canvas, ratio ? ratioValues(c.values, 0, q, k, c.ranges) : c.values, q, k, vmax, 0, c.ranges);
      map.canvas.addEventListener('mousemove', (e) => {
        const hit = map.cellUnder(e, c.example.query_length, c.example.key_length);
        if (!hit) return;
        const w = c.values[hit.row * c.example.key_length + hit.col];
        const hidden = c.ranges ? hiddenReason(hit.row, hit.col, c.facts) : '';
        const times = ratio && !hidden ? ` (${ratioText(w * rowCount(hit.row, c.ranges ? c.facts : null, k))})` : '';
        this.hover.textContent = `${c.name} · step ${c.step} · ${headName(state.head)} · ` +
          `${cellName(hit.row, hit.col, c.example.query_tokens, c.example.key_tokens)}: ${cellValue(w, hidden, 3)}${times}`;
      });
      col.append(map.element);
      return col;
    }));
    this.element.dataset.painted = 'true';
  }

  async showDiff(ctx, token) {
    const { state, runs, visible, layer, example } = ctx;
    const on = Boolean(state.diff);
    this.diffToggle.checked = on;
    this.diffBody.hidden = !on;
    this.diffElement.dataset.painted = on ? 'false' : 'true';
    this.diffValues = null;
    if (!on) return;
    const { run: runB, step: stepB } = state.diff;
    // Run B: the run itself or a run whose layer of this name is of the same kind and shape.
    const comparable = visible.filter((r) => {
      const run = runs.find((x) => x.run === r.run);
      return r.run === state.run || r.run === runB || (run && !comparableWhy(layer, state.example, run));
    });
    fillSelect(this.diffRun, comparable.map((r) => ({ value: r.run, label: r.run })), runB);
    const runObjB = runs.find((r) => r.run === runB);
    const layerB = runObjB && runObjB.layers.find((l) => l.tag === state.tag);
    fillSelect(this.diffStep, (layerB ? layerB.steps : []).map((s) => ({ value: s, label: String(s) })), stepB);
    this.diffA.textContent = `A: run ${state.run}, step ${state.step}, ${headName(state.head)}`;
    showNotVisibleKey(this.diffHiddenKey, '');
    const fail = (why) => {
      this.diffSummary.textContent = why;
      this.diffTop.replaceChildren();
      this.changedHeads.replaceChildren();
      this.diffMap.canvas.hidden = true;
      this.diffElement.dataset.painted = 'true';
    };
    if (!layerB || !layerB.steps.includes(stepB)) return fail(`run ${runB} has no layer ${state.tag} at step ${stepB}`);
    const exampleB = layerB.examples[state.example];
    if (!exampleB || exampleB.query_length !== example.query_length || exampleB.key_length !== example.key_length) {
      return fail(`example ${state.example} has another shape in run ${runB}: no difference can be taken (compare the runs side by side)`);
    }
    if (!(example.query_length > 0 && example.key_length > 0)) return fail(`example ${state.example} has no real tokens (all padding)`);
    const missing = this.missingOf(layer) || this.missingOf(layerB);
    if (missing) return fail(missing);
    let mapsA;
    let mapsB;
    try {
      [mapsA, mapsB] = await Promise.all([this.mapsOf(state.run, layer, state.example, state.step), this.mapsOf(runB, layerB, state.example, stepB)]);
    } catch (e) {
      if (token === this.token) this.status.failed('maps of the difference', e);
      return;
    }
    if (token !== this.token) return;
    this.diffMap.canvas.hidden = false;
    const a = headFloats(mapsA, state.head);
    const b = headFloats(mapsB, state.head);
    const diff = diffMap(a, b);
    const q = example.query_length;
    const k = example.key_length;
    const m = maxAbs(diff);
    // A cell is hidden in the difference where both maps hide it (the same layer of two steps: the same cells).
    const diffRanges = unionRanges(exampleRanges(layer, example), exampleRanges(layerB, exampleB));
    const facts = visibilityFacts(layer, example);
    Object.assign(this, { diffValues: diff, diffAValues: a, diffBValues: b, diffShape: [q, k], diffRanges, diffFacts: facts });
    showNotVisibleKey(this.diffHiddenKey, diffRanges ? notVisibleText(facts) : '');
    const longest = Math.max(q, k, 1);
    this.diffMap.layout(example, Math.max(2, Math.min(24, Math.floor(480 / longest))));
    // The theme's scale (0 white on a light page, dark grey on a dark one); a theme switch repaints (index.js repaintCharts).
    const dark = Boolean(this.diffElement.closest('.dark'));
    paintDiff(this.diffMap.canvas, diff, q, k, m, diffRanges, dark);
    paintDivergingLegend(this.diffLegend, dark);
    this.diffMap.canvas.dataset.theme = dark ? 'dark' : 'light';
    this.diffLegendText.textContent = `A − B: blue where A is lower, red where A is higher, ${dark ? 'dark grey' : 'white'} unchanged; ` +
      'stretched to the largest |change|';
    this.diffLegendMin.textContent = m > 0 ? (-m).toFixed(3) : '0';
    this.diffLegendMax.textContent = m > 0 ? `+${m.toFixed(3)}` : '0';
    this.diffSummary.textContent = m === 0
      ? 'All zero: the two maps are equal in every cell.'
      : `Largest |change| ${m.toFixed(3)}; mean |change| ${(diff.reduce((s, v) => s + Math.abs(v), 0) / diff.length).toFixed(4)}` +
        (sameTokens(example, exampleB) ? '' : '; the runs\' probes differ: compared by example index, tokens of A shown');
    this.diffSummary.dataset.max = String(m);
    const sign = (d) => (d > 0 ? 'up' : 'down');
    this.diffTop.replaceChildren(...topChanges(diff, k, TOP_CHANGES).map(({ row, col, delta }) => el('li', {
      dataset: { row: String(row), col: String(col), delta: String(delta) },
      className: sign(delta),
      text: `${cellName(row, col, example.query_tokens, example.key_tokens)}: ${a[row * k + col].toFixed(3)}, ${b[row * k + col].toFixed(3)}, ${fmt(delta)}`,
    })));
    if (!this.diffTop.children.length) this.diffTop.append(el('li', { className: 'info', text: 'no cell changed' }));
    this.diffElement.dataset.painted = 'true';
    await this.showChangedHeads(ctx, runObjB, stepB, token);
  }

  hoverDiff(event) {
    if (!this.diffValues) return;
    const [q, k] = this.diffShape;
    const hit = this.diffMap.cellUnder(event, q, k);
    if (!hit) return;
    const i = hit.row * k + hit.col;
    const ex = this.ctx.example;
    const range = this.diffRanges ? [this.diffRanges[2 * hit.row], this.diffRanges[2 * hit.row + 1]] : null;
    const cell = cellName(hit.row, hit.col, ex.query_tokens, ex.key_tokens);
    if (range && (hit.col < range[0] || hit.col > range[1])) {
      this.diffHover.textContent = `${cell}: ${cellValue(0, hiddenReason(hit.row, hit.col, this.diffFacts))}`;
      return;
    }
    this.diffHover.textContent = `${cell}: ` +
      `A ${this.diffAValues[i].toFixed(3)} − B ${this.diffBValues[i].toFixed(3)} = ${fmt(this.diffValues[i])}`;
  }

  /** Every head of every layer both runs have at this example's shape, ranked by mean |A − B|. */
  async showChangedHeads(ctx, runB, stepB, token) {
    const { state } = ctx;
    const runA = ctx.runs.find((r) => r.run === state.run);
    const pairs = [];
    for (const la of runA.layers) {
      const lb = runB.layers.find((l) => l.tag === la.tag);
      const ea = la.examples[state.example];
      const eb = lb && lb.examples[state.example];
      if (!lb || !ea || !eb || ea.query_length !== eb.query_length || ea.key_length !== eb.key_length || la.num_heads !== lb.num_heads) continue;
      if (!(ea.query_length > 0 && ea.key_length > 0)) continue;
      if (this.missingOf(la) || this.missingOf(lb)) continue; // what the Show control asks for is missing there
      const sa = nearestStep(la.steps, state.step);
      const sb = nearestStep(lb.steps, stepB);
      pairs.push({ la, lb, sa, sb });
    }
    this.changedNote.textContent = `step ${state.step} of ${state.run} against step ${stepB} of ${runB.run}, example ${state.example}; ` +
      `${pairs.length} layer(s) of the same shape in both`;
    let loaded;
    try {
      loaded = await Promise.all(pairs.map((p) => Promise.all([
        this.mapsOf(state.run, p.la, state.example, p.sa), this.mapsOf(runB.run, p.lb, state.example, p.sb)])));
    } catch (e) {
      if (token === this.token) this.status.failed('maps of every layer', e);
      return;
    }
    if (token !== this.token) return;
    const entries = [];
    pairs.forEach((p, i) => {
      const [ma, mb] = loaded[i];
      for (let h = 0; h < p.la.num_heads; h++) entries.push({ tag: p.la.tag, head: h, a: headMap(ma, h), b: headMap(mb, h) });
    });
    const ranked = rankHeadChanges(entries).slice(0, TOP_HEADS);
    const layerName = (tag) => (runA.layers.find((l) => l.tag === tag) || {}).layer || tag;
    this.changedHeads.replaceChildren(...ranked.map((r) => {
      const item = el('li', { dataset: { tag: r.tag, head: String(r.head), change: String(r.change) } }, [
        el('button', { className: 'link', text: `${layerName(r.tag)} · head ${r.head}` }),
        el('span', { className: 'info', text: ` mean |change| ${r.change.toFixed(4)}` }),
      ]);
      item.querySelector('button').addEventListener('click', () => this.onOpen(r.tag, r.head));
      return item;
    }));
    this.changedHeads.dataset.ready = 'true';
  }
}
