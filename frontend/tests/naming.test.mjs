// How tokens and cells are named (naming.js): with their positions, and a
// cell a query cannot see with why instead of a number.
import assert from 'node:assert/strict';
import test from 'node:test';

import { cellName, cellValue, tokenName } from '../naming.js';

test('a token is named with its side and position', () => {
  assert.equal(tokenName('query', 2, 'last'), 'q 2 "last"');
  assert.equal(tokenName('key', 3, 'last'), 'k 3 "last"');
  assert.equal(tokenName('token', 0, '<s>'), '0 "<s>"');
});

test('a cell names both tokens and positions, so a repeated token is told apart', () => {
  const tokens = ['the', 'film', 'last', 'last'];
  assert.equal(cellName(2, 3, tokens, tokens), 'q 2 "last" → k 3 "last"');
  assert.notEqual(cellName(2, 3, tokens, tokens), cellName(3, 3, tokens, tokens)); // not the diagonal
});

test('a cell the query cannot see says why, never a number', () => {
  assert.equal(cellValue(0, 'after the query (causal)'), 'not visible: after the query (causal)');
  assert.equal(cellValue(0.125, ''), '0.1250');
  assert.equal(cellValue(0.125, '', 3), '0.125');
});

test('a cross layer\'s map says its rows are the decoder\'s inputs, shifted right, and its columns the encoder\'s tokens', async () => {
  const { axesText } = await import('../naming.js');
  assert.equal(axesText('self'), 'rows: query tokens ↓ · columns: key tokens →');
  assert.match(axesText('cross'), /^rows: the decoder's input tokens ↓ \(as fed to the decoder: the target shifted right.*columns: the encoder's tokens →$/);
});
