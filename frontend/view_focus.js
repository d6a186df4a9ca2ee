// The enlarged map of the picked head: token labels on both axes, zoom,
// hover tooltip, row/column highlight, PNG export.

import { cssColor } from './colors.js';
import { cellWeight } from './decode.js';
import { el } from './dom.js';
import { paintMap, paintMapAt } from './heatmap.js';
import { cellAt, cutMidItem, inView } from './layout.js';
import { axesText, cellName, cellValue, tokenName } from './naming.js';
import { RATIO, ratioIndex, ratioText, ratioValues, rowCount } from './scales.js';
import { exampleRanges, hiddenReason, visibilityFacts } from './visibility.js';

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 64; // px per cell: labels are readable from 12 px at any length
const FIT_PX = 640; // a new map starts about this wide
export const MINIMAP_FROM = 512; // tokens: longer maps get a minimap
const MINIMAP_PX = 160;
// Cells narrower than this get no token labels: their font would be under
// 5 px, and 2 x 512 spans nobody can read cost a 512-token map's first paint
// ~40 ms of layout (docs/PERFORMANCE.md change 19). The tooltip names the
// tokens at any zoom; the runs-side-by-side maps draw labels from 6 px too.
const LABELS_FROM_PX = 6;

/** Zoom at which a map of this example is about FIT_PX wide, never below 2 px per cell. */
export function fitZoom(example) {
  const longest = Math.max(example.query_length, example.key_length, 1);
  return Math.max(2, Math.min(MAX_ZOOM, Math.floor(FIT_PX / longest)));
}

/**
 * The key labels' font measured once per example in a canvas: lineEm, its
 * ascent + descent, and keyEm, the widest key token, both per px of font size.
 */
function labelFont(labels, keyTokens) {
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `100px ${getComputedStyle(labels).fontFamily || 'monospace'}`;
  const m = ctx.measureText('Hg');
  const lineEm = (m.fontBoundingBoxAscent + m.fontBoundingBoxDescent) / 100 || 1.2;
  let widest = 0;
  for (const t of keyTokens) widest = Math.max(widest, ctx.measureText(t).width);
  return { lineEm, keyEm: widest / 100 };
}

