// Downloads: the open map as a labelled PNG and as CSV, importance of every
// head as CSV. Each says where it comes from (run, layer, head, step, example).

import * as api from './api.js';
import { LUT, colorIndex } from './colors.js';
import { importanceCsv, mapCsv } from './csv.js';
import { el } from './dom.js';
import { paintMap } from './heatmap.js';
import { RATIO } from './scales.js';

const fileName = (text) => text.replace(/[^\w.-]+/g, '_');
const MAX_PX = 4096; // longest side of the map in a PNG
const LABEL_CHARS = 24;
const FONT = '12px monospace';
const TITLE_FONT = 'bold 14px sans-serif';
const INK = '#212121';
// The not-visible hatch of the light theme (style.css canvas.map), drawn under the map's cells.
const HATCH_INK = '#bdbdbd';
const HATCH_PAPER = '#ededed';

/** The not-visible hatch as a canvas pattern (6 px diagonal stripes, as style.css draws them). */
function hatchPattern(ctx) {
  const tile = document.createElement('canvas');
  tile.width = tile.height = 6;
  const t = tile.getContext('2d');
  t.fillStyle = HATCH_PAPER;
  t.fillRect(0, 0, 6, 6);
  t.strokeStyle = HATCH_INK;
  t.lineWidth = 2;
  for (const o of [-6, 0, 6]) {
    t.beginPath();
    t.moveTo(o, 6);
    t.lineTo(o + 6, 0);
    t.stroke();
  }
  return ctx.createPattern(tile, 'repeat');
}

export function download(name, href) {
  const link = el('a', { href, download: fileName(name) });
  document.body.append(link);
  link.click();
  link.remove();
}

function downloadText(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  download(name, url);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const shorten = (t) => (t.length > LABEL_CHARS ? `${t.slice(0, LABEL_CHARS - 1)}…` : t);

/**
 * Draws a map for a person to keep: a title, query tokens down the left, key
 * tokens along the top, cells of a readable size (up to 24 px, the map at
 * most 4096 px), and the colour scale. Light colours whatever the theme.
 * Cells outside `ranges` (visibility.js; null: none) are hatched, and the
 * scale says so. Returns {cell, left, top}: where the map lies in the image.
 */
export function drawMapImage(canvas, { values, q, k, vmax, queryTokens, keyTokens, title, scaleText, ranges = null }) {
  const cell = Math.max(1, Math.min(24, Math.floor(MAX_PX / Math.max(q, k, 1))));
  const labels = cell >= 8;
  const ctx = canvas.getContext('2d');
  ctx.font = FONT;
  const widest = (tokens) => (labels ? Math.max(0, ...tokens.map((t) => ctx.measureText(shorten(t)).width)) : 0);
  const left = Math.ceil(widest(queryTokens)) + 12;
  const top = 28 + Math.ceil(widest(keyTokens)) + 8;
  ctx.font = TITLE_FONT;
  const titleWidth = Math.ceil(ctx.measureText(title).width);
  ctx.font = FONT;
  const scaleWidth = 250 + Math.ceil(ctx.measureText(`${vmax === RATIO ? '≥ 4' : vmax.toFixed(3)}  ${scaleText}`).width);
  canvas.width = Math.max(left + k * cell + 12, titleWidth + 16, scaleWidth, 420); // resets the context's state
  canvas.height = top + q * cell + (ranges ? 64 : 44);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = INK;
  ctx.font = TITLE_FONT;
  ctx.textBaseline = 'middle';
  ctx.fillText(title, 8, 14);
  ctx.font = FONT;
  if (labels) {
    ctx.textAlign = 'right';
    queryTokens.forEach((t, i) => ctx.fillText(shorten(t), left - 6, top + (i + 0.5) * cell));
    keyTokens.forEach((t, j) => {
      ctx.save();
      ctx.translate(left + (j + 0.5) * cell, top - 6);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = 'left';
      ctx.fillText(shorten(t), 0, 0);
      ctx.restore();
    });
  }
  const cells = document.createElement('canvas');
  paintMap(cells, values, q, k, vmax, 0, ranges);
  if (ranges) {
    ctx.fillStyle = hatchPattern(ctx); // seen through the cells left transparent
    ctx.fillRect(left, top, k * cell, q * cell);
  }
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(cells, left, top, k * cell, q * cell);
  // The colour scale under the map.
  const y = top + q * cell + 14;
  ctx.textAlign = 'left';
  ctx.fillStyle = INK;
  // vmax RATIO: values are ratios to uniform on the log scale from 1/4 to 4 (scales.js).
  ctx.fillText(vmax === RATIO ? '≤ ¼' : '0', 8, y + 5);
  for (let x = 0; x < 200; x++) {
    const c = colorIndex(x / 199, 1) * 3;
    ctx.fillStyle = `rgb(${LUT[c]}, ${LUT[c + 1]}, ${LUT[c + 2]})`;
    ctx.fillRect(36 + x, y, 1, 10);
  }
  ctx.fillStyle = INK;
  ctx.fillText(`${vmax === RATIO ? '≥ 4' : vmax.toFixed(3)}  ${scaleText}`, 242, y + 5);
  if (ranges) {
    ctx.fillStyle = hatchPattern(ctx);
    ctx.fillRect(8, y + 18, 18, 10);
    ctx.fillStyle = INK;
    ctx.fillText('not visible to the query (not a weight of 0)', 32, y + 23);
  }
  return { cell, left, top };
}

/** what: {run, tag, step, example, head}; map: {values, q, k, vmax, scaleText}; example: tokens. */
export function exportMapPng(what, map, example, into = document.createElement('canvas')) {
  const title = `${what.run} · ${what.tag} · head ${what.head} · step ${what.step} · example ${what.example}`;
  const placed = drawMapImage(into, { ...map, queryTokens: example.query_tokens, keyTokens: example.key_tokens, title });
  download(`${mapKind(what)}-${what.run}-${what.tag}-head${what.head}-step${what.step}-example${what.example}.png`, into.toDataURL('image/png'));
  return placed;
}

/** cells: the map as {values, levels} (decode.js headCells), written as stored (csv.js cellTexts). */
export function exportMapCsv(what, cells, example) {
  const text = mapCsv({ run: what.run, layer: what.tag, step: what.step, example: what.example, head: what.head },
    example.query_tokens, example.key_tokens, cells);
  downloadText(`${mapKind(what)}-${what.run}-${what.tag}-head${what.head}-step${what.step}-example${what.example}.csv`, text, 'text/csv');
}

/** The file name's first word: what the exported map holds (the Show control's choice). */
export const mapKind = (what) => ({ value: 'value-weighted', relevance: 'relevance' }[what.show] || 'attention');

export async function exportImportanceCsv({ run, tag, example, mode, show }) {
  const of = show === 'value' ? 'value_weighted' : 'weights';
  const imp = await api.fetchImportance(run, tag, example, of === 'weights' ? mode : 'received', of); // every head
  const text = importanceCsv({ run, layer: tag, example }, imp.tokens, imp.steps, imp.values, imp.num_heads);
  downloadText(`importance-${of === 'weights' ? imp.mode : 'value-weighted'}-${run}-${tag}-example${example}.csv`, text, 'text/csv');
}
