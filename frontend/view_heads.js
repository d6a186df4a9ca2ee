// The heads view (issue 21 item 2): every layer (rows, in model order) x
// every head of the run, coloured by one head metric (docs/HEAD_METRICS.md)
// at the current step, each cell with a sparkline of the metric over
// training and a mark at the head's largest jump; heads can be ranked.
// Click a cell to open that head at the current step, its mark to open it
// at the jump's step. One head_metrics request per layer, cached; closed,
// it asks for nothing.

import * as api from './api.js';
import { hiDpiContext, isMissing, servedNote, valueText } from './charts.js';
import { colorOf } from './colors.js';
import { el, fillSelect } from './dom.js';
import {
  BOUNDED_METRICS, DEFAULT_METRIC, HeadMetricsCache, METRIC_UNITS, RANKINGS, changeOverTraining, colourRange,
  headSeries, largestJump, notOfferedWhy, offeredMetrics, rangePosition, rangeText, rankCells, servedAt, shortLayerNames,
} from './head_metrics.js';
import { paintLegend } from './heatmap.js';
import { layersInModelOrder } from './state.js';

// CSS px of a cell's sparkline: the width of its cell (style.css .hm-cell,
// .hm-ranked .hm-cell), in model order and ranked.
export const SPARK_W = { model: 64, ranked: 104 };
const SPARK_H = 24;
const SPARK_PAD = 3;

/** Text colour readable on a cell of colour [r, g, b]. */
const inkOn = ([r, g, b]) => (0.299 * r + 0.587 * g + 0.114 * b > 140 ? '#111' : '#fff');

export class HeadsView {
  /** onOpen(tag, head, step | undefined); onChoice({metric | rank | headsOpen}) to keep a choice. */
  constructor({ status, onOpen, onChoice }) {
    Object.assign(this, { status, onOpen, onChoice });
    this.cache = new HeadMetricsCache(api.fetchHeadMetrics);
    this.metric = el('select', { id: 'heads-metric', title: 'head metric (docs/HEAD_METRICS.md)' });
    this.rank = el('select', { id: 'heads-rank', title: 'order of the heads' });
    fillSelect(this.rank, RANKINGS);
    this.legend = el('canvas', { id: 'heads-legend', className: 'legend' });
    this.legendMin = el('span', { id: 'heads-legend-min' });
    this.legendMax = el('span', { id: 'heads-legend-max' });
    this.scaleText = el('div', { id: 'heads-scale', className: 'info' });
    this.caption = el('span', { id: 'heads-caption', className: 'info' });
    this.note = el('div', { id: 'heads-note', className: 'note', hidden: true });
    this.matrix = el('div', { id: 'heads-matrix', className: 'hm-matrix' });
    this.details = el('details', { id: 'heads-view', className: 'panel' }, [
      el('summary', {}, [el('h3', { text: 'Heads view: every layer x every head by a head metric ' }), this.caption]),
      el('div', { className: 'legend-row' }, [
        el('label', { text: 'metric ', htmlFor: 'heads-metric' }), this.metric,
        el('label', { text: 'order ', htmlFor: 'heads-rank' }), this.rank,
        this.legendMin, this.legend, this.legendMax,
        el('span', { className: 'hm-missing-swatch', title: 'missing: the metric does not apply (NaN)' }),
        el('span', { className: 'info', text: 'missing' }),
      ]),
      this.scaleText,
      el('div', { className: 'info', text: 'Each cell: the value at this step (colour) and the metric over training ' +
        '(sparkline, one y scale for every cell; the dashed line is this step, the dot the largest jump between two ' +
        'captures). Click a cell to open that head at this step, its dot to open it at the jump.' }),
      this.note, this.matrix,
    ]);
    this.element = this.details;
    this.metric.addEventListener('change', () => { this.onChoice({ metric: this.metric.value }); this.reshow(); });
    this.rank.addEventListener('change', () => { this.onChoice({ rank: this.rank.value }); this.arrange(); });
    this.details.addEventListener('toggle', () => {
      this.openShown = this.details.open;
      this.onChoice({ headsOpen: this.details.open });
      if (this.details.open) this.reshow();
    });
    this.sparkW = SPARK_W.model;
    this.openShown = false; // the headsOpen last applied to the panel (a link's, or the user's toggle)
    this.data = null;
  }

  reshow() {
    if (this.args) this.show(...this.args);
  }

