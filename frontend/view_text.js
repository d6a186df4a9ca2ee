// The example as text: hover (or click to pin) a token and every other token
// is tinted by the attention it gives (its query row) or receives (its key
// column) in the map shown, on the tab's colour scale. Every token's tooltip
// names it with its position; a tinted one, the cell and its weight
// (`q 2 "last" → k 3 "last": 0.412`), or why the query cannot see that key
// (hatched, never the colour of a weight of 0).

import { cssColor } from './colors.js';
import { el, fillSelect } from './dom.js';
import { cellName, cellValue, tokenName } from './naming.js';
import { RATIO, ratioIndex, ratioText, rowCount } from './scales.js';
import { hiddenReason, hidesCells, visibilityFacts } from './visibility.js';

export class TextView {
  /** onChoice({direction, pinned}) keeps the direction and the pinned token ({side, index} or null). */
  constructor({ onChoice = () => {} } = {}) {
    this.onChoice = onChoice;
    this.direction = el('select', { id: 'text-direction', title: 'what the tint shows' });
    fillSelect(this.direction, [
      { value: 'gives', label: 'attention the token gives (its query row)' },
      { value: 'receives', label: 'attention the token receives (its key column)' },
    ]);
    this.direction.addEventListener('change', () => {
      this.pinned = null;
      this.onChoice({ direction: this.direction.value, pinned: null });
      this.focusOn(null);
    });
    this.help = el('span', { className: 'info', id: 'text-help' });
    this.queries = el('p', { className: 'tokens', id: 'text-queries' });
    this.keys = el('p', { className: 'tokens', id: 'text-keys' });
    this.element = el('section', { className: 'panel', id: 'text-panel' }, [
      el('div', { className: 'panel-head' }, [el('h3', { text: 'Text' }), this.direction, this.help]),
      this.queries, this.keys,
    ]);
    this.pinned = null; // {side, index} kept while stepping
    this.hovered = null;
    this.tinted = []; // spans the last render coloured
  }

  /**
   * Token spans for an example (of `layer`: which keys its queries see); one
   * line when queries and keys are the same tokens. `choice` {direction,
   * pinned} as kept in the tab's state (a link's).
   */
  setExample(example, layer = null, choice = {}) {
    this.example = example;
    const facts = layer ? visibilityFacts(layer, example) : null;
    this.facts = facts && hidesCells(facts) ? facts : null;
    this.tinted = [];
    this.direction.value = choice.direction === 'receives' ? 'receives' : 'gives';
    const p = choice.pinned;
    const length = p ? (p.side === 'key' ? example.key_tokens.length : example.query_tokens.length) : 0;
    this.pinned = p && Number.isInteger(p.index) && p.index >= 0 && p.index < length ? { side: p.side, index: p.index } : null;
    this.hovered = null;
    this.same = example.query_tokens.length === example.key_tokens.length &&
      example.query_tokens.every((t, i) => t === example.key_tokens[i]);
    const spans = (tokens, side) => tokens.map((t, i) => {
      const span = el('span', { className: 'token', text: t, title: this.nameOf(side, i), dataset: { index: String(i), side } });
      span.addEventListener('mouseenter', () => { this.hovered = { side, index: i }; this.render(); });
      span.addEventListener('mouseleave', () => { this.hovered = null; this.render(); });
      span.addEventListener('click', () => {
        const same = this.pinned && this.pinned.side === side && this.pinned.index === i;
        this.pinned = same ? null : { side, index: i };
        this.onChoice({ pinned: this.pinned });
        this.render();
      });
      return span;
    });
    this.queries.replaceChildren(el('span', { className: 'info', text: this.same ? 'tokens: ' : 'queries: ' }), ...spans(example.query_tokens, 'query'));
    this.keys.replaceChildren(el('span', { className: 'info', text: 'keys: ' }), ...spans(example.key_tokens, 'key'));
    this.keys.hidden = this.same;
    this.render();
  }

  /** A token's name with its position: `q 2 "last"`, `k 3 "last"`, or `2 "last"` on the one line of self attention. */
  nameOf(side, index) {
    const tokens = side === 'key' ? this.example.key_tokens : this.example.query_tokens;
    return tokenName(this.same ? 'token' : side, index, tokens[index]);
  }

  /** The map shown (Float32Array q*k) and its scale. */
  show(values, q, k, vmax) {
    Object.assign(this, { values, q, k, vmax });
    this.render();
  }

  focusOn(token) {
    this.hovered = token;
    this.render();
  }

  render() {
    // Untint what the last render tinted (touching every span of a long text
    // at every step would cost a style pass for nothing).
    for (const span of this.tinted || []) {
      span.style.background = '';
      span.style.color = '';
      span.classList.remove('source', 'not-visible');
      span.title = this.nameOf(span.dataset.side, Number(span.dataset.index));
      delete span.dataset.weight;
      delete span.dataset.hidden;
    }
    this.tinted = [];
    const gives = this.direction.value === 'gives';
    this.help.textContent = gives
      ? 'hover or click a token: the others are tinted by the attention it gives them'
      : 'hover or click a token: the others are tinted by the attention they give it';
    const focus = this.hovered || this.pinned;
    if (!focus || !this.values) return;
    // gives: the token is a query (row i), tint keys j by map[i][j];
    // receives: the token is a key (column j), tint queries i by map[i][j].
    const { k, vmax, values } = this;
    const index = focus.index;
    const source = this.same ? this.queries : (focus.side === 'query' ? this.queries : this.keys);
    const tinted = this.same ? this.queries : (gives ? this.keys : this.queries);
    if (!this.same && (gives ? focus.side !== 'query' : focus.side !== 'key')) return; // that side has no such row/column
    const from = source.querySelector(`.token[data-index="${index}"]`);
    if (from) {
      from.classList.add('source');
      this.tinted.push(from);
    }
    const { query_tokens: queries, key_tokens: keys } = this.example;
    tinted.querySelectorAll('.token').forEach((span) => {
      this.tinted.push(span);
      const other = Number(span.dataset.index);
      const [row, col] = gives ? [index, other] : [other, index];
      const w = values[row * k + col];
      // A key the query cannot see (causal, sliding window) has no weight: hatched, and its tooltip says why.
      const hidden = this.facts ? hiddenReason(row, col, this.facts) : '';
      span.title = `${cellName(row, col, queries, keys)}: ${cellValue(w, hidden, 3)}`;
      if (hidden) {
        span.classList.add('not-visible');
        span.dataset.hidden = hidden;
        return;
      }
      // On the ratio scale (scales.js), the colour of weight x the keys the query sees.
      const t = vmax === RATIO ? ratioIndex(w * rowCount(row, this.facts, k)) / 255 : w / (vmax || 1);
      if (vmax === RATIO) span.title += ` (${ratioText(w * rowCount(row, this.facts, k))})`;
      span.style.background = cssColor(t, 1);
      span.style.color = t > 0.6 ? '#000' : '#fff';
      span.dataset.weight = String(w);
    });
  }
}
