// A dedicated worker that fetches the maps route and inflates its zlib body
// (api.js fetchMaps): on the tab's thread the inflate of a 12 heads x 512
// tokens step took 14-24 ms after the last byte came in, queued behind the
// bars and charts of the new step; here it runs beside them.
//
// Out first: {ready: true}, once this script runs (api.js fetches on the
// tab's thread until then). Message in: {id, url} (an absolute URL). Out:
// {id, status, statusText, headers: {shape, encoding, compression, maxError}, body
// (ArrayBuffer, transferred)} for a 2xx reply, {id, status, statusText,
// text} for another, {id, error} when the fetch itself failed.

const HEADERS = {
  shape: 'X-Attention-Shape', encoding: 'X-Attention-Encoding', compression: 'X-Attention-Compression',
  maxError: 'X-Attention-Max-Error', // maps rebuilt from a reduced form: how far any cell can be off
};

self.onmessage = async ({ data: { id, url } }) => {
  try {
    const response = await fetch(url);
    const { status, statusText } = response;
    if (!response.ok) {
      self.postMessage({ id, status, statusText, text: await response.text() });
      return;
    }
    const headers = Object.fromEntries(Object.entries(HEADERS).map(([key, name]) => [key, response.headers.get(name)]));
    const body = headers.compression === 'zlib'
      ? await new Response(response.body.pipeThrough(new DecompressionStream('deflate'))).arrayBuffer()
      : await response.arrayBuffer();
    self.postMessage({ id, status, statusText, headers, body }, [body]);
  } catch (e) {
    self.postMessage({ id, error: String((e && e.message) || e) });
  }
};

self.postMessage({ ready: true });
