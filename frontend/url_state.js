// The tab's choices in the address bar of TensorBoard's page, under
// TensorBoard's convention for plugins: hash parameters `p.attention.<key>`
// beside the active tab's name (`#attention&p.attention.run=a&...`), the
// form TensorBoard's tf_storage parses (split on `&` and `=`, each part
// URI-decoded) and experimental.GetURLPluginData answers with the prefix
// taken off. Pure functions: unit-tested with node (frontend/tests/url_state.test.mjs).

export const PREFIX = 'p.attention.';
const TAB = '__tab__'; // tf_storage's key for the bare tab name

// key in the URL -> [state field, kind]
const FIELDS = [
  ['run', 'run', 'string'],
  ['compare', 'compare', 'strings'],
  ['tag', 'tag', 'string'],
  ['example', 'example', 'int'],
  ['step', 'step', 'int'],
  ['head', 'head', 'head'],
  ['enlarged', 'enlarged', 'bool'],
  ['diff', 'diff', 'pair'],
  ['zoom', 'zoom', 'int'],
  ['picked', 'picked', 'ints'],
  ['mode', 'mode', 'string'],
  ['show', 'show', 'string'],
  ['scale', 'scale', 'string'],
  ['metric', 'metric', 'string'],
  ['rank', 'rank', 'string'],
  ['heads', 'headsOpen', 'bool'],
  ['model', 'modelOpen', 'bool'],
  ['direction', 'direction', 'string'],
  ['pin', 'pinned', 'token'],
  ['patch', 'patch', 'int'],
  ['opacity', 'opacity', 'int'],
  ['czoom', 'compareZoom', 'int'],
];

const isInt = (v) => Number.isInteger(v);
const STRICT_INT = /^-?(0|[1-9][0-9]*)$/;
const TOKEN = /^([qk])(0|[1-9][0-9]*)$/; // a pinned token of the text view: 'q3' (query 3), 'k0' (key 0)
const SIDES = { q: 'query', k: 'key' };

function encodeValue(kind, v) {
  switch (kind) {
    case 'string': return typeof v === 'string' ? v : undefined;
    case 'strings': return Array.isArray(v) && v.length && v.every((s) => typeof s === 'string') ? JSON.stringify(v) : undefined;
    case 'int': return isInt(v) ? String(v) : undefined;
    case 'head': return v === 'mean' || v === 'max' || isInt(v) ? String(v) : undefined;
    case 'bool': return typeof v === 'boolean' ? (v ? '1' : '0') : undefined;
    case 'ints': return Array.isArray(v) && v.length && v.every(isInt) ? v.join(',') : undefined;
    case 'pair': return v && typeof v.run === 'string' && isInt(v.step) ? JSON.stringify([v.run, v.step]) : undefined;
    case 'token': return v && (v.side === 'query' || v.side === 'key') && isInt(v.index) && v.index >= 0 ? `${v.side[0]}${v.index}` : undefined;
    default: return undefined;
  }
}

function decodeValue(kind, s) {
  try {
    switch (kind) {
      case 'string': return s;
      case 'strings': {
        const v = JSON.parse(s);
        return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
      }
      case 'int': return STRICT_INT.test(s) ? Number(s) : undefined;
      case 'head': return s === 'mean' || s === 'max' ? s : STRICT_INT.test(s) ? Number(s) : undefined;
      case 'bool': return s === '1' ? true : s === '0' ? false : undefined;
      case 'ints': {
        const v = s.split(',');
        return v.every((x) => STRICT_INT.test(x)) ? v.map(Number) : undefined;
      }
      case 'pair': {
        const v = JSON.parse(s);
        return Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && isInt(v[1]) ? { run: v[0], step: v[1] } : undefined;
      }
      case 'token': {
        const m = TOKEN.exec(s);
        return m ? { side: SIDES[m[1]], index: Number(m[2]) } : undefined;
      }
      default: return undefined;
    }
  } catch {
    return undefined;
  }
}

/** State -> {key: string} without the prefix (what GetURLPluginData answers). */
export function encodeUrlState(state) {
  const out = {};
  for (const [key, field, kind] of FIELDS) {
    const v = encodeValue(kind, state[field]);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** {key: string} (no prefix) -> the state fields it names; unknown keys and bad values are left out. */
export function decodeUrlState(data) {
  const out = {};
  if (!data || typeof data !== 'object') return out;
  for (const [key, field, kind] of FIELDS) {
    if (typeof data[key] !== 'string') continue;
    const v = decodeValue(kind, data[key]);
    if (v !== undefined) out[field] = v;
  }
  if ('diff' in data && !out.diff) out.diff = null;
  return out;
}

/** A hash (without '#') -> {key: value} as TensorBoard's tf_storage parses it; the bare tab name under '__tab__'. */
export function parseHash(hash) {
  const items = {};
  for (const token of String(hash).replace(/^#/, '').split('&')) {
    const kv = token.split('=');
    try {
      if (kv.length === 1) items[TAB] = kv[0];
      else if (kv.length === 2) items[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1]);
    } catch {
      // a malformed escape: tf_storage would throw; the part is ignored here
    }
  }
  return items;
}

/** The plugin's keys of a parsed hash, prefix taken off (what GetURLPluginData answers). */
export function pluginData(items) {
  const out = {};
  for (const [k, v] of Object.entries(items)) if (k.startsWith(PREFIX)) out[k.slice(PREFIX.length)] = v;
  return out;
}

/**
 * The hash with the plugin's keys replaced by `data` ({key: string}, no
 * prefix); the tab name and every other key are kept, in their order.
 */
export function composeHash(hash, data) {
  const items = parseHash(hash);
  const parts = [];
  for (const [k, v] of Object.entries(items)) {
    if (k === TAB || k.startsWith(PREFIX)) continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  for (const [k, v] of Object.entries(data)) parts.push(`${encodeURIComponent(PREFIX + k)}=${encodeURIComponent(v)}`);
  const tab = items[TAB] || 'attention';
  return parts.length ? `${tab}&${parts.join('&')}` : tab;
}
