import assert from 'node:assert/strict';
import test from 'node:test';

import {
  HeadMetricsCache, changeOverTraining, colourRange, headMeanSeries, largestJump, rangePosition, rangeText, rankCells,
  servedAt, shortLayerNames,
} from '../head_metrics.js';
import { HeadsView } from '../view_heads.js';

test('metrics bounded in [0, 1] keep a fixed 0..1 scale; the others span this step\'s min..max, missing left out', () => {
  for (const metric of ['normalized_entropy', 'confidence', 'first_key_mass', 'special_token_mass', 'previous_token',
    'same_position', 'induction', 'monotone_alignment']) {
    assert.deepEqual(colourRange(metric, [0.2, 0.4]), { min: 0, max: 1, fixed: true, empty: false });
  }
  for (const metric of ['entropy', 'mean_distance', 'change']) {
    assert.deepEqual(colourRange(metric, [2.5, null, 0.5, NaN, 1]), { min: 0.5, max: 2.5, fixed: false, empty: false });
  }
  assert.equal(colourRange('entropy', [null, NaN]).empty, true);
});

test('a value is placed on its range, clamped; a one-value range puts it in the middle; missing stays missing', () => {
  const range = { min: 0.5, max: 2.5 };
  assert.equal(rangePosition(1, range), 0.25);
  assert.equal(rangePosition(3, range), 1);
  assert.equal(rangePosition(1, { min: 1, max: 1 }), 0.5);
  assert.ok(Number.isNaN(rangePosition(null, range)));
});

test('the legend sentence names the range and whether it is fixed', () => {
  assert.match(rangeText('induction', colourRange('induction', []), 4), /fixed scale 0 to 1/);
  assert.equal(rangeText('entropy', { min: 0.5, max: 2.5, fixed: false, empty: false }, 40),
    'entropy at step 40: min 0.500 to max 2.500 nats over every layer and head at this step: colours differ between steps');
  assert.match(rangeText('entropy', colourRange('entropy', [null]), 4), /no values/);
});

test('the largest jump is the largest |difference| of consecutive present points, at the later step', () => {
  assert.deepEqual(largestJump([0, 10, 20, 30], [0.1, 0.2, 0.8, 0.7]), { index: 2, step: 20, delta: 0.6000000000000001 });
  // a fall counts like a rise
  assert.equal(largestJump([0, 10, 20], [0.9, 0.1, 0.2]).step, 10);
  // a missing point breaks the series: 0.1 -> (missing) -> 0.9 is no jump
  assert.deepEqual(largestJump([0, 10, 20, 30], [0.1, null, 0.9, 1.0]).step, 30);
  assert.equal(largestJump([0], [0.5]), null);
  assert.equal(largestJump([0, 10], [null, 0.5]), null);
  // the earliest of equal jumps
  assert.equal(largestJump([0, 1, 2], [0, 1, 2]).step, 1);
});

test('change over training is |last - first| of the present values', () => {
  assert.equal(changeOverTraining([null, 0.25, 0.9, 0.75, NaN]), 0.5);
  assert.ok(Number.isNaN(changeOverTraining([null, 0.3])));
});

test('ranking sorts highest first, missing last, ties and model order by order', () => {
  const cells = [
    { order: 0, value: 0.2, change: 0.1, jump: { delta: -0.9 } },
    { order: 1, value: null, change: 0.5, jump: null },
    { order: 2, value: 0.7, change: NaN, jump: { delta: 0.3 } },
    { order: 3, value: 0.7, change: 0.2, jump: { delta: 0.1 } },
  ];
  const orders = (ranking) => rankCells(cells, ranking).map((c) => c.order);
  assert.deepEqual(orders('model'), [0, 1, 2, 3]);
  assert.deepEqual(orders('value'), [2, 3, 0, 1]);
  assert.deepEqual(orders('change'), [1, 3, 0, 2]);
  assert.deepEqual(orders('jump'), [0, 2, 3, 1]);
  assert.deepEqual(cells.map((c) => c.order), [0, 1, 2, 3]); // not sorted in place
});

test('the head mean per step leaves missing heads out', () => {
  const means = headMeanSeries([[1, 3], [null, 2], [null, NaN]]);
  assert.deepEqual(means.slice(0, 2), [2, 2]);
  assert.ok(Number.isNaN(means[2]));
});

