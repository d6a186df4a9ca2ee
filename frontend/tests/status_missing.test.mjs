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
