// The Attention tab. TensorBoard loads this module in the tab's iframe and
// calls render(). This file holds the controller only: the toolbar, what is
// chosen (state.js), loading a step's maps (maps_cache.js) and handing data
// to the views, each in its own module:
//   view_model.js       model view: every layer x every head
//   view_grid.js        heads grid, colour scale and legend
//   view_focus.js       enlarged map: labels, zoom, tooltip
//   view_text.js        the example as text, tinted by the attention of a token
//   view_importance.js  importance bars, steps x tokens heatmap, followed tokens
//   view_stats.js       head statistics charts
//   view_rollout.js     attention rollout bars
//   view_heads.js       heads view: every layer x every head by a head metric
//   view_image.js       image view: attention over the probe image's patches
//   view_compare.js     runs side by side, difference of two steps (compare.js)
//   value_weighted.js   value-weighted maps (weights x value norms), the Show control's second choice
//   url_state.js        the choices in TensorBoard's address bar (p.attention.*)
//   export.js           PNG and CSV downloads
//   status.js           the status line

// The modules that only other modules import, listed here as well so that
// the browser asks for every module at once, not one import level after the
// other (the server answers one file at a time; frontend/tests checks that
// this list is complete; docs/PERFORMANCE.md change 12).
import './charts.js';
import './colors.js';
import './csv.js';
import './head_metrics.js';
import './heatmap.js';
import './image_grid.js';
import './layout.js';
import './naming.js';
import './scales.js';
import './visibility.js';

import * as api from './api.js';
import { headCells, headMap, headMeanMax, mapsMax } from './decode.js';
import { el, fillSelect, markSwatch, runLetter } from './dom.js';
import { exportImportanceCsv, exportMapCsv, exportMapPng } from './export.js';
import { comparableWhy, runMarks, visibleRuns } from './compare.js';
import {
  Host, followTheme, hostHash, onHostHistory, readRunsTable, writeHostHash,
} from './host.js';
import { MapsCache } from './maps_cache.js';
import {
  DEFAULTS, SHOWS, isEmptyExample, layersInModelOrder, loadState, patchKey, pickedKey, pinnedKey, resolve, saveState, zoomKey,
} from './state.js';
import { VALUE_LEGEND, missingValueText, valueVectorText, valueWeighted } from './value_weighted.js';
import { asRelevance, layerTagOf, missingRelevanceText, relevanceAbsentText, relevanceNote } from './relevance.js';
import { RATIO, ratioValues } from './scales.js';
import { StatusLine } from './status.js';
import { composeHash, decodeUrlState, encodeUrlState, parseHash, pluginData } from './url_state.js';
import { CompareView } from './view_compare.js';
import { FocusMap, fitZoom } from './view_focus.js';
import { HeadGrid } from './view_grid.js';
import { HeadsView } from './view_heads.js';
import { ImageView } from './view_image.js';
import { ImportanceView } from './view_importance.js';
import { ModelView } from './view_model.js';
import { RolloutView } from './view_rollout.js';
import { StatsView } from './view_stats.js';
import { TextView } from './view_text.js';
import { exampleRanges, visibilityFacts, windowText } from './visibility.js';

const PLAY_INTERVAL_MS = 600;
const RUNS_POLL_MS = 1000; // how often TensorBoard's run selector is read
const PUSH_AFTER_MS = 400; // choices closer together than this (a dragged slider) make one history entry

/** The tab's choices in the address bar's hash (p.attention.*), as raw plugin data. */
function hashPluginData() {
  return pluginData(parseHash(hostHash()));
}

/** What /index says about steps of another shape, or '' (older servers send nothing). */
export function otherShapesText(other) {
  if (!other || !(other.steps > 0)) return '';
  const many = other.steps === 1 ? 'earlier step' : 'earlier steps';
  const range = other.first === other.last ? `${other.first}` : `${other.first}..${other.last}`;
  return `${other.steps} ${many} (${range}) have another shape (the probe or model changed) and are not shown; ` +
    'read them with read_attention';
}

/**
 * '2 of 8 probe examples stored (max_cells or max_map_bytes)' when the callback kept fewer
 * examples than the probe held (/index's probe_examples), else ''.
 */
export function storedExamplesText(layer) {
  const probe = layer.probe_examples || 0;
  const stored = layer.examples.length;
  return probe > stored ? `${stored} of ${probe} probe examples stored (max_cells or max_map_bytes)` : '';
}

