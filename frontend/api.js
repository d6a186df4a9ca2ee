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
  const url = `maps?${query(params)}`;
  const reply = await (workerReady ? inWorker(url) : fetchHere(url));
  if (reply.error) throw new Error(reply.error);
  if (!(reply.status >= 200 && reply.status < 300)) throw new Error(errorMessage(reply.status, reply.statusText, reply.text));
  const maps = decodeMaps(reply.body, parseShape(reply.headers.shape), reply.headers.encoding);
  // Rebuilt from a reduced form (docs/FORMAT.md "Reduced maps"): every cell within this of the weight.
  if (reply.headers.maxError != null) maps.maxError = Number(reply.headers.maxError);
  return maps;
}

/** The maps route fetched and inflated on this thread: maps_worker.js's reply. */
async function fetchHere(url) {
  const response = await fetch(url);
  const { status, statusText } = response;
  if (!response.ok) return { status, statusText, text: await response.text() };
  const headers = {
    shape: response.headers.get('X-Attention-Shape'),
    encoding: response.headers.get('X-Attention-Encoding'),
    compression: response.headers.get('X-Attention-Compression'),
    maxError: response.headers.get('X-Attention-Max-Error'),
  };
  const body = headers.compression === 'zlib'
    ? await new Response(response.body.pipeThrough(new DecompressionStream('deflate'))).arrayBuffer()
    : await response.arrayBuffer();
  return { status, statusText, headers, body };
}

// The worker that fetches and inflates maps off the tab's thread
// (maps_worker.js), started when the tab loads. It takes requests once it
// says it is running: starting it (its thread, its script) took ~70 ms, and
// the first maps of the page, asked for before that, come sooner fetched
// here (docs/PERFORMANCE.md change 18). Where none can start, or after one
// failed to (e.g. a page policy refusing workers), every request is
// fetched here.
let worker = null;
let workerReady = false;
const pending = new Map(); // id -> {url, resolve}
let nextId = 0;

function startWorker() {
  if (typeof Worker !== 'function' || !INFLATE) return;
  try {
    worker = new Worker(new URL('maps_worker.js', import.meta.url), { type: 'module' });
  } catch {
    return;
  }
  worker.onmessage = ({ data }) => {
    if (data.ready) {
      workerReady = true;
      return;
    }
    const request = pending.get(data.id);
    pending.delete(data.id);
    if (request) request.resolve(data);
  };
  worker.onerror = (event) => {
    event.preventDefault();
    worker.terminate();
    worker = null;
    workerReady = false;
    for (const { url, resolve } of pending.values()) resolve(fetchHere(url));
    pending.clear();
  };
}

startWorker();

function inWorker(url) {
  return new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, { url, resolve });
    worker.postMessage({ id, url: new URL(url, document.baseURI).href });
  });
}

/** Importance over steps, every head (JSON, for the CSV export). */
export const fetchImportance = (run, tag, example, mode, of = 'weights') => getJson('importance',
  of === 'weights' ? { run, tag, example, mode } : { run, tag, example, mode, of });

/**
 * Importance over steps of one head (0..H, H = head mean) as binary: at 1000
 * steps x 256 tokens the JSON took 64 ms to encode alone. Tokens come from
 * the index. Returns the JSON reply's fields (values[s][j] as typed arrays).
 */
export async function fetchImportanceOfHead(run, tag, example, mode, head, of = 'weights') {
  const params = { run, tag, example, mode, head, format: 'binary' };
  const response = await fetch(`importance?${query(of === 'weights' ? params : { ...params, of })}`);
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
export const fetchHeadMetrics = (run, tag, example, metric, of = 'weights') => getJson('head_metrics',
  of === 'weights' ? { run, tag, example, metric } : { run, tag, example, metric, of });
/** Per head and key token, the norm of what the key sends (http_api.md): {step, vector, values[h][j]}. */
export const fetchValueNorms = (run, tag, example, step) => getJson('value_norms', { run, tag, example, step });

/** URL of a probe example's image (PNG) for runs whose probe was images (`probe_images` in /index). */
export const probeImageUrl = (run, example) => `probe_image?${query({ run, example })}`;
