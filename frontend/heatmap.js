// Painting maps into canvases: one canvas pixel per cell, scaled by CSS with
// `image-rendering: pixelated`, so 12 heads x 512 x 512 cells are 3M table
// lookups and no DOM per cell.

import { LUT, colorIndex } from './colors.js';
import { RATIO, ratioIndex } from './scales.js';
import { poolRanges } from './visibility.js';

// The table packed as one 32-bit RGBA word per entry, in the byte order of
// this machine, so painting a cell is a single typed-array store.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const PACKED = Uint32Array.from({ length: 256 }, (_, i) => {
  const [r, g, b] = [LUT[i * 3], LUT[i * 3 + 1], LUT[i * 3 + 2]];
  return LITTLE_ENDIAN ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
});

// Colour tables of integer cells (weight = value / levels, e.g. uint8 maps'
// bytes with levels 255, or a sum of bytes over heads with levels 255 *
// heads) on a 0..vmax scale: painting a cell is then one lookup, and the
// colour is the one the weight gets on the float path (colorIndex).
const TABLES = new Map();

export function colorTable(levels, vmax) {
  const key = `${levels} ${vmax}`;
  let table = TABLES.get(key);
  if (!table) {
    if (TABLES.size >= 16) TABLES.clear();
    table = new Uint32Array(levels + 1);
    const scale = vmax > 0 ? 255 / vmax : 0;
    for (let v = 0; v <= levels; v++) {
      let c = Math.round(Math.fround(v / levels) * scale); // a float32 weight, as the float path holds it
      if (c > 255) c = 255;
      else if (!(c > 0)) c = 0;
      table[v] = PACKED[c];
    }
    TABLES.set(key, table);
  }
  return table;
}

// A cell the query cannot see (visibility.js) is painted transparent: the
// canvas's own background shows through it, a hatch in the theme's colours
// that is on no colour scale (style.css canvas.map).
const NOT_VISIBLE = 0;

/**
 * Paints values (rows*cols) on a 0..vmax scale: weights (Float32Array) when
 * levels is 0, else integers meaning value / levels (uint8 bytes: levels
 * 255), painted through colorTable; vmax RATIO (scales.js): values are
 * ratios to uniform (scales.js ratioValues), painted on its log scale. `ranges` (visibility.js visibleRanges,
 * or null: every cell visible) gives each row's visible columns; the others
 * are painted NOT_VISIBLE. The canvas and its ImageData are reused
 * while the size stays the same: resizing a canvas reallocates it, which was
 * most of the cost of a step change.
 */
