// The part of TensorBoard's iframe-plugin protocol the tab uses, and what it
// reads of the host page where the protocol offers nothing.
//
// Protocol (tensorboard 2.21, webapp/plugins/plugin_api_host): after
// "experimental.bootstrap" the host and the tab exchange JSON messages
// {type, id, payload, error, isReply} over a MessagePort; every message gets
// a reply. The host offers four: experimental.DataReloaded and
// experimental.RunsChanged (sent to the tab), experimental.GetRuns (every
// run name of the experiment, in the host's order: not the selection) and
// experimental.GetURLPluginData (the page hash's `p.<plugin>.*` keys).
//
// What the protocol does not offer, read from the host page (same origin:
// the tab is served by the same TensorBoard) and said in README.md:
//  - the run selection and run colours: TensorBoard's runs selector
//    (the table beside the Time Series dashboard) as it is drawn, rows
//    <tb-data-table-content-row data-id="<experiment>/<run>"> with a
//    checkbox and a .run-color-swatch; no table means no dashboard with a
//    run selector was opened, and TensorBoard then selects every run;
//  - writing the address bar: the host has no message for it, so the tab
//    writes the page's hash with history.pushState / replaceState;
//  - reading it at start: GetURLPluginData answers from a copy of the hash
//    that tensorboard 2.21 takes only on a hashchange event, so it is {}
//    after a page load; the tab then parses the page's hash the same way.

export class Host {
  constructor() {
    this.port = null;
    this.nextId = 1;
    this.waiting = new Map();
  }

  /** Connects (inside TensorBoard's iframe only); handlers: {onDataReloaded, onRunsChanged}. */
  connect({ onDataReloaded = () => {}, onRunsChanged = () => {} } = {}) {
    if (window.parent === window) return;
    const channel = new MessageChannel();
    const port = (this.port = channel.port1);
    port.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.isReply) {
        const wait = this.waiting.get(message.id);
        if (wait) {
          this.waiting.delete(message.id);
          wait(message.error ? null : message.payload);
        }
        return;
      }
      if (message.type === 'experimental.DataReloaded') onDataReloaded();
      if (message.type === 'experimental.RunsChanged') onRunsChanged(message.payload);
      port.postMessage(JSON.stringify({ type: message.type, id: message.id, payload: null, error: null, isReply: true }));
    };
    window.parent.postMessage('experimental.bootstrap', '*', [channel.port2]);
  }

  /** The host's reply to a message, or null (no host, an error, or no reply within timeoutMs). */
  request(type, payload = null, timeoutMs = 1500) {
    if (!this.port) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiting.delete(id); resolve(null); }, timeoutMs);
      this.waiting.set(id, (value) => { clearTimeout(timer); resolve(value); });
      this.port.postMessage(JSON.stringify({ type, id, payload, error: null, isReply: false }));
    });
  }
}

/** TensorBoard's page when the tab can read it (same origin), else null. */
export function hostWindow() {
  try {
    return window.parent !== window && window.parent.document ? window.parent : null;
  } catch {
    return null;
  }
}

/**
 * TensorBoard's runs selector as drawn: [{run, selected, color}], or null
 * when the page has none (no dashboard with a run selector was opened).
 */
export function readRunsTable(win = hostWindow()) {
  if (!win) return null;
  let rows;
  try {
    const selector = win.document.querySelector('runs-selector');
    if (!selector) return null;
    rows = selector.querySelectorAll('tb-data-table-content-row[data-id]');
  } catch {
    return null;
  }
  return Array.from(rows, (row) => {
    const id = row.getAttribute('data-id');
    const slash = id.indexOf('/');
    const box = row.querySelector('input[type=checkbox]');
    const swatch = row.querySelector('.run-color-swatch');
    return {
      run: slash >= 0 ? id.slice(slash + 1) : id,
      selected: Boolean(box && box.checked),
      color: swatch ? win.getComputedStyle(swatch).backgroundColor : null,
    };
  });
}

/** The host page's hash (without '#'), or the tab's own when the page cannot be read. */
export function hostHash() {
  const win = hostWindow() || window;
  return win.location.hash.replace(/^#/, '');
}

/** Sets the host page's hash: a new history entry (push) or the current one replaced. */
export function writeHostHash(hash, push) {
  const win = hostWindow() || window;
  if (win.location.hash.replace(/^#/, '') === hash) return;
  const url = new URL(win.location.href);
  url.hash = hash;
  // Keep the router's history state (TensorBoard's Angular router keeps its navigation id there).
  if (push) win.history.pushState(win.history.state, '', url.href);
  else win.history.replaceState(win.history.state, '', url.href);
}

/** Calls onChange() when the host page moves through its history (back, forward, an edited hash). */
export function onHostHistory(onChange) {
  const win = hostWindow() || window;
  win.addEventListener('popstate', onChange);
  win.addEventListener('hashchange', onChange);
}

/**
 * Follows the host's dark mode (it toggles `dark-mode` on its body);
 * onChange(dark) runs after a switch, to repaint what canvases drew in the
 * old theme's colours.
 */
export function followTheme(root, onChange = () => {}) {
  let hostBody = null;
  try {
    hostBody = window.parent !== window ? window.parent.document.body : null;
  } catch {
    hostBody = null;
  }
  const apply = () => {
    const dark = hostBody
      ? hostBody.classList.contains('dark-mode')
      : window.matchMedia('(prefers-color-scheme: dark)').matches;
    if (root.classList.contains('dark') === dark) return;
    root.classList.toggle('dark', dark);
    onChange(dark);
  };
  apply();
  if (hostBody) new MutationObserver(apply).observe(hostBody, { attributes: true, attributeFilter: ['class'] });
  else window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', apply);
}
