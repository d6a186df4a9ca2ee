// Which token is which patch of a ViT's image (the /index layer's `grid`:
// {rows, cols, prefix}): tokens 0..prefix-1 are class or register tokens,
// token prefix + r * cols + c is patch (r, c), row by row. Pure functions,
// unit-tested with node.

/** The token of patch (r, c). */
export const patchToken = (grid, r, c) => grid.prefix + r * grid.cols + c;

/** {r, c} of a token, or null for a class/register token or a token past the grid. */
export function tokenPatch(grid, token) {
  const i = token - grid.prefix;
  if (!(i >= 0 && i < grid.rows * grid.cols)) return null;
  return { r: Math.floor(i / grid.cols), c: i % grid.cols };
}

/** The query shown first: the class token when there is one, else the centre patch. */
export const defaultQuery = (grid) => (grid.prefix > 0 ? 0 : patchToken(grid, Math.floor(grid.rows / 2), Math.floor(grid.cols / 2)));

/** Whether a sequence of `length` tokens is this grid's (prefix tokens, then every patch). */
export const gridFits = (grid, length) => Boolean(grid) && grid.rows > 0 && grid.cols > 0 && length === grid.prefix + grid.rows * grid.cols;

/** The patch under a point (x, y) of an image shown width x height px, clamped to the grid. */
export function patchAt(grid, x, y, width, height) {
  const clamp = (v, n) => Math.min(Math.max(v, 0), n - 1);
  return { r: clamp(Math.floor((y / height) * grid.rows), grid.rows), c: clamp(Math.floor((x / width) * grid.cols), grid.cols) };
}

/**
 * A row of attention over the grid's tokens split in two: {patches:
 * Float32Array(rows * cols) row by row, prefix: the sum over the
 * class/register tokens, max: the largest patch value}.
 */
export function splitRow(grid, row) {
  const n = grid.rows * grid.cols;
  const patches = new Float32Array(n);
  let prefix = 0;
  for (let t = 0; t < grid.prefix; t++) prefix += row[t];
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = row[grid.prefix + i];
    patches[i] = v;
    if (v > max) max = v;
  }
  return { patches, prefix, max };
}