test('a downsampled reply serves the nearest step and says it is not the same', () => {
  assert.deepEqual(servedAt({ steps: [0, 10, 20] }, 10), { index: 1, exact: true });
  assert.deepEqual(servedAt({ steps: [0, 10, 20] }, 14), { index: 1, exact: false });
});

test('the metric shown is the chosen one, else entropy, else the first', () => {
  assert.equal(HeadsView.pickMetric(['entropy', 'induction'], 'induction'), 'induction');
  assert.equal(HeadsView.pickMetric(['confidence', 'entropy'], 'gone'), 'entropy');
  assert.equal(HeadsView.pickMetric(['confidence'], undefined), 'confidence');
});

test('replies are cached by run, layer, example, metric and the layer\'s steps; a failure is asked again', async () => {
  const asked = [];
  let fail = true;
  const cache = new HeadMetricsCache((run, tag, example, metric) => {
    asked.push([run, tag, example, metric]);
    return fail ? Promise.reject(new Error('down')) : Promise.resolve({ tag, metric });
  });
  const layer = { tag: 'l', steps: [0, 5] };
  await assert.rejects(cache.get('r', layer, 0, 'entropy'));
  fail = false;
  await cache.get('r', layer, 0, 'entropy');
  await cache.get('r', layer, 0, 'entropy');
  await cache.get('r', layer, 1, 'entropy');
  await cache.get('r', layer, 0, 'induction');
  await cache.get('r', { tag: 'l', steps: [0, 5, 10] }, 0, 'entropy'); // new data: asked again
  assert.equal(asked.length, 5);
});

test('ranked cells name their layer by the path parts that differ', () => {
  assert.deepEqual(shortLayerNames(['encoder/layer_0/self_attention', 'encoder/layer_1/self_attention', 'decoder/layer_0/cross']),
    ['encoder/layer_0/self_attention', 'encoder/layer_1/self_attention', 'decoder/layer_0/cross']);
  assert.deepEqual(shortLayerNames(['encoder/layer_0/self_attention', 'encoder/layer_11/self_attention']), ['layer_0', 'layer_11']);
  assert.deepEqual(shortLayerNames(['layer1', 'layer2']), ['layer1', 'layer2']);
  assert.deepEqual(shortLayerNames(['a/mha']), ['a/mha']);
  assert.deepEqual(shortLayerNames(['x/y', 'x/y/z']), ['y', 'y/z']);
});

test('distances are not offered for cross attention, whose rows and columns are two sequences', async () => {
  const { offeredMetrics, meaninglessWhy } = await import('../head_metrics.js');
  const { chartsFor } = await import('../view_stats.js');
  const names = ['entropy', 'mean_distance', 'monotone_alignment', 'patch_distance', 'change'];
  assert.deepEqual(offeredMetrics({ kind: 'cross', metric_names: names }), ['entropy', 'monotone_alignment', 'change']);
  assert.deepEqual(offeredMetrics({ kind: 'self', grid: { rows: 2, cols: 2, prefix: 1 }, metric_names: names }),
    ['entropy', 'mean_distance', 'patch_distance', 'change']);
  assert.deepEqual(offeredMetrics({ kind: 'causal' }), []);
  assert.match(meaninglessWhy({ kind: 'cross' }, 'mean_distance'), /decoder positions.*encoder positions/);
  assert.deepEqual(chartsFor({ kind: 'cross' }).map((c) => c.key), ['entropy', 'max_weight']);
  assert.deepEqual(chartsFor({ kind: 'causal' }).map((c) => c.key), ['entropy', 'max_weight', 'mean_distance']);
});

test('metrics missing for every head by their definition are not offered for a layer', async () => {
  const { offeredMetrics, alwaysMissingWhy } = await import('../head_metrics.js');
  const names = ['entropy', 'monotone_alignment', 'patch_distance', 'induction'];
  assert.deepEqual(offeredMetrics({ kind: 'causal', metric_names: names }), ['entropy', 'induction']);
  assert.deepEqual(offeredMetrics({ kind: 'self', grid: { rows: 8, cols: 8, prefix: 1 }, metric_names: names }),
    ['entropy', 'patch_distance', 'induction']);
  assert.deepEqual(offeredMetrics({ kind: 'cross', metric_names: names }), ['entropy', 'monotone_alignment', 'induction']);
  assert.equal(alwaysMissingWhy({ kind: 'self' }, 'monotone_alignment'), 'is measured for cross attention only');
});
