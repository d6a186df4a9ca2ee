// CSV export of token importance (RFC 4180 quoting).

/**
 * Quotes a field; a field starting with = + - @ gets a leading ' so that
 * spreadsheet programs show it as text instead of running it as a formula.
 */
export function csvField(value) {
  let text = String(value);
  if (/^[=+\-@]/.test(text) && Number.isNaN(Number(text))) text = `'${text}`;
  if (/[",\r\n]/.test(text)) text = `"${text.replace(/"/g, '""')}"`;
  return text;
}

/**
 * Importance over steps -> CSV text: one row per step and token, columns
 * step, position, token, head_0..head_{H-1}, head_mean.
 * values[s][h][j] as served by the importance route (index H = mean).
 */
export function importanceCsv(tokens, steps, values, numHeads) {
  const header = ['step', 'position', 'token'];
  for (let h = 0; h < numHeads; h++) header.push(`head_${h}`);
  header.push('head_mean');
  const lines = [header.join(',')];
  steps.forEach((step, s) => {
    tokens.forEach((token, j) => {
      const row = [step, j, csvField(token)];
      for (let h = 0; h <= numHeads; h++) row.push(values[s][h][j]);
      lines.push(row.join(','));
    });
  });
  return lines.join('\n') + '\n';
}
