import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DIVERGING_LUT, diffMap, divergingColor, divergingIndex, maxAbs, nearestStep, rankHeadChanges, sameTokens,
  TB_PALETTE, topChanges, visibleRuns,
} from '../compare.js';

const f32 = (a) => Float32Array.from(a);

test('a map minus itself is zero everywhere', () => {
  const a = f32([0.1, 0.2, 0.7, 0.25, 0.25, 0.5]);
  assert.deepEqual([...diffMap(a, a)], [0, 0, 0, 0, 0, 0]);
  assert.equal(maxAbs(diffMap(a, a)), 0);
  assert.deepEqual(topChanges(diffMap(a, a), 3), []);
});

test('the difference is a - b cell by cell', () => {
  const d = diffMap(f32([0.5, 0.5, 1, 0]), f32([0.25, 0.75, 0, 0]));
  assert.deepEqual([...d], [0.25, -0.25, 1, 0]);
  assert.throws(() => diffMap(f32([1]), f32([1, 2])));
});

test('largest changes come first with their query row and key column', () => {
  // 2 x 3 map: changes +0.1 at (0,1), -0.4 at (1,0), +0.4 at (1,2)
  const d = f32([0, 0.1, 0, -0.4, 0, 0.4]);
  const top = topChanges(d, 3, 2);
  assert.deepEqual(top.map((c) => [c.row, c.col]), [[1, 0], [1, 2]]); // tie: cell order
  assert.ok(Math.abs(top[0].delta + 0.4) < 1e-7);
});

test('heads are ranked by mean absolute change', () => {
  const ranked = rankHeadChanges([
    { tag: 'l0', head: 0, a: f32([0.5, 0.5]), b: f32([0.5, 0.5]) }, // 0
    { tag: 'l0', head: 1, a: f32([1, 0]), b: f32([0, 1]) }, // mean |d| 1
    { tag: 'l1', head: 0, a: f32([0.6, 0.4]), b: f32([0.4, 0.6]) }, // 0.2
    { tag: 'l1', head: 1, a: f32([0.4, 0.6]), b: f32([0.6, 0.4]) }, // 0.2, after l1/0
  ]);
  assert.deepEqual(ranked.map((r) => `${r.tag}/${r.head}`), ['l0/1', 'l1/0', 'l1/1', 'l0/0']);
  assert.ok(Math.abs(ranked[1].change - 0.2) < 1e-6);
});

test('the diverging scale is white at 0, blue below, red above, symmetric', () => {
  assert.equal(divergingIndex(0, 0.5), 128);
  assert.equal(divergingIndex(0, 0), 128);
  assert.deepEqual(divergingColor(0, 1), [247, 247, 247]);
  assert.deepEqual(divergingColor(-1, 1), [5, 48, 97]);
  assert.deepEqual(divergingColor(1, 1), [103, 0, 31]);
  assert.equal(divergingIndex(0.25, 0.5), 256 - divergingIndex(-0.25, 0.5));
  assert.equal(DIVERGING_LUT.length, 257 * 3);
});

test('runs follow the host: hidden runs are left out, colours from the table or the palette in host order', () => {
  const runs = ['b', 'a', 'c'];
  assert.deepEqual(visibleRuns(runs, ['a', 'b', 'c'], null),
    [{ run: 'b', color: TB_PALETTE[1].light }, { run: 'a', color: TB_PALETTE[0].light }, { run: 'c', color: TB_PALETTE[2].light }]);
  assert.equal(visibleRuns(runs, ['a', 'b'], null, true)[1].color, TB_PALETTE[0].dark);
  const table = [{ run: 'a', selected: true, color: 'rgb(1, 2, 3)' }, { run: 'b', selected: false, color: 'x' }];
  assert.deepEqual(visibleRuns(runs, ['a', 'b', 'c'], table), [{ run: 'a', color: 'rgb(1, 2, 3)' }]); // c: filtered out of the table
});

test('nearest step and same probe', () => {
  assert.equal(nearestStep([0, 10, 20], 14), 10);
  assert.equal(nearestStep([0, 10, 20], 15), 10);
  assert.equal(nearestStep([], 3), undefined);
  const ex = { query_tokens: ['a', 'b'], key_tokens: ['a', 'b'] };
  assert.ok(sameTokens(ex, { query_tokens: ['a', 'b'], key_tokens: ['a', 'b'] }));
  assert.ok(!sameTokens(ex, { query_tokens: ['a', 'c'], key_tokens: ['a', 'b'] }));
});

test('in the dark theme 0 is the page\'s dark grey and a larger |change| is brighter', async () => {
  const { DARK_ZERO } = await import('../compare.js');
  assert.deepEqual(divergingColor(0, 1, true), DARK_ZERO);
  assert.notDeepEqual(divergingColor(0, 1, true), [247, 247, 247]);
  const light = (rgb) => 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
  for (const sign of [-1, 1]) {
    const ramp = [0, 0.25, 0.5, 0.75, 1].map((t) => light(divergingColor(sign * t, 1, true)));
    for (let i = 1; i < ramp.length; i++) assert.ok(ramp[i] > ramp[i - 1], `${sign}: ${ramp}`);
  }
  assert.ok(divergingColor(-1, 1, true)[2] > divergingColor(-1, 1, true)[0]); // blue lower
  assert.ok(divergingColor(1, 1, true)[0] > divergingColor(1, 1, true)[2]); // red higher
});

test('runs are compared only where their layer of that name is of the same kind and shape', async () => {
  const { comparableWhy } = await import('../compare.js');
  const ex = (q, k) => ({ query_length: q, key_length: k, query_tokens: [], key_tokens: [] });
  const imdb = { tag: 'attention', kind: 'self', examples: [ex(40, 40)] };
  const run = (layers) => ({ layers });
  assert.equal(comparableWhy(imdb, 0, run([{ tag: 'attention', kind: 'self', examples: [ex(40, 40)] }])), '');
  assert.equal(comparableWhy(imdb, 0, run([{ tag: 'attention', kind: 'cross', examples: [ex(9, 8)] }])),
    'its attention is cross attention, this one self');
  assert.equal(comparableWhy(imdb, 0, run([{ tag: 'attention', kind: 'self', examples: [ex(30, 30)] }])),
    'its example 0 is 30 x 30 tokens, this one 40 x 40');
  assert.equal(comparableWhy(imdb, 0, run([{ tag: 'other', kind: 'self', examples: [ex(40, 40)] }])), 'no layer attention');
  assert.equal(comparableWhy(imdb, 1, run([{ tag: 'attention', kind: 'self', examples: [ex(40, 40)] }])), 'no example 1');
});

test('side-by-side labels are at least 9 px or not drawn', async () => {
  const { labelFontPx } = await import('../compare.js');
  assert.equal(labelFontPx(7), 0); // was a 6 px font (5 px as drawn)
  assert.equal(labelFontPx(10), 0);
  assert.equal(labelFontPx(11), 9);
  assert.equal(labelFontPx(24), 11);
});
