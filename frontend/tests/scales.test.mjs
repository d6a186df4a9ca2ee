// The colour scales (scales.js), ratio to uniform above all, checked against
// values worked out by hand, and the heatmap's painting of ratios.
import assert from 'node:assert/strict';
import test from 'node:test';

import { LUT } from '../colors.js';
import { paintMap } from '../heatmap.js';
import {
  RATIO, SCALE_NAMES, knownScale, ratioIndex, ratioText, ratioValues, rowCount, scaleLegend, visibleCounts,
} from '../scales.js';
import { visibleRanges } from '../visibility.js';

const facts = (kind, window = 0, keys = 4) => ({ kind, window, queryOffset: 0, keyOffset: 0, keys });

test('ratio to uniform is painted on a log scale: 1 the middle, 1/4 and 4 the ends, 0 the darkest', () => {
  assert.equal(ratioIndex(1), 128); // (0 + 2) / 4 * 255 = 127.5, rounded up
  assert.equal(ratioIndex(4), 255);
  assert.equal(ratioIndex(100), 255);
  assert.equal(ratioIndex(0.25), 0);
  assert.equal(ratioIndex(0.01), 0);
  assert.equal(ratioIndex(0), 0);
  assert.equal(ratioIndex(NaN), 0);
  assert.equal(ratioIndex(2), 191); // (1 + 2) / 4 * 255 = 191.25
  // IMDB's sentiment columns: 0.04 where uniform is 1/41, 1.64x: a quarter of the way up from the middle
  assert.equal(ratioIndex(0.04 * 41), Math.round(((Math.log2(1.64) + 2) / 4) * 255));
  assert.ok(ratioIndex(0.04 * 41) - ratioIndex(1) >= 45);
});

test('each row counts the keys its query sees: causal row r sees r + 1, a window of 2 at most 3 (self) or 2 (causal)', () => {
  assert.deepEqual([...visibleCounts(null, 3, 5)], [5, 5, 5]);
  assert.deepEqual([...visibleCounts(visibleRanges(facts('causal'), 4), 4, 4)], [1, 2, 3, 4]);
  assert.deepEqual([...visibleCounts(visibleRanges(facts('self', 2), 4), 4, 4)], [2, 3, 3, 2]);
  assert.deepEqual([...visibleCounts(visibleRanges(facts('causal', 2), 4), 4, 4)], [1, 2, 2, 2]);
  assert.deepEqual([0, 1, 2, 3].map((r) => rowCount(r, facts('causal'), 4)), [1, 2, 3, 4]);
  assert.equal(rowCount(2, null, 7), 7);
});

test('ratios are weight x visible keys: uniform causal rows are all 1', () => {
  // causal 3 x 3, uniform over what each query sees: 1, 1/2 1/2, 1/3 1/3 1/3
  const w = [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3];
  const ranges = visibleRanges(facts('causal', 0, 3), 3);
  const r = ratioValues(Float32Array.from(w), 0, 3, 3, ranges);
  assert.deepEqual([...r].map((v) => Math.round(v * 1e6) / 1e6), [1, 0, 0, 1, 1, 0, 1, 1, 1]);
  // uint8 bytes (levels 255) of one row over 4 keys: 0.5 is 2x uniform, 0.1 is 0.4x
  const bytes = Uint8Array.from([Math.round(0.5 * 255), Math.round(0.1 * 255), 51, 51]);
  const rb = ratioValues(bytes, 255, 1, 4, null);
  assert.ok(Math.abs(rb[0] - 2) < 4 / 255 && Math.abs(rb[1] - 0.4) < 4 / 255);
});

test('a painted ratio map: uniform cells are the middle colour, hidden cells transparent', () => {
  const canvas = {
    width: 0, height: 0, style: {}, dataset: {},
    getContext: () => ({
      createImageData: (width, height) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) }),
      putImageData: () => {},
    }),
  };
  const ranges = visibleRanges(facts('causal', 0, 2), 2);
  paintMap(canvas, ratioValues(Float32Array.from([1, 0, 0.5, 0.5]), 0, 2, 2, ranges), 2, 2, RATIO, 0, ranges);
  const px = (i) => [...canvas.attentionImage.data.slice(i * 4, i * 4 + 4)];
  const middle = [LUT[128 * 3], LUT[128 * 3 + 1], LUT[128 * 3 + 2], 255];
  assert.deepEqual(px(0), middle);
  assert.deepEqual(px(1), [0, 0, 0, 0]);
  assert.deepEqual(px(2), middle);
  assert.deepEqual(px(3), middle);
  assert.equal(canvas.dataset.vmax, RATIO);
});

test('ratios and legends in words', () => {
  assert.equal(ratioText(1.6402), '1.6× uniform');
  assert.equal(ratioText(0.5), '0.50× uniform');
  assert.equal(ratioText(12.3), '12× uniform');
  assert.equal(ratioText(0), '0× uniform');
  assert.deepEqual(SCALE_NAMES, ['fixed', 'stretch', 'ratio']);
  assert.equal(knownScale('ratio'), 'ratio');
  assert.equal(knownScale('log'), 'fixed');
  const ratio = scaleLegend('ratio');
  assert.equal(ratio.min, '≤ ¼');
  assert.equal(ratio.max, '≥ 4');
  assert.match(ratio.text, /1 = uniform/);
  assert.deepEqual(scaleLegend('fixed').max, '1.000');
  assert.match(scaleLegend('stretch', 0.0234).text, /stretched to this step's max \(0\.023\)/);
});
