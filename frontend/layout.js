// Geometry: which cell of a map is under the pointer.

/**
 * Cell under a point. x, y are relative to the element's top-left corner;
 * width, height its displayed size; the map has q rows and k columns.
 * Returns {row, col} or null outside.
 */
export function cellAt(x, y, width, height, q, k) {
  if (x < 0 || y < 0 || x >= width || y >= height || q === 0 || k === 0) return null;
  return { row: Math.floor((y / height) * q), col: Math.floor((x / width) * k) };
}

/** Displayed size of a map with cells of `cell` px, capped at maxPx per side. */
export function mapSize(q, k, cell, maxPx) {
  const scale = Math.min(cell, maxPx / Math.max(q, k, 1));
  return { width: Math.max(1, Math.round(k * scale)), height: Math.max(1, Math.round(q * scale)) };
}

// What a scroll box shows of a list or a map, so that nothing is cut off
// without a sign (issue 32): a box never ends on a row boundary (it would
// look complete), and a line says how much is in view.

/**
 * The items of `pitch` px each, `n` in all, wholly inside a box `height` px
 * tall scrolled to `scrollTop`: {first, last} (last < first when none is
 * whole), and `more`, whether any item lies (partly) outside.
 */
export function inView(scrollTop, height, pitch, n) {
  if (!(n > 0) || !(pitch > 0)) return { first: 0, last: -1, more: false };
  const first = Math.min(n - 1, Math.max(0, Math.ceil(scrollTop / pitch - 1e-6)));
  const last = Math.min(n - 1, Math.floor((scrollTop + height) / pitch + 1e-6) - 1);
  return { first, last, more: first > 0 || last < n - 1 };
}

/**
 * The most a box of items `pitch` px each may be, at most `limit` px, ending
 * half way through an item (so a cut-off item shows as one): limit when a
 * half item already ends it, else limit less up to half an item. E.g. rows
 * of 16 px in 420 px: 408 (25.5 rows).
 */
export function cutMidItem(limit, pitch) {
  if (!(pitch > 0)) return limit;
  const whole = Math.floor(limit / pitch - 0.5);
  return Math.max(pitch / 2, (whole + 0.5) * pitch);
}

/** '25 of 41 tokens shown (0–24): scroll for more', or '' when every one is shown. */
export function shownText({ first, last }, n, noun = 'tokens') {
  if (first === 0 && last >= n - 1) return '';
  const count = Math.max(0, last - first + 1);
  return `${count} of ${n} ${noun} shown${count ? ` (${first}–${last})` : ''}: scroll for more`;
}

/**
 * At most `most` of the indices 0..n-1 to label an axis with, evenly spaced
 * at a round stride (1, 2, 5, 10, 20, 50, ...), starting at 0; with a
 * stride over 1 the last index is labelled too when it does not crowd the
 * one before it. E.g. (41, 10): 0, 5, ..., 40.
 */
export function spreadTicks(n, most) {
  if (n <= 0) return [];
  if (n <= most) return Array.from({ length: n }, (_, i) => i);
  let stride = 1;
  for (let p = 1; stride * most < n; p *= 10) {
    stride = [1, 2, 5].map((m) => m * p).find((s) => s * most >= n) || 10 * p;
  }
  const ticks = [];
  for (let i = 0; i < n; i += stride) ticks.push(i);
  if (ticks[ticks.length - 1] !== n - 1 && n - 1 - ticks[ticks.length - 1] > stride / 2 && ticks.length < most) ticks.push(n - 1);
  return ticks;
}
