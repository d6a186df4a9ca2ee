// The model view: every layer (rows, in model order) x every head (columns)
// of the chosen example at the chosen step, head mean first, as small
// thumbnails on the tab's colour scale; click one to open it. Its maps come
// from the same cache as the main view, so only while it is open.

import { headCells, headMeanCells, mapsMax } from './decode.js';
import { el, fillSelect, notVisibleKey, showNotVisibleKey } from './dom.js';
import { paintLegend, paintMapAt } from './heatmap.js';
import { RATIO, SCALES, ratioValues, scaleLegend } from './scales.js';
import { isEmptyExample, layersInModelOrder } from './state.js';
import { exampleRanges } from './visibility.js';

const THUMB_PX = 64;

export class ModelView {
  /**
   * mapsOf(layer, step) -> Promise of maps; missingOf(layer) -> why the maps shown are missing for a layer, or '';
   * onOpen(tag, head); onChoice({modelOpen}) to keep the panel open or closed; onScale(scale) changes the tab's colour scale.
   */
  constructor({ status, mapsOf, missingOf = () => '', onOpen, onChoice = () => {}, onScale = () => {} }) {
    Object.assign(this, { status, mapsOf, missingOf, onOpen, onChoice });
    this.rows = el('div', { id: 'model-grid', className: 'model-grid' });
    this.caption = el('span', { id: 'model-caption', className: 'info' });
    this.hiddenKey = notVisibleKey('model-hidden');
    // The tab's colour scale, offered here too, with its legend.
    this.scale = el('select', { id: 'model-scale', title: 'colour scale of every map of the tab' });
    fillSelect(this.scale, SCALES);
    this.scale.addEventListener('change', () => onScale(this.scale.value));
    this.legendMin = el('span', { id: 'model-legend-min' });
    this.legend = el('canvas', { id: 'model-legend', className: 'legend' });
    this.legendMax = el('span', { id: 'model-legend-max' });
    this.legendText = el('span', { id: 'model-legend-text', className: 'info' });
    paintLegend(this.legend, 1);
    this.details = el('details', { id: 'model-view', className: 'panel', open: true }, [
      el('summary', {}, [el('h3', { text: 'Model view: every layer x every head ' }), this.caption]),
      el('div', { className: 'legend-row', id: 'model-legend-row' }, [this.scale, this.legendMin, this.legend, this.legendMax, this.legendText]),
      this.hiddenKey, this.rows,
    ]);
    this.details.addEventListener('toggle', () => {
      if (this.details.open === this.openShown) return; // setOpen's own change
      this.openShown = this.details.open;
      this.onChoice({ modelOpen: this.details.open });
      if (this.details.open && this.args) this.show(...this.args);
    });
    this.openShown = true; // the openness last applied (a link's, or the user's toggle)
    this.element = this.details;
  }

  /**
   * Opens or closes the panel for a changed choice (a link, back/forward)
   * only: a click on its summary says so in a later task ('toggle'), which a
   * redraw in between must not undo (as the heads view).
   */
  setOpen(open) {
    if (open !== false && open !== true) return;
    if (open !== this.openShown) this.details.open = this.openShown = open;
  }