/**
 * For maps stored reduced (/index's storage, docs/FORMAT.md "Reduced maps"):
 * what the map shown holds, e.g. 'reduced maps: each row's 8 largest
 * weights exact, the rest from 16 x 16 block means (within the row's
 * 8th weight)'; '' for full maps and older servers.
 */
export function storageText(layer) {
  if (layer.storage !== 'reduced') return '';
  const b = layer.block_size;
  return `reduced maps: each row's ${layer.top_k} largest weights exact, the rest from ${b} x ${b} ` +
    `block means (within the row's ${ordinal(layer.top_k)} weight)`;
}

function ordinal(n) {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' })[n % 10] || 'th'}`;
}

/**
 * An example's line in the Example list: its first tokens, or for a layer
 * over an image's patches (/index's grid) 'image 2 (8 x 8 patches)' rather
 * than 'CLS 0,0 0,1 …', which read the same for every image.
 */
export function exampleLabel(layer, ex, i) {
  if (isEmptyExample(ex)) return `${i}: (all padding)`;
  if (layer.grid) return `${i}: image ${i} (${layer.grid.rows} x ${layer.grid.cols} patches)`;
  return `${i}: ${ex.key_tokens.slice(0, 6).join(' ')}${ex.key_tokens.length > 6 ? ' …' : ''}`;
}

class AttentionTab {
  constructor(root) {
    this.root = root;
    this.index = { runs: [] };
    this.state = loadState(localStorage);
    this.host = new Host();
    this.hostRuns = null; // experimental.GetRuns: every run name, in the host's order
    this.runsTable = readRunsTable(); // TensorBoard's run selector as drawn, or null
    this.visible = [];
    this.lastUrlWrite = 0;
    this.cache = new MapsCache(api.fetchMaps);
    // Value-weighted maps (value_weighted.js): the step's maps (from the
    // weights' cache: switching the Show control fetches no map twice) and
    // its value norms, made into each row's shares once per step.
    this.valueCache = new MapsCache(async (run, tag, step, example, cells) => {
      const [maps, norms] = await Promise.all([
        this.cache.get(run, tag, example, step, cells), api.fetchValueNorms(run, tag, example, step)]);
      return valueWeighted(maps, norms.values);
    });
    this.askForLastMaps();
    this.maps = null;
    this.playing = null;
    this.status = new StatusLine();
    this.grid = new HeadGrid({
      onPickHead: (head) => this.pickHead(head),
      onScale: (scale) => this.setScale(scale),
    });
    this.focus = new FocusMap({
      onZoom: (cell) => { this.state.zoom = cell; this.state.zoomFor = zoomKey(this.state); this.save(); },
      onExportPng: () => this.exportMap('png'),
      onExportCsv: () => this.exportMap('csv'),
    });
    this.importance = new ImportanceView({
      status: this.status,
      onMode: (mode) => { this.state.mode = mode; this.resolve(); this.save(); this.loadImportance(); },
      onHoverToken: (j, mode) => this.focus.highlight(mode === 'received' ? { col: j } : { row: j }),
      onPicked: (picked) => { this.state.picked = picked; this.save(); },
    });
    this.importance.csv.addEventListener('click', () => exportImportanceCsv(this.shownState()));
    this.stats = new StatsView({ status: this.status });
    this.text = new TextView({ onChoice: (choice) => { Object.assign(this.state, choice); this.save(); } });
    this.model = new ModelView({
      status: this.status,
      mapsOf: (layer, step) => this.mapsFor(this.state.run, layer, this.state.example, step),
      missingOf: (layer) => this.missingText(layer),
      onOpen: (tag, head) => this.select({ tag, head }),
      onChoice: (choice) => { Object.assign(this.state, choice); this.save(); },
      onScale: (scale) => this.setScale(scale),
    });
    this.rollout = new RolloutView({ status: this.status });
    this.heads = new HeadsView({
      status: this.status,
      onOpen: (shownTag, head, step) => {
        const tag = layerTagOf(shownTag, this.run.layers); // the heads view lists relevance tags while relevance is shown
        this.select(step === undefined ? { tag, head } : { tag, head, step });
      },
      onChoice: (choice) => { Object.assign(this.state, choice); this.save(); },
    });
    this.image = new ImageView({
      status: this.status,
      metrics: this.heads.cache,
      onChoice: (choice) => { Object.assign(this.state, choice); this.save(); },
      onScale: (scale) => this.setScale(scale),
    });
    this.compare = new CompareView({
      status: this.status,
      mapsOf: (run, layer, example, step) => this.mapsFor(run, layer, example, step),
      missingOf: (layer) => this.missingText(layer),
      onChoice: (change) => this.select(change),
      onOpen: (tag, head) => this.select({ tag, head, enlarged: true }),
      onZoom: (cell) => { this.state.compareZoom = cell; this.save(); },
      onScale: (scale) => this.setScale(scale),
    });
    this.stats.onStep = this.importance.onStep = (step) => this.goToStep(step);
    this.build();
  }