  /** The metric to show: the chosen one if some layer has it, else entropy, else the first there is. */
  static pickMetric(names, chosen) {
    if (names.includes(chosen)) return chosen;
    return names.includes(DEFAULT_METRIC) ? DEFAULT_METRIC : names[0];
  }

  /** Shows `run` for state's example, step, metric and ranking; marks state's layer and head. */
  async show(run, state) {
    this.args = [run, state];
    // Only a changed headsOpen (a link, back/forward) opens or closes the
    // panel: a click on its summary opens it at once but says so in a later
    // task ('toggle'), and a show() in between (TensorBoard's reload, the
    // run selector's poll) must not close it again.
    if (Boolean(state.headsOpen) !== this.openShown) this.details.open = this.openShown = Boolean(state.headsOpen);
    this.rank.value = RANKINGS.some((r) => r.value === state.rank) ? state.rank : 'model';
    const layers = layersInModelOrder(run.layers);
    const names = [...new Set(layers.flatMap((l) => offeredMetrics(l)))];
    fillSelect(this.metric, names.map((n) => ({ value: n, label: n })), HeadsView.pickMetric(names, state.metric));
    if (!this.details.open) return;
    if (!names.length) {
      this.data = null;
      this.matrix.replaceChildren();
      this.showNote('no head metrics stored in this run (written by a tb-attention without them)');
      return;
    }
    const metric = HeadsView.pickMetric(names, state.metric);
    const example = state.example;
    // The Show control's choice: the metrics of the weights, or of the value-weighted maps.
    const of = state.show === 'value' ? 'value_weighted' : 'weights';
    const key = JSON.stringify([run.run, example, metric, of, layers.map((l) => [l.tag, l.steps.length, l.steps[l.steps.length - 1]])]);
    if (this.data && this.data.key === key) {
      this.select(state);
      this.showStep(state.step);
      return;
    }
    this.loading = key;
    const replies = await Promise.all(layers.map(async (layer) => {
      if (notOfferedWhy(layer, metric)) return { missing: `${metric} ${notOfferedWhy(layer, metric)}` };
      if (!(layer.metric_names || []).includes(metric)) return { missing: layer.metric_names && layer.metric_names.length ? `no ${metric} for this layer` : 'no head metrics stored' };
      if (!layer.examples[example]) return { missing: `no example ${example}` };
      if (of === 'value_weighted' && !layer.value_vector) return { missing: 'no value norms stored: value-weighted metrics missing' };
      if (layer.relevance_missing) return { missing: 'no relevance stored: relevance metrics missing' };
      try {
        const reply = await this.cache.get(run.run, layer, example, metric, of);
        if (this.loading === key) this.status.loaded(`the heads view (${layer.layer})`);
        return reply;
      } catch (e) {
        if (this.loading === key) this.status.failed(`the heads view (${layer.layer})`, e);
        return { missing: `could not load: ${e.message}` };
      }
    }));
    if (this.loading !== key) return;
    this.showNote(null);
    this.build(key, run, layers, metric, replies);
    this.select(state);
    this.showStep(state.step);
    this.matrix.dataset.loaded = key;
  }

  showNote(text) {
    this.note.hidden = !text;
    this.note.textContent = text || '';
  }

