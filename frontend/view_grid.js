// The heads grid: one thumbnail per head (and head mean / max), the colour
// scale control and its legend. Click a thumbnail to enlarge it.

import { el, fillSelect, notVisibleKey, showNotVisibleKey } from './dom.js';
import { maxOf, maxOfArrays } from './decode.js';
import { paintLegend, paintMapAt, paintPixels } from './heatmap.js';
import { RATIO, SCALES, ratioValues, scaleLegend } from './scales.js';
import { notVisibleText } from './visibility.js';

const THUMB_PX = 160; // longest side of a thumbnail, CSS px
// On the fixed scale, a step whose largest weight is under this is painted in
// the scale's darkest fifth (near-uniform attention: an untrained model, a
// long sequence): the legend says so and names the stretched scale.
const FAINT_BELOW = 0.2;

export class HeadGrid {
  /** onPickHead(name), onScale('fixed' | 'stretch' | 'ratio') */
  constructor({ onPickHead, onScale }) {
    this.onPickHead = onPickHead;
    this.scale = el('select', { id: 'scale-select', title: 'colour scale of every map of the tab' });
    fillSelect(this.scale, SCALES);
    this.scale.addEventListener('change', () => onScale(this.scale.value));
    this.legendMin = el('span', { id: 'legend-min', text: '0' });
    this.legend = el('canvas', { id: 'legend', className: 'legend' });
    this.legendMax = el('span', { id: 'legend-max' });
    this.legendText = el('span', { id: 'legend-scale', className: 'info' });
    // Its own line, whose height is kept while it is hidden: a step whose
    // largest weight drops under FAINT_BELOW while playing does not move the page.
    this.faint = el('div', { id: 'legend-faint', className: 'info reserved', text: ' ' });
    this.hiddenKey = notVisibleKey('legend-hidden');
    this.grid = el('div', { id: 'head-grid', className: 'grid' });
    this.note = el('div', { id: 'maps-note', className: 'note', hidden: true });
    this.canvases = new Map();
    this.element = el('section', { className: 'panel' }, [
      el('h3', { text: 'Heads (click one to enlarge)' }),
      el('div', { className: 'legend-row' }, [this.scale, this.legendMin, this.legend, this.legendMax, this.legendText]),
      this.faint, this.hiddenKey,
      this.note, this.grid,
    ]);
  }

  /** Thumbnails for a layer's heads: head mean and max first when there are several. */
  build(layer, selected) {
    const names = layer.num_heads === 1 ? [0] : ['mean', 'max', ...Array.from({ length: layer.num_heads }, (_, h) => h)];
    this.canvases = new Map();
    this.grid.replaceChildren(...names.map((name) => {
      const canvas = el('canvas', { className: 'map thumb', dataset: { head: String(name) } });
      const figure = el('figure', { className: 'head', dataset: { head: String(name) } }, [
        canvas, el('figcaption', { text: `head ${name}` }),
      ]);
      figure.addEventListener('click', () => this.onPickHead(name));
      this.canvases.set(String(name), canvas);
      return figure;
    }));
    this.markSelected(selected);
  }

  markSelected(head) {
    for (const figure of this.grid.children) figure.classList.toggle('selected', figure.dataset.head === String(head));
  }

  /** A note in place of the maps (e.g. an example that is all padding); null shows the maps. */
  showNote(text) {
    this.note.hidden = !text;
    this.note.textContent = text || '';
    this.grid.hidden = Boolean(text);
  }

  /**
   * cellsOf(name) -> {values, levels} of q*k cells (decode.js headCells);
   * scale is 'fixed', 'stretch' or 'ratio' (scales.js; vmax is then RATIO and
   * the cells are painted as ratios to uniform); ranges: each row's visible columns
   * (visibility.js), null when every cell is visible; facts: the layer's
   * visibility facts, for the legend.
   */
  paint(cellsOf, q, k, vmax, scale, ranges = null, facts = null) {
    this.scale.value = scale;
    paintLegend(this.legend, vmax);
    this.legend.dataset.scale = scale;
    const legend = scaleLegend(scale, vmax);
    this.legendMin.textContent = legend.min;
    this.legendMax.textContent = legend.max;
    this.legendText.textContent = legend.text;
    if (scale === 'ratio') {
      // Ratios to uniform (weight x the row's visible keys), as floats.
      const weights = cellsOf;
      cellsOf = (name) => {
        const { values, levels } = weights(name);
        return { values: ratioValues(values, levels, q, k, ranges), levels: 0 };
      };
      vmax = RATIO;
    }
    showNotVisibleKey(this.hiddenKey, ranges && facts ? notVisibleText(facts) : '');
    const size = THUMB_PX / Math.max(q, k, 1);
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(k * size));
    const height = Math.max(1, Math.round(q * size));
    const heads = [];
    for (const [name, canvas] of this.canvases) {
      if (name === 'max') continue;
      const { values, levels } = cellsOf(name);
      const painted = paintMapAt(canvas, values, q, k, vmax, width, height, ratio, levels, ranges);
      if (name !== 'mean') heads.push({ ...painted, levels });
    }
    let faint = false;
    if (scale === 'fixed') {
      // The step's largest weight, from the thumbnails (max pooling keeps it).
      const largest = Math.max(...heads.map((h) => maxOf(h.values) / (h.levels || 1)));
      if (largest < FAINT_BELOW) {
        faint = true;
        this.faint.textContent = `the largest weight at this step is ${largest.toFixed(3)}: attention is spread thin ` +
          `(every map is dark); "stretch to this step's max" or "ratio to uniform" shows any pattern within it`;
      }
    }
    // Hidden, the line keeps its last text (or one space): its height stays.
    this.faint.classList.toggle('invisible', !faint);
    const max = this.canvases.get('max');
    if (!max) return;
    // The max of the heads' pooled thumbnails is the pooled max over heads
    // (a max of maxes): a pass over 12 x 160 x 160 pixels, not over every cell.
    const pooled = heads.length && heads.every((h) => h.pooled && h.levels === heads[0].levels);
    if (pooled) {
      const { rows, cols, levels } = heads[0];
      paintPixels(max, maxOfArrays(heads.map((h) => h.values)), rows, cols, vmax, width, height, levels, true, heads[0].ranges);
    } else {
      const { values, levels } = cellsOf('max');
      paintMapAt(max, values, q, k, vmax, width, height, ratio, levels, ranges);
    }
  }
}
