// Which cells a query can see (visibility.js), checked against values worked
// out by hand, and how the heatmap paints the cells it cannot see.
import assert from 'node:assert/strict';
import test from 'node:test';

import { LUT } from '../colors.js';
import { paintMap, paintMapAt } from '../heatmap.js';
import {
  exampleRanges, hiddenReason, hidesCells, notVisibleText, poolRanges, unionRanges, visibilityFacts, visibleRange,
  visibleRanges, windowText,
} from '../visibility.js';

const facts = (kind, window = 0, keys = 9, queryOffset = 0, keyOffset = 0) => ({ kind, window, queryOffset, keyOffset, keys });
const rows = (f, n) => Array.from({ length: n }, (_, r) => visibleRange(r, f));

test('causal: row r sees columns 0..r', () => {
  assert.deepEqual(rows(facts('causal', 0, 4), 4), [[0, 0], [0, 1], [0, 2], [0, 3]]);
});

test('causal with a window of 4 (Gemma3 local layers): row r sees r-3..r', () => {
  assert.deepEqual(rows(facts('causal', 4, 9), 9), [
    [0, 0], [0, 1], [0, 2], [0, 3], [1, 4], [2, 5], [3, 6], [4, 7], [5, 8],
  ]);
  assert.deepEqual(visibleRange(8, facts('causal', 4)), [5, 8]); // row 8, column 0: outside the window
});

test('self with a window of 2 (no causal mask): row r sees r-1..r+1', () => {
  assert.deepEqual(rows(facts('self', 2, 5), 5), [[0, 1], [0, 2], [1, 3], [2, 4], [3, 4]]);
});

test('offsets: positions are in the padded input', () => {
  // Left padding of 3 for queries and keys: the window is the same in map cells.
  assert.deepEqual(rows(facts('causal', 2, 3, 3, 3), 3), [[0, 0], [0, 1], [1, 2]]);
  // Queries start 2 positions after the keys: row 0 is position 2, it sees key positions 1, 2 = columns 1, 2.
  assert.deepEqual(visibleRange(0, facts('causal', 2, 6, 2, 0)), [1, 2]);
  // Keys start 2 positions after the queries: row 0 (position 0) sees no kept key at all.
  const early = facts('causal', 0, 4, 0, 2);
  const [first, last] = visibleRange(0, early);
  assert.ok(first > last);
  assert.deepEqual(visibleRange(3, early), [0, 1]); // position 3 sees key positions 2, 3
});

test('cross attention and self without a window see every key', () => {
  assert.deepEqual(rows(facts('cross', 0, 5), 3), [[0, 4], [0, 4], [0, 4]]);
  assert.deepEqual(rows(facts('cross', 2, 5), 3), [[0, 4], [0, 4], [0, 4]]); // a window is for self-attention only
  assert.deepEqual(rows(facts('self', 0, 5), 3), [[0, 4], [0, 4], [0, 4]]);
  assert.equal(hidesCells(facts('self')), false);
  assert.equal(hidesCells(facts('cross', 4)), false);
  assert.equal(visibleRanges(facts('self'), 9), null); // the painting's plain path
  assert.equal(visibleRanges(facts('cross', 4), 9), null);
});

test('visibleRanges holds every row, first then last', () => {
  assert.deepEqual([...visibleRanges(facts('causal', 2, 3), 3)], [0, 0, 0, 1, 1, 2]);
});

test('the reason a cell is hidden names causal masking or the window', () => {
  const f = facts('causal', 4);
  assert.equal(hiddenReason(8, 0, f), 'outside the sliding window of 4 keys');
  assert.equal(hiddenReason(2, 5, f), 'after the query (causal)');
  assert.equal(hiddenReason(8, 5, f), ''); // visible
  assert.equal(hiddenReason(8, 8, f), '');
  assert.equal(hiddenReason(0, 1, facts('causal')), 'after the query (causal)');
  assert.equal(hiddenReason(0, 3, facts('self', 2)), 'outside the sliding window of 2 keys'); // after, but not causal
  assert.equal(hiddenReason(0, 3, facts('self', 1)), 'outside the sliding window of 1 key');
});

test('the layer is described with its window, and the legend says what hatched cells are', () => {
  assert.equal(windowText(facts('causal', 4)), 'sliding window of 4 keys (each query sees itself and the 3 keys before it)');
  assert.equal(windowText(facts('self', 4)), 'sliding window of 4 keys (each query sees the keys fewer than 4 positions away)');
  assert.equal(windowText(facts('causal', 0)), '');
  assert.equal(windowText(facts('cross', 4)), '');
  assert.equal(notVisibleText(facts('causal', 0)), "not visible: keys after the query (causal); a weight of 0 is the scale's darkest colour");
  assert.equal(notVisibleText(facts('causal', 4)),
    "not visible: keys after the query (causal) or outside its sliding window of 4 keys; a weight of 0 is the scale's darkest colour");
  assert.equal(notVisibleText(facts('self', 4)), "not visible: keys outside its sliding window of 4 keys; a weight of 0 is the scale's darkest colour");
});