  build() {
    const c = (this.controls = {
      run: el('select', { id: 'run-select', title: 'run (the runs TensorBoard\'s run selector shows)' }),
      runSwatch: el('span', { id: 'run-swatch', className: 'swatch', title: 'the run\'s colour in TensorBoard' }),
      runLetter: el('span', { id: 'run-letter' }),
      layer: el('select', { id: 'layer-select', title: 'attention layer' }),
      example: el('select', { id: 'example-select', title: 'probe example' }),
      step: el('input', { id: 'step-slider', type: 'range', min: 0, max: 0, value: 0, step: 1 }),
      stepLabel: el('span', { id: 'step-label', className: 'step-label' }),
      play: el('button', { id: 'play-button', text: 'Play' }),
      show: el('select', { id: 'show-select', title: 'what every map shows: the attention weights, or value-weighted attention' }),
    });
    fillSelect(c.show, SHOWS);
    this.showNote = el('div', { id: 'show-note', className: 'note', hidden: true });
    this.info = el('div', { id: 'layer-info', className: 'info' });
    this.otherShapes = el('div', { id: 'other-shapes', className: 'note', hidden: true });
    this.root.append(
      el('header', { className: 'toolbar' }, [
        el('label', { text: 'Run ' }), c.runSwatch, c.runLetter, c.run, el('label', { text: 'Layer ' }), c.layer,
        el('label', { text: 'Example ' }), c.example,
        el('label', { text: 'Step ' }), c.step, c.stepLabel, c.play,
        el('label', { text: 'Show ', htmlFor: 'show-select' }), c.show,
      ]),
      this.status.element, this.info, this.otherShapes, this.showNote,
      this.model.element, this.heads.element, this.image.element, this.grid.element, this.compare.element, this.compare.diffElement, this.focus.element, this.text.element, this.importance.barsPanel, this.importance.trainingPanel,
      this.stats.element, this.rollout.element,
    );
    c.run.addEventListener('change', () => this.select({ run: c.run.value }));
    c.layer.addEventListener('change', () => this.select({ tag: c.layer.value }));
    c.example.addEventListener('change', () => this.select({ example: Number(c.example.value) }));
    c.step.addEventListener('input', () => this.setStep(this.layer.steps[Number(c.step.value)]));
    c.play.addEventListener('click', () => this.togglePlay());
    c.show.addEventListener('change', () => this.select({ show: c.show.value }));
    document.addEventListener('keydown', (e) => this.onKey(e));
  }

  save() {
    saveState(this.state, localStorage);
    this.writeUrl();
  }

  resolve() {
    Object.assign(this, resolve(this.state, this.offeredRuns()));
    this.resolveCompare();
  }

  async refresh() {
    // The index and the host's answers are asked for together: each is a
    // round trip, and the first paint waits for all of them.
    const urlRead = this.urlRead ? null : this.readUrl();
    const hostRuns = this.host.request('experimental.GetRuns');
    try {
      this.index = await api.fetchIndex();
    } catch (e) {
      this.status.failed('the index', e);
      return;
    }
    this.status.loaded('the index');
    if (!this.index.runs.length) {
      this.status.setNotice('No attention data yet. Add AttentionCallback(log_dir, probe) to model.fit.');
      return;
    }
    await urlRead;
    this.hostRuns = (await hostRuns) || this.hostRuns;
    if (!this.updateVisible()) return;
    // A reload may bring other maps at a step already seen (a log dir
    // reused); the first index keeps the maps asked for before it came.
    if (this.indexed) this.cache.clear();
    this.indexed = true;
    await this.select({});
  }

