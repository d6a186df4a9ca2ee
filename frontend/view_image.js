// The image view (issue 18 item 2), for layers over an image's patches (a
// `grid` in /index) of runs that stored their probe images: the probe image
// with the attention one query token gives to every patch as a translucent
// heatmap, per head, for the head mean and for rollout; click a patch to
// pick the query. Also the mean attention distance of every layer over
// training (head metric mean_distance) and a PNG export.

import * as api from './api.js';
import {
  CHART_PAD, axisTop, drawFrame, drawReference, headOffset, hiDpiContext, isMissing, renderLines, servedIndex, valueText,
} from './charts.js';
import { LUT, colorIndex } from './colors.js';
import { headMap } from './decode.js';
import { el, fillSelect, legendItem } from './dom.js';
import { download } from './export.js';
import { headMeanSeries, offeredMetrics, uniformMeanDistance, uniformPatchDistance } from './head_metrics.js';
import { paintLegend } from './heatmap.js';
import { defaultQuery, gridFits, patchAt, patchToken, splitRow, tokenPatch } from './image_grid.js';
import { SCALES, ratioIndex, ratioText, rowCount, scaleLegend } from './scales.js';
import { DEFAULT_OPACITY, layersInModelOrder } from './state.js';
import { hidesCells, visibilityFacts } from './visibility.js';

const FIGURE_PX = 168; // longest side of one image
const INK = '#212121';

/** Whether a layer of a run gets the image view (for probe example `example`). */
export function showsImage(run, layer, example) {
  const ex = layer.examples[example];
  return Boolean(layer.grid) && run.probe_images > 0 && example < run.probe_images && layer.kind !== 'cross' &&
    Boolean(ex) && gridFits(layer.grid, ex.query_length) && gridFits(layer.grid, ex.key_length);
}

/**
 * Patch weights (rows x cols, row by row) painted as RGBA cells, one canvas
 * pixel per patch: on 0..vmax, or with vmax 'ratio' as ratios to uniform,
 * weight x `count` (the keys the query row sees; scales.js).
 */
