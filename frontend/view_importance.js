// Token importance: bars for the current step (one scale for every step),
// the steps x tokens heatmap, and lines of the tokens the user follows.
// Received attention (per key token) is the importance; given attention
// (per query token) is offered only as a check: 1 per query for softmax rows.

import * as api from './api.js';
import {
  attachChart, barsBox, renderBars, renderLines, renderStepsHeatmap, servedIndex, servedNote, seriesMax, valueText,
} from './charts.js';
import { el, legendItem } from './dom.js';
import { paintLegend } from './heatmap.js';
import { cellAt, spreadTicks } from './layout.js';
import { tokenName } from './naming.js';

/** Token-wise max over heads of values[s][h][j] (h < numHeads) -> rows of Float32Array. */
export function maxOverHeads(values, numHeads) {
  return values.map((perHead) => Float32Array.from(perHead[0], (_, j) => {
    let best = -Infinity;
    for (let h = 0; h < numHeads; h++) {
      const v = perHead[h][j];
      if (v !== null && v > best) best = v;
    }
    return best === -Infinity ? NaN : best;
  }));
}

export class ImportanceView {
  /** onMode('received' | 'given'), onHoverToken(j, mode), onPicked(positions) */
  constructor({ status, onMode, onHoverToken, onPicked }) {
    Object.assign(this, { status, onHoverToken, onPicked });
    this.given = el('input', { id: 'given-toggle', type: 'checkbox' });
    this.given.addEventListener('change', () => onMode(this.given.checked ? 'given' : 'received'));
    this.csv = el('button', { id: 'export-csv', text: 'CSV' });
    this.title = el('h3', { id: 'importance-title' });
    this.scaleText = el('div', { id: 'importance-scale', className: 'info' });
    this.bars = el('div', { id: 'importance-bars', className: 'bars' });
    this.barsMore = el('div', { id: 'importance-bars-more', className: 'clip-note', hidden: true });
    barsBox(this.bars, this.barsMore);
    this.stepsCanvas = el('canvas', { id: 'importance-steps', className: 'map steps' });
    // Its axes: steps down the left, token positions and tokens along the bottom, and a colour bar.
    this.stepsYTicks = el('div', { id: 'importance-steps-y', className: 'steps-y' });
    this.stepsXTicks = el('div', { id: 'importance-steps-x', className: 'steps-x' });
    this.stepsXTitle = el('div', { id: 'importance-steps-x-title', className: 'info steps-x-title' });
    this.stepsFrame = el('div', { className: 'steps-frame', id: 'importance-steps-frame' }, [
      el('div', { className: 'info steps-y-title', text: 'step ↓' }), this.stepsYTicks, this.stepsCanvas,
      el('div'), el('div'), this.stepsXTicks,
      el('div'), el('div'), this.stepsXTitle,
    ]);
    this.stepsLegend = el('canvas', { id: 'importance-steps-legend', className: 'legend' });
    this.stepsLegendText = el('span', { id: 'importance-steps-scale', className: 'info' });
    this.stepsLegendRow = el('div', { className: 'legend-row', id: 'importance-steps-legend-row' }, [
      el('span', { text: '0' }), this.stepsLegend, this.stepsLegendText]);
    this.stepsInfo = el('div', { id: 'importance-steps-info', className: 'info' });
    this.stepsHover = el('div', { id: 'importance-steps-hover', className: 'info', text: 'hover a cell for its step, token and value' });
    this.stepsCanvas.addEventListener('mousemove', (e) => this.hoverSteps(e));
    this.lines = el('canvas', { id: 'importance-lines' });
    this.linesLegend = el('div', { id: 'importance-lines-legend', className: 'info' });
    this.linesMarker = el('div', { className: 'step-marker', id: 'importance-lines-marker', hidden: true });
    this.linesHover = el('div', { id: 'importance-lines-hover', className: 'info chart-hover' });
    this.onStep = () => {};
    attachChart(this.lines, this.linesHover, { runName: () => this.run || '', onStep: (step) => this.onStep(step) });
    this.stepsCanvas.addEventListener('click', (e) => {
      const d = this.data;
      if (!d) return;
      const rect = this.stepsCanvas.getBoundingClientRect();
      const cell = cellAt(e.clientX - rect.left, e.clientY - rect.top, rect.width, rect.height, d.steps.length, d.tokens.length);
      if (cell) this.onStep(d.steps[cell.row]);
    });
    this.picked = new Set();
    this.barsPanel = el('section', { className: 'panel', id: 'importance-panel' }, [
      el('div', { className: 'panel-head' }, [this.title, this.csv]),
      el('label', { className: 'secondary', id: 'given-note' }, [this.given,
        el('span', { text: ' show given attention instead (sum over keys per query token): a normalisation check, 1 per query for softmax rows, not an importance' })]),
      this.scaleText, this.bars, this.barsMore,
    ]);
    this.trainingPanel = el('section', { className: 'panel' }, [
      el('h3', { text: 'Importance over training: rows are steps (first at the top), columns are tokens (left to right)' }),
      this.stepsFrame, this.stepsLegendRow, this.stepsHover, this.stepsInfo,
      el('div', { className: 'info', text: 'Click tokens in the bars above to follow them here:' }),
      el('div', { className: 'chart-wrap' }, [this.lines, this.linesMarker]), this.linesHover, this.linesLegend,
    ]);
    this.data = null;
  }

