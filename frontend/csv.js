// CSV exports (RFC 4180 quoting): a map, and token importance over steps.

// Spreadsheet programs (Excel, LibreOffice, Google Sheets) run a cell as a
// formula when it starts with = + - or @ (OWASP "CSV injection"; a leading
// tab or carriage return can start one too). A field is guarded with a
// leading ' (shown as text) only when it could really run:
// - it starts with =, @, a tab or a carriage return: always;
// - it starts with + or -: when it is not a plain number (-1.5, +2e-3 stay
//   numbers) and, after its run of signs and spaces, comes something a
//   formula's operand can start with: a letter or digit (-1+2, +A1, -cmd|...),
//   ( " ' $ . _ # @ = { [ \ (a function call, a string, an absolute or
//   sheet reference, an error value, an array, another formula).
// So a lone "-" or "+" token, "--", "->", "-)" or "- ," stay as they are:
// none of them is a formula a spreadsheet would run.
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const ALWAYS = /^[=@\t\r]/;
const SIGNED_OPERAND = /^[+-][+\- ]*[\p{L}\p{N}("'$._#@={[\\]/u;

/** Whether a spreadsheet would run `text` as a formula (see above). */
export function startsFormula(text) {
  if (ALWAYS.test(text)) return true;
  return SIGNED_OPERAND.test(text) && !NUMBER.test(text);
}

/** Quotes a field; a field a spreadsheet would run as a formula gets a leading ' (startsFormula). */
export function csvField(value) {
  let text = String(value);
  if (startsFormula(text)) text = `'${text}`;
  if (/[",\r\n]/.test(text)) text = `"${text.replace(/"/g, '""')}"`;
  return text;
}

const SIGNIFICANT = 6; // digits: tells apart values 1/16320 apart (uint8 means of 64 heads) from 0.01 up

/** value / levels as text, to at most 6 significant digits: 251/255 -> "0.984314", 255/255 -> "1". */
export function levelText(value, levels) {
  return String(Number((value / levels).toPrecision(SIGNIFICANT)));
}

/**
 * The shortest decimal text that reads back as the same float32 as `v`
 * (at most 9 significant digits): Math.fround(0.9) -> "0.9", not the
 * float64 expansion 0.8999999761581421. "" for null, NaN stays "NaN".
 */
export function float32Text(v) {
  if (v === null || v === undefined) return '';
  if (!Number.isFinite(v)) return String(v);
  const f = Math.fround(v);
  // From 6 digits: a float32 whose shortest text has fewer (0.5, 0.1) prints
  // them at 6 (0.500000 -> 0.5), as float32's spacing is far below 1e-6 of it.
  for (let digits = 6; digits < 9; digits++) {
    const text = f.toPrecision(digits);
    if (Math.fround(Number(text)) === f) return String(Number(text));
  }
  return String(Number(f.toPrecision(9)));
}

/**
 * A function i -> text of cell i of cells {values, levels} (decode.js):
 * integer cells (uint8 bytes, levels 255; their sum over heads, levels 255 *
 * heads) as the stored value to 6 significant digits (levelText, from a table
 * made once), float cells as float32Text.
 */
export function cellTexts({ values, levels }) {
  if (!levels) return (i) => float32Text(values[i]);
  const table = new Array(levels + 1);
  return (i) => {
    const v = values[i];
    return table[v] || (table[v] = levelText(v, levels));
  };
}

/**
 * Importance over steps -> CSV text: one row per step and token, columns
 * run, layer, example, step, position, token, head_0..head_{H-1}, head_mean.
 * values[s][h][j] as served by the importance route (index H = mean).
 */
export function importanceCsv({ run, layer, example }, tokens, steps, values, numHeads) {
  const header = ['run', 'layer', 'example', 'step', 'position', 'token'];
  for (let h = 0; h < numHeads; h++) header.push(`head_${h}`);
  header.push('head_mean');
  const lines = [header.join(',')];
  const where = [csvField(run), csvField(layer), example];
  steps.forEach((step, s) => {
    tokens.forEach((token, j) => {
      const row = [...where, step, j, csvField(token)];
      for (let h = 0; h <= numHeads; h++) row.push(float32Text(values[s][h][j]));
      lines.push(row.join(','));
    });
  });
  return lines.join('\n') + '\n';
}

/**
 * One map, cells {values, levels} of q*k in row-major order (decode.js
 * headCells; a Float32Array of weights is taken as float cells) -> CSV
 * text: one row per query token, columns run, layer, step, example, head,
 * query_position, query_token, then one column per key token headed
 * "position:token". Weights are written as stored (cellTexts).
 */
export function mapCsv({ run, layer, step, example, head }, queryTokens, keyTokens, cells) {
  const k = keyTokens.length;
  const text = cellTexts(ArrayBuffer.isView(cells) ? { values: cells, levels: 0 } : cells);
  const header = ['run', 'layer', 'step', 'example', 'head', 'query_position', 'query_token',
    ...keyTokens.map((t, j) => csvField(`${j}:${t}`))];
  const lines = [header.join(',')];
  const where = [csvField(run), csvField(layer), step, example, csvField(head)];
  queryTokens.forEach((token, i) => {
    const row = [...where, i, csvField(token)];
    for (let j = 0; j < k; j++) row.push(text(i * k + j));
    lines.push(row.join(','));
  });
  return lines.join('\n') + '\n';
}
