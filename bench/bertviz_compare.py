"""tb-attention beside what people use instead, on the same attention.

    python -m bench.bertviz_compare [--tokens 128,512,1024,2048] [--bertviz-tokens 128,256,512]
                                    [--timeout 180] [--keep DIR]

The same attention for all three: 12 layers x 12 heads x T tokens of one
example, each row a softmax of N(0, 3^2) logits (layer i drawn from
numpy's default_rng([0, i]), as bench/frontend_paint.py draws its maps),
with made-up word tokens.

- bertviz's model view: `model_view(attention, tokens, html_action="return")`
  on a tuple of 12 (1, 12, T, T) torch tensors; its generation time, HTML
  bytes and peak memory, then the HTML opened in headless Chromium. bertviz
  runs in its own virtual environment (.venv-bertviz, made here on first
  use, ignored by git through its own .gitignore) so that torch stays out of
  the project's: torch==2.13.0 (the CPU build), bertviz with --no-deps plus
  the few modules `from bertviz import model_view` imports (below).
- The matplotlib workaround: bench/image_workaround.py's
  ImageAttentionCallback._log, unchanged (one PNG per layer, a heatmap per
  head, into tf.summary.image), fed each layer's maps.
- tb-attention: `summary.attention` of each layer (uint8, the default),
  then the Attention tab in the real `tensorboard`, timed from navigation to
  the painted model view (every layer x every head).

bertviz's HTML loads require.js from cdnjs, and its script asks require.js
for d3 5.7.0 and jQuery 2.0.0 from cdnjs: without the internet nothing is
drawn. It is opened twice: as it is (what a user without network sees) and
with those three files answered from local copies (npm's requirejs@2.3.6,
d3@5.7.0, and jquery@2.1.0: npm has no 2.0.0), fetched once with `npm pack`.
"""

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import numpy as np

LAYERS, HEADS = 12, 12
SEED = 0
WORDS = ("the movie was not as good as its trailer but the actors were excellent and the ending "
         "surprised me").split()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(ROOT, ".venv-bertviz")
BERTVIZ = "bertviz==1.4.1"
# `from bertviz import model_view` imports torch and IPython.display (which
# needs traitlets and pygments); numpy carries the maps in. bertviz's other
# requirements (transformers, boto3, sentencepiece, regex, tqdm, requests)
# serve its neuron view and model wrappers, not this.
VENV_PACKAGES = ["torch==2.13.0", "ipython --no-deps", "traitlets", "pygments", BERTVIZ + " --no-deps"]
# cdnjs path -> (npm package, file in it) answered instead of cdnjs.
CDN = "https://cdnjs.cloudflare.com/"
CDN_FILES = {
    "ajax/libs/require.js/2.3.6/require.min.js": ("requirejs@2.3.6", "package/require.js"),
    "ajax/libs/d3/5.7.0/d3.min.js": ("d3@5.7.0", "package/dist/d3.min.js"),
    "ajax/libs/jquery/2.0.0/jquery.min.js": ("jquery@2.1.0", "package/dist/jquery.min.js"),
}
# The browser showing bertviz's HTML is stopped above this (the machine has 24 GiB, shared).
MEMORY_CAP = 8 * 2**30
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def layer_scores(layer, tokens, heads=HEADS, seed=SEED):
    """(1, heads, tokens, tokens) float32 rows of softmax(N(0, 3^2)) for layer `layer`."""
    rng = np.random.default_rng([seed, layer])
    logits = rng.normal(scale=3.0, size=(1, heads, tokens, tokens)).astype(np.float32)
    scores = np.exp(logits - logits.max(-1, keepdims=True))
    return scores / scores.sum(-1, keepdims=True)


def words(tokens):
    return [WORDS[i % len(WORDS)] for i in range(tokens)]


def cells(tokens):
    return LAYERS * HEADS * tokens * tokens


# ---- bertviz (generation runs in .venv-bertviz) ----

def _pip(*args):
    subprocess.run([os.path.join(VENV, "bin", "python"), "-m", "pip", "-q", "--disable-pip-version-check",
                    "install", *args], check=True, stderr=subprocess.DEVNULL)


def ensure_bertviz_venv():
    """Makes .venv-bertviz once; returns its python."""
    python = os.path.join(VENV, "bin", "python")
    done = os.path.join(VENV, ".installed")
    if not os.path.exists(done):
        print("==> Installing bertviz and torch (CPU) into %s (first time: about a minute)" % VENV, flush=True)
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        with open(os.path.join(VENV, ".gitignore"), "w") as f:
            f.write("*\n")  # as Python 3.13's venv writes: the whole folder is ignored
        for spec in VENV_PACKAGES + ["numpy==" + np.__version__]:
            _pip(*spec.split())
        with open(done, "w") as f:
            f.write("\n".join(VENV_PACKAGES) + "\n")
    return python


