// Which cells of a map its query can see. A causal layer's query sees no key
// after it; a layer with a sliding window (keras_hub Gemma3's local layers,
// /index's `sliding_window`, format field 19) sees the key at position j
// from the query at position i only when |i - j| < window. Every other cell
// is not visible to the layer: painted as such (heatmap.js), never as a
// weight of 0. Positions are in the padded input: row r of an example's
// cropped map is position query_offset + r, column c is key_offset + c.
// Pure functions: unit-tested with node (frontend/tests/visibility.test.mjs).

/**
 * What visibility needs from a layer of /index and one of its examples:
 * {kind, window, queryOffset, keyOffset, keys}.
 */
export function visibilityFacts(layer, example) {
  return {
    kind: layer.kind,
    window: layer.sliding_window > 0 ? layer.sliding_window : 0, // older servers send none
    queryOffset: example.query_offset || 0,
    keyOffset: example.key_offset || 0,
    keys: example.key_length,
  };
}

/** Whether a layer with these facts hides cells: causal, or a self-attention window (cross attention sees every key). */
export function hidesCells(facts) {
  return facts.kind === 'causal' || (facts.kind !== 'cross' && facts.window > 0);
}

/**
 * The visible columns of map row `row`: [first, last], both included; first >
 * last when the row sees no key. E.g. causal, window 4, offsets 0: row 8 sees
 * columns 5..8.
 */
export function visibleRange(row, facts) {
  const { kind, window, queryOffset, keyOffset, keys } = facts;
  let first = 0;
  let last = keys - 1;
  if (!hidesCells(facts)) return [first, last];
  const query = queryOffset + row - keyOffset; // the query's position, as a column of this map
  if (kind === 'causal') last = Math.min(last, query);
  if (window > 0) {
    first = Math.max(first, query - window + 1);
    last = Math.min(last, query + window - 1);
  }
  return [first, last];
}

/**
 * Every row's visibleRange for painting: Int32Array(2 * rows) of first,
 * last per row; null when every cell is visible (the painting's plain path).
 */
export function visibleRanges(facts, rows) {
  if (!hidesCells(facts)) return null;
  const ranges = new Int32Array(2 * rows);
  for (let r = 0; r < rows; r++) {
    const [first, last] = visibleRange(r, facts);
    ranges[2 * r] = first;
    ranges[2 * r + 1] = last;
  }
  return ranges;
}

const keysText = (n) => `${n} key${n === 1 ? '' : 's'}`;

/**
 * Why the query of `row` cannot see the key of `col`: 'after the query
 * (causal)' or 'outside the sliding window of 4 keys'; '' when it can.
 */
export function hiddenReason(row, col, facts) {
  const [first, last] = visibleRange(row, facts);
  if (col >= first && col <= last) return '';
  if (facts.kind === 'causal' && facts.keyOffset + col > facts.queryOffset + row) return 'after the query (causal)';
  return `outside the sliding window of ${keysText(facts.window)}`;
}

/**
 * The layer's window in words for its description and legend ('' for
 * none): 'sliding window of 4 keys (each query sees itself and the 3 keys
 * before it)'.
 */
export function windowText(facts) {
  if (facts.kind === 'cross' || !(facts.window > 0)) return '';
  const w = facts.window;
  return facts.kind === 'causal'
    ? `sliding window of ${keysText(w)} (each query sees itself and the ${w === 1 ? 'no key' : keysText(w - 1)} before it)`
    : `sliding window of ${keysText(w)} (each query sees the keys fewer than ${w} positions away)`;
}

/**
 * The legend's words for the hatched cells of a layer that hides cells:
 * 'not visible: keys after the query (causal) or outside its sliding
 * window of 4 keys; a weight of 0 is the scale's darkest colour'.
 */
export function notVisibleText(facts) {
  const window = facts.kind !== 'cross' && facts.window > 0 ? `outside its sliding window of ${keysText(facts.window)}` : '';
  const why = [facts.kind === 'causal' ? 'after the query (causal)' : '', window].filter(Boolean).join(' or ');
  return `not visible: keys ${why}; a weight of 0 is the scale's darkest colour`;
}

/**
 * The ranges of a rows x cols map max-pooled into outRows x outCols as
 * heatmap.js's maxPool pools it (output row R covers rows
 * ceil(R * rows / outRows) .. ceil((R + 1) * rows / outRows) - 1; column j
 * falls in output column floor(j * outCols / cols)): a pooled pixel is
 * visible when any cell it covers is. Rows are joined by the span of their
 * ranges (exact for causal and window rows, whose ranges move forward
 * together). null stays null.
 */
export function poolRanges(ranges, rows, cols, outRows, outCols) {
  if (!ranges) return null;
  const out = new Int32Array(2 * outRows);
  let i = 0;
  for (let r = 0; r < outRows; r++) {
    const end = Math.ceil(((r + 1) * rows) / outRows);
    let first = cols;
    let last = -1;
    for (; i < end; i++) {
      if (ranges[2 * i] > ranges[2 * i + 1]) continue; // a row that sees nothing
      first = Math.min(first, ranges[2 * i]);
      last = Math.max(last, ranges[2 * i + 1]);
    }
    out[2 * r] = first > last ? 1 : Math.floor((first * outCols) / cols);
    out[2 * r + 1] = first > last ? 0 : Math.floor((last * outCols) / cols);
  }
  return out;
}

/**
 * Per row the span of two maps' visible columns (a difference of two maps
 * of one shape): a cell is hidden only where both hide it. null (every cell
 * visible) when either is.
 */
export function unionRanges(a, b) {
  if (!a || !b) return null;
  const out = new Int32Array(a.length);
  for (let r = 0; r < a.length; r += 2) {
    const emptyA = a[r] > a[r + 1];
    const emptyB = b[r] > b[r + 1];
    out[r] = emptyA ? b[r] : emptyB ? a[r] : Math.min(a[r], b[r]);
    out[r + 1] = emptyA ? b[r + 1] : emptyB ? a[r + 1] : Math.max(a[r + 1], b[r + 1]);
  }
  return out;
}

// Ranges per example of /index, made once (its objects live until the next index).
const rangesOf = new WeakMap();

/** visibleRanges of an example of a layer of /index (cached per example object). */
export function exampleRanges(layer, example) {
  if (!rangesOf.has(example)) rangesOf.set(example, visibleRanges(visibilityFacts(layer, example), example.query_length));
  return rangesOf.get(example);
}
