// The Attention tab. TensorBoard loads this module in the tab's iframe and
// calls render(). Data text (tokens, run and layer names) is only ever set
// with textContent or <option>.text, never parsed as HTML.

import * as api from './api.js';
import { renderBars, renderLines, renderStepsHeatmap, seriesMax } from './charts.js';
import { cssColor } from './colors.js';
import { importanceCsv } from './csv.js';
import { headMap, headMax, headMean, maxOf } from './decode.js';
import { paintLegend, paintMap } from './heatmap.js';
import { connectToHost, followTheme } from './host.js';
import { cellAt } from './layout.js';

const STORAGE_KEY = 'tb-attention-state';
const PLAY_INTERVAL_MS = 600;
// Decoded maps kept for quick stepping, in cells (4 bytes each): 64 M cells is
// 256 MB, e.g. 64 steps of 8 heads x 256 tokens but only 3 of 16 x 1024.
const MAPS_CACHE_CELLS = 64e6;
const MAPS_CACHE_MAX_STEPS = 64;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function fillSelect(select, items, selected) {
  select.replaceChildren(...items.map(({ value, label }) => {
    const option = document.createElement('option');
    option.value = String(value);
    option.text = label;
    return option;
  }));
  if (items.some((item) => String(item.value) === String(selected))) select.value = String(selected);
}

class AttentionTab {
  constructor(root) {
    this.root = root;
    this.index = { runs: [] };
    this.state = this.loadState();
    this.mapsCache = new Map();
    this.maps = null;
    this.importance = null;
    this.playing = null;
    this.build();
  }

  loadState() {
    try {
      return { head: 'mean', mode: 'received', scale: 'fixed', ...JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}') };
    } catch {
      return { head: 'mean', mode: 'received', scale: 'fixed' };
    }
  }