export function paintMap(canvas, values, rows, cols, vmax, levels = 0, ranges = null) {
  const width = Math.max(cols, 1);
  const height = Math.max(rows, 1);
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = canvas.getContext('2d');
  let image = canvas.attentionImage;
  if (!image || image.width !== width || image.height !== height) {
    image = canvas.attentionImage = ctx.createImageData(width, height);
  }
  const px = new Uint32Array(image.data.buffer);
  const n = rows * cols;
  if (ranges && ranges.length !== 2 * rows) ranges = null; // made for another shape: nothing to hide by
  const span = vmax === RATIO ? ratioSpan
    : levels > 0 ? tableSpan(colorTable(levels, vmax)) : floatSpan(vmax > 0 ? 255 / vmax : 0);
  if (!ranges) {
    span(px, values, 0, n);
  } else {
    // Per row: hidden, visible, hidden; two fills and one loop, no test per cell.
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const first = Math.max(0, ranges[2 * r]);
      const last = Math.min(cols - 1, ranges[2 * r + 1]);
      if (first > last) {
        px.fill(NOT_VISIBLE, base, base + cols);
        continue;
      }
      px.fill(NOT_VISIBLE, base, base + first);
      span(px, values, base + first, base + last + 1);
      px.fill(NOT_VISIBLE, base + last + 1, base + cols);
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.vmax = String(vmax);
  canvas.dataset.rows = String(rows);
  canvas.dataset.cols = String(cols);
  canvas.dataset.hidesCells = String(Boolean(ranges));
}

/** Paints px[from..to) from integer values through a colour table. */
const tableSpan = (table) => (px, values, from, to) => {
  for (let i = from; i < to; i++) px[i] = table[values[i]];
};

/** Paints px[from..to) from weights, `scale` table entries per unit of weight. */
const floatSpan = (scale) => (px, values, from, to) => {
  for (let i = from; i < to; i++) {
    let c = Math.round(values[i] * scale);
    if (c > 255) c = 255;
    else if (!(c > 0)) c = 0;
    px[i] = PACKED[c];
  }
};

/** Paints px[from..to) from ratios to uniform on the ratio scale's log scale. */
const ratioSpan = (px, values, from, to) => {
  for (let i = from; i < to; i++) px[i] = PACKED[ratioIndex(values[i])];
};

/** A horizontal legend strip from 0 to vmax. */
export function paintLegend(canvas, vmax) {
  canvas.width = 256;
  canvas.height = 1;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(256, 1);
  for (let i = 0; i < 256; i++) {
    const c = colorIndex(i / 255, 1) * 3;
    image.data.set([LUT[c], LUT[c + 1], LUT[c + 2], 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.vmax = String(vmax);
}

/**
 * Cells pooled into an outRows x outCols grid, each pixel the largest cell it
 * covers: a map shown smaller than one device pixel per cell keeps every
 * peak (the browser's pixelated scaling would drop whole columns). Values
 * of any typed array (weights, bytes, sums of bytes) pool to the same type.
 * The rows of an output row are pooled first into one row of cols, then its
 * columns (bytes four at a time: poolRowsOfBytes): 12 heads x 512 tokens
 * took 22-26 ms a step cell by cell (BENCHMARKS.md, frontend paint).
 */
export function maxPool(values, rows, cols, outRows, outCols) {
  const out = new values.constructor(outRows * outCols);
  const words = values instanceof Uint8Array && cols % 4 === 0 && values.byteOffset % 4 === 0;
  const row = words ? new Uint8Array(cols) : new values.constructor(cols);
  const rowWords = words ? new Uint32Array(row.buffer) : null;
  const all = words ? new Uint32Array(values.buffer, values.byteOffset, (rows * cols) / 4) : null;
  const starts = new Int32Array(outCols + 1); // output column c pools columns starts[c] .. starts[c + 1] - 1
  for (let c = 0; c <= outCols; c++) starts[c] = Math.ceil((c * cols) / outCols);
  let i = 0;
  for (let r = 0; r < outRows; r++) {
    const end = Math.ceil(((r + 1) * rows) / outRows); // output row r pools rows i .. end - 1
    if (words) {
      rowWords.set(all.subarray((i * cols) / 4, ((i + 1) * cols) / 4));
      poolRowsOfBytes(rowWords, all, cols / 4, i + 1, end);
    } else {
      row.set(values.subarray(i * cols, (i + 1) * cols));
      for (let ii = i + 1; ii < end; ii++) {
        const offset = ii * cols;
        for (let j = 0; j < cols; j++) if (values[offset + j] > row[j]) row[j] = values[offset + j];
      }
    }
    i = end;
    const base = r * outCols;
    for (let c = 0; c < outCols; c++) {
      let m = row[starts[c]];
      for (let j = starts[c] + 1; j < starts[c + 1]; j++) if (row[j] > m) m = row[j];
      out[base + c] = m;
    }
  }
  return out;
}

/**
 * Into `into` (Uint32Array of `words` words: 4 bytes each), the bytewise max
 * with rows from .. to - 1 of `all`. Bytes 0 and 2 of a word, then 1 and 3,
 * sit in the two 16-bit halves of a number, where (a | 256) - b keeps bit 8
 * exactly when a >= b, with no borrow from one half into the other.
 */
function poolRowsOfBytes(into, all, words, from, to) {
  for (let i = from; i < to; i++) {
    const offset = i * words;
    for (let j = 0; j < words; j++) {
      const a = into[j];
      const b = all[offset + j];
      const ae = a & 0x00ff00ff;
      const be = b & 0x00ff00ff;
      const ao = (a >>> 8) & 0x00ff00ff;
      const bo = (b >>> 8) & 0x00ff00ff;
      const keepE = ((((ae | 0x01000100) - be) >>> 8) & 0x00010001) * 0xff; // 0xff in each half where a >= b
      const keepO = ((((ao | 0x01000100) - bo) >>> 8) & 0x00010001) * 0xff;
      const e = (ae & keepE) | (be & ~keepE & 0x00ff00ff);
      const o = (ao & keepO) | (bo & ~keepO & 0x00ff00ff);
      into[j] = e | (o << 8);
    }
  }
}

/**
 * Paints a map to be shown at width x height CSS px: one canvas pixel per
 * cell when there are enough device pixels, else max-pooled to the device
 * pixels, so the canvas is never shrunk by the browser. `levels` and
 * `ranges` as for paintMap (a pooled pixel is visible when a cell it covers
 * is). Returns what it painted, {values, rows, cols, pooled, ranges}.
 */
export function paintMapAt(canvas, values, rows, cols, vmax, width, height, ratio = 1, levels = 0, ranges = null) {
  const outCols = Math.max(1, Math.round(width * ratio));
  const outRows = Math.max(1, Math.round(height * ratio));
  const pooled = !(cols <= outCols && rows <= outRows);
  const r = pooled ? Math.min(rows, outRows) : rows;
  const c = pooled ? Math.min(cols, outCols) : cols;
  return paintPixels(canvas, pooled ? maxPool(values, rows, cols, r, c) : values, r, c, vmax, width, height, levels, pooled,
    pooled ? poolRanges(ranges, rows, cols, r, c) : ranges);
}

/** paintMapAt's painting of values already at the canvas's size (e.g. pooled), `ranges` at that size too. */
export function paintPixels(canvas, values, rows, cols, vmax, width, height, levels, pooled, ranges = null) {
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  paintMap(canvas, values, rows, cols, vmax, levels, ranges);
  canvas.dataset.pooled = String(pooled);
  return { values, rows, cols, pooled, ranges };
}
