import assert from 'node:assert/strict';
import test from 'node:test';

import { asRelevance, layerTagOf, missingRelevanceText, relevanceAbsentText, relevanceNote } from '../relevance.js';
import { SHOWS, resolve } from '../state.js';

const mha = {
  tag: 'mha', layer: 'mha', steps: [0, 2, 4], has_rollout: true, value_vector: 'value_output', rows_normalized: true,
  relevance: { tag: 'mha/_relevance', target: 'predicted class', steps: [2, 4], has_rollout: false },
};
const dense = { tag: 'enc/attention_weights', layer: 'enc/attention_weights', steps: [0], relevance: null };

test('a layer is read as its relevance: its tag, steps and rollout; the weights\u2019 own facts do not carry over', () => {
  const shown = asRelevance(mha);
  assert.equal(shown.tag, 'mha/_relevance');
  assert.deepEqual(shown.steps, [2, 4]);
  assert.equal(shown.has_rollout, false);
  assert.equal(shown.value_vector, null);
  assert.equal(shown.rows_normalized, false); // a row with no positive relevance stays 0
  assert.equal(shown.relevance_of, 'mha');
  assert.equal(asRelevance(dense), null);
});

test('a relevance tag names its layer; any other tag is itself', () => {
  assert.equal(layerTagOf('mha/_relevance', [mha, dense]), 'mha');
  assert.equal(layerTagOf('enc/attention_weights', [mha, dense]), 'enc/attention_weights');
});

test('a layer without relevance says why, never shows zeros; one with it names what it explains', () => {
  assert.match(missingRelevanceText(dense), /^relevance is missing for enc\/attention_weights: it stored none/);
  assert.equal(missingRelevanceText(mha), '');
  assert.match(relevanceNote(mha), /Explained: predicted class\./);
  assert.match(relevanceNote(mha), /Chefer et al\., ICCV 2021/);
  assert.match(relevanceNote(dense), /^relevance is missing/);
});

test('the Show control offers relevance, and a stored choice it does not know falls back to the weights', () => {
  assert.ok(SHOWS.some((s) => s.value === 'relevance' && !s.disabled));
  const layer = { ...mha, num_heads: 2, examples: [{}] };
  for (const [given, kept] of [['relevance', 'relevance'], ['value', 'value'], ['gradients', 'weights']]) {
    const state = { run: 'r', tag: 'mha', show: given };
    resolve(state, [{ run: 'r', layers: [layer] }]);
    assert.equal(state.show, kept);
  }
});

test('a step without relevance is said, with the steps that have it; a step with it says nothing', () => {
  assert.equal(relevanceAbsentText(mha, 4), '');
  assert.equal(relevanceAbsentText(mha, 0), 'no relevance of mha at step 0: it was captured at 2 steps, 2 to 4');
  assert.equal(relevanceAbsentText({ ...mha, relevance: { ...mha.relevance, steps: [4] } }, 2),
    'no relevance of mha at step 2: it was captured at step 4');
  assert.equal(relevanceAbsentText(dense, 0), ''); // no relevance at all: missingRelevanceText says it
});