def ensure_cdn_files():
    """Local copies of the three scripts bertviz's HTML loads, or None
    (npm missing or failing)."""
    folder = os.path.join(VENV, "cdn")
    paths = {url: os.path.join(folder, url.replace("/", "_")) for url in CDN_FILES}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    if shutil.which("npm") is None:
        return None
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for url, (package, member) in CDN_FILES.items():
            try:
                out = subprocess.run(["npm", "pack", package, "--silent", "--pack-destination", tmp],
                                     check=True, capture_output=True, text=True).stdout.split()[-1]
                with tarfile.open(os.path.join(tmp, out)) as tar:
                    data = tar.extractfile(member).read()
            except (subprocess.CalledProcessError, OSError, KeyError, IndexError):
                return None
            with open(paths[url], "wb") as f:
                f.write(data)
    return paths


def _worker(tokens, html_path):
    """Run in .venv-bertviz: generates the model view's HTML once, prints JSON."""
    import torch
    from bertviz import model_view

    attention = tuple(torch.from_numpy(layer_scores(i, tokens)) for i in range(LAYERS))
    start = time.perf_counter()
    html = model_view(attention, words(tokens), html_action="return").data
    seconds = time.perf_counter() - start
    with open(html_path, "w") as f:
        f.write(html)
    print(json.dumps({
        "seconds": seconds,
        "bytes": os.path.getsize(html_path),
        "copies": html.count('"attn"'),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def generate_bertviz(python, tokens, html_path):
    out = subprocess.run([python, os.path.abspath(__file__), "--worker", str(tokens), html_path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# The model view is drawn in one synchronous pass (an SVG line per cell, one
# background rect per head), so once every rect is there every line is too.
RENDERED = "() => document.querySelectorAll('rect.attn_background').length === %d" % (LAYERS * HEADS)
# Resolves after the frame that laid out and painted what is in the DOM now.
NEXT_FRAME = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(0))))"


def _opener(html_path, served, timeout):
    """Run in a child process of its own (see open_html): opens the HTML in
    headless Chromium and prints one JSON line per event, with the seconds
    since navigation: asked (a cdnjs file; d3 is asked by the model view's
    script), load, error, drawn (every thumbnail in the DOM), painted (the
    frame after it)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()

    def event(name, **extra):
        print(json.dumps({"event": name, "t": time.perf_counter() - start, **extra}), flush=True)

    libraries = ensure_cdn_files() if served else None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []

        def error(message):
            errors.append(message)
            event("error", message=message)
        page.on("pageerror", lambda e: error(str(e).splitlines()[0]))
        page.on("crash", lambda _: error("the page crashed"))
        page.on("load", lambda _: event("load"))
        if libraries:
            def answer(route):
                path = libraries.get(route.request.url[len(CDN):].split("?")[0])
                event("asked", file=path and os.path.basename(path))
                route.fulfill(path=path, content_type="application/javascript") if path else route.abort()
            page.route(CDN + "**", answer)
        start = time.perf_counter()
        page.goto("file://" + html_path, wait_until="commit", timeout=timeout * 1000)
        while True:  # in steps, to stop at the first error
            try:
                page.wait_for_function(RENDERED, polling=250, timeout=1000)
                break
            except PlaywrightTimeout:
                if errors or time.perf_counter() - start > timeout:
                    return
        event("drawn")
        page.evaluate(NEXT_FRAME)
        event("painted", heap=page.evaluate("() => performance.memory.usedJSHeapSize"),
              lines=page.evaluate("() => document.querySelectorAll('line').length"))
        browser.close()


def _tree(root):
    """{pid: resident bytes} of root and every process under it (Chromium
    starts its own session, so not its process group)."""
    stats = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            stats[int(pid)] = (int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, IndexError, ValueError):
            pass
    tree, grew = {root: stats.get(root, (0, 0))[1]}, True
    while grew:
        grew = False
        for pid, (parent, rss) in stats.items():
            if parent in tree and pid not in tree:
                tree[pid], grew = rss, True
    return tree


def open_html(html_path, served, timeout, memory_cap=MEMORY_CAP):
    """Seconds from navigation to the painted model view, or why it did not
    show. The browser runs in a child process, ended by this function after
    `timeout` s or once it and its processes hold more than memory_cap
    bytes: while bertviz's script draws, the page answers nothing, and at
    256 tokens its renderer passed 10 GB."""
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--open", html_path, str(int(served)),
                              str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             cwd=ROOT)
    events, peak, stopped = [], 0, None
    reader = threading.Thread(target=lambda: events.extend(json.loads(l) for l in child.stdout if l.startswith("{")))
    reader.start()
    begin = time.perf_counter()
    while child.poll() is None:
        tree = _tree(child.pid)
        peak = max(peak, sum(tree.values()))
        if peak > memory_cap:
            stopped = "stopped at %.1f GB of browser memory" % (peak / 2**30)
        elif time.perf_counter() - begin > timeout + 30:
            stopped = "stopped"
        if stopped:
            child.terminate()  # Playwright's driver then closes Chromium
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for pid in tree:  # whatever is left of the processes this started
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    child.wait()
    reader.join()
    names = {e["event"]: e for e in events}
    result = {"peak_memory": peak}
    if "painted" in names:
        return {**result, "seconds": names["painted"]["t"], "heap": names["painted"]["heap"],
                "lines": names["painted"]["lines"]}
    if "error" in names:
        return {**result, "failed": names["error"]["message"]}
    asked_d3 = any(e["event"] == "asked" and "d3" in (e["file"] or "") for e in events)
    state = ("drawing" if asked_d3 or not served else
             "page loaded, its model-view script never run, no error shown" if "load" in names else
             "page still loading")
    after = "after %.0f s, " % (time.perf_counter() - begin) if stopped else "within %d s, " % timeout
    return {**result, "failed": "nothing drawn %s%s%s" % (after, stopped + ", " if stopped else "", state)}


# V8's longest string (64-bit): an inline script longer than this is not run.
V8_MAX_STRING = 2**29 - 24


def script_limit(folder):
    """{script characters: run?} for an inline script just under and just
    over V8_MAX_STRING, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    ran = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for size in (V8_MAX_STRING - 1000, V8_MAX_STRING + 1000):
            path = os.path.join(folder, "script_%d.html" % size)
            head = "window.ran = 1; // "
            with open(path, "w") as f:
                f.write("<script>" + head)
                for start in range(0, size - len(head), 1 << 24):
                    f.write("x" * min(1 << 24, size - len(head) - start))
                f.write("</script>")
            page = browser.new_page()
            page.goto("file://" + path, timeout=300000)
            ran[size] = page.evaluate("() => window.ran === 1")
            page.close()
            os.remove(path)
        browser.close()
    return ran


# ---- matplotlib images (bench/image_workaround.py) ----

def write_images(tokens, logdir):
    """The workaround's callback, unchanged, fed one layer at a time: seconds, bytes, pixels per head."""
    from bench.image_workaround import ImageAttentionCallback

    callback = ImageAttentionCallback(logdir, probe=None)
    seconds = 0.0
    for i in range(LAYERS):
        scores = layer_scores(i, tokens)
        callback._scores = lambda scores=scores: scores
        start = time.perf_counter()
        callback._log(0)
        seconds += time.perf_counter() - start
    callback.writer.close()
    return seconds, folder_bytes(logdir)


def image_head_pixels(tokens, heads=HEADS):
    """Side in pixels of one head's heatmap in the workaround's figure
    (figsize 3 x 3 inches per head at 60 dpi, axes off, as in _log)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, heads, figsize=(3 * heads, 3), dpi=60)
    for ax in axes:
        ax.imshow(np.zeros((tokens, tokens)), cmap="viridis")
        ax.axis("off")
    fig.canvas.draw()
    box = axes[0].get_window_extent()
    plt.close(fig)
    return int(min(box.width, box.height))


# ---- tb-attention ----

def write_tb_attention(tokens, logdir):
    import tensorflow as tf

    from tb_attention_plugin.writing import summary

    writer = tf.summary.create_file_writer(logdir)
    seconds = 0.0
    with writer.as_default():
        for i in range(LAYERS):
            scores = layer_scores(i, tokens)
            start = time.perf_counter()
            summary.attention("layer%02d" % i, scores, step=0, kind="self", layer_index=i,
                              query_tokens=[words(tokens)])
            if i == LAYERS - 1:
                writer.flush()
            seconds += time.perf_counter() - start
    writer.close()
    return seconds, folder_bytes(logdir)


MODEL_PAINTED = "() => !!document.querySelector('#model-grid[data-painted-step=\"0\"]')"


def open_tab(browser, url, run, timeout):
    """Seconds from navigating to the Attention tab until its model view
    (every layer x every head) is painted, or the reason it was not."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e).splitlines()[0]))
    page.on("crash", lambda _: errors.append("the page crashed"))
    try:
        page.goto(url + "/")
        state = {"run": run, "tag": "layer00", "example": 0, "step": 0}
        page.evaluate("s => localStorage.setItem('tb-attention-state', s)", json.dumps(state))
        start = time.perf_counter()
        page.goto(url + "/#attention")
        while time.perf_counter() - start < timeout:
            frame = next((f for f in page.frames if "plugin_entry" in f.url), None)
            try:
                if frame and frame.evaluate(MODEL_PAINTED):
                    frame.evaluate(NEXT_FRAME)
                    return {"seconds": time.perf_counter() - start}
            except Exception:  # the iframe navigated meanwhile
                pass
            page.wait_for_timeout(50)
        status = frame.evaluate("() => document.body.innerText.slice(0, 300)") if frame else "no tab"
        return {"failed": "not painted within %d s (%s)" % (timeout, errors[0] if errors else status)}
    finally:
        page.close()


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def run(tokens=(128, 512, 1024, 2048), bertviz_tokens=(128, 256, 512), timeout=180, keep=None):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from playwright.sync_api import sync_playwright
    from tensorboard_server import TensorBoard

    folder = keep or tempfile.mkdtemp(prefix="tba-bertviz-")
    results = {"load": [os.getloadavg()], "bertviz": {}, "images": {}, "tb": {}}
    python = ensure_bertviz_venv()
    libraries = ensure_cdn_files()
    results["libraries"] = libraries is not None
    for t in bertviz_tokens:
        html = os.path.join(folder, "bertviz_%d.html" % t)
        r = generate_bertviz(python, t, html)
        if t == bertviz_tokens[0]:  # offline, it fails the same way at any size
            r["as_is"] = open_html(html, False, timeout)
        if libraries:
            r["served"] = open_html(html, True, timeout)
        results["bertviz"][t] = r
        os.remove(html)
        print("bertviz", t, r, flush=True)
    results["script_limit"] = script_limit(folder)
    results["load"].append(os.getloadavg())
    for t in tokens:
        seconds, size = write_images(t, os.path.join(folder, "images", "t%d" % t))
        results["images"][t] = {"seconds": seconds, "bytes": size, "pixels": image_head_pixels(t)}
        print("images", t, results["images"][t], flush=True)
    for t in tokens:
        seconds, size = write_tb_attention(t, os.path.join(folder, "tb", "t%d" % t))
        results["tb"][t] = {"seconds": seconds, "bytes": size}
    tb = TensorBoard(os.path.join(folder, "tb"))
    try:
        tb.wait_for_index(lambda index: sorted(len(r["layers"]) for r in index.get("runs", []))
                          == [LAYERS] * len(tokens), tries=600)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for t in tokens:
                results["tb"][t]["tab"] = open_tab(browser, tb.url, "t%d" % t, timeout)
                print("tb-attention", t, results["tb"][t], flush=True)
            browser.close()
    finally:
        tb.stop()
    results["load"].append(os.getloadavg())
    if keep:
        with open(os.path.join(folder, "results.json"), "w") as f:
            json.dump(results, f)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _shown(r):
    if "seconds" in r:
        return "yes", "%.1f s" % r["seconds"]
    return "no: " + r["failed"], "-"


def largest(results):
    """The 'largest input' lines of the report, from the measured results."""
    out = []
    bv, limit = results["bertviz"], results.get("script_limit", {})
    if bv:
        drawn = [t for t, r in bv.items() if "seconds" in r.get("served", {})]
        per_cell = statistics.mean(r["bytes"] / cells(t) for t, r in bv.items())
        # the script holds the weights twice: all of the HTML but a few kB
        most = int((V8_MAX_STRING / per_cell / (LAYERS * HEADS)) ** 0.5)
        under, over = sorted(limit)
        top = max(bv)
        out.append(
            "- bertviz: offline, nothing at any size (its first act is to load require.js from cdnjs). With "
            "its scripts served locally, drawn %s within the time given. Its HTML holds every weight twice "
            "(model_view.js's comment repeats the PYTHON_PARAMS marker that json.dumps(params) replaces), "
            "%.0f bytes per cell, all inside one inline script, and Chromium does not run an inline script "
            "longer than V8's longest string, 2^29 - 24 characters (measured here: %d characters %s, %d %s, "
            "no error either way). So a %d x %d model view of more than %d tokens cannot show at all, however "
            "long one waits. bertviz at 1024 tokens was not run: scaled by cells from %d tokens, its HTML "
            "would be about %.1f GB and generating it would take about %.0f GB of memory (this machine has "
            "%.0f GiB)." % (
                "up to %d tokens" % max(drawn) if drawn else "at no size measured", per_cell,
                under, "ran" if limit.get(under) else "did not run", over, "ran" if limit.get(over) else "did not",
                LAYERS, HEADS, most, top, bv[top]["bytes"] * (1024 / top) ** 2 / 1e9,
                bv[top]["peak_rss"] * (1024 / top) ** 2 / 2**30,
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30))
    if results["images"]:
        px = min(r["pixels"] for r in results["images"].values())
        out.append(
            "- matplotlib images: every size opens, as PNGs in TensorBoard's Images tab, but a head is %d x %d "
            "pixels at bench/image_workaround.py's figure size (3 inches at 60 dpi per head), so above %d tokens "
            "each pixel blends several cells, and at any size the weights cannot be read back: colours with no "
            "scale, no tokens, no bound on the error." % (px, px, px))
    if results["tb"]:
        shown = [t for t, r in results["tb"].items() if "seconds" in r["tab"]]
        out.append(
            "- tb-attention: the model view painted %s within the time given. Its server serves one "
            "example's layer up to 64 MiB of maps (tb_attention_plugin/serving/store.py MAX_MAP_BYTES: "
            "16 heads x 2048 tokens, or 12 heads x 2364, in uint8) and refuses a larger one with a message "
            "naming the fix; the number of layers is not bounded. The weights read back within 1/510 "
            "(uint8), with their tokens (read_attention)." % (
                "up to %d tokens (the largest measured)" % max(shown) if shown else "at no size measured"))
    return out


def report(results):
    lines = ["| tool | layers x heads x tokens | cells | generate / write (s) | bytes | bytes per cell | "
             "opens in a browser? | navigation to painted (s) |", "|---|---|---|---|---|---|---|---|"]

    def row(tool, t, seconds, size, opens, shown):
        lines.append("| %s | %d x %d x %d | %.1f M | %.2f | %s | %.3g | %s | %s |" % (
            tool, LAYERS, HEADS, t, cells(t) / 1e6, seconds, "{:,}".format(size), size / cells(t), opens, shown))

    for t, r in results["bertviz"].items():
        if "as_is" in r:
            row("bertviz model view, as it is (offline)", t, r["seconds"], r["bytes"], *_shown(r["as_is"]))
        if "served" in r:
            row("bertviz model view, its 3 scripts served locally", t, r["seconds"], r["bytes"], *_shown(r["served"]))
    for t, r in results["images"].items():
        row("matplotlib PNGs in tf.summary.image", t, r["seconds"], r["bytes"],
            "yes, TensorBoard's Images tab (%d x %d px per head)" % (r["pixels"], r["pixels"]), "not timed")
    for t, r in results["tb"].items():
        row("tb-attention (uint8)", t, r["seconds"], r["bytes"], *_shown(r["tab"]))
    lines.append("")
    for t, r in results["bertviz"].items():
        served = r.get("served", {})
        lines.append("bertviz at %d tokens: the generating process peaked at %.1f GB; the weights are in the HTML "
                     "%d times; the browser (all its processes) peaked at %.1f GB%s." % (
                         t, r["peak_rss"] / 2**30, r["copies"], served.get("peak_memory", 0) / 2**30,
                         ", %d SVG lines drawn" % served["lines"] if "lines" in served else ""))
    lines += ["", "Largest input each can show:", ""] + largest(results) + ["", "Load average (1, 5, 15 min) at the start, after bertviz, at the end: %s." % "; ".join(
        "%.1f, %.1f, %.1f" % l for l in results["load"])]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(int(sys.argv[2]), sys.argv[3])
        sys.exit()
    if sys.argv[1:2] == ["--open"]:
        _opener(sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]))
        sys.exit()
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", default="128,512,1024,2048", help="tb-attention and images")
    parser.add_argument("--bertviz-tokens", default="128,256,512")
    parser.add_argument("--timeout", type=int, default=180, help="seconds each view may take to show")
    parser.add_argument("--keep", help="folder to write into and keep")
    args = parser.parse_args()
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    print(report(run(ints(args.tokens), ints(args.bertviz_tokens), args.timeout, args.keep)))
