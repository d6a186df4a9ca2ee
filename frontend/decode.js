// Decoding the binary maps route and deriving head mean / max maps.
//
// uint8 maps stay bytes: painting reads them through a colour table
// (heatmap.js), thumbnails max-pool them, the head mean is an integer sum
// over heads. Float32 copies are made only where numbers are read (hover,
// text tints, exports, the image view), one head at a time: at 12 heads x
// 512 tokens the copy of every cell was 13-26 ms and 12 MB per step
// (docs/PERFORMANCE.md).

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** "H,Q,K" header -> [H, Q, K] (or `rank` numbers); throws on anything else. */
export function parseShape(header, rank = 3) {
  const parts = String(header || '').split(',').map(Number);
  if (parts.length !== rank || parts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(`bad X-Attention-Shape: ${header}`);
  }
  return parts;
}

/** Float32Array of bytes / 255 (the stored weights of uint8 cells). */
function bytesToFloats(bytes) {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
  return out;
}

/**
 * One step's maps: heads, q, k; `bytes` (Uint8Array(heads*q*k), weight =
 * byte / 255) for uint8 replies, else null; `data`, Float32Array(heads*q*k)
 * of the weights, made on first use for uint8 replies.
 */
class Maps {
  constructor(heads, q, k, bytes, floats) {
    Object.assign(this, { heads, q, k, bytes });
    this.floats = floats;
    this.headFloats = new Map();
  }

  get data() {
    if (!this.floats) this.floats = bytesToFloats(this.bytes);
    return this.floats;
  }
}

/** Maps of float32 weights (heads*q*k) made here, e.g. value-weighted ones. */
export const floatMaps = (heads, q, k, floats) => new Maps(heads, q, k, null, floats);

/**
 * Bytes of the maps route -> {heads, q, k, bytes, data} (see Maps).
 * uint8 cells hold round(w * 255); float32 cells are little-endian floats.
 */
export function decodeMaps(buffer, shape, encoding) {
  const [heads, q, k] = shape;
  const n = heads * q * k;
  if (encoding === 'uint8') {
    const bytes = new Uint8Array(buffer);
    if (bytes.length !== n) throw new Error(`expected ${n} bytes, got ${bytes.length}`);
    return new Maps(heads, q, k, bytes, null);
  }
  if (encoding === 'float32') {
    if (buffer.byteLength !== 4 * n) throw new Error(`expected ${4 * n} bytes, got ${buffer.byteLength}`);
    let data;
    if (LITTLE_ENDIAN) {
      data = new Float32Array(buffer); // the reply as it is: no copy
    } else {
      const view = new DataView(buffer);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
    }
    return new Maps(heads, q, k, null, data);
  }
  throw new Error(`unknown encoding ${encoding}`);
}

/** One head's weights, Float32Array(q*k): a view of `data`, or of this head alone for uint8 maps not yet copied whole. */
export function headMap(maps, h) {
  const size = maps.q * maps.k;
  if (maps.bytes && !maps.floats) {
    let values = maps.headFloats.get(h);
    if (!values) {
      values = bytesToFloats(maps.bytes.subarray(h * size, (h + 1) * size));
      maps.headFloats.set(h, values);
    }
    return values;
  }
  return maps.data.subarray(h * size, (h + 1) * size);
}

/**
 * One head's cells for painting (heatmap.js): {values, levels}, weight =
 * values[i] / levels, or values[i] itself when levels is 0 (floats).
 */
export function headCells(maps, h) {
  const size = maps.q * maps.k;
  if (maps.bytes) return { values: maps.bytes.subarray(h * size, (h + 1) * size), levels: 255 };
  return { values: maps.data.subarray(h * size, (h + 1) * size), levels: 0 };
}

/** Weight i of cells {values, levels}. */
export function cellWeight(cells, i) {
  return cells.levels ? cells.values[i] / cells.levels : cells.values[i];
}

/** Float32Array of the weights of cells {values, levels}. */
export function cellsToFloats(cells) {
  if (!cells.levels) return cells.values;
  const { values, levels } = cells;
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] / levels;
  return out;
}

/** Cell-wise mean over heads: Float32Array(q*k). */
export function headMean(maps) {
  const size = maps.q * maps.k;
  const out = new Float32Array(size);
  for (let h = 0; h < maps.heads; h++) {
    const m = headMap(maps, h);
    for (let i = 0; i < size; i++) out[i] += m[i];
  }
  for (let i = 0; i < size; i++) out[i] /= maps.heads;
  return out;
}

/** Cell-wise max over heads: Float32Array(q*k). */
export function headMax(maps) {
  const size = maps.q * maps.k;
  const out = new Float32Array(size);
  for (let h = 0; h < maps.heads; h++) {
    const m = headMap(maps, h);
    for (let i = 0; i < size; i++) if (m[i] > out[i]) out[i] = m[i];
  }
  return out;
}

// Derived maps of a step, computed once per decoded step (the cache keeps
// the maps, so a step shown again costs no pass over its cells).
const derivedOf = new WeakMap();

/**
 * uint8 maps: the sum over heads of every cell's bytes, exact integers
 * (Uint16Array up to 257 heads, else Uint32Array). Four cells at a time where
 * it can (sumBytesByWords): 5 ms instead of 12 at 12 heads x 512 tokens.
 */
