import assert from 'node:assert/strict';
import test from 'node:test';

import { decodeMaps, floatMaps, headMap } from '../decode.js';
import { missingValueText, valueVectorText, valueWeighted } from '../value_weighted.js';

const close = (actual, expected) => {
  assert.equal(actual.length, expected.length);
  // float32 shares of float64 hand values: a few float32 ulps of numbers <= 1
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `${i}: ${v} vs ${expected[i]}`));
};

test('each row becomes its shares of weight x norm', () => {
  // 1 head, 2 queries x 3 keys; key 0 a sink with a tiny value vector
  const maps = floatMaps(1, 2, 3, new Float32Array([0.8, 0.1, 0.1, 0.5, 0.5, 0]));
  const shares = valueWeighted(maps, [[0.1, 1, 2]]);
  // row 0: 0.08, 0.1, 0.2 of 0.38; row 1: 0.05, 0.5, 0 of 0.55
  close(headMap(shares, 0), [0.08 / 0.38, 0.1 / 0.38, 0.2 / 0.38, 0.05 / 0.55, 0.5 / 0.55, 0]);
  assert.ok(headMap(shares, 0)[0] < 0.25); // the sink's weight 0.8 carries a fifth of what arrives
});

test('uint8 maps are read as their weights, heads apart; a row sending nothing stays 0', () => {
  const bytes = new Uint8Array([255, 0, 51, 204, /* head 1 */ 0, 0, 128, 127]).buffer;
  const maps = decodeMaps(bytes, [2, 2, 2], 'uint8');
  const shares = valueWeighted(maps, [[1, 1], [3, 1]]);
  close(headMap(shares, 0), [1, 0, 0.2, 0.8]);
  close(headMap(shares, 1), [0, 0, (128 * 3) / (128 * 3 + 127), 127 / (128 * 3 + 127)]);
});

test('norms that do not fit the maps are refused; negative or missing ones send nothing', () => {
  const maps = floatMaps(1, 1, 2, new Float32Array([0.5, 0.5]));
  assert.throws(() => valueWeighted(maps, [[1]]), /do not fit maps of 1 heads x 2 keys/);
  assert.throws(() => valueWeighted(maps, [[1, 1], [1, 1]]), /do not fit/);
  close(headMap(valueWeighted(maps, [[-1, null]]), 0), [0, 0]);
});

test('a layer without value norms says why; the vector is named only when it is not the usual one', () => {
  assert.match(missingValueText({ layer: 'enc/attention_weights', value_vector: null }),
    /^value-weighted maps are missing for enc\/attention_weights: it stored no value norms/);
  assert.equal(missingValueText({ layer: 'mha', value_vector: 'value_output' }), '');
  assert.equal(valueVectorText({ value_vector: 'value_output' }), '');
  assert.match(valueVectorText({ value_vector: 'value_only' }), /no output projection per head/);
});

test('an exported map says in its file name whether it is value-weighted', async () => {
  const { mapKind } = await import('../export.js');
  assert.equal(mapKind({ show: 'value' }), 'value-weighted');
  assert.equal(mapKind({ show: 'weights' }), 'attention');
  assert.equal(mapKind({}), 'attention');
});

test('the maps cache tells its fetch how large a step is (the value-weighted cache reads the weights cache with it)', async () => {
  const { MapsCache } = await import('../maps_cache.js');
  const asked = [];
  const cache = new MapsCache(async (...args) => { asked.push(args); return args; });
  await cache.get('run', 'tag', 1, 40, 4096);
  await cache.get('run', 'tag', 1, 40, 4096); // cached: not fetched again
  assert.deepEqual(asked, [['run', 'tag', 40, 1, 4096]]);
});
