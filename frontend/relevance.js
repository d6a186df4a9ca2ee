// Gradient-weighted relevance (Chefer, Gur and Wolf, ICCV 2021): for the
// output a run's callback was told to explain (relevance=), the relevance of
// weight a_hij is (d target / d a_hij) a_hij. The capture stores it as a
// second set of maps per layer (docs/FORMAT.md, "Relevance"; /index's
// `relevance`): per head, each query row's shares of its positive
// relevance, 0..1 like the weights, so every view that paints weights
// paints these, on the same fixed scale at every step. Its importance, head
// statistics and head metrics are those of the shares, read with the same
// routes from the relevance tag; its rollout is relevance rollout.
// Pure functions: unit-tested with node (frontend/tests/relevance.test.mjs).

export const RELEVANCE_LEGEND = 'relevance: each query row\u2019s shares of (\u2202 target / \u2202 weight \u00d7 weight)\u207a, ' +
  'where the weights moved the explained output (Chefer et al., ICCV 2021); not the weights';

/** Why a layer has no relevance maps, or '' when it has them (/index's relevance). */
export function missingRelevanceText(layer) {
  if (layer.relevance) return '';
  return `relevance is missing for ${layer.layer}: it stored none (relevance= not passed to AttentionCallback, ` +
    'a layer whose probabilities are its output, or a log written before relevance)';
}

/** The layer's relevance read as a layer (its tag, steps and rollout), for the views that fetch by tag; null when missing. */
export function asRelevance(layer) {
  if (!layer.relevance) return null;
  const r = layer.relevance;
  return { ...layer, tag: r.tag, steps: r.steps, has_rollout: r.has_rollout, value_vector: null, relevance: null,
    rows_normalized: false, relevance_of: layer.tag };
}

/** The layer tag a view's tag names: a relevance tag (NAME/_relevance) names NAME. */
export function layerTagOf(tag, layers) {
  const of = layers.find((l) => l.relevance && l.relevance.tag === tag);
  return of ? of.tag : tag;
}

/** The note under the toolbar while relevance is shown. */
export function relevanceNote(layer) {
  const missing = missingRelevanceText(layer);
  if (missing) return `${missing}.`;
  return `${RELEVANCE_LEGEND}. Explained: ${layer.relevance.target}. Importance, head statistics and head metrics ` +
    'below are of these shares; rollout is relevance rollout (I + mean over heads, Chefer et al. eq. 6-7).';
}

/**
 * Why a layer that stored relevance has none at `step` (relevance= was
 * passed from a later fit on, or a capture's relevance was not finite), or
 * '' when it has: the map is then marked missing for that step.
 */
export function relevanceAbsentText(layer, step) {
  if (!layer.relevance || layer.relevance.steps.includes(step)) return '';
  const steps = layer.relevance.steps;
  const where = steps.length === 1 ? `step ${steps[0]}` : `${steps.length} steps, ${steps[0]} to ${steps[steps.length - 1]}`;
  return `no relevance of ${layer.layer} at step ${step}: it was captured at ${where}`;
}