  /** Drops what is shown (e.g. an example without tokens). */
  clear() {
    this.data = null;
    this.loading = null;
    this.bars.replaceChildren();
    this.bars.barTokens = null;
    this.barsMore.hidden = true;
    this.title.textContent = 'Importance';
    this.scaleText.textContent = '';
  }

  /**
   * Loads importance over steps of the shown head: head h, the head mean
   * (index num_heads), or for head max the token-wise max over heads.
   */
  async load(state, layer, example, picked) {
    const { run, tag, head } = state;
    // Value-weighted (the Show control): received attention of weight x value
    // norm, which has no given counterpart (http_api.md, importance?of=).
    const of = state.show === 'value' ? 'value_weighted' : 'weights';
    const mode = of === 'value_weighted' ? 'received' : state.mode;
    const key = JSON.stringify([run, tag, state.example, mode, head, of]);
    this.loading = key;
    this.given.checked = mode === 'given';
    this.given.disabled = of === 'value_weighted';
    this.picked = new Set(picked);
    const tokens = mode === 'received' ? example.key_tokens : example.query_tokens;
    let data;
    try {
      if (head === 'max') {
        const all = await api.fetchImportance(run, tag, state.example, mode, of);
        data = { steps: all.steps, values: maxOverHeads(all.values, all.num_heads), which: 'max over heads', total: all.steps_total };
      } else {
        const h = Number.isInteger(head) ? head : layer.num_heads;
        const one = await api.fetchImportanceOfHead(run, tag, state.example, mode, h, of);
        data = { steps: one.steps, values: one.values, which: h === layer.num_heads ? 'head mean' : `head ${h}`, total: one.steps_total };
      }
    } catch (e) {
      if (this.loading === key) this.status.failed('importance', e);
      return;
    }
    if (this.loading !== key) return; // another view was chosen meanwhile
    this.status.loaded('importance');
    // a layer's relevance read as a layer (relevance.js): the numbers are of its shares
    const relevance = Boolean(layer.relevance_of);
    this.data = { ...data, mode, head, of, relevance, tokens, side: mode === 'received' ? 'key' : 'query', max: seriesMax(data.values) };
    this.run = run;
    this.bars.dataset.mode = mode;
    this.bars.dataset.head = String(head === 'mean' ? layer.num_heads : head);
    this.renderSteps();
    this.showStep(state.step);
  }

  showStep(step) {
    const d = this.data;
    if (!d) return;
    if (!d.steps.length) return;
    // A long log's series may hold a subset of the steps (max_points): show the nearest, and say so.
    const s = servedIndex(d.steps, step);
    const note = servedNote(d.steps, step, d.total);
    this.title.textContent = (d.relevance
      ? `${d.mode === 'received' ? 'Received relevance per key token (sum over queries of each row’s relevance shares)'
        : 'Given relevance per query token (sum over keys: 1 for a row with positive relevance)'}, ${d.which}, step ${step}`
      : d.of === 'value_weighted'
      ? `Received value-weighted attention per key token (sum over queries of weight × ‖value vector‖), ${d.which}, step ${step}`
      : d.mode === 'received'
      ? `Received attention per key token (sum over queries), ${d.which}, step ${step}`
      : `Given attention per query token (sum over keys, 1 for softmax rows), ${d.which}, step ${step}`) + note;
    this.scaleText.textContent = `Bar length: one scale for every step, 0 to ${d.max.toFixed(3)} ` +
      `(the largest value of ${d.which} at any step)`;
    this.scaleText.dataset.max = String(d.max);
    this.bars.dataset.step = String(step);
    this.step = step;
    this.placeLinesMarker();
    renderBars(this.bars, d.tokens, d.values[s], {
      max: d.max,
      side: d.side,
      picked: this.picked,
      onHover: (j) => this.onHoverToken(j, d.mode),
      onClick: (j) => {
        if (this.picked.has(j)) this.picked.delete(j);
        else this.picked.add(j);
        this.onPicked([...this.picked]);
        this.showStep(this.step);
        this.renderLines();
      },
    });
  }