export class FocusMap {
  /** onZoom(cellPx), onExportPng(), onExportCsv() */
  constructor({ onZoom, onExportPng, onExportCsv }) {
    this.valueName = 'weight'; // what a cell holds, for the tooltip: set by the Show control
    this.bound = null; // a map rebuilt from a reduced form: how far any cell can be off (the tooltip says)
    this.zoom = el('input', { id: 'zoom', type: 'range', min: MIN_ZOOM, max: MAX_ZOOM, value: 8, title: 'cell size (px)' });
    this.zoomLabel = el('span', { id: 'zoom-label', className: 'info' });
    this.png = el('button', { id: 'export-png', text: 'PNG', title: 'the map with token labels and a title' });
    this.csv = el('button', { id: 'export-map-csv', text: 'CSV', title: 'the map: query token rows x key token columns' });
    this.title = el('h3', { id: 'focus-title' });
    this.axisTitles = el('div', { className: 'info', id: 'axis-titles' });
    this.extent = el('div', { className: 'clip-note', id: 'focus-extent', hidden: true });
    this.canvas = el('canvas', { id: 'focus-map', className: 'map focus' });
    this.rows = el('div', { className: 'labels rows', id: 'row-labels' });
    this.cols = el('div', { className: 'labels cols', id: 'col-labels' });
    this.tooltip = el('div', { id: 'tooltip', className: 'tooltip', hidden: true });
    this.minimapCanvas = el('canvas', { className: 'map', id: 'minimap-map' });
    this.minimapView = el('div', { className: 'minimap-view', id: 'minimap-view' });
    this.minimap = el('div', { className: 'minimap', id: 'minimap', hidden: true,
      title: 'the whole map; the box is the part in view: click or drag to move it' }, [this.minimapCanvas, this.minimapView]);
    this.scroll = el('div', { className: 'focus-scroll' }, [this.canvas]);
    const body = el('div', { className: 'focus-body', id: 'focus-body' }, [
      el('div', { className: 'corner' }), this.cols, this.rows, this.scroll,
    ]);
    this.element = el('section', { className: 'panel', id: 'focus-panel' }, [
      el('div', { className: 'panel-head' }, [this.title, el('label', { text: 'zoom ', htmlFor: 'zoom' }), this.zoom, this.zoomLabel, this.png, this.csv]),
      this.axisTitles, this.extent,
      el('div', { className: 'focus-wrap' }, [body, this.tooltip, this.minimap]),
    ]);
    this.values = null;
    this.highlighted = null;
    this.labelled = false; // the labels hold the example's tokens
    // Hovering a label highlights its row or column (one listener per axis).
    const hoverOn = (labels, axis) => {
      labels.addEventListener('mouseover', (e) => {
        const index = e.target.dataset.index;
        if (index !== undefined) this.highlight({ [axis]: Number(index) });
      });
      labels.addEventListener('mouseleave', () => this.highlight(null));
    };
    hoverOn(this.rows, 'row');
    hoverOn(this.cols, 'col');
    this.zoom.addEventListener('input', () => { this.size(); onZoom(Number(this.zoom.value)); });
    this.png.addEventListener('click', onExportPng);
    this.csv.addEventListener('click', onExportCsv);
    this.body = body;
    body.addEventListener('scroll', () => { this.placeMinimapView(); this.showExtent(); }, { passive: true });
    window.addEventListener('resize', () => this.showExtentSoon());
    const jump = (e) => {
      const rect = this.minimapCanvas.getBoundingClientRect();
      const fx = (e.clientX - rect.left) / rect.width;
      const fy = (e.clientY - rect.top) / rect.height;
      const { scrollWidth, scrollHeight, clientWidth, clientHeight } = body;
      body.scrollLeft = fx * scrollWidth - clientWidth / 2;
      body.scrollTop = fy * scrollHeight - clientHeight / 2;
    };
    this.minimap.addEventListener('mousedown', (e) => { this.dragging = true; jump(e); e.preventDefault(); });
    window.addEventListener('mousemove', (e) => { if (this.dragging) jump(e); });
    window.addEventListener('mouseup', () => { this.dragging = false; });
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => { this.tooltip.hidden = true; this.highlight(null); });
  }

  /** The example (of `layer`, whose facts say which cells its queries see) to show and the zoom to show it at. */
  setExample(example, zoom, layer) {
    this.example = example;
    this.facts = layer ? visibilityFacts(layer, example) : null;
    this.ranges = layer ? exampleRanges(layer, example) : null; // null: every cell visible
    this.values = null;
    this.fonts = null; // measured when its labels are first shown
    this.labelled = null; // the labels still hold the example before: replaced by size() either way
    this.zoom.value = String(zoom);
    this.size();
  }

  /** The example's token labels when `shown`, else none. */
  showLabels(shown) {
    if (shown === this.labelled) return;
    this.labelled = shown;
    const { query_tokens: queries, key_tokens: keys } = this.example;
    // The title names the whole token and its position (`q 2 "last"`).
    const label = (side) => (t, i) => el('span', { text: t, title: tokenName(side, i, t), dataset: { index: String(i) } });
    this.rows.replaceChildren(...(shown ? queries.map(label('query')) : []));
    this.cols.replaceChildren(...(shown ? keys.map(label('key')) : []));
    if (shown && !this.fonts) this.fonts = labelFont(this.cols, keys);
  }

  /**
   * Shows one map, cells {values, levels} of q*k (decode.js headCells), on a
   * 0..vmax scale, or as ratios to uniform when vmax is RATIO (scales.js).
   */
  paint(cells, q, k, vmax, title) {
    this.weights = cells; // the tooltip's weights (or shares: valueName says which)
    if (vmax === RATIO) cells = { values: ratioValues(cells.values, cells.levels, q, k, this.ranges), levels: 0 };
    Object.assign(this, { values: cells.values, levels: cells.levels, q, k, vmax });
    this.title.textContent = title;
    this.repaint();
    this.size();
    this.paintMinimap();
  }

  /**
   * The whole map, small, for maps of MINIMAP_FROM tokens or more. It stands
   * beside the map's scroll box (style.css .focus-wrap), never over it: no
   * cell or label lies under it at any scroll position (issue 32 item 7).
   */
  paintMinimap() {
    const { values, levels, q, k, vmax, ranges } = this;
    this.minimap.hidden = Math.max(q, k) < MINIMAP_FROM;
    if (this.minimap.hidden) return;
    const size = MINIMAP_PX / Math.max(q, k);
    paintMapAt(this.minimapCanvas, values, q, k, vmax, Math.round(k * size), Math.round(q * size), window.devicePixelRatio || 1, levels, ranges);
    this.placeMinimapView();
  }

  /** The box over the minimap: the part of the map in view. */
  placeMinimapView() {
    if (this.minimap.hidden) return;
    const { scrollLeft, scrollTop, scrollWidth, scrollHeight, clientWidth, clientHeight } = this.body;
    const w = parseFloat(this.minimapCanvas.style.width);
    const h = parseFloat(this.minimapCanvas.style.height);
    const box = this.minimapView.style;
    box.left = `${(scrollLeft / scrollWidth) * w}px`;
    box.top = `${(scrollTop / scrollHeight) * h}px`;
    box.width = `${Math.min(1, clientWidth / scrollWidth) * w}px`;
    box.height = `${Math.min(1, clientHeight / scrollHeight) * h}px`;
  }

  /** Dims everything outside a row ({row}) or column ({col}); null for none. */
  highlight(hl) {
    this.highlighted = hl;
    this.repaint();
  }

  repaint() {
    const { values, levels, q, k, vmax, ranges } = this;
    if (!values) return;
    const hl = this.highlighted;
    if (!hl) {
      paintMap(this.canvas, values, q, k, vmax, levels, ranges);
      return;
    }
    const dimmed = Float32Array.from(values, (v, i) => {
      const w = levels ? v / levels : v;
      const inside = hl.row !== undefined ? Math.floor(i / k) === hl.row : i % k === hl.col;
      return inside ? w : w * 0.25;
    });
    paintMap(this.canvas, dimmed, q, k, vmax, 0, ranges);
  }

  size() {
    const cell = Number(this.zoom.value);
    this.zoomLabel.textContent = `${cell} px`;
    const ex = this.example;
    if (!ex) return;
    this.canvas.style.width = `${ex.key_length * cell}px`;
    this.canvas.style.height = `${ex.query_length * cell}px`;
    this.showLabels(cell >= LABELS_FROM_PX);
    if (this.labelled) this.fitLabels(cell);
    this.axisTitles.textContent = `${axesText(this.facts && this.facts.kind)} · ${this.labelled
      ? 'labels stay in view while the map scrolls' : `token labels from ${LABELS_FROM_PX} px cells; hover a cell for its tokens`}`;
    this.placeMinimapView();
    this.showExtentSoon();
  }

  /** showExtent at the next frame, once however often asked: it reads the layout the frame makes anyway. */
  showExtentSoon() {
    if (this.extentAsked) return;
    this.extentAsked = true;
    requestAnimationFrame(() => {
      this.extentAsked = false;
      this.showExtent();
    });
  }

  /**
   * Nothing of the map is cut off without a sign: a map taller than its box
   * (80% of the window) gets a box that ends half way through a row
   * (layout.js cutMidItem), never on a row's edge where it would look whole,
   * and the line above the map says which rows and columns are in view
   * ('rows 0–52 of 120 and columns 0–79 of 120 in view: scroll the map for more').
   */
  showExtent() {
    const ex = this.example;
    if (!ex || this.element.hidden || !this.element.isConnected) return;
    const cell = Number(this.zoom.value);
    const body = this.body;
    const top = this.cols.offsetHeight; // the key labels' row, sticky over the map's top
    const left = this.rows.offsetWidth; // the query labels' column, sticky over its left
    const bars = body.offsetHeight - body.clientHeight; // a horizontal scrollbar
    const limit = 0.8 * window.innerHeight;
    const tall = top + ex.query_length * cell + bars > limit;
    const height = tall ? `${Math.floor(top + bars + cutMidItem(limit - top - bars, cell))}px` : '';
    if (body.style.maxHeight !== height) body.style.maxHeight = height;
    const rows = inView(body.scrollTop, body.clientHeight - top, cell, ex.query_length);
    const cols = inView(body.scrollLeft, body.clientWidth - left, cell, ex.key_length);
    const span = ({ first, last }, n, noun) => `${noun} ${last >= first ? `${first}–${last}` : 'none'} of ${n}`;
    this.extent.hidden = !rows.more && !cols.more;
    this.extent.textContent = this.extent.hidden ? ''
      : `${span(rows, ex.query_length, 'rows')} and ${span(cols, ex.key_length, 'columns')} in view: scroll the map for more`;
    Object.assign(this.extent.dataset, { rows: `${rows.first},${rows.last}`, cols: `${cols.first},${cols.last}` });
  }

  /** The labels' font and direction at cells of `cell` px. */
  fitLabels(cell) {
    // A label's line (the font's ascent + descent) must fit across its cell:
    // a query label's height, a key label's width when it is turned on its side.
    const { lineEm, keyEm } = this.fonts;
    const font = Math.min(12, Math.max(Math.floor(cell / lineEm), 0));
    for (const [labels, axis] of [[this.rows, 'height'], [this.cols, 'width']]) {
      labels.style.setProperty('--cell', `${cell}px`);
      labels.style.fontSize = `${font}px`;
      labels.dataset.axis = axis;
    }
    // Key labels that all fit across their cells (one-letter tokens of a
    // character model, short numbers) stand upright in a row a line tall;
    // turned on their side, a letter's row would be only its width (7 px at
    // 12 px) tall and unreadable.
    this.cols.classList.toggle('upright', keyEm * font <= cell - 1);
  }

  hover(event) {
    if (!this.values) return;
    const rect = this.canvas.getBoundingClientRect();
    const { q, k } = this;
    const cell = cellAt(event.clientX - rect.left, event.clientY - rect.top, rect.width, rect.height, q, k);
    if (!cell) {
      this.tooltip.hidden = true;
      return;
    }
    // A cell the query cannot see has no weight to show: it says why instead.
    const hidden = this.ranges ? hiddenReason(cell.row, cell.col, this.facts) : '';
    const weight = cellWeight(this.weights, cell.row * k + cell.col);
    const ratio = this.vmax === RATIO ? weight * rowCount(cell.row, this.ranges ? this.facts : null, k) : null;
    // Both tokens with their positions (`q 2 "last" → k 3 "last"`): a
    // token's text alone does not say which of its occurrences it is.
    this.tooltip.replaceChildren(
      el('div', { className: 'tip-cell', text: cellName(cell.row, cell.col, this.example.query_tokens, this.example.key_tokens) }),
      hidden ? el('div', { className: 'tip-hidden', text: cellValue(weight, hidden) })
        : el('div', { className: 'tip-weight', text: `${this.valueName}: ${cellValue(weight, '')}${this.bound === null ? '' : ` ±${this.bound.toFixed(4)}`}${ratio === null ? '' : ` (${ratioText(ratio)})`}` }),
    );
    this.tooltip.style.borderColor = hidden ? '' : ratio === null ? cssColor(weight, this.vmax) : cssColor(ratioIndex(ratio), 255);
    this.tooltip.classList.toggle('not-visible', Boolean(hidden));
    // The tooltip is placed in the wrapper, which also holds the labels.
    const wrap = this.tooltip.parentElement.getBoundingClientRect();
    this.tooltip.style.left = `${event.clientX - wrap.left + 14}px`;
    this.tooltip.style.top = `${event.clientY - wrap.top + 14}px`;
    this.tooltip.hidden = false;
    this.tooltip.dataset.row = String(cell.row);
    this.tooltip.dataset.col = String(cell.col);
  }
}
