import assert from 'node:assert/strict';
import test from 'node:test';

import { decodeImportance, decodeMaps, headMax, headMean, parseShape } from '../decode.js';

test('uint8 maps decode to byte / 255 in head, row, column order', () => {
  const bytes = Uint8Array.from([255, 0, 51, 204, 0, 255, 102, 153]); // 2 heads x 2 x 2
  const maps = decodeMaps(bytes.buffer, [2, 2, 2], 'uint8');
  assert.ok(Math.abs(maps.data[2] - 0.2) < 1e-7); // head 0, row 1, col 0
  assert.ok(Math.abs(maps.data[7] - 0.6) < 1e-7); // head 1, row 1, col 1
});

test('float32 maps decode exactly, little-endian', () => {
  const values = Float32Array.from([0.125, 0.875, 0.5, 0.5]);
  const maps = decodeMaps(values.buffer, [1, 2, 2], 'float32');
  assert.deepEqual([...maps.data], [0.125, 0.875, 0.5, 0.5]);
});

test('wrong sizes and headers are errors, not garbage', () => {
  assert.throws(() => decodeMaps(new ArrayBuffer(3), [1, 2, 2], 'uint8'), /expected 4 bytes/);
  assert.throws(() => decodeMaps(new ArrayBuffer(4), [1, 2, 2], 'png'), /unknown encoding/);
  assert.throws(() => parseShape('2,x,3'), /bad X-Attention-Shape/);
  assert.deepEqual(parseShape('2,3,4'), [2, 3, 4]);
});

test('head mean and max are cell-wise over heads', () => {
  const maps = { heads: 2, q: 1, k: 2, data: Float32Array.from([0.2, 0.8, 0.6, 0.4]) };
  assert.deepEqual([...headMean(maps)].map((v) => v.toFixed(3)), ['0.400', '0.600']);
  assert.deepEqual([...headMax(maps)].map((v) => v.toFixed(3)), ['0.600', '0.800']);
});

test('binary importance: float64 steps, then one float32 row per step', () => {
  const buffer = new ArrayBuffer(2 * 8 + 2 * 3 * 4); // 2 steps x 3 tokens
  new Float64Array(buffer, 0, 2).set([0, 100]);
  new Float32Array(buffer, 16, 6).set([1.5, 0.25, 0.25, 0.5, 2, 0.5]);
  const { steps, values } = decodeImportance(buffer, parseShape('2,3', 2));
  assert.deepEqual(steps, [0, 100]);
  assert.deepEqual([...values[1]], [0.5, 2, 0.5]); // step 100, tokens 0..2
  assert.throws(() => decodeImportance(new ArrayBuffer(20), [2, 3]), /expected 40 bytes/);
  assert.throws(() => parseShape('2,3,4', 2), /bad X-Attention-Shape/);
});

test('headMeanMax gives headMean and headMax in one pass', async () => {
  const { headMeanMax, headMean, headMax } = await import('../decode.js');
  const maps = { heads: 3, q: 1, k: 2, data: Float32Array.of(0.1, 0.9, 0.5, 0.2, 0.3, 0.4) };
  const { mean, max } = headMeanMax(maps);
  assert.deepEqual([...mean], [...headMean(maps)]);
  assert.deepEqual([...max], [...headMax(maps)]);
  assert.deepEqual([...max], [Math.fround(0.5), Math.fround(0.9)]);
});
