import assert from 'node:assert/strict';
import test from 'node:test';

import {
  csvField, float32Text, importanceCsv, levelText, mapCsv, startsFormula,
} from '../csv.js';
import {
  cellAt, cutMidItem, inView, mapSize, shownText, spreadTicks,
} from '../layout.js';

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

test('the formula guard prefixes only fields a spreadsheet would run as a formula', () => {
  // guarded: what starts a formula
  for (const text of ['=SUM(A1)', '+1+2', '-1+2', '@x', '@', '=', '-cmd|\' /C calc\'!A0', '+A1', '-x', '- x',
    '--1', '-(1)', '-"a"', '-$A$1', '-#REF!', '\tx', '\r=1', '-ing', '+é']) {
    assert.equal(startsFormula(text), true, text);
    assert.ok(csvField(text).replace(/^"/, '').startsWith("'"), text);
  }
  // as they are: numbers, lone signs, signs before something no formula starts with
  for (const text of ['-', '+', '--', '++', '+-', '- ', '->', '-)', '-,', '-|', '-*', '-/', '-1.5', '+2e-3', '-.5', '1',
    'plain', 'a=b', 'x-1', '']) {
    assert.equal(startsFormula(text), false, text);
    assert.equal(csvField(text).replace(/^"|"$/g, ''), text, text);
  }
  assert.equal(csvField('-'), '-');
  assert.equal(csvField('=SUM(A1,B1)'), `"'=SUM(A1,B1)"`); // guarded, then quoted for its comma
});

test('uint8 cells are written as the stored value to 6 significant digits, not float32 noise', () => {
  assert.equal(levelText(251, 255), '0.984314'); // float32 of 251/255 prints 0.9843137264251709
  assert.equal(levelText(255, 255), '1');
  assert.equal(levelText(0, 255), '0');
  assert.equal(levelText(1, 255), '0.00392157');
  assert.equal(levelText(3, 510), '0.00588235'); // the mean of 2 heads: a sum of bytes / (255 x 2)
  for (let b = 0; b <= 255; b++) {
    assert.equal(Math.round(Number(levelText(b, 255)) * 255), b); // the byte reads back
    assert.ok(levelText(b, 255).replace(/^0\.0*/, '').length <= 6, levelText(b, 255));
  }
  const text = mapCsv({ run: 'r', layer: 'l', step: 4, example: 0, head: 0 }, ['a'], ['x', 'y', 'z'],
    { values: Uint8Array.of(251, 4, 0), levels: 255 });
  assert.equal(text.split('\n')[1], 'r,l,4,0,0,0,a,0.984314,0.0156863,0');
  assert.ok(!text.includes('0.9843137264251709'));
  const mean = mapCsv({ run: 'r', layer: 'l', step: 4, example: 0, head: 'mean' }, ['a'], ['x', 'y'],
    { values: Uint16Array.of(255, 255), levels: 510 });
  assert.equal(mean.split('\n')[1], 'r,l,4,0,mean,0,a,0.5,0.5');
});

test('float32 weights and importance are written as the shortest text of their float32', () => {
  assert.equal(float32Text(Math.fround(0.9)), '0.9');
  assert.equal(float32Text(Math.fround(1 / 3)), '0.33333334');
  assert.equal(Math.fround(Number(float32Text(Math.fround(1 / 3)))), Math.fround(1 / 3));
  assert.equal(float32Text(0), '0');
  assert.equal(float32Text(null), '');
  const text = mapCsv({ run: 'r', layer: 'l', step: 1, example: 0, head: 0 }, ['a'], ['x', 'y'],
    { values: Float32Array.of(0.1, 0.9), levels: 0 });
  assert.equal(text.split('\n')[1], 'r,l,1,0,0,0,a,0.1,0.9');
  const imp = importanceCsv({ run: 'r', layer: 'l', example: 0 }, ['t'], [3], [[[Math.fround(0.7)], [Math.fround(0.7)]]], 1);
  assert.equal(imp.split('\n')[1], 'r,l,0,3,0,t,0.7,0.7');
});

test('a scroll box says how much of its list is in view and never ends on an item boundary', () => {
  // 41 bars of 16 px in a box cut half way through a bar: 25 whole ones, the 26th half shown
  assert.equal(cutMidItem(420, 16), 408);
  assert.equal((cutMidItem(420, 16) / 16) % 1, 0.5);
  assert.equal(cutMidItem(100, 10), 95);
  assert.equal(cutMidItem(4, 16), 8); // never less than half an item
  assert.deepEqual(inView(0, 408, 16, 41), { first: 0, last: 24, more: true });
  assert.equal(shownText(inView(0, 408, 16, 41), 41), '25 of 41 tokens shown (0–24): scroll for more');
  assert.deepEqual(inView(16 * 41 - 408, 408, 16, 41), { first: 16, last: 40, more: true }); // at the end
  assert.equal(shownText(inView(16 * 41 - 408, 408, 16, 41), 41), '25 of 41 tokens shown (16–40): scroll for more');
  assert.deepEqual(inView(0, 408, 16, 20), { first: 0, last: 19, more: false }); // all of a short list
  assert.equal(shownText(inView(0, 408, 16, 20), 20), '');
  assert.equal(shownText(inView(0, 30, 16, 5), 5, 'rows'), '1 of 5 rows shown (0–0): scroll for more');
});

test('axis ticks are spread at a round stride, at most as many as fit', () => {
  assert.deepEqual(spreadTicks(41, 10), [0, 5, 10, 15, 20, 25, 30, 35, 40]);
  assert.deepEqual(spreadTicks(5, 10), [0, 1, 2, 3, 4]);
  assert.deepEqual(spreadTicks(12, 10), [0, 2, 4, 6, 8, 10]); // 11 would crowd 10
  assert.deepEqual(spreadTicks(0, 10), []);
  const long = spreadTicks(2048, 64);
  assert.ok(long.length <= 64 && long[0] === 0 && long[1] === 50 && long[long.length - 1] === 2047);
});
