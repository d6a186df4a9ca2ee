// Downloads: the enlarged map as PNG, importance of every head as CSV.

import * as api from './api.js';
import { importanceCsv } from './csv.js';
import { el } from './dom.js';

const fileName = (text) => text.replace(/[^\w.-]+/g, '_');

export function download(name, href) {
  const link = el('a', { href, download: fileName(name) });
  document.body.append(link);
  link.click();
  link.remove();
}

export function exportPng(canvas, { tag, step }) {
  download(`attention-${tag}-step${step}.png`, canvas.toDataURL('image/png'));
}

export async function exportImportanceCsv({ run, tag, example, mode }) {
  const imp = await api.fetchImportance(run, tag, example, mode); // every head
  const text = importanceCsv(imp.tokens, imp.steps, imp.values, imp.num_heads);
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  download(`importance-${imp.mode}-${tag}.csv`, url);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