  /**
   * The maps a returning user will see first (the step a link names, or the
   * one shown last), asked for while the index is on its way: the first
   * paint then waits for one round trip, not two. A guess the index then
   * contradicts (a run removed) costs one unused request (and the
   * browser's own line for its 404 in the console).
   */
  askForLastMaps() {
    const s = { ...this.state, ...decodeUrlState(hashPluginData()) };
    if (typeof s.run !== 'string' || typeof s.tag !== 'string' || !Number.isInteger(s.example) || !Number.isInteger(s.step)) return;
    this.cache.get(s.run, s.tag, s.example, s.step, 1).catch(() => {});
  }

  /** Applies a partial state change, fixing up anything it invalidates, and loads every view. */
  async select(change) {
    Object.assign(this.state, change);
    this.resolve();
    const { run, layer, example, state } = this;
    // Ask for the step's maps before building the views: the request then
    // overlaps their DOM and first layout (setStep below finds it cached).
    if (!isEmptyExample(example)) this.mapsAt(state.step).catch(() => {});
    if (state.zoomFor !== zoomKey(state) || !(state.zoom >= 1)) {
      state.zoom = fitZoom(example);
      state.zoomFor = zoomKey(state);
    }
    this.save();
    const c = this.controls;
    fillSelect(c.run, this.visible.map((r) => ({ value: r.run, label: r.run })), state.run);
    // The run's colour in TensorBoard, with a pattern and letter where another shown run shares it (compare.js runMarks).
    const mark = runMarks(this.visible).get(state.run);
    markSwatch(c.runSwatch, mark, state.run);
    c.runLetter.replaceChildren(...[runLetter(mark)].filter(Boolean));
    this.root.dataset.runs = JSON.stringify(this.visible.map((r) => r.run));
    fillSelect(c.layer, layersInModelOrder(run.layers).map((l) => ({
      value: l.tag,
      label: `${l.layer} (${l.kind}${l.sliding_window ? `, window ${l.sliding_window}` : ''}, ${l.num_heads} head${l.num_heads > 1 ? 's' : ''})`,
    })), state.tag);
    fillSelect(c.example, layer.examples.map((ex, i) => ({ value: i, label: exampleLabel(layer, ex, i) })), state.example);
    c.show.value = state.show;
    const missing = this.missingText(layer);
    this.showNote.hidden = state.show === 'weights';
    this.showNote.textContent = state.show === 'relevance' ? relevanceNote(layer) : state.show !== 'value' ? '' : [
      missing || VALUE_LEGEND, valueVectorText(layer),
      'Importance below is received value-weighted attention (sum over queries of weight × ‖value vector‖); ' +
        'head statistics and rollout are of the weights',
    ].filter(Boolean).join('. ') + '.';
    c.step.max = String(layer.steps.length - 1);
    this.info.textContent = [
      layer.layer_class, `${layer.kind} attention`, `${layer.num_heads} head(s)`,
      windowText(visibilityFacts(layer, example)),
      `${example.query_length} query x ${example.key_length} key tokens`, `${layer.steps.length} captured steps`,
      `stored as ${layer.encoding}`, layer.rows_normalized ? '' : 'rows do not sum to 1',
      storedExamplesText(layer), storageText(layer),
    ].filter(Boolean).join(' · ');
    const other = otherShapesText(layer.other_shapes);
    this.otherShapes.hidden = !other;
    this.otherShapes.textContent = other;
    this.maps = null;
    this.model.element.hidden = run.layers.length < 2; // one layer: the heads grid is the model view
    const compared = this.showCompare();
    const model = this.showModel();
    const heads = this.heads.show(this.shownRun(run), this.shownState());
    this.grid.build(layer, state.head);
    this.focus.setExample(example, state.zoom, layer);
    this.text.setExample(example, layer, state);
    const empty = isEmptyExample(example) || Boolean(missing);
    for (const panel of [this.focus.element, this.text.element, this.importance.barsPanel, this.importance.trainingPanel, this.stats.element]) {
      panel.hidden = empty;
    }
    this.focus.element.hidden = empty || !state.enlarged;
    if (empty) {
      // Nothing to draw and nothing to ask the server for: the maps shown are missing, never zeros.
      this.grid.showNote(missing || `example ${state.example} has no real tokens (all padding)`);
      this.importance.clear();
      this.stats.clear();
      this.rollout.clear();
      this.image.clear();
      for (const view of ['maps', 'importance', 'head statistics', 'rollout']) this.status.loaded(view);
      this.showStep(state.step);
      this.root.dataset.paintedStep = String(state.step);
      await Promise.all([model, heads, compared]);
      return;
    }
    this.grid.showNote(null);
    const shown = this.shownLayer(layer);
    const image = this.image.setLayer(run, shown, state); // relevance: its shares' rows and relevance rollout
    await Promise.all([this.setStep(state.step), this.loadImportance(), this.stats.load(this.shownState(), shown, example),
      this.rollout.load(this.shownState(), shown), model, heads, image, compared]);
  }

