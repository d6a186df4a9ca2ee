// Head statistics over training, one line per head, with a marker at the
// current step: mean row entropy, largest weight, mean attention distance.

import * as api from './api.js';
import { attachChart, renderLines } from './charts.js';
import { el, legendItem } from './dom.js';
import { meaninglessWhy, uniformMeanDistance } from './head_metrics.js';
import { visibilityFacts } from './visibility.js';

// ceiling({keys, normalized}), where there is one: the most the statistic can be
// (keys: the example's key tokens; normalized: the layer's rows sum to 1).
export const CHARTS = [
  { key: 'entropy', id: 'entropy-chart', title: 'row entropy', yLabel: 'entropy (nats)',
    ceiling: ({ keys, normalized }) => (normalized && keys > 0 ? Math.log(keys) : undefined) },
  { key: 'max_weight', id: 'maxweight-chart', title: 'largest weight', yLabel: 'max weight',
    ceiling: ({ normalized }) => (normalized ? 1 : undefined) },
  // reference({facts, queries, keys}): what uniform attention over the keys each query sees gives.
  { key: 'mean_distance', id: 'distance-chart', title: 'mean distance |query - key|', yLabel: 'distance (tokens)',
    reference: ({ facts, queries, keys }) => {
      const value = uniformMeanDistance(facts, queries, keys);
      return { value, label: `uniform attention ${value.toFixed(2)}` };
    } },
];

/** The charts offered for a layer: none whose statistic means nothing for its kind (distance for cross attention). */
export function chartsFor(layer) {
  return CHARTS.filter((c) => !meaninglessWhy(layer, c.key));
}

export class StatsView {
  constructor({ status }) {
    this.status = status;
    this.canvases = CHARTS.map((c) => el('canvas', { id: c.id, className: 'chart', title: c.title }));
    this.markers = CHARTS.map((c) => el('div', { className: 'step-marker', id: `${c.id}-marker`, hidden: true }));
    this.legend = el('div', { id: 'stats-legend', className: 'info' });
    this.note = el('div', { id: 'stats-note', className: 'info', hidden: true });
    this.wraps = this.canvases.map((canvas, i) => el('div', { className: 'chart-wrap' }, [canvas, this.markers[i]]));
    this.hover = el('div', { id: 'stats-hover', className: 'info chart-hover', text: 'hover a line for its value; click to go to that step' });
    this.onStep = () => {};
    for (const canvas of this.canvases) attachChart(canvas, this.hover, { runName: () => this.run || '', onStep: (step) => this.onStep(step) });
    this.element = el('section', { className: 'panel', id: 'stats-panel' }, [
      (this.title = el('h3', { id: 'stats-title' })),
      this.note,
      el('div', { className: 'charts' }, this.wraps),
      this.hover, this.legend,
    ]);
    this.stats = null;
    this.showTitle(true);
  }

  showTitle(distance) {
    this.title.textContent = 'Head statistics over training: row entropy (0 = one key, log K = uniform), largest weight' +
      (distance ? ', mean distance between query and key positions under the weights (dotted: what uniform attention gives)' : '') +
      '; the dashed line is the current step';
  }

  clear() {
    this.stats = null;
    this.loading = null;
    for (const marker of this.markers) marker.hidden = true;
  }

  /** The statistics of state's run, layer and example; layer and example (the index's) bound the axes. */
  async load(state, layer, exampleInfo) {
    const { run, tag, example } = state;
    this.bounds = {
      keys: exampleInfo.key_length, queries: exampleInfo.query_length, normalized: Boolean(layer.rows_normalized),
      facts: visibilityFacts(layer, exampleInfo),
    };
    const offered = chartsFor(layer);
    this.offered = new Set(offered.map((c) => c.key));
    CHARTS.forEach((c, i) => { this.wraps[i].hidden = !this.offered.has(c.key); });
    const left = CHARTS.filter((c) => !this.offered.has(c.key));
    this.note.hidden = !left.length;
    this.note.textContent = left.map((c) => `no ${c.title} chart: it ${meaninglessWhy(layer, c.key)}`).join('; ');
    this.showTitle(this.offered.has('mean_distance'));
    const key = JSON.stringify([run, tag, example]);
    this.loading = key;
    let stats;
    try {
      stats = await api.fetchHeadStats(run, tag, example);
    } catch (e) {
      if (this.loading === key) this.status.failed('head statistics', e);
      return;
    }
    if (this.loading !== key) return;
    this.status.loaded('head statistics');
    this.stats = stats;
    this.run = run;
    this.step = state.step;
    this.draw();
  }

  /** Draws the charts (after a load or a theme switch), then the marker. */
  draw() {
    const stats = this.stats;
    if (!stats) return;
    const names = Array.from({ length: stats.num_heads }, (_, h) => `head ${h}`);
    let colors = [];
    CHARTS.forEach((chart, i) => {
      if (this.offered && !this.offered.has(chart.key)) return;
      const rows = stats[chart.key] || [];
      const series = names.map((name, h) => ({ name, values: rows.map((row) => row[h]) }));
      colors = renderLines(this.canvases[i], stats.steps, series, {
        xLabel: 'step', yLabel: chart.yLabel, ceiling: chart.ceiling?.(this.bounds), reference: chart.reference?.(this.bounds),
      });
    });
    this.legend.replaceChildren(...names.map((name, h) => legendItem(colors[h % colors.length], name)));
    if (this.step !== undefined) this.showStep(this.step);
  }

  /** Moves the dashed marker to a step: no redraw. */
  showStep(step) {
    this.step = step;
    this.canvases.forEach((canvas, i) => {
      const marker = this.markers[i];
      marker.hidden = !(this.stats && canvas.plot) || this.wraps[i].hidden;
      if (marker.hidden) return;
      const x = canvas.plot.x(step);
      marker.style.left = `${x - 1}px`;
      marker.style.top = `${canvas.plot.top}px`;
      marker.style.height = `${canvas.plot.bottom - canvas.plot.top}px`;
      canvas.dataset.marker = String(step);
      canvas.dataset.markerX = String(x);
    });
  }
}
