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
