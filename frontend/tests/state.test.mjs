import assert from 'node:assert/strict';
import test from 'node:test';

import { maxPool } from '../heatmap.js';
import { otherShapesText, storageText, storedExamplesText } from '../index.js';
import { isEmptyExample, layersInModelOrder, loadState, resolve, saveState } from '../state.js';
import { maxOverHeads } from '../view_importance.js';

const ex = (n) => ({ query_length: n, key_length: n, query_tokens: [], key_tokens: [] });
const layer = (tag, index, heads = 2) => ({ tag, layer_index: index, num_heads: heads, steps: [0, 5], examples: [ex(3), ex(0)] });

test('layers are listed in model order, by layer_index', () => {
  const layers = [layer('cross', 2), layer('causal', 1), layer('self', 0)];
  assert.deepEqual(layersInModelOrder(layers).map((l) => l.tag), ['self', 'causal', 'cross']);
});

test('an unknown choice falls back to the first layer in model order, the newest step, the head mean', () => {
  const runs = [{ run: 'r', layers: [layer('b', 1), layer('a', 0)] }];
  const state = { run: 'gone', tag: 'gone', example: 7, step: 3, head: 9, mode: 'x', scale: 'y', show: 'gradients' };
  const { layer: chosen } = resolve(state, runs);
  assert.equal(chosen.tag, 'a');
  assert.deepEqual([state.run, state.example, state.step, state.head, state.mode, state.scale, state.show],
    ['r', 0, 5, 'mean', 'received', 'fixed', 'weights']);  // no such choice: the weights
  for (const kept of ['value', 'relevance']) { // kept for a layer without them too: the views say they are missing
    state.show = kept;
    resolve(state, runs);
    assert.equal(state.show, kept);
  }
});

test('followed tokens are kept for their run, layer, example and mode only', () => {
  const runs = [{ run: 'r', layers: [layer('a', 0)] }];
  const state = { run: 'r', tag: 'a', example: 0, step: 0, head: 0, mode: 'received' };
  resolve(state, runs);
  state.picked = [2];
  resolve(state, runs);
  assert.deepEqual(state.picked, [2]);
  state.mode = 'given'; // other tokens (query tokens): the positions mean nothing there
  resolve(state, runs);
  assert.deepEqual(state.picked, []);
});

test('state survives a save and a load; a damaged entry gives the defaults', () => {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  saveState({ run: 'r', zoom: 30, zoomFor: 'k', picked: [1], head: 'max' }, storage);
  assert.deepEqual(loadState(storage), { head: 'max', mode: 'received', scale: 'fixed', show: 'weights', run: 'r', zoom: 30, zoomFor: 'k', picked: [1] });
  saveState({ run: 'r', show: 'value' }, storage);
  assert.equal(loadState(storage).show, 'value');
  store.set('tb-attention-state', '{not json');
  assert.deepEqual(loadState(storage), { head: 'mean', mode: 'received', scale: 'fixed', show: 'weights' });
});

test('an example with no query or no key tokens is empty', () => {
  assert.equal(isEmptyExample(ex(0)), true);
  assert.equal(isEmptyExample({ query_length: 3, key_length: 0 }), true);
  assert.equal(isEmptyExample(ex(1)), false);
});

test('max pooling keeps a single peak column of a map shown smaller than its cells', () => {
  const cols = 9;
  const values = new Float32Array(2 * cols);
  values[cols + 4] = 1; // row 1, column 4
  const out = maxPool(values, 2, cols, 1, 3);
  assert.deepEqual([...out], [0, 1, 0]);
});

test('head max importance is the token-wise max over heads, not the head mean', () => {
  const values = [[[0.1, 0.9], [0.5, 0.2], [0.3, 0.55]]]; // one step, 2 heads + mean
  assert.deepEqual([...maxOverHeads(values, 2)[0]].map((v) => Math.round(v * 10) / 10), [0.5, 0.9]);
});

test('steps of another shape are stated in one line; absent or null says nothing', () => {
  assert.equal(otherShapesText({ steps: 3, first: 0, last: 20 }),
    '3 earlier steps (0..20) have another shape (the probe or model changed) and are not shown; read them with read_attention');
  assert.equal(otherShapesText(null), '');
  assert.equal(otherShapesText(undefined), '');
});

test('the layer line says when the callback stored fewer examples than the probe held', () => {
  const examples = [{}];
  assert.equal(storedExamplesText({ examples, probe_examples: 8 }), '1 of 8 probe examples stored (max_cells or max_map_bytes)');
  assert.equal(storedExamplesText({ examples, probe_examples: 0 }), ''); // all stored: the writer leaves it 0
  assert.equal(storedExamplesText({ examples }), ''); // an older server sends nothing
});

test('the layer line says what reduced maps hold; full maps and older servers say nothing', () => {
  assert.equal(storageText({ storage: 'reduced', top_k: 8, block_size: 16 }),
    "reduced maps: each row's 8 largest weights exact, the rest from 16 x 16 block means (within the row's 8th weight)");
  assert.equal(storageText({ storage: 'reduced', top_k: 2, block_size: 3 }).split('(')[1], "within the row's 2nd weight)");
  assert.equal(storageText({ storage: 'full', top_k: 0, block_size: 0 }), '');
  assert.equal(storageText({}), '');
});

test('a pinned token and a picked patch are kept for their example only, and checked against its length', () => {
  const runs = [{ run: 'r', layers: [layer('a', 0), layer('b', 1)] }];
  const state = { run: 'r', tag: 'a', example: 0, step: 0, head: 0, mode: 'received' };
  resolve(state, runs);
  assert.deepEqual([state.direction, state.opacity, state.modelOpen, state.pinned, state.patch], ['gives', 60, true, null, null]);
  Object.assign(state, { pinned: { side: 'key', index: 2 }, patch: 2, opacity: 35, direction: 'receives' });
  resolve(state, runs);
  assert.deepEqual([state.pinned, state.patch, state.opacity, state.direction], [{ side: 'key', index: 2 }, 2, 35, 'receives']);
  state.tag = 'b'; // another layer over the same image: the patch stays, the token (its tokens) goes
  resolve(state, runs);
  assert.deepEqual([state.pinned, state.patch], [null, 2]);
  state.pinned = { side: 'query', index: 3 }; // example 0 has 3 tokens
  state.opacity = 101;
  resolve(state, runs);
  assert.deepEqual([state.pinned, state.opacity], [null, 60]);
});

test('the Example list names an image by its index, a text by its first tokens', async () => {
  const { exampleLabel } = await import('../index.js');
  const tokens = ['CLS', '0,0', '0,1', '0,2', '1,0', '1,1', '1,2', '2,0'];
  const ex = { query_length: 8, key_length: 8, query_tokens: tokens, key_tokens: tokens };
  assert.equal(exampleLabel({ grid: { rows: 8, cols: 8, prefix: 1 } }, ex, 1), '1: image 1 (8 x 8 patches)');
  assert.equal(exampleLabel({}, ex, 0), '0: CLS 0,0 0,1 0,2 1,0 1,1 …');
  assert.equal(exampleLabel({}, { ...ex, query_length: 0, key_length: 0 }, 2), '2: (all padding)');
});