  /** A colour scale chosen (in any view that offers the choice): every map is repainted on it. */
  setScale(scale) {
    this.state.scale = scale;
    this.save();
    this.paintMaps();
    this.showModel();
    this.showCompare();
  }

  /** The model view of the run at the current example and step (not while hidden). */
  showModel() {
    this.model.setOpen(this.state.modelOpen);
    this.modelShown = this.model.element.hidden ? Promise.resolve()
      : this.model.show(this.run, this.state.example, this.state.step, this.state.scale, this.state.tag, this.state.show);
    return this.modelShown;
  }

  loadImportance() {
    return this.importance.load(this.shownState(), this.shownLayer(this.layer), this.example, this.state.picked);
  }

  /**
   * While relevance is shown, the views that read a layer's numbers by tag
   * (importance, head statistics, rollout, the heads view) read its
   * relevance tag, whose numbers are of the relevance shares
   * (relevance.js): the layer as they should read it, and the state with
   * that tag and the weights' routes.
   */
  shownLayer(layer) {
    return this.state.show === 'relevance' ? asRelevance(layer) || { ...layer, has_rollout: false, relevance_missing: true } : layer;
  }

  shownState() {
    if (this.state.show !== 'relevance' || !this.layer) return this.state;
    return { ...this.state, tag: this.shownLayer(this.layer).tag, show: 'weights' };
  }

  shownRun(run) {
    return this.state.show === 'relevance' ? { ...run, layers: run.layers.map((l) => this.shownLayer(l)) } : run;
  }

  pickHead(head) {
    this.state.head = head;
    this.state.enlarged = true;
    this.focus.element.hidden = isEmptyExample(this.example);
    this.save();
    this.showCompare();
    this.grid.markSelected(head);
    this.heads.select(this.shownState());
    this.paintFocus();
    this.loadImportance();
  }

  /** Step controls and the views that show one step. */
  showStep(step) {
    this.state.step = step;
    this.controls.step.value = String(this.layer.steps.indexOf(step));
    this.controls.stepLabel.textContent = `${step}`;
    this.save();
    this.importance.showStep(step);
    this.stats.showStep(step);
    this.rollout.showStep(step);
    this.heads.showStep(step);
    this.image.showStep(step);
  }

  async setStep(step) {
    const { layer, example } = this;
    // Ask for the maps first: the request then overlaps drawing the bars and charts.
    // Relevance asked at a step it was not captured at: marked missing there, never the last step's.
    const absent = this.state.show === 'relevance' && !isEmptyExample(example) ? relevanceAbsentText(layer, step) : '';
    const request = isEmptyExample(example) || this.missingText(layer) || absent ? null : this.mapsAt(step);
    const changed = step !== this.state.step;
    this.showStep(step);
    if (changed) {
      this.showModel(); // not awaited: the main maps paint first
      this.showCompare();
    }
    if (this.state.show === 'relevance' && !this.missingText(layer) && !isEmptyExample(example)) {
      this.grid.showNote(absent || null);
      this.focus.element.hidden = Boolean(absent) || !this.state.enlarged;
    }
    if (!request) {
      this.root.dataset.paintedStep = String(step);
      return;
    }
    const { run, tag } = this.state;
    const ex = this.state.example;
    let maps;
    try {
      maps = await request;
    } catch (e) {
      if (this.state.step === step) this.status.failed('maps', e);
      return;
    }
    const s = this.state;
    if (s.step !== step || s.run !== run || s.tag !== tag || s.example !== ex) return; // chosen meanwhile
    this.status.loaded('maps');
    this.maps = maps;
    this.derived = headMeanMax(maps);
    this.paintMaps();
    this.root.dataset.paintedStep = String(step);
    // Fetch the next step ahead: a cold step costs a data-provider call and
    // the transfer (bench/frontend_paint.py), which play and scrubbing then
    // do not wait for.
    const next = layer.steps[layer.steps.indexOf(step) + 1];
    if (next !== undefined) this.mapsAt(next).catch(() => {});
  }

