// Requests to the plugin's routes (http_api.md). URLs are relative to the
// iframe's <base href="plugin/attention/">, so proxies and --path_prefix work.

import { decodeMaps, parseShape } from './decode.js';

function query(params) {
  return new URLSearchParams(params).toString();
}

async function getJson(path, params) {
  const response = await fetch(params ? `${path}?${query(params)}` : path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

export const fetchIndex = () => getJson('index');

export async function fetchMaps(run, tag, step, example) {
  const response = await fetch(`maps?${query({ run, tag, step, example })}`);
  if (!response.ok) throw new Error(`maps: ${response.status} ${await response.text()}`);
  const shape = parseShape(response.headers.get('X-Attention-Shape'));
  return decodeMaps(await response.arrayBuffer(), shape, response.headers.get('X-Attention-Encoding'));
}

/** Importance over steps; with `head` (0..H, H = head mean) only that head. */
export const fetchImportance = (run, tag, example, mode, head) =>
  getJson('importance', head === undefined ? { run, tag, example, mode } : { run, tag, example, mode, head });
export const fetchHeadStats = (run, tag, example) => getJson('head_stats', { run, tag, example });
export const fetchRollout = (run, tag, example) => getJson('rollout', { run, tag, example });
