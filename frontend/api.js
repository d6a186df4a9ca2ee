// Requests to the plugin's routes (http_api.md). URLs are relative to the
// iframe's <base href="plugin/attention/">, so proxies and --path_prefix work.

import { decodeImportance, decodeMaps, parseShape } from './decode.js';

function query(params) {
  return new URLSearchParams(params).toString();
}

/**
 * The short message of a failed reply: the plugin's JSON error message
 * (http_api.md), else the HTTP status alone (never a whole HTML page).
 */
export function errorMessage(status, statusText, body) {
  try {
    const message = JSON.parse(body).error.message;
    if (typeof message === 'string' && message) return message;
  } catch {
    // not the plugin's JSON error: a proxy's or the server's own page
  }
  return `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
}

async function failed(response) {
  return new Error(errorMessage(response.status, response.statusText, await response.text()));
}

async function getJson(path, params) {
  const response = await fetch(params ? `${path}?${query(params)}` : path);
  if (!response.ok) throw await failed(response);
  return response.json();
}

export const fetchIndex = () => getJson('index');

// The maps are asked for as stored, zlib-compressed (http_api.md), and
// inflated here: at 12 heads x 512 tokens, 0.55 MB instead of 3.1 MB, and
// in headless Chromium 32 ms from request to bytes instead of 47 ms raw or
// 51 ms with HTTP's Content-Encoding: deflate (docs/PERFORMANCE.md).
const INFLATE = typeof DecompressionStream === 'function';

export async function fetchMaps(run, tag, step, example) {
  const params = INFLATE ? { run, tag, step, example, compression: 'zlib' } : { run, tag, step, example };
  const response = await fetch(`maps?${query(params)}`);
  if (!response.ok) throw await failed(response);
  const shape = parseShape(response.headers.get('X-Attention-Shape'));
  const body = response.headers.get('X-Attention-Compression') === 'zlib'
    ? await new Response(response.body.pipeThrough(new DecompressionStream('deflate'))).arrayBuffer()
    : await response.arrayBuffer();
  return decodeMaps(body, shape, response.headers.get('X-Attention-Encoding'));
}

/** Importance over steps, every head (JSON, for the CSV export). */
export const fetchImportance = (run, tag, example, mode) => getJson('importance', { run, tag, example, mode });

/**
 * Importance over steps of one head (0..H, H = head mean) as binary: at 1000
 * steps x 256 tokens the JSON took 64 ms to encode alone. Tokens come from
 * the index. Returns the JSON reply's fields (values[s][j] as typed arrays).
 */
export async function fetchImportanceOfHead(run, tag, example, mode, head) {
  const response = await fetch(`importance?${query({ run, tag, example, mode, head, format: 'binary' })}`);
  if (!response.ok) throw await failed(response);
  const shape = parseShape(response.headers.get('X-Attention-Shape'), 2);
  const { steps, values } = decodeImportance(await response.arrayBuffer(), shape);
  const total = Number(response.headers.get('X-Attention-Steps-Total'));
  return {
    mode, head, num_heads: Number(response.headers.get('X-Attention-Heads')), steps, values,
    steps_total: total > 0 ? total : steps.length, // older servers send no such header
  };
}
export const fetchHeadStats = (run, tag, example) => getJson('head_stats', { run, tag, example });
export const fetchRollout = (run, tag, example) => getJson('rollout', { run, tag, example });

/**
 * One head metric of a layer over steps (docs/HEAD_METRICS.md):
 * {metric, metric_names, num_heads, steps, steps_total, downsampled,
 * values: [[value per head] per step]}, null where the metric does not apply.
 */
export const fetchHeadMetrics = (run, tag, example, metric) => getJson('head_metrics', { run, tag, example, metric });

/** URL of a probe example's image (PNG) for runs whose probe was images (`probe_images` in /index). */
export const probeImageUrl = (run, example) => `probe_image?${query({ run, example })}`;
