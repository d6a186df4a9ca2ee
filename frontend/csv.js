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
      for (let h = 0; h <= numHeads; h++) row.push(values[s][h][j]);
      lines.push(row.join(','));
    });
  });
  return lines.join('\n') + '\n';
}

/**
 * One map (Float32Array q*k, row-major) -> CSV text: one row per query
 * token, columns run, layer, step, example, head, query_position,
 * query_token, then one column per key token headed "position:token".
 */
export function mapCsv({ run, layer, step, example, head }, queryTokens, keyTokens, values) {
  const k = keyTokens.length;
  const header = ['run', 'layer', 'step', 'example', 'head', 'query_position', 'query_token',
    ...keyTokens.map((t, j) => csvField(`${j}:${t}`))];
  const lines = [header.join(',')];
  const where = [csvField(run), csvField(layer), step, example, csvField(head)];
  queryTokens.forEach((token, i) => {
    const row = [...where, i, csvField(token)];
    for (let j = 0; j < k; j++) row.push(values[i * k + j]);
    lines.push(row.join(','));
  });
  return lines.join('\n') + '\n';
}