  /** One cell per head of every layer, with its sparkline and largest jump (no colours yet: showStep). */
  build(key, run, layers, metric, replies) {
    const cells = [];
    let lo = Infinity;
    let hi = -Infinity;
    layers.forEach((layer, li) => {
      const reply = replies[li];
      for (let h = 0; h < layer.num_heads; h++) {
        const series = reply.values ? headSeries(reply, h) : [];
        for (const v of series) {
          if (isMissing(v)) continue;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        cells.push({ layer, reply, head: h, series, order: cells.length, row: li,
          jump: reply.values ? largestJump(reply.steps, series) : null, change: changeOverTraining(series) });
      }
    });
    // One y scale for every sparkline: heads compare at a glance; bounded metrics on their bounds.
    const ySpan = BOUNDED_METRICS.has(metric) ? { min: 0, max: 1 } : { min: lo <= hi ? lo : 0, max: lo <= hi ? hi : 1 };
    this.data = { key, run, layers, metric, replies, cells, ySpan, maxHeads: Math.max(1, ...layers.map((l) => l.num_heads)) };
    this.layerLabels = layers.map((layer, li) => el('div', {
      className: 'hm-layer', text: `${layer.layer}`, title: `${layer.tag} (${layer.kind}, ${layer.num_heads} heads)${replies[li].missing ? `: ${replies[li].missing}` : ''}`,
      dataset: { tag: layer.tag },
    }));
    this.headLabels = Array.from({ length: this.data.maxHeads }, (_, h) => el('div', { className: 'hm-head-label', text: `head ${h}` }));
    const short = shortLayerNames(layers.map((l) => l.layer));
    for (const cell of cells) this.buildCell(cell, short[cell.row]);
    const of = this.args[1].show === 'value' ? '; of the value-weighted maps' : '';
    this.caption.textContent = `(${run.run}, example ${this.args[1].example}; ${layers.length} layers, ${cells.length} heads${of})`;
    this.drawn = false;
    this.arrange();
    this.drawSparklines(); // in the document: the canvases take the theme's text colour
    this.drawn = true;
  }

  buildCell(cell, shortName) {
    const { layer, head } = cell;
    cell.valueBox = el('div', { className: 'hm-value' });
    cell.canvas = el('canvas', { className: 'hm-spark' });
    cell.now = el('div', { className: 'hm-now', hidden: true });
    cell.mark = el('button', { className: 'hm-jump', hidden: !cell.jump, type: 'button' });
    cell.caption = el('div', { className: 'hm-caption', text: `${shortName} · h${head}`, title: `${layer.tag}, head ${head}` });
    cell.element = el('div', {
      className: 'hm-cell', dataset: { tag: layer.tag, head: String(head) },
      title: `${layer.layer}, head ${head}: click to open it at this step`,
    }, [cell.caption, cell.valueBox, el('div', { className: 'hm-spark-wrap' }, [cell.canvas, cell.now, cell.mark])]);
    cell.element.addEventListener('click', () => this.onOpen(layer.tag, head, undefined));
    if (cell.jump) {
      cell.element.dataset.jumpStep = String(cell.jump.step);
      cell.mark.title = `largest jump: ${valueText(cell.jump.delta)} at step ${cell.jump.step}; click to open head ${head} at that step`;
      cell.mark.addEventListener('click', (e) => {
        e.stopPropagation();
        this.onOpen(layer.tag, head, cell.jump.step);
      });
    }
    if (cell.reply.missing) cell.element.title = `${layer.layer}, head ${head}: ${cell.reply.missing}`;
  }

  /** Sparkline x and y of a served point, CSS px. */
  sparkXY(cell, t, v) {
    const steps = cell.reply.steps;
    const first = steps[0];
    const span = steps[steps.length - 1] - first || 1;
    const { min, max } = this.data.ySpan;
    const x = SPARK_PAD + ((steps[t] - first) / span) * (this.sparkW - 2 * SPARK_PAD);
    const y = SPARK_H - SPARK_PAD - ((v - min) / (max - min || 1)) * (SPARK_H - 2 * SPARK_PAD);
    return [x, y];
  }

  /** Draws every sparkline in the theme's text colour (again after a theme switch) and places the jump marks. */
  drawSparklines() {
    if (!this.data) return;
    for (const cell of this.data.cells) {
      const { canvas, series } = cell;
      const ctx = hiDpiContext(canvas, this.sparkW, SPARK_H);
      ctx.strokeStyle = getComputedStyle(canvas).color || '#000';
      ctx.lineWidth = 1.25;
      ctx.beginPath();
      let gap = true; // a missing value breaks the line
      series.forEach((v, t) => {
        if (isMissing(v)) {
          gap = true;
          return;
        }
        const [x, y] = this.sparkXY(cell, t, v);
        if (gap) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
        gap = false;
        if (series.length === 1) ctx.arc(x, y, 1.5, 0, 2 * Math.PI); // one point: a dot
      });
      ctx.stroke();
      cell.element.classList.toggle('all-missing', !series.some((v) => !isMissing(v)));
      if (cell.jump) {
        const [x, y] = this.sparkXY(cell, cell.jump.index, series[cell.jump.index]);
        cell.mark.style.left = `${x}px`;
        cell.mark.style.top = `${y}px`;
      }
      this.placeNow(cell);
    }
  }

  /** The dashed line of the current step in a cell's sparkline (hidden where the value is missing). */
  placeNow(cell) {
    const shown = Boolean(cell.reply.steps && cell.reply.steps.length) && this.step !== undefined && !isMissing(cell.value);
    cell.now.hidden = !shown;
    if (!shown) return;
    const { index } = servedAt(cell.reply, this.step);
    cell.now.style.left = `${this.sparkXY(cell, index, cell.value)[0]}px`;
  }

  /** Marks the shown layer and head. */
  select(state) {
    this.selected = { tag: state.tag, head: state.head };
    if (!this.data) return;
    for (const cell of this.data.cells) {
      cell.element.classList.toggle('selected', cell.layer.tag === state.tag && cell.head === state.head);
    }
    for (const label of this.layerLabels) label.classList.toggle('selected', label.dataset.tag === state.tag);
  }

  /** Colours and values at `step`, the legend, and the ranking when it is by value. */
  showStep(step) {
    this.step = step;
    if (!this.data || !this.details.open) return;
    const { cells, metric } = this.data;
    const notes = new Set();
    for (const cell of cells) {
      if (!cell.reply.values || !cell.reply.steps.length) {
        cell.value = NaN;
        continue;
      }
      const { index, exact } = servedAt(cell.reply, step);
      cell.value = cell.series[index];
      cell.servedStep = cell.reply.steps[index];
      if (!exact) notes.add(servedNote(cell.reply.steps, step, cell.reply.steps_total).trim());
    }
    const range = colourRange(metric, cells.map((c) => c.value));
    this.range = range;
    paintLegend(this.legend, 1);
    this.legendMin.textContent = range.empty ? '' : range.min.toFixed(3);
    this.legendMax.textContent = range.empty ? '' : range.max.toFixed(3);
    this.legend.dataset.min = String(range.min);
    this.legend.dataset.max = String(range.max);
    this.scaleText.textContent = rangeText(metric, range, step) + (notes.size ? ` ${[...notes].join(' ')}` : '');
    const unit = METRIC_UNITS[metric] ? ` ${METRIC_UNITS[metric]}` : '';
    for (const cell of cells) {
      const missing = isMissing(cell.value);
      const box = cell.valueBox;
      cell.element.classList.toggle('missing', missing);
      cell.element.dataset.value = missing ? 'missing' : String(cell.value);
      cell.element.dataset.step = String(missing ? step : cell.servedStep);
      box.textContent = missing ? 'missing' : valueText(cell.value);
      if (missing) {
        box.style.background = '';
        box.style.color = '';
      } else {
        const rgb = colorOf(rangePosition(cell.value, range), 1);
        box.style.background = `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
        box.style.color = inkOn(rgb);
      }
      box.title = `${metric} of ${cell.layer.layer} head ${cell.head} at step ${step}: ${missing ? 'missing (does not apply)' : `${cell.value}${unit}`}`;
      this.placeNow(cell);
    }
    if (this.rank.value === 'value') this.arrange();
    this.matrix.dataset.paintedStep = String(step);
  }

  /**
   * Lays the cells out: in model order a matrix (a row per layer, a column
   * per head); ranked, one list in rank order, each cell naming its layer.
   */
  arrange() {
    if (!this.data) return;
    const ranking = this.rank.value;
    const { cells, layers, maxHeads } = this.data;
    if (ranking === 'model') {
      this.matrix.className = 'hm-matrix';
      this.matrix.style.gridTemplateColumns = `fit-content(22em) repeat(${maxHeads}, ${SPARK_W.model + 6}px)`;
      const children = [el('div'), ...this.headLabels];
      layers.forEach((layer, li) => {
        const row = cells.filter((c) => c.row === li);
        children.push(this.layerLabels[li], ...row.map((c) => c.element));
        for (let h = row.length; h < maxHeads; h++) children.push(el('div'));
      });
      cells.forEach((c) => { delete c.element.dataset.rank; });
      this.matrix.replaceChildren(...children);
    } else {
      this.matrix.className = 'hm-ranked';
      this.matrix.style.gridTemplateColumns = '';
      const ranked = rankCells(cells, ranking);
      ranked.forEach((c, i) => { c.element.dataset.rank = String(i); });
      this.matrix.replaceChildren(...ranked.map((c) => c.element));
    }
    this.matrix.dataset.ranking = ranking;
    // Each sparkline as wide as its cell: redrawn when the cells change width.
    const width = ranking === 'model' ? SPARK_W.model : SPARK_W.ranked;
    if (width !== this.sparkW) {
      this.sparkW = width;
      if (this.drawn) this.drawSparklines();
    }
  }

  /** After a theme switch: sparklines take the new text colour. */
  draw() {
    this.drawSparklines();
  }
}
