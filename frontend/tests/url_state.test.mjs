import assert from 'node:assert/strict';
import { test } from 'node:test';

import { composeHash, decodeUrlState, encodeUrlState, parseHash, pluginData } from '../url_state.js';

const ODD = ['a&b=c', 'runs/seed 1', '100%', 'x#y?z', 'naïve/ünï', '"quoted"\\', '[1,2]', 'p.attention.run=x', ''];

const FULL = {
  run: 'a&b=c', compare: ['runs/seed 1', '100%', 'x#y?z'], tag: 'enc/layer_0/mha', example: 2, step: 40,
  head: 3, enlarged: false, diff: { run: 'naïve/ünï', step: 0 }, zoom: 12, picked: [0, 5, 7],
  mode: 'given', show: 'value', scale: 'stretch', metric: 'induction', rank: 'jump', headsOpen: true,
  modelOpen: false, direction: 'receives', pinned: { side: 'key', index: 4 }, patch: 27, opacity: 35, compareZoom: 14,
};

/** What TensorBoard does: parse the hash with tf_storage's rules, take the prefix off. */
const roundTrip = (state, hash = 'attention') => decodeUrlState(pluginData(parseHash(composeHash(hash, encodeUrlState(state)))));

test('every choice survives the address bar', () => {
  assert.deepEqual(roundTrip(FULL), FULL);
});

test('odd run and tag names survive the address bar', () => {
  for (const name of ODD) {
    const state = { run: name, tag: name, compare: [name, 'b'], diff: { run: name, step: -3 } };
    assert.deepEqual(roundTrip(state), state, name);
  }
});

test('head mean and max are names, heads are numbers', () => {
  assert.equal(roundTrip({ head: 'mean' }).head, 'mean');
  assert.equal(roundTrip({ head: 'max' }).head, 'max');
  assert.equal(roundTrip({ head: 0 }).head, 0);
});

test('the tab name and other keys of the hash are kept', () => {
  const hash = composeHash('attention&smoothing=0.6&p.attention.run=old', { run: 'new' });
  assert.equal(hash, 'attention&smoothing=0.6&p.attention.run=new');
  assert.deepEqual(parseHash(hash), { __tab__: 'attention', smoothing: '0.6', 'p.attention.run': 'new' });
});

test('an empty hash gets the tab name', () => {
  assert.equal(composeHash('', { step: '4' }), 'attention&p.attention.step=4');
});

test('bad values are left out, not guessed', () => {
  const got = decodeUrlState({ example: '01', step: '1e3', head: 'avg', zoom: ' 4', picked: '1,x', compare: '{"a":1}', diff: '["r"]', enlarged: 'yes' });
  assert.deepEqual(got, { diff: null });
});

test('the image view\'s patch and opacity, the text view\'s direction and pinned token are in the address bar', () => {
  const data = encodeUrlState({ patch: 27, opacity: 35, direction: 'receives', pinned: { side: 'query', index: 0 }, modelOpen: true });
  assert.deepEqual(data, { model: '1', direction: 'receives', pin: 'q0', patch: '27', opacity: '35' });
  assert.deepEqual(decodeUrlState({ pin: 'k12' }).pinned, { side: 'key', index: 12 });
  for (const bad of ['x3', 'q', 'q01', 'k-1', 'q1.5']) assert.equal(decodeUrlState({ pin: bad }).pinned, undefined, bad);
  assert.equal(encodeUrlState({ pinned: { side: 'query', index: -1 } }).pin, undefined);
});

test('a malformed escape in the hash is ignored', () => {
  assert.deepEqual(pluginData(parseHash('attention&p.attention.run=%E0%A4%A&p.attention.step=4')), { step: '4' });
});