  renderSteps() {
    const d = this.data;
    const vmax = renderStepsHeatmap(this.stepsCanvas, d.values);
    const width = Math.min(900, Math.max(200, d.tokens.length * 8));
    const height = Math.min(400, Math.max(60, d.steps.length * 6));
    this.stepsCanvas.style.width = `${width}px`;
    this.stepsCanvas.style.height = `${height}px`;
    this.renderStepsAxes(width, height, vmax);
    const of = d.total > d.steps.length ? ` (${d.steps.length} of ${d.total} captured steps, evenly spread)` : '';
    this.stepsInfo.textContent = `${d.steps.length} steps${of} (${d.steps[0]} at the top to ${d.steps[d.steps.length - 1]}) x ` +
      `${d.tokens.length} tokens; colour scale 0 to ${vmax.toFixed(3)}`;
    this.renderLines();
  }

  /**
   * The steps x tokens heatmap's axes (a few DOM labels, never one per cell
   * of a long log): steps at rows evenly spread from the first (layout.js
   * spreadTicks), token positions and tokens at columns spread so their
   * labels do not overlap (every column from 14 px), and the colour bar
   * 0..vmax.
   */
  renderStepsAxes(width, height, vmax) {
    const d = this.data;
    const rows = d.steps.length;
    const cols = d.tokens.length;
    this.stepsYTicks.style.height = `${height}px`;
    this.stepsXTicks.style.width = `${width}px`;
    const rowTicks = spreadTicks(rows, Math.max(1, Math.floor(height / 18)));
    this.stepsYTicks.replaceChildren(...rowTicks.map((s) => {
      const tick = el('span', { text: String(d.steps[s]), dataset: { step: String(d.steps[s]), row: String(s) } });
      tick.style.top = `${((s + 0.5) / rows) * 100}%`;
      return tick;
    }));
    const colTicks = spreadTicks(cols, Math.max(1, Math.floor(width / 14)));
    this.stepsXTicks.replaceChildren(...colTicks.map((j) => {
      const tick = el('span', { text: `${j} ${d.tokens[j]}`, title: tokenName(d.side, j, d.tokens[j]), dataset: { index: String(j) } });
      tick.style.left = `${((j + 0.5) / cols) * 100}%`;
      return tick;
    }));
    this.stepsXTitle.textContent = `${d.side === 'key' ? 'key' : 'query'} tokens →: position and token` +
      (colTicks.length < cols ? ` (one label every ${colTicks[1] - colTicks[0]} columns; hover a cell for its token)` : '');
    paintLegend(this.stepsLegend, vmax);
    this.stepsLegendText.textContent = `${vmax.toFixed(3)} · ${d.mode} attention, ${d.which}: 0 to the largest value of any step`;
  }

  hoverSteps(event) {
    const d = this.data;
    if (!d) return;
    const rect = this.stepsCanvas.getBoundingClientRect();
    const cell = cellAt(event.clientX - rect.left, event.clientY - rect.top, rect.width, rect.height, d.steps.length, d.tokens.length);
    if (!cell) return;
    this.stepsHover.textContent = `${this.run} · step ${d.steps[cell.row]} (click to go there) · ${tokenName(d.side, cell.col, d.tokens[cell.col])} · ` +
      `${d.mode} attention ${valueText(d.values[cell.row][cell.col])}`;
    this.stepsHover.dataset.row = String(cell.row);
    this.stepsHover.dataset.col = String(cell.col);
  }

  renderLines() {
    const d = this.data;
    const picked = [...this.picked].filter((j) => j < d.tokens.length);
    this.lines.hidden = picked.length === 0;
    const colors = renderLines(this.lines, d.steps,
      picked.map((j) => ({ name: tokenName(d.side, j, d.tokens[j]), values: d.values.map((v) => v[j]) })),
      { xLabel: 'step', yLabel: d.mode === 'received' ? 'received attention' : 'given attention' });
    this.linesLegend.replaceChildren(...picked.map((j, i) => legendItem(colors[i % colors.length], tokenName(d.side, j, d.tokens[j]))));
    this.linesHover.hidden = this.lines.hidden;
    this.placeLinesMarker();
  }

  /** The dashed line at the current step on the followed tokens' chart. */
  placeLinesMarker() {
    const plot = this.lines.plot;
    this.linesMarker.hidden = this.lines.hidden || !plot || this.step === undefined;
    if (this.linesMarker.hidden) return;
    const x = plot.x(this.step);
    Object.assign(this.linesMarker.style, { left: `${x - 1}px`, top: `${plot.top}px`, height: `${plot.bottom - plot.top}px` });
    this.lines.dataset.marker = String(this.step);
  }
}
