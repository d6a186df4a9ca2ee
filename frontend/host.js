// The small part of TensorBoard's iframe-plugin protocol the tab needs: after
// "experimental.bootstrap" the host sends JSON messages over a MessagePort;
// each gets a reply. We listen for experimental.DataReloaded.

export function connectToHost(onDataReloaded) {
  if (window.parent === window) return;
  const channel = new MessageChannel();
  const port = channel.port1;
  port.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.isReply) return;
    if (message.type === 'experimental.DataReloaded') onDataReloaded();
    port.postMessage(JSON.stringify({ type: message.type, id: message.id, payload: null, error: null, isReply: true }));
  };
  window.parent.postMessage('experimental.bootstrap', '*', [channel.port2]);
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
