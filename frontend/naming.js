// How the tab names a token and a cell wherever it shows one (tooltips,
// labels, lists): always with its position, since a token's text alone does
// not say which one it is ("last" twice in a review, "the" 80 times in 2048
// tokens). Positions are 0-based in the example's map (its real tokens, as
// the CSV's query_position and position columns): `q 2 "last"` is row 2,
// `k 3 "last"` column 3. A cell the query cannot see (visibility.js:
// causal, sliding window) is named with why, never a number.
// Pure functions: frontend/tests/naming.test.mjs.

const SIDES = { query: 'q', key: 'k', token: '' };

/** `q 2 "last"`, `k 3 "last"`, or for side 'token' (queries and keys are the same tokens) `2 "last"`. */
export function tokenName(side, index, token) {
  const letter = SIDES[side] ?? side;
  return `${letter ? `${letter} ` : ''}${index} "${token}"`;
}

/** A map's cell: `q 2 "last" → k 3 "last"`. */
export function cellName(row, col, queryTokens, keyTokens) {
  return `${tokenName('query', row, queryTokens[row])} → ${tokenName('key', col, keyTokens[col])}`;
}

/**
 * What a cell holds, in words: `not visible: after the query (causal)` when
 * `hidden` (visibility.js hiddenReason) is not '', else the weight to
 * `digits` decimals.
 */
export function cellValue(weight, hidden, digits = 4) {
  return hidden ? `not visible: ${hidden}` : weight.toFixed(digits);
}

/**
 * What a map's rows and columns are, for the line over it. Cross attention's
 * rows are the decoder's input tokens as fed to it (the target shifted right
 * by a start token in teacher forcing), its columns the encoder's tokens.
 */
export function axesText(kind) {
  return kind === 'cross'
    ? "rows: the decoder's input tokens ↓ (as fed to the decoder: the target shifted right, row i predicts the token after it) · " +
      "columns: the encoder's tokens →"
    : 'rows: query tokens ↓ · columns: key tokens →';
}
