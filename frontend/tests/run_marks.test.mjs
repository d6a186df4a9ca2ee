// Runs shown together are told apart by more than a colour (compare.js
// runMarks, issue 32 item 2): TensorBoard's palette cycles over every run it
// knows, so two shown runs may get one colour.
import assert from 'node:assert/strict';
import test from 'node:test';

import { TB_PALETTE, colorKey, runMarks, visibleRuns } from '../compare.js';

test('a colour is compared by its red, green and blue, however it is written', () => {
  assert.equal(colorKey('#12B5CB'), '18,181,203');
  assert.equal(colorKey('#fff'), '255,255,255');
  assert.equal(colorKey('rgb(18, 181, 203)'), '18,181,203');
  assert.equal(colorKey('rgba(18,181,203,0.5)'), '18,181,203');
  assert.equal(colorKey('transparent'), 'transparent');
});

test("the palette's eighth run gets the first run's colour: both get a pattern, a border style and a letter", () => {
  const names = ['imdb', 'imdb/train', 'imdb/validation', 'lstm', 'transformer', 'vit', 'gru', 'imdb_1epoch'];
  const shown = visibleRuns(names, names, null).filter((r) => r.run === 'imdb' || r.run === 'imdb_1epoch' || r.run === 'vit');
  assert.equal(shown.find((r) => r.run === 'imdb').color, shown.find((r) => r.run === 'imdb_1epoch').color); // index 0 and 7
  const marks = runMarks(shown);
  const a = marks.get('imdb');
  const b = marks.get('imdb_1epoch');
  assert.equal(a.color, TB_PALETTE[0].light); // TensorBoard's colours are kept
  assert.equal(b.color, TB_PALETTE[0].light);
  assert.deepEqual([a.pattern, a.border, a.letter, a.shared], ['solid', 'solid', 'A', ['imdb_1epoch']]);
  assert.deepEqual([b.pattern, b.border, b.letter, b.shared], ['stripes', 'dashed', 'B', ['imdb']]);
  // a run whose colour is its own stays plain
  assert.deepEqual(marks.get('vit'), { color: TB_PALETTE[5].light, pattern: 'solid', border: 'solid', letter: '', shared: [] });
});

test("TensorBoard's table colours (rgb) and the palette's (hex) of one colour count as shared", () => {
  const marks = runMarks([{ run: 'a', color: 'rgb(66, 80, 102)' }, { run: 'b', color: '#425066' }, { run: 'c', color: '#425066' }]);
  assert.deepEqual([...marks.values()].map((m) => [m.pattern, m.letter]), [['solid', 'A'], ['stripes', 'B'], ['dots', 'C']]);
});
