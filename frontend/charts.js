// Small charts: importance bars (DOM, one element per token, values in
// data-value), a steps x tokens heatmap and line charts (canvas).

import { paintMap } from './heatmap.js';
import { cutMidItem, inView, shownText } from './layout.js';
import { tokenName } from './naming.js';

/** A number the server could not give: JSON null (NaN/Inf stored) or NaN. */
export const isMissing = (v) => typeof v !== 'number' || !Number.isFinite(v);

/** How a value is written: 3 decimals, or "missing". */
export const valueText = (v) => (isMissing(v) ? 'missing' : v.toFixed(3));

const finite = (values) => values.filter((v) => !isMissing(v));

/**
 * Index in a served (possibly downsampled, http_api.md "max_points") list of
 * ascending steps of the step nearest to `step`, the earlier one on a tie.
 */
export function servedIndex(steps, step) {
  let best = 0;
  for (let s = 1; s < steps.length; s++) {
    if (Math.abs(steps[s] - step) < Math.abs(steps[best] - step)) best = s;
  }
  return best;
}

/** "" when the series holds `step`, else a note naming the step shown instead. */
export function servedNote(steps, step, total) {
  const shown = steps[servedIndex(steps, step)];
  if (shown === step) return '';
  const of = total > steps.length ? `; the series holds ${steps.length} of ${total} steps` : '';
  return ` (showing step ${shown}, the nearest served step to ${step}${of})`;
}

/** Largest finite value of rows of numbers (0 if none): one bar scale for every step. */
export function seriesMax(rows) {
  let max = 0;
  for (const row of rows) for (const v of row) if (!isMissing(v) && v > max) max = v;
  return max;
}

export const BAR_PX = 16; // a bar row's height (style.css .bar-row)
const BARS_MAX_PX = 420;

/**
 * Makes `container` (the bars of renderBars) a scroll box that never ends on
 * a bar's edge (half a bar shows at the bottom: layout.js cutMidItem) and
 * says in `note` how many bars are in view ('25 of 41 tokens shown (0–24):
 * scroll for more'), with a fade at the edge where more lie; overlay
 * scrollbars show nothing until scrolled. Numbers from the scroll position
 * and the fixed bar height: no layout is read.
 */
export function barsBox(container, note) {
  container.style.maxHeight = `${cutMidItem(BARS_MAX_PX, BAR_PX)}px`;
  container.extentNote = note;
  container.addEventListener('scroll', () => showBarsExtent(container, container.scrollTop, container.clientHeight), { passive: true });
}

function showBarsExtent(container, scrollTop, height) {
  const note = container.extentNote;
  if (!note) return;
  const n = container.barTokens ? container.barTokens.length : 0;
  const shown = inView(scrollTop, height, BAR_PX, n);
  note.textContent = shownText(shown, n);
  note.hidden = !shown.more;
  Object.assign(note.dataset, { first: String(shown.first), last: String(shown.last), total: String(n) });
  container.classList.toggle('more-below', shown.last < n - 1);
  container.classList.toggle('more-above', shown.first > 0);
}

/**
 * Bars for values[j] labelled by their position j and tokens[j]; text is
 * set with textContent. A row's tooltip names the token with its position
 * and side (`k 3 "last": 0.412`; side 'key' or 'query'), written when
 * hovered (a step changes no title). Bar length is value / max: pass one
 * `max` for every step so that lengths compare across steps (default: the
 * largest of these values).
 */
export function renderBars(container, tokens, values, { onHover, onClick, picked, max: scaleMax, side = 'key' } = {}) {
  const max = scaleMax > 0 ? scaleMax : Math.max(...finite(values), 1e-12);
  const width = (v) => `${isMissing(v) ? 0 : (100 * v) / max}%`;
  if (container.barTokens === tokens && container.children.length === tokens.length) {
    // Same tokens (a step change): update the bars in place, no new DOM.
    [...container.children].forEach((row, j) => {
      row.dataset.value = String(values[j]);
      row.querySelector('.bar').style.width = width(values[j]);
      row.querySelector('.bar-value').textContent = valueText(values[j]);
      row.classList.toggle('picked', Boolean(picked && picked.has(j)));
    });
    return;
  }
  container.replaceChildren();
  container.barTokens = tokens;
  tokens.forEach((token, j) => {
    const row = document.createElement('div');
    row.className = 'bar-row';
    row.dataset.index = String(j);
    row.dataset.value = String(values[j]);
    const position = document.createElement('span');
    position.className = 'bar-pos';
    position.textContent = String(j);
    const label = document.createElement('span');
    label.className = 'bar-label';
    label.textContent = token;
    const track = document.createElement('span');
    track.className = 'bar-track';
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = width(values[j]);
    track.append(bar);
    const number = document.createElement('span');
    number.className = 'bar-value';
    number.textContent = valueText(values[j]);
    row.append(position, label, track, number);
    row.addEventListener('mouseenter', () => {
      row.title = `${tokenName(side, j, token)}: ${valueText(Number(row.dataset.value))}`;
      if (onHover) onHover(j);
    });
    if (onClick) row.addEventListener('click', () => onClick(j));
    if (picked && picked.has(j)) row.classList.add('picked');
    container.append(row);
  });
  // New tokens: the list starts at its top, and says how much of it is in view.
  container.scrollTop = 0;
  showBarsExtent(container, 0, Math.min(tokens.length * BAR_PX, cutMidItem(BARS_MAX_PX, BAR_PX)));
}

