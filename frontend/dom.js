// Building DOM: data text (tokens, run and layer names) is only ever set with
// textContent or <option>.text, never parsed as HTML.

/** An element with properties (`text` is textContent) and children. */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Replaces a select's options with items [{value, label}] and selects one if present. */
export function fillSelect(select, items, selected) {
  select.replaceChildren(...items.map(({ value, label, disabled }) => {
    const option = document.createElement('option');
    option.value = String(value);
    option.text = label;
    option.disabled = Boolean(disabled); // offered by name, not yet there (said in its label)
    return option;
  }));
  if (items.some((item) => String(item.value) === String(selected))) select.value = String(selected);
}

/** A coloured swatch and a name, for chart legends. */
export function legendItem(color, name) {
  const swatch = el('span', { className: 'swatch' });
  swatch.style.background = color;
  return el('span', { className: 'legend-item' }, [swatch, el('span', { text: name })]);
}

/**
 * Marks a run's swatch (compare.js runMarks): its colour, and where shown
 * runs share that colour, a pattern (style.css .swatch.pattern-*) and a title
 * naming the others. Returns the swatch.
 */
export function markSwatch(swatch, mark, run) {
  swatch.style.background = mark ? mark.color : 'transparent';
  swatch.className = `swatch${mark && mark.shared.length ? ` marked pattern-${mark.pattern}` : ''}`;
  swatch.dataset.pattern = mark && mark.shared.length ? mark.pattern : 'solid';
  swatch.title = mark && mark.shared.length
    ? `${run}: TensorBoard's colour, shared with ${mark.shared.join(', ')}; told apart by its ${mark.pattern} and the letter ${mark.letter}`
    : `${run}: its colour in TensorBoard`;
  return swatch;
}

/** The letter of a run whose colour another shown run shares (compare.js runMarks), in a box of that colour; null otherwise. */
export function runLetter(mark) {
  if (!mark || !mark.shared.length) return null;
  const letter = el('span', { className: 'run-letter', text: mark.letter });
  letter.style.borderColor = mark.color;
  return letter;
}

/** A run's swatch, letter (where its colour is shared) and name, for lists of runs. */
export function runLegendItem(mark, run) {
  return el('span', { className: 'legend-item', dataset: { run } }, [
    markSwatch(el('span'), mark, run), ...[runLetter(mark)].filter(Boolean), el('span', { text: run }),
  ]);
}

/**
 * The key of map cells a query cannot see: a hatched swatch (style.css
 * .not-visible-swatch, the maps' own background) and its words; hidden
 * until showNotVisibleKey gives it words.
 */
export function notVisibleKey(id) {
  return el('div', { id, className: 'legend-row not-visible-key', hidden: true }, [
    el('span', { className: 'not-visible-swatch' }), el('span', { className: 'info' }),
  ]);
}

/** The key's words (visibility.js notVisibleText); '' hides it. */
export function showNotVisibleKey(key, text) {
  key.hidden = !text;
  key.lastChild.textContent = text;
}