  /** The shown example's maps at a step, from the cache or fetched (bench/frontend_paint.py uses it). */
  mapsAt(step) {
    return this.mapsFor(this.state.run, this.layer, this.state.example, step);
  }

  /** One example's maps of a run's layer at a step as the Show control asks: weights, or value-weighted. */
  mapsFor(run, layer, example, step) {
    const ex = layer.examples[example];
    const cells = layer.num_heads * ex.query_length * ex.key_length;
    if (this.state.show === 'relevance') {
      if (!layer.relevance) return Promise.reject(new Error(missingRelevanceText(layer)));
      if (!layer.relevance.steps.includes(step)) return Promise.reject(new Error(relevanceAbsentText(layer, step)));
      return this.cache.get(run, layer.relevance.tag, example, step, cells); // its shares, decoded as maps
    }
    if (this.state.show !== 'value') return this.cache.get(run, layer.tag, example, step, cells);
    if (!layer.value_vector) return Promise.reject(new Error(missingValueText(layer)));
    return this.valueCache.get(run, layer.tag, example, step, cells);
  }

  /** Why the maps the Show control asks for are missing for a layer, or ''. */
  missingText(layer) {
    if (this.state.show === 'relevance') return missingRelevanceText(layer);
    return this.state.show === 'value' ? missingValueText(layer) : '';
  }

  mapOf(name) {
    if (name === 'mean' || name === 'max') return this.derived[name];
    return headMap(this.maps, Number(name));
  }

  /** A map's cells to paint, {values, levels} (decode.js): uint8 maps are painted from their bytes. */
  cellsOf(name) {
    if (name === 'mean' || name === 'max') return this.derived[`${name}Cells`];
    return headCells(this.maps, Number(name));
  }

  /**
   * The colour scale: fixed 0 to 1 by default, so a weight has the same
   * colour at every step (uniform attention at step 0 looks faint); or
   * stretched to the largest weight of this step's maps, which the legend
   * says; or the ratio to uniform (scales.js: vmax RATIO).
   */
  paintMaps() {
    if (!this.maps) return;
    const scale = this.state.scale;
    this.vmax = scale === 'stretch' ? mapsMax(this.maps) : scale === 'ratio' ? RATIO : 1;
    this.grid.paint((name) => this.cellsOf(name), this.maps.q, this.maps.k, this.vmax, this.state.scale,
      exampleRanges(this.layer, this.example), visibilityFacts(this.layer, this.example));
    this.paintFocus();
    this.image.paint(this.maps, this.derived, this.state.scale);
  }

  paintFocus() {
    if (!this.maps) return;
    const name = String(this.state.head);
    this.focus.valueName = { value: 'value-weighted share', relevance: 'relevance share' }[this.state.show] || 'weight';
    const rebuilt = Number.isFinite(this.maps.maxError)
      ? ` · rebuilt from the reduced form: every cell within ±${this.maps.maxError.toFixed(4)} of the stored weight` : '';
    this.focus.bound = Number.isFinite(this.maps.maxError) ? this.maps.maxError : null;
    this.focus.paint(this.cellsOf(name), this.maps.q, this.maps.k, this.vmax, `head ${name} · step ${this.state.step}${rebuilt}`);
    this.text.show(this.mapOf(name), this.maps.q, this.maps.k, this.vmax);
  }

  /** The open map as a labelled PNG or as CSV. */
  exportMap(format) {
    if (!this.maps) return;
    if (format === 'csv') {
      // The cells as stored (uint8 bytes / 255, their sum over heads / 255 H), not float32 copies of them.
      exportMapCsv(this.state, this.cellsOf(String(this.state.head)), this.example);
      return;
    }
    const weights = this.mapOf(String(this.state.head));
    const ranges = exampleRanges(this.layer, this.example);
    const ratio = this.state.scale === 'ratio';
    const values = ratio ? ratioValues(weights, 0, this.maps.q, this.maps.k, ranges) : weights;
    const scaleText = ({ value: 'value-weighted shares (Kobayashi et al. 2020), ',
      relevance: 'relevance shares of each row (Chefer et al. 2021), ' }[this.state.show] || '') + (
      this.state.scale === 'stretch' ? "stretched to this step's max"
        : ratio ? 'ratio to uniform (weight × visible keys; 1 = uniform)' : 'fixed scale 0 to 1');
    const placed = exportMapPng(this.state, { values, q: this.maps.q, k: this.maps.k, vmax: this.vmax, scaleText, ranges }, this.example);
    Object.assign(this.focus.canvas.dataset, { exportCell: placed.cell, exportLeft: placed.left, exportTop: placed.top });
  }

