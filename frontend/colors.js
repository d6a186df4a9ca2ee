// Colour scale for attention weights: a perceptually ordered ramp (viridis
// anchors), 256 entries, so painting a cell is one table lookup.

export const ANCHORS = [
  [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];

/** 256 x RGB table interpolated linearly between the anchors. */
export function buildLut(anchors = ANCHORS) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (anchors.length - 1);
    const lo = Math.floor(t);
    const hi = Math.min(lo + 1, anchors.length - 1);
    const f = t - lo;
    for (let c = 0; c < 3; c++) {
      lut[i * 3 + c] = Math.round(anchors[lo][c] * (1 - f) + anchors[hi][c] * f);
    }
  }
  return lut;
}

export const LUT = buildLut();

/** Index into the table of weight w on a scale from 0 to vmax. */
export function colorIndex(w, vmax) {
  if (!(vmax > 0)) return 0;
  const t = Math.min(Math.max(w / vmax, 0), 1);
  return Math.round(t * 255);
}

/** [r, g, b] of weight w on a 0..vmax scale. */
export function colorOf(w, vmax, lut = LUT) {
  const i = colorIndex(w, vmax) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

export function cssColor(w, vmax) {
  const [r, g, b] = colorOf(w, vmax);
  return `rgb(${r}, ${g}, ${b})`;
}