  /** Shows run's layers for example index `example` at `step` on `scale`. */
  async show(run, example, step, scale, selectedTag, shown = 'weights') {
    this.args = [run, example, step, scale, selectedTag, shown];
    if (!this.details.open) return;
    const key = JSON.stringify([run.run, example, step, scale, shown]);
    this.loading = key;
    const layers = layersInModelOrder(run.layers);
    const scaleName = scale === 'stretch' ? "each layer stretched to its step's max" : scale === 'ratio' ? 'ratio to uniform' : 'fixed scale 0 to 1';
    this.caption.textContent = `(example ${example}, step ${step}, ${scaleName}; per layer the head mean, then heads 0 to H-1; click a map to open it)`;
    this.scale.value = scale;
    const legend = scaleLegend(scale, 1, "each layer's max at this step");
    this.legendMin.textContent = legend.min;
    this.legendMax.textContent = scale === 'stretch' ? 'max' : legend.max;
    this.legendText.textContent = scale === 'stretch' ? "stretched to each layer's largest weight at this step: colours differ between layers and steps"
      : legend.text;
    this.legend.dataset.scale = scale;
    if (this.built !== run) this.build(run, layers);
    const hides = layers.some((l) => l.examples[example] && exampleRanges(l, l.examples[example]));
    showNotVisibleKey(this.hiddenKey, hides ? 'not visible: keys a query cannot see (after it in a causal layer, outside a sliding window); ' +
      "a weight of 0 is the scale's darkest colour" : '');
    this.markSelected(selectedTag);
    const ratio = window.devicePixelRatio || 1;
    await Promise.all(layers.map(async (layer) => {
      const row = this.rowOf.get(layer.tag);
      const ex = layer.examples[example];
      let text = '';
      if (!ex) text = `no example ${example}`;
      else if (isEmptyExample(ex)) text = 'all padding';
      else if (!layer.steps.includes(step)) text = `no capture at step ${step}`;
      else if (this.missingOf(layer)) text = shown === 'relevance' ? 'relevance missing (none stored)' : 'value-weighted maps missing (no value norms stored)';
      row.note.textContent = text;
      row.note.hidden = !text;
      if (text) {
        row.canvases.forEach((c) => { c.hidden = true; });
        row.element.dataset.paintedStep = '';
        return;
      }
      let maps;
      try {
        maps = await this.mapsOf(layer, step);
      } catch (e) {
        if (this.loading === key) this.status.failed(`the model view (${layer.layer})`, e);
        return;
      }
      if (this.loading !== key) return;
      this.status.loaded(`the model view (${layer.layer})`);
      const vmax = scale === 'stretch' ? mapsMax(maps) : scale === 'ratio' ? RATIO : 1;
      const size = THUMB_PX / Math.max(maps.q, maps.k, 1);
      const width = Math.max(1, Math.round(maps.k * size));
      const height = Math.max(1, Math.round(maps.q * size));
      const ranges = exampleRanges(layer, ex);
      row.canvases.forEach((canvas, i) => {
        canvas.hidden = false;
        const { values, levels } = i === 0 ? headMeanCells(maps) : headCells(maps, i - 1);
        if (vmax === RATIO) paintMapAt(canvas, ratioValues(values, levels, maps.q, maps.k, ranges), maps.q, maps.k, vmax, width, height, ratio, 0, ranges);
        else paintMapAt(canvas, values, maps.q, maps.k, vmax, width, height, ratio, levels, ranges);
      });
      row.element.dataset.paintedStep = String(step);
    }));
    if (this.loading === key) this.rows.dataset.paintedStep = String(step);
  }

  build(run, layers) {
    this.built = run;
    this.rowOf = new Map();
    this.rows.replaceChildren(...layers.map((layer) => {
      const heads = ['mean', ...Array.from({ length: layer.num_heads }, (_, h) => h)];
      const canvases = heads.map((head) => {
        const canvas = el('canvas', { className: 'map mini', title: `${layer.layer}, head ${head}`, dataset: { head: String(head) } });
        canvas.addEventListener('click', () => this.onOpen(layer.tag, head));
        return canvas;
      });
      const note = el('span', { className: 'info', hidden: true });
      // A long name's lines break after its scopes' "/" first (<wbr> adds no character to copy).
      const scopes = layer.layer.split('/');
      const label = el('div', { className: 'model-label', title: layer.tag },
        scopes.flatMap((scope, i) => (i < scopes.length - 1 ? [`${scope}/`, el('wbr')]
          : [`${scope} (${layer.kind}${layer.sliding_window > 0 && layer.kind !== 'cross' ? `, window ${layer.sliding_window}` : ''})`])));
      const element = el('div', { className: 'model-row', dataset: { tag: layer.tag } }, [label, ...canvases, note]);
      this.rowOf.set(layer.tag, { element, canvases, note });
      return element;
    }));
  }

  markSelected(tag) {
    for (const row of this.rows.children) row.classList.toggle('selected', row.dataset.tag === tag);
  }
}