function paintOverlay(canvas, patches, rows, cols, vmax, count = 0) {
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const c = (vmax === 'ratio' ? ratioIndex(patches[i] * count) : colorIndex(patches[i], vmax)) * 3;
    image.data.set([LUT[c], LUT[c + 1], LUT[c + 2], 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  canvas.overlayValues = patches; // what was painted, for the browser tests
  canvas.dataset.vmax = String(vmax);
  canvas.dataset.count = String(count);
}

/** The image view's legend: the ends of its strip and what its scale is (scales.js kinds). */
export function imageScaleLegend(kind) {
  if (kind === 'stretch') {
    return { min: '0', max: 'max', text: 'each heatmap stretched to its own largest patch weight (written under it): colours differ between heads' };
  }
  const legend = scaleLegend(kind);
  return { ...legend, max: kind === 'ratio' ? legend.max : '1', text: kind === 'ratio' ? `${legend.text} (the query row's keys: class/register tokens and patches)` : legend.text };
}

/**
 * A dot chart: x = the layers in order, one dot per head (the value of
 * columns[layer][head]; NaN is left out), in the layer's colour, heads side
 * by side in their layer's slot (headOffset) and ringed in the page's colour
 * so that dots which overlap stay apart; `reference` {value, label}: a
 * dotted line (what uniform attention gives) the axis makes room for.
 */
export function paintDots(canvas, names, columns, colors, yLabel, { width = 460, height = 170, reference = null } = {}) {
  const ctx = hiDpiContext(canvas, width, height);
  const pad = CHART_PAD;
  const values = columns.flat().filter(Number.isFinite);
  const ref = reference && Number.isFinite(reference.value) ? reference : null;
  const ymax = axisTop(0, Math.max(...values, 1e-9), { reference: ref ? ref.value : undefined }); // a dot at the maximum stays off the frame
  const sx = (i) => pad.l + ((i + 0.5) / Math.max(names.length, 1)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - (y / ymax) * (height - pad.t - pad.b);
  drawFrame(canvas, ctx, { width, height, ymin: 0, ymax, xLabel: 'layer (model order; colours as in the chart below); heads 0, 1, … left to right', yLabel });
  // The layers' names under their dots where every one fits its slot (a
  // number read as a layer index where names are 0-based, e.g. "block0",
  // was one off); else their place in model order, 1 for the first.
  const slot = (width - pad.l - pad.r) / Math.max(names.length, 1);
  const ticks = names.every((name) => ctx.measureText(name).width <= slot - 4) ? names : names.map((_, i) => String(i + 1));
  ticks.forEach((tick, i) => ctx.fillText(tick, sx(i), height - pad.b + 12));
  canvas.dataset.ticks = JSON.stringify(ticks);
  if (ref) drawReference(canvas, ctx, { y: sy(ref.value), left: pad.l + 1, right: width - pad.r, label: ref.label });
  canvas.dataset.reference = ref ? String(ref.value) : '';
  const ring = getComputedStyle(canvas).backgroundColor;
  ctx.strokeStyle = ring && ring !== 'rgba(0, 0, 0, 0)' ? ring : (canvas.closest && canvas.closest('.dark') ? '#303030' : '#fff');
  ctx.lineWidth = 1;
  const dots = [];
  columns.forEach((column, i) => {
    ctx.fillStyle = colors[i % colors.length];
    column.forEach((v, h) => {
      if (!Number.isFinite(v)) return;
      const x = sx(i) + headOffset(h, column.length, slot);
      ctx.beginPath();
      ctx.arc(x, sy(v), 3, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
      dots.push({ layer: i, head: h, x, y: sy(v), value: v });
    });
  });
  canvas.dots = dots; // what was drawn where, for the browser tests
}

export class ImageView {
  /**
   * metrics: the HeadMetricsCache of the heads view (mean_distance is
   * shared); onChoice({patch | opacity}) keeps the picked query and the opacity.
   */
  constructor({ status, metrics, onChoice = () => {}, onScale = () => {} }) {
    Object.assign(this, { status, metrics, onChoice });
    this.scaleKind = 'fixed';
    this.scale = el('select', { id: 'image-scale', title: 'colour scale of every map of the tab' });
    fillSelect(this.scale, SCALES);
    this.scale.addEventListener('change', () => onScale(this.scale.value));
    this.legendMin = el('span', { id: 'image-legend-min', text: '0' });
    this.legendMax = el('span', { id: 'image-legend-max', text: '1' });
    this.legendText = el('span', { id: 'image-scale-text', className: 'info' });
    this.queryLabel = el('span', { id: 'image-query', className: 'info' });
    this.reset = el('button', { id: 'image-query-reset', text: 'class token', title: 'pick the first token (the class token) as the query' });
    this.opacity = el('input', { id: 'image-opacity', type: 'range', min: 0, max: 100, value: DEFAULT_OPACITY, title: 'opacity of the heatmap' });
    this.png = el('button', { id: 'image-export-png', text: 'PNG', title: 'the images with their heatmaps, a title and the colour scale' });
    this.legend = el('canvas', { id: 'image-legend', className: 'legend' });
    this.figures = el('div', { id: 'image-heads', className: 'grid' });
    this.note = el('div', { id: 'image-note', className: 'note', hidden: true });
    this.chart = el('canvas', { id: 'image-distance-chart', className: 'chart', title: 'mean attention distance by layer' });
    this.marker = el('div', { className: 'step-marker', id: 'image-distance-marker', hidden: true });
    this.chartLegend = el('div', { id: 'image-distance-legend', className: 'info' });
    this.chartNote = el('div', { id: 'image-distance-note', className: 'info', hidden: true });
    this.chartTitle = el('h3', { id: 'image-distance-title' });
    this.heads = el('canvas', { id: 'image-distance-heads', className: 'chart',
      title: 'mean attention distance of every head by layer at this step (the ViT paper, Fig. 7)' });
    this.headsTitle = el('h3', { id: 'image-distance-heads-title' });
    this.element = el('section', { id: 'image-view', className: 'panel', hidden: true }, [
      el('div', { className: 'panel-head' }, [
        el('h3', { text: 'Image view: the attention a query token gives to every patch (click a patch to pick the query)' }),
        this.png,
      ]),
      el('div', { className: 'legend-row' }, [
        this.queryLabel, this.reset, el('label', { text: 'opacity ', htmlFor: 'image-opacity' }), this.opacity,
      ]),
      el('div', { className: 'legend-row', id: 'image-legend-row' }, [this.scale, this.legendMin, this.legend, this.legendMax, this.legendText]),
      el('div', { className: 'info', text: 'the class/register tokens are not patches: their share is the number under each image' }),
      this.note, this.figures,
      this.headsTitle, this.heads,
      this.chartTitle,
      el('div', { className: 'chart-wrap' }, [this.chart, this.marker]), this.chartLegend, this.chartNote,
    ]);
    this.opacity.addEventListener('input', () => {
      this.applyOpacity();
      this.onChoice({ opacity: Number(this.opacity.value) });
    });
    this.reset.addEventListener('click', () => this.pick(0));
    this.png.addEventListener('click', () => this.exportPng());
    paintLegend(this.legend, 1);
    this.maps = null;
    this.rollout = null;
    this.distance = null;
  }

  clear() {
    this.element.hidden = true;
    this.shown = null;
    this.maps = null;
  }

  /** Shows the view for `layer` of `run` at state's example (hidden when the layer is not over an image). */
  async setLayer(run, layer, state) {
    if (!showsImage(run, layer, state.example)) {
      this.clear();
      return;
    }
    this.element.hidden = false;
    const grid = layer.grid;
    // The query picked for this image (state.patch, a link's), else the default.
    const patch = state.patch;
    this.query = Number.isInteger(patch) && patch >= 0 && patch < layer.examples[state.example].query_length ? patch : defaultQuery(grid);
    if (Number.isInteger(state.opacity) && state.opacity >= 0 && state.opacity <= 100) this.opacity.value = String(state.opacity);
    this.shown = { run, layer, example: layer.examples[state.example], exampleIndex: state.example, grid, step: state.step };
    this.showScale(state.scale || 'fixed');
    this.maps = null;
    this.reset.hidden = grid.prefix === 0;
    this.build();
    this.showQuery();
    await Promise.all([this.loadRollout(), this.loadDistance()]);
  }

  /** One figure per head (head mean first) and one for rollout: the image, the heatmap over it, a caption. */
  build() {
    const { run, layer, exampleIndex, grid } = this.shown;
    const cell = Math.max(1, Math.floor(FIGURE_PX / Math.max(grid.rows, grid.cols)));
    this.size = { cell, width: grid.cols * cell, height: grid.rows * cell };
    const names = ['mean', ...Array.from({ length: layer.num_heads }, (_, h) => h), ...(layer.has_rollout ? ['rollout'] : [])];
    const src = api.probeImageUrl(run.run, exampleIndex);
    this.imageSize = null;
    this.figureOf = new Map();
    this.figures.replaceChildren(...names.map((name) => {
      const image = el('img', { className: 'probe-image', src, alt: `probe image ${exampleIndex}` });
      image.addEventListener('error', () => this.status.failed('the probe image', new Error(`example ${exampleIndex}`)), { once: true });
      image.addEventListener('load', () => {
        this.status.loaded('the probe image');
        if (this.imageSize) return;
        this.imageSize = { width: image.naturalWidth, height: image.naturalHeight };
        if (this.distance) this.draw(); // distances in pixels from now on
      }, { once: true });
      const overlay = el('canvas', { className: 'overlay', dataset: { head: String(name), rows: String(grid.rows), cols: String(grid.cols) } });
      const box = el('div', { className: 'query-box', hidden: true });
      const stack = el('div', { className: 'image-stack', dataset: { head: String(name) } }, [image, overlay, box]);
      for (const part of [stack, image, overlay]) {
        part.style.width = `${this.size.width}px`;
        part.style.height = `${this.size.height}px`;
      }
      box.style.width = box.style.height = `${cell}px`;
      stack.addEventListener('click', (e) => {
        const rect = stack.getBoundingClientRect();
        const { r, c } = patchAt(grid, e.clientX - rect.left, e.clientY - rect.top, rect.width, rect.height);
        this.pick(patchToken(grid, r, c));
      });
      const caption = el('figcaption', { className: 'image-caption' });
      const title = name === 'rollout' ? 'rollout (mean over queries)' : `head ${name}`;
      const figure = el('figure', { className: 'image-figure', dataset: { head: String(name) } }, [stack, el('div', { className: 'image-title', text: title }), caption]);
      figure.style.width = `${this.size.width}px`; // a long caption wraps under its image: the figures stay in a regular grid
      this.figureOf.set(String(name), { figure, image, overlay, box, caption });
      return figure;
    }));
    this.applyOpacity();
  }

  applyOpacity() {
    const alpha = Number(this.opacity.value) / 100;
    if (!this.figureOf) return;
    for (const { overlay } of this.figureOf.values()) overlay.style.opacity = String(alpha);
  }

  /** Picks query token `token` (a user's click: kept in the tab's state) and repaints the heads' heatmaps. */
  pick(token) {
    if (!this.shown) return;
    this.query = token;
    this.onChoice({ patch: token });
    this.showQuery();
    this.paintHeads();
  }

  showQuery() {
    const { grid, example } = this.shown;
    const patch = tokenPatch(grid, this.query);
    const token = example.query_tokens[this.query];
    this.queryLabel.textContent = patch
      ? `query: patch row ${patch.r}, column ${patch.c} (token ${this.query}, "${token}")`
      : `query: token ${this.query} "${token}" (not a patch)`;
    this.queryLabel.dataset.query = String(this.query);
    for (const [name, { box }] of this.figureOf) {
      box.hidden = !patch || name === 'rollout';
      if (patch) {
        box.style.left = `${patch.c * this.size.cell}px`;
        box.style.top = `${patch.r * this.size.cell}px`;
      }
    }
  }

  /** The current step's maps of the shown layer and example (the controller's, decoded once), on the tab's scale. */
  paint(maps, derived, scale = this.scaleKind) {
    if (!this.shown) return;
    this.maps = maps;
    this.derived = derived;
    const changed = scale !== this.scaleKind;
    this.showScale(scale);
    this.paintHeads();
    if (changed) this.paintRollout();
  }

  /** The scale's choice and legend (scales.js kinds). */
  showScale(scale) {
    this.scaleKind = scale;
    this.scale.value = scale;
    const legend = imageScaleLegend(scale);
    this.legendMin.textContent = legend.min;
    this.legendMax.textContent = legend.max;
    this.legendText.textContent = legend.text;
    this.legend.dataset.scale = scale;
  }

  paintHeads() {
    if (!this.shown || !this.maps) return;
    const { grid, layer, example } = this.shown;
    const k = this.maps.k;
    const q = this.query;
    const facts = visibilityFacts(layer, example);
    const count = rowCount(q, hidesCells(facts) ? facts : null, k); // the keys query q sees: ratios to uniform
    for (const [name, parts] of this.figureOf) {
      if (name === 'rollout') continue;
      const values = name === 'mean' ? this.derived.mean : headMap(this.maps, Number(name));
      this.paintFigure(parts, splitRow(grid, values.subarray(q * k, (q + 1) * k)), count);
    }
    this.figures.dataset.paintedQuery = String(q);
    this.figures.dataset.paintedStep = String(this.shown.step);
  }

  /** A figure's heatmap on the tab's scale: fixed 0 to 1, its own max, or weight x `count` (the keys its row sees). */
  paintFigure(parts, split, count) {
    const { grid } = this.shown;
    const kind = this.scaleKind;
    const vmax = kind === 'stretch' ? split.max : kind === 'ratio' ? 'ratio' : 1;
    paintOverlay(parts.overlay, split.patches, grid.rows, grid.cols, vmax, count);
    const names = this.shown.example.key_tokens.slice(0, grid.prefix).join('+');
    parts.caption.textContent = `${grid.prefix ? `${names} ${valueText(split.prefix)} · ` : ''}max ${valueText(split.max)}` +
      (kind === 'ratio' ? ` (${ratioText(split.max * count)})` : '');
    parts.overlay.dataset.prefix = String(split.prefix);
  }

  /** Moves to a step: the rollout heatmap and the chart's marker (the heads follow with the step's maps). */
  showStep(step) {
    if (!this.shown) return;
    this.shown.step = step;
    this.paintRollout();
    if (this.distance) this.draw();
  }

  async loadRollout() {
    const { run, layer, exampleIndex } = this.shown;
    this.rollout = null;
    if (!layer.has_rollout) return;
    const key = JSON.stringify([run.run, layer.tag, exampleIndex, layer.steps.length]);
    this.rolloutKey = key;
    let rollout;
    try {
      rollout = await api.fetchRollout(run.run, layer.tag, exampleIndex);
    } catch (e) {
      if (this.rolloutKey === key) this.status.failed('the image view rollout', e);
      return;
    }
    if (this.rolloutKey !== key || !this.shown) return;
    this.status.loaded('the image view rollout');
    this.rollout = rollout;
    this.paintRollout();
  }

  paintRollout() {
    const parts = this.figureOf && this.figureOf.get('rollout');
    const rollout = this.rollout;
    if (!parts || !rollout || !rollout.steps.length) return;
    const values = rollout.values[servedIndex(rollout.steps, this.shown.step)];
    if (!gridFits(this.shown.grid, values.length)) return;
    // Rollout's row is a distribution over every token: uniform is 1 / their number.
    this.paintFigure(parts, splitRow(this.shown.grid, values.map((v) => (isMissing(v) ? 0 : v))), values.length);
    parts.overlay.dataset.step = String(rollout.steps[servedIndex(rollout.steps, this.shown.step)]);
  }

  /**
   * The ViT paper's mean attention distance (Dosovitskiy et al. 2021, Fig. 7)
   * of every layer of the run: head metric patch_distance, in patch widths
   * (written by tb-attention since it stored patch grids); for older logs,
   * mean_distance in token positions, labelled so.
   */
  async loadDistance() {
    const { run, exampleIndex } = this.shown;
    const key = JSON.stringify([run.run, exampleIndex]);
    if (this.distanceKey === key && this.distance) {
      this.draw();
      return;
    }
    this.distanceKey = key;
    this.distance = null;
    const ordered = layersInModelOrder(run.layers).filter((l) => l.examples[exampleIndex]);
    const metric = ordered.some((l) => offeredMetrics(l).includes('patch_distance')) ? 'patch_distance' : 'mean_distance';
    const layers = ordered.filter((l) => offeredMetrics(l).includes(metric)); // no cross layer: its distances mix two sequences
    let replies;
    try {
      replies = await Promise.all(layers.map((l) => this.metrics.get(run.run, l, exampleIndex, metric)));
    } catch (e) {
      if (this.distanceKey === key) this.status.failed('the mean attention distance', e);
      return;
    }
    if (this.distanceKey !== key) return;
    this.status.loaded('the mean attention distance');
    const steps = [...new Set(replies.flatMap((r) => r.steps))].sort((a, b) => a - b);
    const series = layers.map((layer, i) => {
      const means = headMeanSeries(replies[i].values);
      const at = new Map(replies[i].steps.map((s, t) => [s, means[t]]));
      return { name: layer.layer, values: steps.map((s) => (at.has(s) ? at.get(s) : NaN)) };
    });
    // What uniform attention over the keys each query sees gives, per layer (in patch widths or positions).
    const references = layers.map((l) => {
      const ex = l.examples[exampleIndex];
      const facts = visibilityFacts(l, ex);
      return metric === 'patch_distance' ? uniformPatchDistance(l.grid, hidesCells(facts) ? facts : null)
        : uniformMeanDistance(facts, ex.query_length, ex.key_length);
    });
    this.distance = { metric, steps, series, replies, layers, references };
    this.draw();
  }

  /** Unit of the distance charts: patch widths (and pixels when the image's size is known), or token positions. */
  distanceUnit() {
    if (this.distance.metric !== 'patch_distance') return { label: 'distance (token positions)', scale: 1, pixels: false };
    const image = this.imageSize;
    const perPatch = image ? image.width / this.shown.grid.cols : 0;
    return perPatch > 0
      ? { label: 'distance (pixels)', scale: perPatch, pixels: true, perPatch }
      : { label: 'distance (patch widths)', scale: 1, pixels: false };
  }

  /** Draws both distance charts (after a load, a step change or a theme switch). */
  draw() {
    const d = this.distance;
    this.chartNote.hidden = Boolean(d && d.series.length);
    this.chartNote.textContent = 'no attention distance stored for this run';
    if (!d || !d.series.length) {
      this.marker.hidden = true;
      this.heads.hidden = this.headsTitle.hidden = true;
      return;
    }
    const unit = this.distanceUnit();
    const how = d.metric === 'patch_distance'
      ? 'between the query patch and the patches it attends to, weighted by attention (class/register tokens left out)' +
        (unit.pixels ? `; one patch is ${unit.perPatch.toFixed(0)} px` : '')
      : 'in token positions of the sequence (patches row by row: one patch row down is ' +
        `${this.shown.grid.cols}; this log has no patch_distance)`;
    this.chartTitle.textContent = `Mean attention distance by layer over training (head mean), ${how}; the dashed line is this step, ` +
      'the dotted line what uniform attention gives';
    const series = d.series.map((s) => ({ name: s.name, values: s.values.map((v) => v * unit.scale) }));
    const colors = renderLines(this.chart, d.steps, series, { width: 460, xLabel: 'step', yLabel: unit.label, reference: this.reference(unit) });
    this.chartLegend.replaceChildren(...d.series.map((s, i) => legendItem(colors[i % colors.length], s.name)));
    this.placeMarker();
    this.drawHeads(unit, colors);
  }

  /**
   * The reference line of both charts: what uniform attention gives, in the
   * chart's unit, when every layer's is the same (one grid, one kind); else none.
   */
  reference(unit) {
    const refs = this.distance.references.filter(Number.isFinite);
    if (!refs.length || refs.some((r) => Math.abs(r - refs[0]) > 1e-9)) return null;
    const value = refs[0] * unit.scale;
    return { value, label: `uniform attention ${value.toFixed(2)}` };
  }

  /** The ViT paper's figure at this step: x = layer (model order), one dot per head. */
  drawHeads(unit, colors) {
    const d = this.distance;
    const step = this.shown.step;
    const columns = d.layers.map((layer, i) => {
      const reply = d.replies[i];
      const at = servedIndex(reply.steps, step);
      const row = at >= 0 && reply.steps[at] === step ? reply.values[at] : [];
      return row.map((v) => (isMissing(v) ? NaN : v * unit.scale));
    });
    this.heads.hidden = this.headsTitle.hidden = false;
    this.headsTitle.textContent = `Mean attention distance of every head at step ${step}, by layer ` +
      '(as in Dosovitskiy et al. 2021, Fig. 7, where a trained ViT\'s early layers mix near and far heads and later ones look far)';
    paintDots(this.heads, d.layers.map((l) => l.layer), columns, colors, unit.label, { reference: this.reference(unit) });
    this.heads.dataset.step = String(step);
    this.heads.values = columns; // what was drawn, for the browser tests
  }

  placeMarker() {
    const plot = this.chart.plot;
    this.marker.hidden = !(this.distance && plot && this.shown);
    if (this.marker.hidden) return;
    const x = plot.x(this.shown.step);
    Object.assign(this.marker.style, { left: `${x - 1}px`, top: `${plot.top}px`, height: `${plot.bottom - plot.top}px` });
    this.chart.dataset.marker = String(this.shown.step);
  }

  /**
   * The figures as one PNG to keep: a title (run, layer, step, example,
   * query), every image with its heatmap at the chosen opacity and its
   * caption, and the colour scale. Light colours whatever the theme.
   */
  exportPng(into = document.createElement('canvas')) {
    if (!this.shown || !this.figureOf) return null;
    const { run, layer, exampleIndex, step } = this.shown;
    const { width, height, cell } = this.size;
    const figures = [...this.figureOf.entries()];
    const columns = Math.min(4, figures.length);
    const rows = Math.ceil(figures.length / columns);
    const gap = 16;
    const boxH = height + 40;
    const title = `${run.run} · ${layer.layer} · step ${step} · example ${exampleIndex} · ${this.queryLabel.textContent}`;
    const ctx = into.getContext('2d');
    ctx.font = 'bold 14px sans-serif';
    const legend = imageScaleLegend(this.scaleKind);
    const alpha = Number(this.opacity.value) / 100;
    const legendLine = `${legend.max}: ${legend.text} · opacity ${Math.round(alpha * 100)}%`;
    const titleWidth = Math.ceil(ctx.measureText(title).width);
    ctx.font = '12px sans-serif';
    const legendWidth = 240 + Math.ceil(ctx.measureText(legendLine).width);
    into.width = Math.max(columns * (width + gap) + gap, titleWidth + 2 * gap, legendWidth + gap, 420);
    into.height = 36 + rows * boxH + 40;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, into.width, into.height);
    ctx.fillStyle = INK;
    ctx.font = 'bold 14px sans-serif';
    ctx.textBaseline = 'middle';
    ctx.fillText(title, gap, 18);
    ctx.imageSmoothingEnabled = false;
    const patch = tokenPatch(this.shown.grid, this.query);
    figures.forEach(([name, parts], i) => {
      const x = gap + (i % columns) * (width + gap);
      const y = 36 + Math.floor(i / columns) * boxH;
      if (parts.image.complete && parts.image.naturalWidth) ctx.drawImage(parts.image, x, y, width, height);
      if (parts.overlay.width > 0) {
        ctx.globalAlpha = alpha;
        ctx.drawImage(parts.overlay, x, y, width, height);
        ctx.globalAlpha = 1;
      }
      if (patch && name !== 'rollout') {
        ctx.strokeStyle = '#f57c00';
        ctx.lineWidth = 2;
        ctx.strokeRect(x + patch.c * cell + 1, y + patch.r * cell + 1, cell - 2, cell - 2);
      }
      ctx.fillStyle = INK;
      ctx.font = '12px sans-serif';
      ctx.fillText(name === 'rollout' ? 'rollout (mean over queries)' : `head ${name}`, x, y + height + 10);
      ctx.fillText(parts.caption.textContent, x, y + height + 26);
    });
    const y = into.height - 24;
    for (let i = 0; i < 200; i++) {
      const c = colorIndex(i / 199, 1) * 3;
      ctx.fillStyle = `rgb(${LUT[c]}, ${LUT[c + 1]}, ${LUT[c + 2]})`;
      ctx.fillRect(gap + 34 + i, y, 1, 10);
    }
    ctx.fillStyle = INK;
    ctx.fillText(legend.min, gap, y + 5);
    ctx.fillText(legendLine, gap + 240, y + 5);
    download(`image-view-${run.run}-${layer.tag}-step${step}-example${exampleIndex}-query${this.query}.png`, into.toDataURL('image/png'));
    Object.assign(this.png.dataset, { exportWidth: into.width, exportHeight: into.height, exportImageWidth: width, exportTop: 36, exportLeft: gap });
    return into;
  }
}
