// uint8 maps are painted from their bytes (no float copy): the pixels must be
// the ones the float weights gave, on the fixed and the stretched scale.
import assert from 'node:assert/strict';
import test from 'node:test';

import {
  decodeMaps, headCells, headMap, headMax, headMean, headMeanCells, headMeanMax, mapsMax, maxOf, maxOfArrays,
} from '../decode.js';
import { LUT } from '../colors.js';
import { maxPool, paintMap, paintMapAt } from '../heatmap.js';

/** Enough of a canvas for paintMap: its pixels end up in canvas.attentionImage.data. */
function fakeCanvas() {
  return {
    width: 0, height: 0, style: {}, dataset: {},
    getContext: () => ({
      createImageData: (width, height) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) }),
      putImageData: () => {},
    }),
  };
}

function painted(values, rows, cols, vmax, levels) {
  const canvas = fakeCanvas();
  paintMap(canvas, values, rows, cols, vmax, levels);
  return canvas.attentionImage.data;
}

const EVERY_BYTE = Uint8Array.from({ length: 256 }, (_, i) => i);
const asFloats = (bytes) => Float32Array.from(bytes, (b) => b / 255); // what decoding to floats gave

test('every byte paints the colour its float weight painted, fixed scale and stretched', () => {
  for (const top of [255, 254, 200, 128, 37, 3, 1]) {
    const vmax = top === 255 ? 1 : Math.fround(top / 255); // stretched: the step's largest weight
    assert.deepEqual(painted(EVERY_BYTE, 16, 16, vmax, 255), painted(asFloats(EVERY_BYTE), 16, 16, vmax, 0), `vmax ${top}/255`);
  }
});

test('on the fixed scale byte b paints colour table entry b (what the browser tests read)', () => {
  const pixels = painted(EVERY_BYTE, 1, 256, 1, 255);
  for (let b = 0; b < 256; b++) {
    assert.deepEqual([...pixels.subarray(4 * b, 4 * b + 4)], [LUT[3 * b], LUT[3 * b + 1], LUT[3 * b + 2], 255]);
  }
});

test('a map shown smaller than its cells keeps a column that draws all attention, from bytes', () => {
  const rows = 4;
  const cols = 512;
  const bytes = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) bytes[i * cols + 300] = 255; // every query attends to key 300 only
  const pooled = maxPool(bytes, rows, cols, rows, 160);
  assert.ok(pooled instanceof Uint8Array);
  for (let i = 0; i < rows; i++) {
    const row = [...pooled.subarray(i * 160, (i + 1) * 160)];
    assert.deepEqual(row.filter((v) => v === 255).length, 1);
    assert.equal(row.indexOf(255), Math.floor((300 * 160) / 512));
  }
  // the thumbnail's pixels are those of the pooled floats
  const fromBytes = fakeCanvas();
  const fromFloats = fakeCanvas();
  paintMapAt(fromBytes, bytes, rows, cols, 1, 160, rows, 1, 255);
  paintMapAt(fromFloats, asFloats(bytes), rows, cols, 1, 160, rows, 1, 0);
  assert.equal(fromBytes.dataset.pooled, 'true');
  assert.deepEqual(fromBytes.attentionImage.data, fromFloats.attentionImage.data);
});

