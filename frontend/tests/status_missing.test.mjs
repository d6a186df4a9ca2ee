import assert from 'node:assert/strict';
import test from 'node:test';

import { errorMessage } from '../api.js';
import { isMissing, valueText } from '../charts.js';

test('errorMessage takes the message of the plugin\'s JSON error', () => {
  const body = JSON.stringify({ error: { status: 422, kind: 'damaged_data', message: 'metadata declares 0 heads' } });
  assert.equal(errorMessage(422, 'Unprocessable Entity', body), 'metadata declares 0 heads');
});

test('errorMessage gives only the status for a page that is not the plugin\'s JSON', () => {
  const page = '<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>';
  assert.equal(errorMessage(500, 'Internal Server Error', page), 'HTTP 500 Internal Server Error');
  assert.equal(errorMessage(502, '', ''), 'HTTP 502');
  assert.equal(errorMessage(404, 'Not Found', '{"error": {}}'), 'HTTP 404 Not Found');
});

test('null, NaN and infinities are missing; finite numbers are shown with 3 decimals', () => {
  for (const v of [null, undefined, NaN, Infinity, -Infinity]) {
    assert.equal(isMissing(v), true);
    assert.equal(valueText(v), 'missing');
  }
  assert.equal(isMissing(0), false);
  assert.equal(valueText(0.12345), '0.123');
});

test('seriesMax is the largest finite value of every step, skipping missing ones', async () => {
  const { seriesMax } = await import('../charts.js');
  assert.equal(seriesMax([[0.25, null], [Float32Array.of(0.5)[0], NaN]]), 0.5);
  assert.equal(seriesMax([]), 0);
});

test('a downsampled series shows the served step nearest to the chosen one, and says so', async () => {
  const { servedIndex, servedNote } = await import('../charts.js');
  assert.equal(servedIndex([0, 10, 20], 14), 1);
  assert.equal(servedIndex([0, 10, 20], 16), 2);
  assert.equal(servedIndex([0, 10, 20], 5), 0); // a tie: the earlier
  assert.equal(servedIndex([5, 10], 0), 0);
  assert.equal(servedNote([0, 10, 20], 10, 3), '');
  assert.equal(servedNote([0, 10, 20], 14, 21),
    ' (showing step 10, the nearest served step to 14; the series holds 3 of 21 steps)');
});
