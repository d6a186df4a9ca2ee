// Value-weighted attention (Kobayashi et al., EMNLP 2020, "Attention is Not
// Only a Weight"): what key j passes to query i through head h has the size
// a_hij ||f_h(x_j)||, the weight times the norm of the key's value vector
// through the output projection (docs/FORMAT.md, VALUE_NORMS). A head can
// put most of its weight on a sink token whose vector is nearly zero; this
// view shows where what the query receives comes from.
//
// The tab shows each row's shares, a_hij n_hj / sum_j a_hij n_hj: rows of
// 0..1 as the weights' are, so the maps keep the tab's fixed scale, the same
// at every step, and every view that paints weights paints these. Pure
// functions: unit-tested with node (frontend/tests/value_weighted.test.mjs).

import { floatMaps, headMap } from './decode.js';

export const VALUE_LEGEND = 'value-weighted: each row\u2019s shares of weight \u00d7 \u2016value vector\u2016, how much of ' +
  'what the query receives comes from each key (Kobayashi et al., EMNLP 2020); not the weights';

/** Why a layer has no value-weighted maps, or '' when it has them (/index's value_vector). */
export function missingValueText(layer) {
  if (layer.value_vector) return '';
  return `value-weighted maps are missing for ${layer.layer}: it stored no value norms ` +
    '(a layer whose value vectors are not known, value_weighted=False, or a log written before them)';
}

/** What the norms measure, for the layer line: '' for the usual vector. */
export function valueVectorText(layer) {
  return layer.value_vector === 'value_only'
    ? 'value-weighted with ||x W_V + b_V|| (no output projection per head: a gated layer)' : '';
}

/**
 * maps (decode.js Maps: heads x q x k weights) and norms[h][j] (k per head)
 * -> Maps of each row's value-weighted shares; a row whose weighted cells
 * are all 0 stays 0.
 */
export function valueWeighted(maps, norms) {
  const { heads, q, k } = maps;
  if (!Array.isArray(norms) || norms.length !== heads || norms.some((row) => !Array.isArray(row) || row.length !== k)) {
    throw new Error(`value norms of shape ${Array.isArray(norms) ? norms.length : '?'} x ${norms && norms[0] ? norms[0].length : '?'} do not fit maps of ${heads} heads x ${k} keys`);
  }
  const out = new Float32Array(heads * q * k);
  for (let h = 0; h < heads; h++) {
    const weights = headMap(maps, h);
    const n = norms[h].map((v) => (Number.isFinite(v) && v > 0 ? v : 0));
    for (let i = 0; i < q; i++) {
      const row = i * k;
      const base = h * q * k + row;
      let sum = 0;
      for (let j = 0; j < k; j++) {
        const v = weights[row + j] * n[j];
        out[base + j] = v;
        sum += v;
      }
      if (sum > 0) for (let j = 0; j < k; j++) out[base + j] /= sum;
    }
  }
  return floatMaps(heads, q, k, out);
}