function randomMaps(heads, q, k, seed = 1) {
  const bytes = new Uint8Array(heads * q * k);
  let x = seed;
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

test('uint8 maps: head mean is the exact sum of bytes over heads, head max the largest byte', () => {
  const bytes = randomMaps(3, 5, 7);
  const maps = decodeMaps(bytes.slice().buffer, [3, 5, 7], 'uint8');
  const floats = { heads: 3, q: 5, k: 7, data: asFloats(bytes) };
  const derived = headMeanMax(maps);
  assert.equal(derived.meanCells.levels, 3 * 255);
  const mean = headMean(floats);
  for (let i = 0; i < 35; i++) {
    const sum = bytes[i] + bytes[35 + i] + bytes[70 + i];
    assert.equal(derived.meanCells.values[i], sum);
    assert.ok(Math.abs(derived.mean[i] - mean[i]) < 1e-6);
  }
  assert.deepEqual([...derived.max], [...headMax(floats)]);
  assert.equal(derived.maxCells.levels, 255);
  assert.equal(headMeanCells(maps), derived.meanCells); // computed once per step
  assert.equal(mapsMax(maps), maxOf(floats.data));
});

test('uint8 maps: the sum over heads is exact four cells at a time, and cell by cell where cells do not fill words', () => {
  // 257 heads of 255: the most a 16-bit half holds; 4 x 6 cells fill words, 3 x 5 do not
  for (const [heads, q, k] of [[257, 4, 6], [12, 8, 8], [257, 3, 5], [2, 1, 3]]) {
    const bytes = randomMaps(heads, q, k, heads);
    if (heads === 257) bytes.fill(255, 0, heads * q * k - 1);
    const maps = decodeMaps(bytes.slice().buffer, [heads, q, k], 'uint8');
    const expected = Array.from({ length: q * k }, (_, i) => {
      let sum = 0;
      for (let h = 0; h < heads; h++) sum += bytes[h * q * k + i];
      return sum;
    });
    assert.deepEqual([...headMeanCells(maps).values], expected, `${heads} x ${q} x ${k}`);
  }
});

test('maxPool gives each pixel the largest cell it covers, bytes four at a time or not, sums and floats', () => {
  const reference = (values, rows, cols, outRows, outCols) => {
    const out = new Array(outRows * outCols).fill(0);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const o = Math.floor((i * outRows) / rows) * outCols + Math.floor((j * outCols) / cols);
        out[o] = Math.max(out[o], values[i * cols + j]);
      }
    }
    return out;
  };
  for (const [rows, cols, outRows, outCols] of [[512, 512, 160, 160], [37, 300, 20, 160], [7, 513, 3, 200], [9, 8, 9, 3], [5, 5, 5, 5]]) {
    const bytes = randomMaps(1, rows, cols, rows * cols);
    for (const values of [bytes, Uint16Array.from(bytes, (b) => b * 12 + (b % 7)), asFloats(bytes)]) {
      assert.deepEqual([...maxPool(values, rows, cols, outRows, outCols)], reference(values, rows, cols, outRows, outCols),
        `${values.constructor.name} ${rows} x ${cols} -> ${outRows} x ${outCols}`);
    }
  }
});

test('the max of the heads\' pooled thumbnails is the pooled head max', () => {
  const [heads, q, k] = [5, 40, 300];
  const maps = decodeMaps(randomMaps(heads, q, k, 3).buffer, [heads, q, k], 'uint8');
  const pooled = Array.from({ length: heads }, (_, h) => maxPool(headCells(maps, h).values, q, k, 20, 160));
  assert.deepEqual(maxOfArrays(pooled), maxPool(headMeanMax(maps).maxCells.values, q, k, 20, 160));
});

test('uint8 maps: one head as floats without copying the others; cells are views of the reply', () => {
  const bytes = randomMaps(4, 3, 3, 7);
  const maps = decodeMaps(bytes.slice().buffer, [4, 3, 3], 'uint8');
  const head2 = headMap(maps, 2);
  assert.equal(maps.floats, null); // nothing else decoded
  assert.deepEqual([...head2], [...asFloats(bytes.subarray(18, 27))]);
  assert.deepEqual([...headMap(maps, 2)], [...maps.data.subarray(18, 27)]);
  const cells = headCells(maps, 1);
  assert.equal(cells.levels, 255);
  assert.equal(cells.values.buffer, maps.bytes.buffer);
});

test('float32 maps are the reply itself and paint as floats', () => {
  const values = Float32Array.from([0.125, 0.875, 0.5, 0.5]);
  const maps = decodeMaps(values.buffer, [1, 2, 2], 'float32');
  assert.equal(maps.data.buffer, values.buffer);
  assert.equal(headCells(maps, 0).levels, 0);
  assert.equal(headMeanMax(maps).meanCells.levels, 0);
  assert.equal(mapsMax(maps), 0.875);
});
