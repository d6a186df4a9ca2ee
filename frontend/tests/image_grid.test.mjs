import assert from 'node:assert/strict';
import test from 'node:test';

import { defaultQuery, gridFits, patchAt, patchToken, splitRow, tokenPatch } from '../image_grid.js';

const vit = { rows: 2, cols: 3, prefix: 2 }; // CLS, REG1, then 0,0 0,1 0,2 1,0 1,1 1,2

test('patch (r, c) is token prefix + r * cols + c, and back', () => {
  assert.equal(patchToken(vit, 0, 0), 2);
  assert.equal(patchToken(vit, 1, 2), 7);
  assert.deepEqual(tokenPatch(vit, 5), { r: 1, c: 0 });
  assert.equal(tokenPatch(vit, 1), null); // a register token is no patch
  assert.equal(tokenPatch(vit, 8), null); // past the grid
  for (let t = 2; t < 8; t++) {
    const { r, c } = tokenPatch(vit, t);
    assert.equal(patchToken(vit, r, c), t);
  }
});

test('the first query is the class token, or the centre patch without one', () => {
  assert.equal(defaultQuery(vit), 0);
  assert.equal(defaultQuery({ rows: 4, cols: 5, prefix: 0 }), 2 * 5 + 2);
});

test('a grid fits a sequence of prefix + rows * cols tokens only', () => {
  assert.equal(gridFits(vit, 8), true);
  assert.equal(gridFits(vit, 9), false);
  assert.equal(gridFits(null, 8), false);
});

test('the patch under a point of an image shown 90 x 60 px, clamped at the edges', () => {
  assert.deepEqual(patchAt(vit, 0, 0, 90, 60), { r: 0, c: 0 });
  assert.deepEqual(patchAt(vit, 31, 29, 90, 60), { r: 0, c: 1 });
  assert.deepEqual(patchAt(vit, 89.9, 59.9, 90, 60), { r: 1, c: 2 });
  assert.deepEqual(patchAt(vit, 95, 61, 90, 60), { r: 1, c: 2 });
});

test('a row over the keys splits into the prefix share and the patches', () => {
  const row = Float32Array.from([0.25, 0.125, 0.0625, 0.0625, 0.25, 0.125, 0.0625, 0.0625]);
  const { patches, prefix, max } = splitRow(vit, row);
  assert.equal(prefix, 0.375);
  assert.deepEqual(Array.from(patches), [0.0625, 0.0625, 0.25, 0.125, 0.0625, 0.0625]);
  assert.equal(max, 0.25);
});
