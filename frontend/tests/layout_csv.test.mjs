import assert from 'node:assert/strict';
import test from 'node:test';

import { csvField, importanceCsv, mapCsv } from '../csv.js';
import { cellAt, mapSize } from '../layout.js';

test('cellAt maps a point to row and column of the displayed map', () => {
  // 3 rows x 4 columns shown at 40 x 30 px: cells are 10 px square
  assert.deepEqual(cellAt(0, 0, 40, 30, 3, 4), { row: 0, col: 0 });
  assert.deepEqual(cellAt(39.9, 29.9, 40, 30, 3, 4), { row: 2, col: 3 });
  assert.deepEqual(cellAt(15, 21, 40, 30, 3, 4), { row: 2, col: 1 });
  assert.equal(cellAt(40, 0, 40, 30, 3, 4), null);
  assert.equal(cellAt(-1, 0, 40, 30, 3, 4), null);
});

test('mapSize caps the longer side', () => {
  assert.deepEqual(mapSize(10, 20, 8, 100), { width: 100, height: 50 });
  assert.deepEqual(mapSize(4, 4, 8, 100), { width: 32, height: 32 });
});

test('csv fields are quoted and formulas neutralised', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('=cmd()'), "'=cmd()");
  assert.equal(csvField('-1.5'), '-1.5');
});

test('importance csv has one row per step and token with run, layer, example, every head and the mean', () => {
  const values = [[[0.5, 1.5], [1.0, 1.0], [0.75, 1.25]]]; // 1 step, 2 heads + mean, 2 tokens
  const text = importanceCsv({ run: 'r,1', layer: 'enc/mha', example: 2 }, ['the', 'film,'], [10], values, 2);
  assert.equal(text, 'run,layer,example,step,position,token,head_0,head_1,head_mean\n' +
    '"r,1",enc/mha,2,10,0,the,0.5,1,0.75\n"r,1",enc/mha,2,10,1,"film,",1.5,1,1.25\n');
});

test('map csv has query token rows and key token columns, with where it comes from', () => {
  const text = mapCsv({ run: 'r', layer: 'l', step: 4, example: 0, head: 'mean' }, ['a', 'b'], ['x', '=y'],
    Float32Array.of(0.25, 0.75, 1, 0));
  assert.equal(text, "run,layer,step,example,head,query_position,query_token,0:x,1:=y\n" +
    'r,l,4,0,mean,0,a,0.25,0.75\nr,l,4,0,mean,1,b,1,0\n');
});