test('facts come from /index: the layer kind and window, the example offsets and key count', () => {
  const layer = { kind: 'causal', sliding_window: 4 };
  const example = { query_offset: 1, key_offset: 2, query_length: 9, key_length: 8 };
  assert.deepEqual(visibilityFacts(layer, example), { kind: 'causal', window: 4, queryOffset: 1, keyOffset: 2, keys: 8 });
  assert.equal(visibilityFacts({ kind: 'self' }, example).window, 0); // an older server sends no sliding_window
  const ranges = exampleRanges(layer, example);
  assert.equal(ranges.length, 18);
  assert.equal(exampleRanges(layer, example), ranges); // made once per example
  assert.equal(exampleRanges({ kind: 'self', sliding_window: 0 }, { ...example }), null);
});

test('pooled ranges: a pixel is visible when a cell it covers is', () => {
  // causal 4 x 4 pooled to 2 x 2: pixel (0, 1) covers rows 0-1 x columns 2-3, all hidden.
  const ranges = visibleRanges(facts('causal', 0, 4), 4);
  assert.deepEqual([...poolRanges(ranges, 4, 4, 2, 2)], [0, 0, 0, 1]);
  // window 2, 6 x 6 to 3 x 3: rows 0-1 see 0..1, rows 2-3 see 1..3, rows 4-5 see 3..5 -> pixels 0..0, 0..1, 1..2
  assert.deepEqual([...poolRanges(visibleRanges(facts('causal', 2, 6), 6), 6, 6, 3, 3)], [0, 0, 0, 1, 1, 2]);
  // a group of rows that see nothing stays empty
  const none = poolRanges(Int32Array.from([1, 0, 1, 0, 0, 3, 0, 3]), 4, 4, 2, 2);
  assert.ok(none[0] > none[1]);
  assert.deepEqual([...none.subarray(2)], [0, 1]);
  assert.equal(poolRanges(null, 4, 4, 2, 2), null);
});

test('union of two maps\' ranges: hidden only where both hide', () => {
  assert.deepEqual([...unionRanges(Int32Array.from([0, 1, 2, 1]), Int32Array.from([1, 2, 0, 0]))], [0, 2, 0, 0]);
  assert.equal(unionRanges(null, Int32Array.from([0, 1])), null);
});

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

const ZERO = [LUT[0], LUT[1], LUT[2], 255]; // the colour of a weight of 0
const HIDDEN = [0, 0, 0, 0]; // transparent: the canvas's hatch shows

function pixelsOf(canvas) {
  const d = canvas.attentionImage.data;
  return Array.from({ length: canvas.height }, (_, r) => Array.from({ length: canvas.width }, (_, c) => [...d.subarray(4 * (r * canvas.width + c), 4 * (r * canvas.width + c) + 4)]));
}

test('hidden cells are painted transparent, a visible weight of 0 in the scale\'s colour, bytes and floats alike', () => {
  const ranges = visibleRanges(facts('causal', 2, 3), 3); // row 0: 0..0, row 1: 0..1, row 2: 1..2
  for (const [values, levels] of [[new Uint8Array(9), 255], [new Float32Array(9), 0]]) {
    const canvas = fakeCanvas();
    paintMap(canvas, values, 3, 3, 1, levels, ranges);
    assert.deepEqual(pixelsOf(canvas), [
      [ZERO, HIDDEN, HIDDEN],
      [ZERO, ZERO, HIDDEN],
      [HIDDEN, ZERO, ZERO],
    ]);
    assert.equal(canvas.dataset.hidesCells, 'true');
  }
  const plain = fakeCanvas();
  paintMap(plain, new Uint8Array(9), 3, 3, 1, 255, null);
  assert.ok(pixelsOf(plain).flat().every((p) => p.join() === ZERO.join()));
});

test('a row that sees no key is hidden whole; ranges of another shape are ignored', () => {
  const canvas = fakeCanvas();
  paintMap(canvas, new Uint8Array(4), 2, 2, 1, 255, Int32Array.from([1, 0, 0, 1]));
  assert.deepEqual(pixelsOf(canvas), [[HIDDEN, HIDDEN], [ZERO, ZERO]]);
  paintMap(canvas, new Uint8Array(4), 2, 2, 1, 255, Int32Array.from([1, 0]));
  assert.deepEqual(pixelsOf(canvas), [[ZERO, ZERO], [ZERO, ZERO]]);
});

test('a pooled thumbnail hides the pixels whose cells are all hidden', () => {
  const canvas = fakeCanvas();
  const ranges = visibleRanges(facts('causal', 0, 4), 4);
  const painted = paintMapAt(canvas, new Uint8Array(16), 4, 4, 1, 2, 2, 1, 255, ranges);
  assert.equal(painted.pooled, true);
  assert.deepEqual([...painted.ranges], [0, 0, 0, 1]);
  assert.deepEqual(pixelsOf(canvas), [[ZERO, HIDDEN], [ZERO, ZERO]]);
});
