// Painting maps into canvases: one canvas pixel per cell, scaled by CSS with
// `image-rendering: pixelated`, so 12 heads x 512 x 512 cells are 3M table
// lookups and no DOM per cell.

import { LUT, colorIndex } from './colors.js';

/** Paints values (Float32Array rows*cols) on a 0..vmax scale. */
export function paintMap(canvas, values, rows, cols, vmax) {
  canvas.width = Math.max(cols, 1);
  canvas.height = Math.max(rows, 1);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(canvas.width, canvas.height);
  const px = image.data;
  const scale = vmax > 0 ? 255 / vmax : 0;
  for (let i = 0, n = rows * cols; i < n; i++) {
    const c = Math.min(255, Math.max(0, Math.round(values[i] * scale))) * 3;
    const o = i * 4;
    px[o] = LUT[c];
    px[o + 1] = LUT[c + 1];
    px[o + 2] = LUT[c + 2];
    px[o + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.vmax = String(vmax);
  canvas.dataset.rows = String(rows);
  canvas.dataset.cols = String(cols);
}

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