  saveState() {
    const { run, tag, example, step, head, mode, scale } = this.state;
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ run, tag, example, step, head, mode, scale }));
  }

  build() {
    const c = (this.controls = {
      run: el('select', { id: 'run-select', title: 'run' }),
      layer: el('select', { id: 'layer-select', title: 'attention layer' }),
      example: el('select', { id: 'example-select', title: 'probe example' }),
      step: el('input', { id: 'step-slider', type: 'range', min: 0, max: 0, value: 0, step: 1 }),
      stepLabel: el('span', { id: 'step-label', className: 'step-label' }),
      play: el('button', { id: 'play-button', text: 'Play' }),
      mode: el('select', { id: 'mode-select', title: 'importance' }),
      scale: el('select', { id: 'scale-select', title: 'colour scale' }),
      zoom: el('input', { id: 'zoom', type: 'range', min: 1, max: 24, value: 8, title: 'cell size (px)' }),
      png: el('button', { id: 'export-png', text: 'PNG' }),
      csv: el('button', { id: 'export-csv', text: 'CSV' }),
    });
    fillSelect(c.mode, [
      { value: 'received', label: 'received attention (sum over queries)' },
      { value: 'given', label: 'given attention (sum over keys, 1 for softmax rows)' },
    ], this.state.mode);
    fillSelect(c.scale, [
      { value: 'fixed', label: 'fixed scale 0 to 1' },
      { value: 'stretch', label: "stretch to this step's max" },
    ], this.state.scale);
    this.status = el('div', { id: 'status', className: 'status' });
    this.notice = '';
    this.failures = new Map(); // view -> short error of its last load
    this.info = el('div', { id: 'layer-info', className: 'info' });
    this.grid = el('div', { id: 'head-grid', className: 'grid' });
    this.legend = el('canvas', { id: 'legend', className: 'legend' });
    this.legendMax = el('span', { id: 'legend-max' });
    this.legendText = el('span', { id: 'legend-scale', className: 'info' });
    this.barsScale = el('div', { id: 'importance-scale', className: 'info' });
    this.focusTitle = el('h3', { id: 'focus-title' });
    this.focusCanvas = el('canvas', { id: 'focus-map', className: 'map focus' });
    this.focusRows = el('div', { className: 'labels rows', id: 'row-labels' });
    this.focusCols = el('div', { className: 'labels cols', id: 'col-labels' });
    this.tooltip = el('div', { id: 'tooltip', className: 'tooltip', hidden: true });
    this.bars = el('div', { id: 'importance-bars', className: 'bars' });
    this.importanceTitle = el('h3', { id: 'importance-title' });
    this.stepsCanvas = el('canvas', { id: 'importance-steps', className: 'map steps' });
    this.stepsInfo = el('div', { id: 'importance-steps-info', className: 'info' });
    this.tokenLines = el('canvas', { id: 'importance-lines' });
    this.tokenLinesLegend = el('div', { id: 'importance-lines-legend', className: 'info' });
    this.picked = new Set(); // token positions whose importance is drawn as lines
    this.statsCanvas = el('canvas', { id: 'entropy-chart' });
    this.maxCanvas = el('canvas', { id: 'maxweight-chart' });
    this.statsLegend = el('div', { id: 'stats-legend', className: 'info' });
    this.rolloutSection = el('section', { id: 'rollout', className: 'panel', hidden: true });
    this.rolloutBars = el('div', { id: 'rollout-bars', className: 'bars' });

    const focusBody = el('div', { className: 'focus-body' }, [
      el('div', { className: 'corner' }), this.focusCols, this.focusRows,
      el('div', { className: 'focus-scroll' }, [this.focusCanvas]),
    ]);
    this.root.append(
      el('header', { className: 'toolbar' }, [
        el('label', { text: 'Run ' }), c.run, el('label', { text: 'Layer ' }), c.layer,
        el('label', { text: 'Example ' }), c.example,
        el('label', { text: 'Step ' }), c.step, c.stepLabel, c.play,
      ]),
      this.status, this.info,
      el('section', { className: 'panel' }, [
        el('h3', { text: 'Heads (click one to enlarge)' }),
        el('div', { className: 'legend-row' }, [c.scale, el('span', { text: '0' }), this.legend, this.legendMax, this.legendText]),
        this.grid,
      ]),
      el('section', { className: 'panel' }, [
        el('div', { className: 'panel-head' }, [this.focusTitle, el('label', { text: 'zoom ' }), c.zoom, c.png]),
        el('div', { className: 'focus-wrap' }, [focusBody, this.tooltip]),
      ]),
      el('section', { className: 'panel' }, [
        el('div', { className: 'panel-head' }, [this.importanceTitle, c.mode, c.csv]),
        this.barsScale, this.bars,
      ]),
      el('section', { className: 'panel' }, [
        el('h3', { text: 'Importance over training (rows: steps, columns: tokens)' }),
        this.stepsCanvas, this.stepsInfo,
        el('div', { className: 'info', text: 'Click tokens in the bars above to follow them here:' }),
        this.tokenLines, this.tokenLinesLegend,
      ]),
      el('section', { className: 'panel' }, [
        el('h3', { text: 'Head statistics over training: row entropy (nats), max weight' }),
        this.statsCanvas, this.maxCanvas, this.statsLegend,
      ]),
      this.rolloutSection,
    );
    this.rolloutSection.append(el('h3', { text: 'Attention rollout through the self-attention stack (this step)' }), this.rolloutBars);

    c.run.addEventListener('change', () => this.select({ run: c.run.value }));
    c.layer.addEventListener('change', () => this.select({ tag: c.layer.value }));
    c.example.addEventListener('change', () => this.select({ example: Number(c.example.value) }));
    c.step.addEventListener('input', () => this.setStep(this.layer().steps[Number(c.step.value)]));
    c.play.addEventListener('click', () => this.togglePlay());
    c.mode.addEventListener('change', () => { this.state.mode = c.mode.value; this.saveState(); this.loadImportance(); });
    c.zoom.addEventListener('input', () => this.sizeFocus());
    c.scale.addEventListener('change', () => {
      this.state.scale = c.scale.value;
      this.saveState();
      if (this.maps) this.paintMaps();
    });
    c.png.addEventListener('click', () => this.exportPng());
    c.csv.addEventListener('click', () => this.exportCsv());
    this.focusCanvas.addEventListener('mousemove', (e) => this.hover(e));
    this.focusCanvas.addEventListener('mouseleave', () => { this.tooltip.hidden = true; this.paintFocus(); });
  }

  // The status line: a notice (no data yet), or the short error of each view
  // whose last load failed; a view's error goes when that view loads.
  setStatus(text) {
    this.notice = text;
    this.showStatus();
  }

  viewFailed(view, error) {
    this.failures.set(view, error.message);
    this.showStatus();
  }

  viewLoaded(view) {
    if (this.failures.delete(view)) this.showStatus();
  }

  showStatus() {
    const failures = [...this.failures].map(([view, message]) => `Could not load ${view}: ${message}`);
    this.status.textContent = failures.length ? failures.join(' | ') : this.notice;
    this.status.classList.toggle('error', failures.length > 0);
  }

  async refresh() {
    try {
      this.index = await api.fetchIndex();
    } catch (e) {
      this.viewFailed('the index', e);
      return;
    }
    this.viewLoaded('the index');
    if (!this.index.runs.length) {
      this.setStatus('No attention data yet. Add AttentionCallback(log_dir, probe) to model.fit.');
      return;
    }
    this.setStatus('');
    this.mapsCache.clear();
    await this.select({});
  }

  run() {
    return this.index.runs.find((r) => r.run === this.state.run);
  }

  layer() {
    const run = this.run();
    return run && run.layers.find((l) => l.tag === this.state.tag);
  }

  /** Applies a partial state change, fixing up anything it invalidates. */
  async select(change) {
    Object.assign(this.state, change);
    const runs = this.index.runs;
    if (!this.run()) this.state.run = runs[0].run;
    const run = this.run();
    if (!this.layer()) this.state.tag = run.layers[0].tag;
    const layer = this.layer();
    if (!(this.state.example >= 0 && this.state.example < layer.examples.length)) this.state.example = 0;
    if (!layer.steps.includes(this.state.step)) this.state.step = layer.steps[layer.steps.length - 1];
    const head = this.state.head;
    if (!(head === 'mean' || head === 'max' || (Number.isInteger(head) && head < layer.num_heads))) this.state.head = 'mean';

    const c = this.controls;
    fillSelect(c.run, runs.map((r) => ({ value: r.run, label: r.run })), this.state.run);
    fillSelect(c.layer, run.layers.map((l) => ({ value: l.tag, label: `${l.layer} (${l.kind}, ${l.num_heads} head${l.num_heads > 1 ? 's' : ''})` })), this.state.tag);
    const example = layer.examples[this.state.example];
    fillSelect(c.example, layer.examples.map((ex, i) => ({
      value: i, label: `${i}: ${ex.key_tokens.slice(0, 6).join(' ')}${ex.key_tokens.length > 6 ? ' …' : ''}`,
    })), this.state.example);
    c.step.max = String(layer.steps.length - 1);
    this.info.textContent = `${layer.layer_class} · ${layer.kind} attention · ${layer.num_heads} head(s) · ` +
      `${example.query_length} query x ${example.key_length} key tokens · ${layer.steps.length} captured steps · ` +
      `stored as ${layer.encoding}${layer.rows_normalized ? '' : ' · rows do not sum to 1'}`;
    this.buildGrid(layer);
    this.buildFocusLabels(example);
    await Promise.all([this.setStep(this.state.step), this.loadSeries()]);
  }

  buildGrid(layer) {
    const names = ['mean', 'max', ...Array.from({ length: layer.num_heads }, (_, h) => h)];
    if (layer.num_heads === 1) names.splice(0, 2);
    this.gridCanvases = new Map();
    this.grid.replaceChildren(...names.map((name) => {
      const canvas = el('canvas', { className: 'map thumb', dataset: { head: String(name) } });
      const figure = el('figure', { className: 'head', dataset: { head: String(name) } }, [
        canvas, el('figcaption', { text: typeof name === 'number' ? `head ${name}` : `head ${name}` }),
      ]);
      figure.addEventListener('click', () => {
        this.state.head = name;
        this.saveState();
        this.markSelectedHead();
        this.paintFocus();
        if (this.importance) this.loadImportance();
      });
      this.gridCanvases.set(String(name), canvas);
      return figure;
    }));
    if (layer.num_heads === 1) this.state.head = 0;
    this.markSelectedHead();
  }

  markSelectedHead() {
    for (const figure of this.grid.children) {
      figure.classList.toggle('selected', figure.dataset.head === String(this.state.head));
    }
  }

  buildFocusLabels(example) {
    this.picked.clear();
    // Start each layer/example at a zoom where the map is about 480 px wide.
    const longest = Math.max(example.query_length, example.key_length, 1);
    this.controls.zoom.value = String(Math.max(2, Math.min(24, Math.floor(480 / longest))));
    this.focusRows.replaceChildren(...example.query_tokens.map((t, i) => el('span', { text: t, dataset: { index: String(i) } })));
    this.focusCols.replaceChildren(...example.key_tokens.map((t, j) => el('span', { text: t, dataset: { index: String(j) } })));
    const hoverRow = (i) => { this.highlight = { row: i }; this.paintFocus(); };
    const hoverCol = (j) => { this.highlight = { col: j }; this.paintFocus(); };
    [...this.focusRows.children].forEach((span, i) => span.addEventListener('mouseenter', () => hoverRow(i)));
    [...this.focusCols.children].forEach((span, j) => span.addEventListener('mouseenter', () => hoverCol(j)));
    for (const labels of [this.focusRows, this.focusCols]) {
      labels.addEventListener('mouseleave', () => { this.highlight = null; this.paintFocus(); });
    }
  }

  async getMaps(step) {
    const { run, tag, example } = this.state;
    const key = JSON.stringify([run, tag, example, step]);
    if (!this.mapsCache.has(key)) {
      const ex = this.layer().examples[example];
      const cells = Math.max(1, this.layer().num_heads * ex.query_length * ex.key_length);
      const limit = Math.max(2, Math.min(MAPS_CACHE_MAX_STEPS, Math.floor(MAPS_CACHE_CELLS / cells)));
      while (this.mapsCache.size >= limit) this.mapsCache.delete(this.mapsCache.keys().next().value);
      const request = api.fetchMaps(run, tag, step, example);
      request.catch(() => this.mapsCache.delete(key)); // a failed fetch is retried next time
      this.mapsCache.set(key, request);
    }
    return this.mapsCache.get(key);
  }

  async setStep(step) {
    const layer = this.layer();
    this.state.step = step;
    this.controls.step.value = String(layer.steps.indexOf(step));
    this.controls.stepLabel.textContent = `${step}`;
    this.saveState();
    let maps;
    try {
      maps = await this.getMaps(step);
    } catch (e) {
      if (this.state.step === step) this.viewFailed('maps', e);
      return;
    }
    if (this.state.step !== step) return; // a newer step was chosen meanwhile
    this.viewLoaded('maps');
    this.maps = maps;
    this.derived = { mean: headMean(maps), max: headMax(maps) };
    this.paintMaps();
    this.renderImportanceBars();
    this.renderRolloutBars();
    this.root.dataset.paintedStep = String(step);
    // Fetch the next step ahead: a cold step costs a data-provider call and
    // the transfer (bench/frontend_paint.py), which play and scrubbing then
    // do not wait for.
    const steps = layer.steps;
    const next = steps[steps.indexOf(step) + 1];
    if (next !== undefined) this.getMaps(next).catch(() => {});
  }

  mapOf(name) {
    if (name === 'mean' || name === 'max') return this.derived[name];
    return headMap(this.maps, Number(name));
  }

  /**
   * The colour scale: fixed 0 to 1 by default, so a weight has the same
   * colour at every step (uniform attention at step 0 looks faint); or
   * stretched to the largest weight of this step's maps, which the legend says.
   */
  paintMaps() {
    const stretch = this.state.scale === 'stretch';
    this.vmax = stretch ? maxOf(this.maps.data) : 1;
    this.legendText.textContent = stretch
      ? `stretched to this step's max (${this.vmax.toFixed(3)}): colours differ between steps`
      : 'fixed scale 0 to 1: the same weight has the same colour at every step';
    this.legend.dataset.scale = this.state.scale;
    this.paintGrid();
    this.paintFocus();
  }

  paintGrid() {
    const { q, k } = this.maps;
    paintLegend(this.legend, this.vmax);
    this.legendMax.textContent = this.vmax.toFixed(3);
    for (const [name, canvas] of this.gridCanvases) {
      paintMap(canvas, this.mapOf(name), q, k, this.vmax);
    }
    this.sizeThumbs();
  }

  sizeThumbs() {
    const { q, k } = this.maps;
    const scale = 160 / Math.max(q, k);
    for (const canvas of this.gridCanvases.values()) {
      canvas.style.width = `${Math.round(k * scale)}px`;
      canvas.style.height = `${Math.round(q * scale)}px`;
    }
  }

  paintFocus() {
    if (!this.maps) return;
    const { q, k } = this.maps;
    const name = String(this.state.head);
    const values = this.mapOf(name);
    const hl = this.highlight;
    if (hl) {
      // Dim everything outside the hovered token's row or column.
      const dimmed = Float32Array.from(values, (v, i) => {
        const inside = hl.row !== undefined ? Math.floor(i / k) === hl.row : i % k === hl.col;
        return inside ? v : v * 0.25;
      });
      paintMap(this.focusCanvas, dimmed, q, k, this.vmax);
    } else {
      paintMap(this.focusCanvas, values, q, k, this.vmax);
    }
    this.focusTitle.textContent = `${name === 'mean' || name === 'max' ? `head ${name}` : `head ${name}`} · step ${this.state.step}`;
    this.sizeFocus();
  }

  sizeFocus() {
    if (!this.maps) return;
    const cell = Number(this.controls.zoom.value);
    const { q, k } = this.maps;
    this.focusCanvas.style.width = `${k * cell}px`;
    this.focusCanvas.style.height = `${q * cell}px`;
    const font = Math.min(12, Math.max(cell - 1, 0));
    for (const [labels, axis] of [[this.focusRows, 'height'], [this.focusCols, 'width']]) {
      labels.style.setProperty('--cell', `${cell}px`);
      labels.style.fontSize = `${font}px`;
      labels.classList.toggle('hidden-text', cell < 6);
      labels.dataset.axis = axis;
    }
  }

  hover(event) {
    const rect = this.focusCanvas.getBoundingClientRect();
    const { q, k } = this.maps;
    const cell = cellAt(event.clientX - rect.left, event.clientY - rect.top, rect.width, rect.height, q, k);
    if (!cell) {
      this.tooltip.hidden = true;
      return;
    }
    const example = this.layer().examples[this.state.example];
    const weight = this.mapOf(String(this.state.head))[cell.row * k + cell.col];
    this.tooltip.replaceChildren(
      el('div', { className: 'tip-query', text: `query: ${example.query_tokens[cell.row]}` }),
      el('div', { className: 'tip-key', text: `key: ${example.key_tokens[cell.col]}` }),
      el('div', { className: 'tip-weight', text: `weight: ${weight.toFixed(4)}` }),
    );
    this.tooltip.style.borderColor = cssColor(weight, this.vmax);
    this.tooltip.style.left = `${event.clientX - rect.left + 14}px`;
    this.tooltip.style.top = `${event.clientY - rect.top + 14}px`;
    this.tooltip.hidden = false;
    this.tooltip.dataset.row = String(cell.row);
    this.tooltip.dataset.col = String(cell.col);
  }

  importanceHeadIndex() {
    const h = this.state.head;
    return Number.isInteger(h) ? h : this.layer().num_heads; // mean (max has no sum)
  }

  /** Importance over steps of the shown head (or head mean) only. */
  async loadImportance() {
    const { run, tag, example, mode } = this.state;
    const head = this.importanceHeadIndex();
    try {
      const importance = await api.fetchImportanceOfHead(run, tag, example, mode, head);
      const s = this.state;
      if (tag !== s.tag || example !== s.example || run !== s.run || mode !== s.mode || head !== this.importanceHeadIndex()) return;
      const ex = this.layer().examples[example];
      importance.tokens = mode === 'received' ? ex.key_tokens : ex.query_tokens;
      importance.max = seriesMax(importance.values);
      this.importance = importance;
      this.viewLoaded('importance');
      this.renderImportanceBars();
      this.renderImportanceSteps();
    } catch (e) {
      const s = this.state;
      if (tag === s.tag && example === s.example && run === s.run) this.viewFailed('importance', e);
    }
  }

  async loadSeries() {
    const { run, tag, example } = this.state;
    const layer = this.layer();
    try {
      const [stats, rollout] = await Promise.all([
        api.fetchHeadStats(run, tag, example),
        layer.has_rollout ? api.fetchRollout(run, tag, example) : Promise.resolve(null),
        this.loadImportance(),
      ]);
      if (tag !== this.state.tag || example !== this.state.example || run !== this.state.run) return;
      this.rollout = rollout;
      this.viewLoaded('head statistics');
      this.renderStats(stats);
      this.renderRolloutBars();
    } catch (e) {
      const s = this.state;
      if (tag === s.tag && example === s.example && run === s.run) this.viewFailed('head statistics', e);
    }
  }

  renderImportanceBars() {
    const imp = this.importance;
    if (!imp) return;
    const s = imp.steps.indexOf(this.state.step);
    if (s < 0) return;
    const h = imp.head;
    const which = h === imp.num_heads ? 'head mean' : `head ${h}`;
    this.importanceTitle.textContent = imp.mode === 'received'
      ? `Received attention per key token (sum over queries), ${which}, step ${this.state.step}`
      : `Given attention per query token (sum over keys, 1 for softmax rows), ${which}, step ${this.state.step}`;
    this.bars.dataset.mode = imp.mode;
    this.bars.dataset.head = String(h);
    this.bars.dataset.step = String(this.state.step);
    this.barsScale.textContent = `Bar length: one scale for every step, 0 to ${imp.max.toFixed(3)} ` +
      `(the largest value of ${which} at any step)`;
    this.barsScale.dataset.max = String(imp.max);
    renderBars(this.bars, imp.tokens, imp.values[s], {
      max: imp.max,
      onHover: (j) => { this.highlight = imp.mode === 'received' ? { col: j } : { row: j }; this.paintFocus(); },
      onClick: (j) => {
        if (this.picked.has(j)) this.picked.delete(j);
        else this.picked.add(j);
        this.renderImportanceBars();
        this.renderTokenLines();
      },
      picked: this.picked,
    });
  }

  renderImportanceSteps() {
    const imp = this.importance;
    const vmax = renderStepsHeatmap(this.stepsCanvas, imp.values);
    this.stepsCanvas.style.width = `${Math.min(900, Math.max(200, imp.tokens.length * 8))}px`;
    this.stepsCanvas.style.height = `${Math.min(400, Math.max(60, imp.steps.length * 6))}px`;
    this.renderTokenLines();
    this.stepsInfo.textContent = `${imp.steps.length} steps (${imp.steps[0]} at the top to ${imp.steps[imp.steps.length - 1]}) x ` +
      `${imp.tokens.length} tokens; colour scale 0 to ${vmax.toFixed(3)}`;
  }

  renderTokenLines() {
    const imp = this.importance;
    const picked = [...this.picked].filter((j) => j < imp.tokens.length);
    this.tokenLines.hidden = picked.length === 0;
    const colors = renderLines(this.tokenLines, imp.steps,
      picked.map((j) => ({ name: imp.tokens[j], values: imp.values.map((v) => v[j]) })));
    this.tokenLinesLegend.replaceChildren(...picked.map((j, i) => {
      const swatch = el('span', { className: 'swatch' });
      swatch.style.background = colors[i % colors.length];
      return el('span', { className: 'legend-item' }, [swatch, el('span', { text: imp.tokens[j] })]);
    }));
  }

  renderStats(stats) {
    const names = Array.from({ length: stats.num_heads }, (_, h) => `head ${h}`);
    const series = (key) => names.map((name, h) => ({ name, values: stats[key].map((row) => row[h]) }));
    const colors = renderLines(this.statsCanvas, stats.steps, series('entropy'));
    renderLines(this.maxCanvas, stats.steps, series('max_weight'));
    this.statsLegend.replaceChildren(...names.map((name, h) => {
      const swatch = el('span', { className: 'swatch' });
      swatch.style.background = colors[h % colors.length];
      return el('span', { className: 'legend-item' }, [swatch, el('span', { text: name })]);
    }));
  }

  renderRolloutBars() {
    const rollout = this.rollout;
    this.rolloutSection.hidden = !rollout;
    if (!rollout) return;
    const s = rollout.steps.indexOf(this.state.step);
    if (s >= 0) renderBars(this.rolloutBars, rollout.tokens, rollout.values[s], { max: seriesMax(rollout.values) });
  }

  togglePlay() {
    if (this.playing) {
      clearInterval(this.playing);
      this.playing = null;
      this.controls.play.textContent = 'Play';
      return;
    }
    this.controls.play.textContent = 'Pause';
    this.playing = setInterval(() => {
      const steps = this.layer().steps;
      const next = steps[(steps.indexOf(this.state.step) + 1) % steps.length];
      this.setStep(next);
    }, PLAY_INTERVAL_MS);
  }

  download(name, href) {
    const link = el('a', { href, download: name });
    document.body.append(link);
    link.click();
    link.remove();
  }

  exportPng() {
    this.download(`attention-${this.state.tag}-step${this.state.step}.png`.replace(/[^\w.-]+/g, '_'),
      this.focusCanvas.toDataURL('image/png'));
  }

  async exportCsv() {
    const { run, tag, example, mode } = this.state;
    const imp = await api.fetchImportance(run, tag, example, mode); // every head
    const text = importanceCsv(imp.tokens, imp.steps, imp.values, imp.num_heads);
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    this.download(`importance-${imp.mode}-${this.state.tag}.csv`.replace(/[^\w.-]+/g, '_'), url);
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}

export async function render() {
  const style = el('link', { rel: 'stylesheet', href: './style.css' });
  document.head.append(style);
  const root = el('div', { className: 'tba', id: 'attention-root' });
  document.body.replaceChildren(root);
  followTheme(root);
  const tab = new AttentionTab(root);
  window.attentionTab = tab; // for debugging and the browser tests
  connectToHost(() => tab.refresh());
  await tab.refresh();
  root.dataset.ready = 'true';
}
