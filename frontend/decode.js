// Decoding the binary maps route and deriving head mean / max maps.

/** "H,Q,K" header -> [H, Q, K] (or `rank` numbers); throws on anything else. */
export function parseShape(header, rank = 3) {
  const parts = String(header || '').split(',').map(Number);
  if (parts.length !== rank || parts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new Error(`bad X-Attention-Shape: ${header}`);
  }
  return parts;
}

/**
 * Bytes of the maps route -> {heads, q, k, data: Float32Array(heads*q*k)}.
 * uint8 cells hold round(w * 255); float32 cells are little-endian floats.
 */
export function decodeMaps(buffer, shape, encoding) {
  const [heads, q, k] = shape;
  const n = heads * q * k;
  let data;
  if (encoding === 'uint8') {
    const bytes = new Uint8Array(buffer);
    if (bytes.length !== n) throw new Error(`expected ${n} bytes, got ${bytes.length}`);
    data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = bytes[i] / 255;
  } else if (encoding === 'float32') {
    if (buffer.byteLength !== 4 * n) throw new Error(`expected ${4 * n} bytes, got ${buffer.byteLength}`);
    const view = new DataView(buffer);
    data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
  } else {
    throw new Error(`unknown encoding ${encoding}`);
  }
  return { heads, q, k, data };
}

/** One head's map as a view (no copy). */
export function headMap(maps, h) {
  const size = maps.q * maps.k;
  return maps.data.subarray(h * size, (h + 1) * size);
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

/**
 * Cell-wise mean and max over heads in one pass over the data:
 * {mean, max}, each Float32Array(q*k). Same numbers as headMean and headMax.
 */
export function headMeanMax(maps) {
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

export function maxOf(values) {
  let best = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > best) best = values[i];
  return best;
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