/** Steps x tokens heatmap of importance; returns its vmax. */
export function renderStepsHeatmap(canvas, series) {
  const rows = series.length;
  const cols = rows ? series[0].length : 0;
  const values = new Float32Array(rows * cols);
  let vmax = 0;
  series.forEach((row, s) => row.forEach((v, j) => {
    values[s * cols + j] = isMissing(v) ? 0 : v; // missing cells paint as 0
    if (v > vmax && !isMissing(v)) vmax = v;
  }));
  paintMap(canvas, values, rows, cols, vmax);
  return vmax;
}

const LINE_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
  '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd'];

/** A canvas of width x height CSS px, sharp at the device pixel ratio: its 2D context, drawing in CSS px. */
export function hiDpiContext(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  return ctx;
}

// Room around a chart's plot for its tick labels and axis titles (CSS px).
export const CHART_PAD = { l: 52, r: 10, t: 8, b: 32 };

/**
 * A chart's frame in the canvas's text colour: the two axes, the y range
 * (ymin, ymax) at their ends and the axis titles; the x ticks are the
 * caller's. Leaves fill and stroke in the text colour.
 */
export function drawFrame(canvas, ctx, { width, height, ymin, ymax, xLabel = '', yLabel = '' }) {
  const pad = CHART_PAD;
  const fg = getComputedStyle(canvas).color || '#000';
  ctx.strokeStyle = fg;
  ctx.fillStyle = fg;
  ctx.font = '10px sans-serif';
  ctx.beginPath(); // on half pixels: crisp 1 px axes
  ctx.moveTo(pad.l + 0.5, pad.t);
  ctx.lineTo(pad.l + 0.5, height - pad.b + 0.5);
  ctx.lineTo(width - pad.r, height - pad.b + 0.5);
  ctx.stroke();
  ctx.textAlign = 'right';
  ctx.fillText(ymax.toFixed(2), pad.l - 3, pad.t + 8);
  ctx.fillText(ymin.toFixed(2), pad.l - 3, height - pad.b);
  ctx.textAlign = 'center';
  if (xLabel) ctx.fillText(xLabel, pad.l + (width - pad.l - pad.r) / 2, height - 4);
  if (yLabel) {
    ctx.save();
    ctx.translate(12, pad.t + (height - pad.t - pad.b) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(yLabel, 0, 0);
    ctx.restore();
  }
  canvas.dataset.xLabel = xLabel;
  canvas.dataset.yLabel = yLabel;
  canvas.dataset.ymax = String(ymax);
}

/**
 * The top of a chart's y axis over values from ymin to `top`: 5% above, never
 * above the most the statistic can be (`ceiling`: 1 for a softmax weight, log
 * K for an entropy) where the data stay under it; with a reference line
 * (`reference`: what uniform attention gives), 15% above the higher of the two,
 * so that lines near the reference do not sit on the frame's top edge.
 */
export function axisTop(ymin, top, { ceiling, reference } = {}) {
  if (Number.isFinite(reference)) {
    const high = Math.max(top, reference);
    return high + 0.15 * (high - ymin);
  }
  const headroom = top + 0.05 * (top - ymin);
  return ceiling >= top ? Math.min(headroom, ceiling) : headroom;
}

/**
 * Where head h of `heads` sits in its layer's slot: heads side by side,
 * 0 on the left, at most `step` px apart and within 70% of the slot, so
 * that heads of equal value are told apart (x offset from the slot's middle, CSS px).
 */
export function headOffset(h, heads, slot, step = 8) {
  if (!(heads > 1)) return 0;
  const dx = Math.min(step, (0.7 * slot) / (heads - 1));
  return (h - (heads - 1) / 2) * dx;
}

/**
 * A dashed horizontal line at y = value across the plot, in the muted text
 * colour, named at its right end ('uniform attention 2.25'): a chart's
 * reference (what uniform attention over the keys each query sees gives).
 */
export function drawReference(canvas, ctx, { y, left, right, label }) {
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = getComputedStyle(canvas).color || '#000';
  ctx.globalAlpha = 0.75;
  ctx.setLineDash([2, 3]);
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, Math.round(y) + 0.5);
  ctx.lineTo(right, Math.round(y) + 0.5);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.globalAlpha = 1;
  ctx.font = '10px sans-serif';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'bottom';
  ctx.fillText(label, right - 2, Math.round(y) - 1);
  ctx.restore();
}

