// What the user chose (run, layer, example, step, head, importance mode,
// what the maps show (weights, value-weighted or relevance), colour scale, zoom, followed tokens, the heads view's metric, ranking and
// whether it is open, whether the model view is open, the text view's
// direction and pinned token, the image view's patch and opacity), kept in localStorage so that a reload shows the same
// view, and fixed up against the index when the data changes.
// Pure functions apart from the storage passed in: unit-tested with node.

export const STORAGE_KEY = 'tb-attention-state';
export const DEFAULTS = Object.freeze({ head: 'mean', mode: 'received', scale: 'fixed', show: 'weights' });
// What the maps show: the attention weights, value-weighted attention
// (value_weighted.js) or gradient-weighted relevance (relevance.js).
export const SHOWS = Object.freeze([
  { value: 'weights', label: 'weights' },
  { value: 'value', label: 'value-weighted' },
  { value: 'relevance', label: 'relevance' },
]);
const SAVED = ['run', 'tag', 'example', 'step', 'head', 'mode', 'show', 'scale', 'zoom', 'zoomFor', 'picked', 'pickedFor',
  'metric', 'rank', 'headsOpen', 'modelOpen', 'direction', 'pinned', 'pinnedFor', 'patch', 'patchFor', 'opacity', 'compareZoom'];
export const DEFAULT_OPACITY = 60; // percent: the image view's heatmap over the image

export function loadState(storage) {
  try {
    const saved = JSON.parse(storage.getItem(STORAGE_KEY) || '{}');
    return { ...DEFAULTS, ...(saved && typeof saved === 'object' ? saved : {}) };
  } catch {
    return { ...DEFAULTS };
  }
}

export function saveState(state, storage) {
  const out = {};
  for (const key of SAVED) if (state[key] !== undefined) out[key] = state[key];
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(out));
  } catch {
    // storage full or disabled: the view still works, it is just not kept
  }
}

/** A run's layers in model order (the `layer_index` of /index), stable for ties. */
export function layersInModelOrder(layers) {
  const order = (l) => (Number.isInteger(l.layer_index) ? l.layer_index : Infinity);
  return layers.map((l, i) => [l, i]).sort((a, b) => order(a[0]) - order(b[0]) || a[1] - b[1]).map(([l]) => l);
}

/** An example whose map has no cells: every token was padding. */
export const isEmptyExample = (ex) => !(ex.query_length > 0 && ex.key_length > 0);

/** Key of what zoom is kept for (a map's shape belongs to run, layer and example). */
export const zoomKey = (s) => JSON.stringify([s.run, s.tag, s.example]);
/** Key of what followed tokens are positions in (they index the mode's tokens). */
export const pickedKey = (s) => JSON.stringify([s.run, s.tag, s.example, s.mode]);
/** Key of what the text view's pinned token is a position in (the layer's query or key tokens). */
export const pinnedKey = (s) => JSON.stringify([s.run, s.tag, s.example]);
/** Key of what the image view's picked patch belongs to (the probe image; every layer over it shares it). */
export const patchKey = (s) => JSON.stringify([s.run, s.example]);

/**
 * Fixes state in place against the index's runs: an unknown run, layer,
 * example, step or head falls back to the first run, first layer in model
 * order, example 0, the newest step, the head mean. Returns {run, layer, example}.
 */
export function resolve(state, runs) {
  let run = runs.find((r) => r.run === state.run);
  if (!run) run = runs[0];
  state.run = run.run;
  let layer = run.layers.find((l) => l.tag === state.tag);
  if (!layer) layer = layersInModelOrder(run.layers)[0];
  state.tag = layer.tag;
  if (!(Number.isInteger(state.example) && state.example >= 0 && state.example < layer.examples.length)) state.example = 0;
  if (!layer.steps.includes(state.step)) state.step = layer.steps[layer.steps.length - 1];
  const h = state.head;
  if (layer.num_heads === 1) state.head = 0;
  else if (!(h === 'mean' || h === 'max' || (Number.isInteger(h) && h >= 0 && h < layer.num_heads))) state.head = 'mean';
  if (state.mode !== 'received' && state.mode !== 'given') state.mode = 'received';
  if (state.scale !== 'fixed' && state.scale !== 'stretch' && state.scale !== 'ratio') state.scale = 'fixed';
  if (!SHOWS.some((s) => s.value === state.show)) state.show = 'weights';
  if (state.pickedFor !== pickedKey(state) || !Array.isArray(state.picked)) {
    state.picked = [];
    state.pickedFor = pickedKey(state);
  }
  if (state.direction !== 'gives' && state.direction !== 'receives') state.direction = 'gives';
  if (typeof state.modelOpen !== 'boolean') state.modelOpen = true;
  if (!(Number.isInteger(state.opacity) && state.opacity >= 0 && state.opacity <= 100)) state.opacity = DEFAULT_OPACITY;
  // A pinned token or picked patch is a position in one example: dropped when another is shown.
  const ex = layer.examples[state.example];
  const p = state.pinned;
  const pinLength = p && (p.side === 'query' ? ex.query_length : p.side === 'key' ? ex.key_length : 0);
  if (state.pinnedFor !== pinnedKey(state) || !(p && Number.isInteger(p.index) && p.index >= 0 && p.index < pinLength)) {
    state.pinned = null;
    state.pinnedFor = pinnedKey(state);
  }
  if (state.patchFor !== patchKey(state) || !(Number.isInteger(state.patch) && state.patch >= 0)) {
    state.patch = null; // the image view's default: the class token, or the centre patch
    state.patchFor = patchKey(state);
  }
  return { run, layer, example: layer.examples[state.example] };
}
