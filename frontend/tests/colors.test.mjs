import assert from 'node:assert/strict';
import test from 'node:test';

import { ANCHORS, LUT, colorIndex, colorOf } from '../colors.js';

test('ends of the scale are the first and last anchors', () => {
  assert.deepEqual(colorOf(0, 0.5), ANCHORS[0]);
  assert.deepEqual(colorOf(0.5, 0.5), ANCHORS[ANCHORS.length - 1]);
});

test('weights are placed on 0..vmax and clamped', () => {
  assert.equal(colorIndex(0.25, 0.5), 128); // round(0.5 * 255)
  assert.equal(colorIndex(2, 1), 255);
  assert.equal(colorIndex(-1, 1), 0);
  assert.equal(colorIndex(0.3, 0), 0); // an all-zero map has no scale
});

test('the table has 256 RGB entries, anchor 1 at index 255/9', () => {
  assert.equal(LUT.length, 256 * 3);
  const i = Math.round(255 / (ANCHORS.length - 1)); // 28: t = 0.988 anchors
  const t = (i / 255) * (ANCHORS.length - 1);
  const expected = ANCHORS[0].map((c, k) => Math.round(c * (1 - t) + ANCHORS[1][k] * t));
  assert.deepEqual([...LUT.slice(i * 3, i * 3 + 3)], expected);
});