/**
 * Line chart: xs (steps), series: [{name, values}], drawn on a canvas, with
 * axis titles; `reference` {value, label}: a dashed line (drawReference) the
 * axis makes room for. canvas.plot = {x(step) -> CSS px, top, bottom} places a marker
 * over it (moving a marker then costs no redraw).
 */
export function renderLines(canvas, xs, series, { width = 380, height = 170, xLabel = '', yLabel = '', ceiling, reference } = {}) {
  const ctx = hiDpiContext(canvas, width, height);
  const pad = CHART_PAD;
  const all = finite(series.flatMap((s) => Array.from(s.values)));
  const ymin = Math.min(0, ...all);
  const top = Math.max(...all, 1e-9);
  const ref = reference && Number.isFinite(reference.value) ? reference : null;
  const ymax = axisTop(ymin, top, { ceiling, reference: ref ? ref.value : undefined });
  const xmin = xs[0] ?? 0;
  const xmax = xs[xs.length - 1] ?? 1;
  const sx = (x) => pad.l + ((x - xmin) / (xmax - xmin || 1)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - ((y - ymin) / (ymax - ymin || 1)) * (height - pad.t - pad.b);
  drawFrame(canvas, ctx, { width, height, ymin, ymax, xLabel, yLabel });
  ctx.textAlign = 'left';
  ctx.fillText(String(xmin), pad.l, height - pad.b + 12);
  ctx.textAlign = 'right';
  ctx.fillText(String(xmax), width - pad.r, height - pad.b + 12);
  if (ref) drawReference(canvas, ctx, { y: sy(ref.value), left: pad.l + 1, right: width - pad.r, label: ref.label });
  canvas.dataset.reference = ref ? String(ref.value) : '';
  series.forEach((s, i) => {
    ctx.strokeStyle = LINE_COLORS[i % LINE_COLORS.length];
    ctx.beginPath();
    let gap = true; // a missing value breaks the line
    s.values.forEach((v, t) => {
      if (isMissing(v)) {
        gap = true;
        return;
      }
      if (gap) ctx.moveTo(sx(xs[t]), sy(v));
      else ctx.lineTo(sx(xs[t]), sy(v));
      gap = false;
    });
    ctx.stroke();
  });
  canvas.plot = { x: sx, y: sy, top: pad.t, bottom: height - pad.b, left: pad.l, right: width - pad.r, xs, series };
  return LINE_COLORS;
}

/**
 * The point of a line chart (renderLines) nearest to a pointer at (px, py),
 * CSS px from the canvas's corner: the nearest step, then the series whose
 * value there is nearest in y. {t, step, s, name, value} or null.
 */
export function nearestPoint(plot, px, py) {
  if (!plot || !plot.xs.length || px < plot.left - 6 || px > plot.right + 6) return null;
  let t = 0;
  plot.xs.forEach((x, i) => { if (Math.abs(plot.x(x) - px) < Math.abs(plot.x(plot.xs[t]) - px)) t = i; });
  let best = null;
  plot.series.forEach((series, s) => {
    const v = series.values[t];
    if (isMissing(v)) return;
    const d = Math.abs(plot.y(v) - py);
    if (!best || d < best.d) best = { d, s, name: series.name, value: v };
  });
  return best && { t, step: plot.xs[t], s: best.s, name: best.name, value: best.value };
}

/**
 * Hover and click on a line chart: hover writes "run · series · step · value"
 * into `hover`; a click calls onStep(step) with the nearest point's step.
 * runName() names the run the chart is of.
 */
export function attachChart(canvas, hover, { runName = () => '', onStep = () => {} } = {}) {
  const at = (e) => {
    const rect = canvas.getBoundingClientRect();
    return nearestPoint(canvas.plot, e.clientX - rect.left, e.clientY - rect.top);
  };
  canvas.style.cursor = 'pointer';
  canvas.addEventListener('mousemove', (e) => {
    const p = at(e);
    if (!p) return;
    hover.textContent = `${runName()} · ${p.name} · step ${p.step}: ${valueText(p.value)} (click to go to this step)`;
    Object.assign(hover.dataset, { step: String(p.step), value: String(p.value), series: p.name });
  });
  canvas.addEventListener('click', (e) => {
    const p = at(e);
    if (p) onStep(p.step);
  });
}
