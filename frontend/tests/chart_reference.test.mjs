// Charts carry their reference (issue 32 item 4): what uniform attention
// over the keys each query sees gives for the distance metrics
// (head_metrics.js), checked against sums done by hand; axes with room; dots
// of heads side by side (charts.js).
import assert from 'node:assert/strict';
import test from 'node:test';

import { axisTop, headOffset } from '../charts.js';
import { uniformMeanDistance, uniformPatchDistance } from '../head_metrics.js';

const facts = (kind, window = 0) => ({ kind, window, queryOffset: 0, keyOffset: 0, keys: 0 });
const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('uniform mean distance: self 3 x 3 is 8/9, causal n x n is (n - 1) / 4, a window of 2 keeps neighbours', () => {
  // rows: (0+1+2)/3, (1+0+1)/3, (2+1+0)/3 -> mean 8/9
  close(uniformMeanDistance(facts('self'), 3, 3), 8 / 9);
  // row i sees 0..i: mean i/2; over 10 rows 2.25
  close(uniformMeanDistance(facts('causal'), 10, 10), 2.25);
  // causal, window 2: row 0 sees itself (0), the others themselves and one before (1/2): (0 + 3 x 0.5) / 4
  close(uniformMeanDistance(facts('causal', 2), 4, 4), 1.5 / 4);
  assert.ok(Number.isNaN(uniformMeanDistance(facts('self'), 0, 3)));
});

test('uniform patch distance: a 2 x 2 grid is (0 + 1 + 1 + sqrt 2) / 4; class tokens are left out', () => {
  const expected = (2 + Math.SQRT2) / 4;
  close(uniformPatchDistance({ rows: 2, cols: 2, prefix: 0 }), expected);
  close(uniformPatchDistance({ rows: 2, cols: 2, prefix: 1 }), expected);
  // a 1 x 3 strip: rows (0+1+2)/3, (1+0+1)/3, (2+1+0)/3
  close(uniformPatchDistance({ rows: 1, cols: 3, prefix: 1 }), 8 / 9);
});

test('an axis with a reference has 15% of room over the higher of the data and the reference; without one, 5% or the ceiling', () => {
  close(axisTop(0, 20, { reference: 25 }), 28.75);
  close(axisTop(0, 30, { reference: 25 }), 34.5);
  close(axisTop(0, 0.5), 0.525);
  close(axisTop(0, 0.99, { ceiling: 1 }), 1);
});

test("heads' dots sit side by side in their layer's slot, 0 on the left, centred, at most 8 px apart", () => {
  assert.deepEqual([0, 1, 2, 3].map((h) => headOffset(h, 4, 140)), [-12, -4, 4, 12]);
  assert.deepEqual([0, 1].map((h) => headOffset(h, 2, 10)), [-3.5, 3.5]); // 70% of a narrow slot
  assert.equal(headOffset(0, 1, 100), 0);
});