function sumBytes(maps) {
  const { heads, bytes } = maps;
  const size = maps.q * maps.k;
  if (LITTLE_ENDIAN && heads <= 257 && size % 4 === 0 && bytes.byteOffset % 4 === 0) return sumBytesByWords(maps);
  const sum = heads <= 257 ? new Uint16Array(size) : new Uint32Array(size);
  for (let h = 0; h < heads; h++) {
    const offset = h * size;
    for (let i = 0; i < size; i++) sum[i] += bytes[offset + i];
  }
  return sum;
}

/**
 * sumBytes reading 32-bit words of 4 bytes: bytes 0 and 2 of each word are
 * summed in the two 16-bit halves of one accumulator, bytes 1 and 3 in
 * another (257 heads x 255 fits in 16 bits), then put back in cell order.
 */
function sumBytesByWords(maps) {
  const { heads, bytes } = maps;
  const size = maps.q * maps.k;
  const words = size / 4;
  const all = new Uint32Array(bytes.buffer, bytes.byteOffset, heads * words);
  const even = new Uint32Array(words);
  const odd = new Uint32Array(words);
  for (let h = 0; h < heads; h++) {
    const offset = h * words;
    for (let i = 0; i < words; i++) {
      const w = all[offset + i];
      even[i] += w & 0x00ff00ff;
      odd[i] += (w >>> 8) & 0x00ff00ff;
    }
  }
  const sum = new Uint16Array(size);
  for (let i = 0; i < words; i++) {
    const e = even[i];
    const o = odd[i];
    const c = 4 * i;
    sum[c] = e & 0xffff;
    sum[c + 1] = o & 0xffff;
    sum[c + 2] = e >>> 16;
    sum[c + 3] = o >>> 16;
  }
  return sum;
}

/** uint8 maps: the largest byte over heads of every cell. */
function maxBytes(maps) {
  const size = maps.q * maps.k;
  return maxOfArrays(Array.from({ length: maps.heads }, (_, h) => maps.bytes.subarray(h * size, (h + 1) * size)));
}

/**
 * Cell-wise max of non-negative arrays of one length and type (a step's
 * heads; the heads grid's pooled thumbnails, view_grid.js).
 */
export function maxOfArrays(arrays) {
  const out = new arrays[0].constructor(arrays[0].length);
  for (const a of arrays) for (let i = 0; i < a.length; i++) if (a[i] > out[i]) out[i] = a[i];
  return out;
}

/** Float32 mean and max of float maps in one pass over the data. */
function meanMaxFloats(maps) {
  const size = maps.q * maps.k;
  const { heads, data } = maps;
  const sum = new Float32Array(size);
  const max = new Float32Array(size);
  for (let h = 0; h < heads; h++) {
    const offset = h * size;
    for (let i = 0; i < size; i++) {
      const v = data[offset + i];
      sum[i] += v;
      if (v > max[i]) max[i] = v;
    }
  }
  for (let i = 0; i < size; i++) sum[i] /= heads;
  return { mean: sum, max };
}

/**
 * The head mean's cells for painting, {values, levels} (see headCells):
 * for uint8 maps the exact sum of bytes over heads, levels 255 * heads.
 */
export function headMeanCells(maps) {
  return headMeanMax(maps).meanCells;
}

/**
 * Cell-wise mean and max over heads, computed once per maps: {meanCells,
 * maxCells} to paint (see headCells) and {mean, max}, each Float32Array(q*k)
 * of weights. For uint8 maps everything but meanCells is made on first use:
 * the heads grid pools its max thumbnail from the heads' (view_grid.js), so
 * a step shown with the head mean enlarged makes no full-size max.
 * Same numbers as headMean and headMax.
 */
export function headMeanMax(maps) {
  const known = derivedOf.get(maps);
  if (known) return known;
  let derived;
  if (maps.bytes) {
    const meanCells = { values: sumBytes(maps), levels: 255 * maps.heads };
    let maxCells = null;
    let mean = null;
    let maxFloats = null;
    derived = {
      meanCells,
      get maxCells() { return (maxCells = maxCells || { values: maxBytes(maps), levels: 255 }); },
      get mean() { return (mean = mean || cellsToFloats(meanCells)); },
      get max() { return (maxFloats = maxFloats || cellsToFloats(this.maxCells)); },
    };
  } else {
    const { mean, max } = meanMaxFloats(maps);
    derived = { mean, max, meanCells: { values: mean, levels: 0 }, maxCells: { values: max, levels: 0 } };
  }
  derivedOf.set(maps, derived);
  return derived;
}

export function maxOf(values) {
  let best = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > best) best = values[i];
  return best;
}

/** The largest weight of a step's maps (the stretched colour scale's top), without a float copy of uint8 maps. */
export function mapsMax(maps) {
  if (!maps.bytes) return maxOf(maps.data);
  return Math.fround(maxOf(maps.bytes) / 255); // the float32 weight, as `data` holds it
}

/**
 * Bytes of `importance?format=binary` -> {steps: number[], values: Float32Array[]}:
 * `steps` little-endian float64 step numbers, then steps x tokens float32.
 * values[s] is a view of step s's row (no copy).
 */
export function decodeImportance(buffer, shape) {
  const [steps, tokens] = shape;
  if (buffer.byteLength !== 8 * steps + 4 * steps * tokens) {
    throw new Error(`expected ${8 * steps + 4 * steps * tokens} bytes, got ${buffer.byteLength}`);
  }
  const stepNumbers = Array.from(new Float64Array(buffer, 0, steps));
  const values = new Float32Array(buffer, 8 * steps, steps * tokens);
  const rows = Array.from({ length: steps }, (_, s) => values.subarray(s * tokens, (s + 1) * tokens));
  return { steps: stepNumbers, values: rows };
}