  /** Charts drawn on canvases take the theme's colours when drawn: redraw them. */
  repaintCharts() {
    this.stats.draw();
    this.heads.draw();
    this.image.draw();
    if (this.importance.data) this.importance.renderLines();
    if (this.visible.length) this.refreshRuns(); // the palette's dark colours, the difference's scale
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
      const steps = this.layer.steps;
      this.setStep(steps[(steps.indexOf(this.state.step) + 1) % steps.length]);
    }, PLAY_INTERVAL_MS);
  }

  // -- comparing, the address bar, TensorBoard's run selection, keys (issue 19) --

  /** The index's runs that TensorBoard's run selector shows. */
  offeredRuns() {
    const shown = new Set(this.visible.map((r) => r.run));
    const runs = this.index.runs.filter((r) => shown.has(r.run));
    return runs.length ? runs : this.index.runs;
  }

  /** Compared runs: shown ones other than the run, once each; the difference's run B: a shown run, a captured step. */
  resolveCompare() {
    const s = this.state;
    const shown = new Set(this.visible.map((r) => r.run));
    // Compared: shown runs whose layer of this name is of the same kind and shape (compare.js comparableWhy).
    const comparable = (name) => {
      const run = this.index.runs.find((r) => r.run === name);
      return Boolean(run) && !comparableWhy(this.layer, s.example, run);
    };
    s.compare = Array.isArray(s.compare) ? [...new Set(s.compare)].filter((r) => r !== s.run && shown.has(r) && comparable(r)) : [];
    if (!(Number.isInteger(s.compareZoom) && s.compareZoom >= 2 && s.compareZoom <= 32)) s.compareZoom = undefined;
    if (typeof s.enlarged !== 'boolean') s.enlarged = true;
    if (s.diff) {
      const run = this.index.runs.find((r) => r.run === s.diff.run && shown.has(r.run) && (r.run === s.run || comparable(r.run))) || this.run;
      const layer = run.layers.find((l) => l.tag === s.tag);
      const steps = layer ? layer.steps : [];
      const step = steps.includes(s.diff.step) ? s.diff.step
        : steps.reduce((best, x) => (best === undefined || Math.abs(x - s.diff.step) < Math.abs(best - s.diff.step) ? x : best), undefined);
      s.diff = step === undefined ? { run: run.run, step: s.diff.step } : { run: run.run, step };
    } else {
      s.diff = null;
    }
  }

  showCompare() {
    if (!this.layer) return Promise.resolve();
    this.compared = this.compare.show({
      state: this.state, runs: this.index.runs, visible: this.visible, layer: this.layer, example: this.example,
    });
    return this.compared;
  }

  /**
   * The choices a link names: experimental.GetURLPluginData, or the page's
   * hash parsed the same way when the host answers {} (tensorboard 2.21
   * answers from a copy of the hash it takes only on a hashchange).
   * No p.attention.* keys: the choices kept in localStorage stay.
   */
  async readUrl() {
    this.urlRead = true;
    let data = await this.host.request('experimental.GetURLPluginData', null, 1000);
    if (!data || typeof data !== 'object' || !Object.keys(data).length) data = hashPluginData();
    if (Object.keys(data).length) this.applyUrlData(data);
  }

  applyUrlData(data) {
    const state = { ...DEFAULTS, compare: [], diff: null, enlarged: true, ...decodeUrlState(data) };
    if (!Number.isInteger(state.example)) state.example = 0; // what resolve() picks: a link's tokens and patch are in it
    state.zoomFor = zoomKey(state); // a zoom or tokens in a link are for the map it names
    state.pickedFor = pickedKey(state);
    state.pinnedFor = pinnedKey(state);
    state.patchFor = patchKey(state);
    if (!Array.isArray(state.picked)) state.picked = [];
    this.state = state;
  }

  /** Writes the choices into the page's hash: a new history entry, or the current one while a slider is dragged or play runs. */
  writeUrl() {
    if (!this.urlRead || !this.index.runs.length) return;
    const now = Date.now();
    const push = !this.restoring && !this.playing && now - this.lastUrlWrite > PUSH_AFTER_MS && this.urlWritten;
    const before = hostHash();
    const hash = composeHash(before, encodeUrlState(this.state));
    if (hash === before) return;
    try {
      writeHostHash(hash, push);
    } catch {
      return; // a page that refuses (sandboxed): the view works, the address bar just does not follow
    }
    this.lastUrlWrite = now;
    this.urlWritten = true;
  }

  /** Back, forward or an edited address: show the choices the page's hash now names. */
  async onHistory() {
    const data = hashPluginData();
    if (!Object.keys(data).length || !this.index.runs.length) return;
    if (JSON.stringify(encodeUrlState(decodeUrlState(data))) === JSON.stringify(encodeUrlState(this.state))) return;
    this.applyUrlData(data);
    this.restoring = true;
    try {
      await this.select({});
    } finally {
      this.restoring = false;
    }
  }

  /** Reads TensorBoard's run selector; a change re-resolves and redraws. */
  pollRuns() {
    const table = readRunsTable();
    if (JSON.stringify(table) === JSON.stringify(this.runsTable)) return;
    this.runsTable = table;
    if (this.index.runs.length) this.refreshRuns();
  }

  /**
   * The runs to offer (this.visible) from the index, TensorBoard's runs and
   * its run table; false, saying so, when none is selected there.
   */
  updateVisible() {
    this.visible = visibleRuns(this.index.runs.map((r) => r.run), this.hostRuns, this.runsTable, this.root.classList.contains('dark'));
    if (!this.visible.length) {
      this.status.setNotice("No run with attention is selected in TensorBoard's run selector (Time Series, left): select one there.");
      this.root.dataset.runs = '[]';
      return false;
    }
    this.status.setNotice('');
    return true;
  }

  async refreshRuns() {
    if (!this.updateVisible()) return;
    this.restoring = true; // TensorBoard's selection changed, not a choice in the tab: no history entry
    try {
      await this.select({});
    } finally {
      this.restoring = false;
    }
  }

  /** A step picked on a chart: the captured step nearest to it. */
  goToStep(step) {
    const steps = this.layer.steps;
    const near = steps.reduce((best, x) => (Math.abs(x - step) < Math.abs(best - step) ? x : best), steps[0]);
    return this.setStep(near);
  }

  /** Left/right: previous/next step; up/down: previous/next head (mean, max, 0..H-1); escape: close the enlarged map. */
  onKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey || !this.layer) return;
    const t = e.target;
    const tag = t && t.tagName;
    if (tag === 'SELECT' || tag === 'TEXTAREA' || (tag === 'INPUT' && t.type !== 'checkbox')) return; // the control's own keys
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      const steps = this.layer.steps;
      const i = steps.indexOf(this.state.step) + (e.key === 'ArrowRight' ? 1 : -1);
      if (i >= 0 && i < steps.length) this.setStep(steps[i]);
    } else if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      const heads = this.layer.num_heads > 1 ? ['mean', 'max', ...Array.from({ length: this.layer.num_heads }, (_, h) => h)] : [0];
      const i = heads.indexOf(this.state.head) + (e.key === 'ArrowDown' ? 1 : -1);
      if (i >= 0 && i < heads.length) this.pickHead(heads[i]);
    } else if (e.key === 'Escape') {
      if (this.focus.element.hidden) return;
      this.state.enlarged = false;
      this.focus.element.hidden = true;
      this.save();
    } else {
      return;
    }
    e.preventDefault();
  }

}

export async function render() {
  // Beside this module (a versioned URL the browser may cache), not the page's base.
  const style = el('link', { rel: 'stylesheet', href: new URL('./style.css', import.meta.url).href });
  document.head.append(style);
  const root = el('div', { className: 'tba', id: 'attention-root' });
  document.body.replaceChildren(root);
  const tab = new AttentionTab(root);
  followTheme(root, () => tab.repaintCharts());
  window.attentionTab = tab; // for debugging and the browser tests
  tab.host.connect({ onDataReloaded: () => tab.refresh(), onRunsChanged: () => tab.refresh() });
  await tab.refresh();
  onHostHistory(() => tab.onHistory());
  setInterval(() => tab.pollRuns(), RUNS_POLL_MS);
  root.dataset.ready = 'true';
}
