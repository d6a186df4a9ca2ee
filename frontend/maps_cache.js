// Decoded maps of recent steps, kept for quick stepping and filled ahead by
// prefetch. Bounded by cells: 64 M cells, e.g. 64 steps of 8 heads x 256
// tokens but only 3 of 16 x 1024; that is 256 MB of float32 maps, and about
// 64 MB of uint8 ones, which stay bytes (decode.js) plus 3 bytes per query x
// key cell for head mean and max and 4 per cell of each head read as numbers.

const MAPS_CACHE_CELLS = 64e6;
const MAPS_CACHE_MAX_STEPS = 64;

export class MapsCache {
  /** fetchMaps(run, tag, step, example, cellsPerStep) -> Promise of decoded maps. */
  constructor(fetchMaps) {
    this.fetchMaps = fetchMaps;
    this.entries = new Map(); // key -> Promise, oldest first
  }

  clear() {
    this.entries.clear();
  }

  /** The maps of one example at one step; cellsPerStep bounds how many are kept. */
  get(run, tag, example, step, cellsPerStep) {
    const key = JSON.stringify([run, tag, example, step]);
    if (!this.entries.has(key)) {
      const limit = Math.max(2, Math.min(MAPS_CACHE_MAX_STEPS, Math.floor(MAPS_CACHE_CELLS / Math.max(1, cellsPerStep))));
      while (this.entries.size >= limit) this.entries.delete(this.entries.keys().next().value);
      const request = this.fetchMaps(run, tag, step, example, cellsPerStep);
      request.catch(() => this.entries.delete(key)); // a failed fetch is retried next time
      this.entries.set(key, request);
    }
    return this.entries.get(key);
  }
}
