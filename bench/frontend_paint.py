"""Time from a step change to the painted heads grid, in headless Chromium.

    python -m bench.frontend_paint [--demo-logdir logs] [--logdir DIR] [--rounds 3]

Generates layers from 8 heads x 64 tokens to 16 heads x 1024 tokens (4 steps,
one example), serves them with the real `tensorboard`, and in the real tab
times `setStep` until the next frame is rendered, three ways: with the tab's
cache emptied first (the maps are fetched and decoded: a jump to a step not
seen before), for the next step after the tab prefetched it (what play and
scrubbing see), and for the step already shown (decode done; head mean/max
and every canvas repainted), `--rounds` times over the steps. Also the time
from the tab's navigation to its first painted maps, on the generated 12 x
512 layer and on a demo logdir if one is given: in a new browser context
(cold) and on a second visit (warm: the browser keeps the tab's versioned
static files), each split into TensorBoard's page before the tab's iframe
asks for index.js and the tab's own rest. `--logdir` keeps the
generated log to reuse (written once), e.g. to compare two versions of the
tab on the same data.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from tensorboard_server import TensorBoard  # noqa: E402

from tb_attention_plugin.writing import summary  # noqa: E402

SIZES = [(8, 64), (8, 256), (12, 512), (4, 1024), (8, 1024), (16, 1024)]
STEPS = 4
MODEL = (12, 12, 128)  # the model view: layers, heads, tokens
FIRST_PAINT = (12, 512)  # the layer whose first paint is timed on the generated log
WRITTEN = "written.txt"  # marks a complete generated log in --logdir


def write_log(logdir):
    rng = np.random.default_rng(0)
    for heads, tokens in SIZES:
        writer = tf.summary.create_file_writer(os.path.join(logdir, "h%d_t%d" % (heads, tokens)))
        with writer.as_default():
            for step in range(STEPS):
                logits = rng.normal(scale=3.0, size=(1, heads, tokens, tokens)).astype(np.float32)
                scores = np.exp(logits - logits.max(-1, keepdims=True))
                summary.attention("layer", scores / scores.sum(-1, keepdims=True), step=step, kind="self")
        writer.close()
    layers, heads, tokens = MODEL
    writer = tf.summary.create_file_writer(os.path.join(logdir, "model"))
    with writer.as_default():
        for step in range(STEPS):
            for i in range(layers):
                logits = rng.normal(scale=3.0, size=(1, heads, tokens, tokens)).astype(np.float32)
                scores = np.exp(logits - logits.max(-1, keepdims=True))
                summary.attention("layer%02d" % i, scores / scores.sum(-1, keepdims=True), step=step,
                                  kind="self", layer_index=i)
    writer.close()
    with open(os.path.join(logdir, WRITTEN), "w") as f:
        f.write("%r %r %r\n" % (SIZES, STEPS, MODEL))


def tab_frame(page):
    for _ in range(240):
        frame = next((f for f in page.frames if "plugin_entry" in f.url), None)
        if frame and frame.query_selector("#attention-root[data-painted-step]"):
            return frame
        page.wait_for_timeout(250)
    raise TimeoutError("tab did not paint")


# Until the frame that shows a change has been rendered: a requestAnimationFrame
# callback runs before that frame's style, layout and paint, a task posted
# from it after them (a layout the tab leaves to the frame counts too).
AFTER_FRAME = "new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)))"

TIME_STEP = """async ([step, how]) => {
  const tab = window.attentionTab;
  if (how === 'cold') tab.cache.clear();
  if (how === 'prefetched') await tab.mapsAt(step);  // the prefetch has landed
  const t = performance.now();
  await tab.setStep(step);
  await AFTER_FRAME;
  return performance.now() - t;
}""".replace("AFTER_FRAME", AFTER_FRAME)


# A step change with every layer's maps fetched anew, until the model view
# (every layer x every head) and the main view are painted.
TIME_MODEL = """async ([step]) => {
  const tab = window.attentionTab;
  tab.cache.clear();
  const t = performance.now();
  await tab.setStep(step);
  await tab.modelShown;
  await AFTER_FRAME;
  return performance.now() - t;
}""".replace("AFTER_FRAME", AFTER_FRAME)


# Milliseconds from the tab's navigation (its iframe's time origin) to the
# rendered frame in which its maps are painted, checked at every animation
# frame (see AFTER_FRAME: the time is taken in a task posted from the first
# animation frame that finds them painted).
PAINTED = """() => {
  if (window.benchPaintedAt) return window.benchPaintedAt;
  if (document.querySelector('#attention-root[data-painted-step]') && !window.benchPaintPending) {
    window.benchPaintPending = true;
    setTimeout(() => { window.benchPaintedAt = performance.now(); }, 0);
  }
  return false;
}"""
# When the iframe asked for the tab's first module (index.js): what comes
# before is TensorBoard's (its page's script runs on the same thread).
ASKED = """() => performance.getEntriesByType('resource').find((r) => r.name.endsWith('/index.js')).startTime"""


def first_paint(browser, url, state=None, warm=False):
    """(ms from the iframe's navigation to its first painted maps, ms of
    that before the iframe asked for index.js), in a new browser context
    (nothing cached), or with `warm` on a second visit in the same context
    (what the browser kept from the first)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        if state:
            page.goto(url + "/")
            page.evaluate("s => localStorage.setItem('tb-attention-state', s)", json.dumps(state))
        for visit in range(2 if warm else 1):
            page.goto("about:blank")
            page.goto(url + "/#attention")
            times = _painted(page)
        return times
    finally:
        context.close()


def _painted(page):
    for _ in range(3000):
        frame = next((f for f in page.frames if "plugin_entry" in f.url), None)
        if frame:
            try:
                painted = frame.wait_for_function(PAINTED, polling="raf", timeout=60000).json_value()
                return painted, frame.evaluate(ASKED)
            except Exception as e:  # the iframe navigated meanwhile: its context was replaced
                if "context" not in str(e).lower() and "navigat" not in str(e).lower():
                    raise
        page.wait_for_timeout(10)
    raise TimeoutError("tab did not paint")


def _first_paints(browser, url, state, rounds):
    """{"cold"|"warm": [(painted, asked)]}, visits alternating."""
    times = {"cold": [], "warm": []}
    for _ in range(3 * rounds):
        for how in times:
            times[how].append(first_paint(browser, url, state, warm=how == "warm"))
    return times


def _medians(times):
    """(median, max) of the first paints, median of TensorBoard's share, median of the tab's own."""
    return (statistics.median(p for p, _ in times), max(p for p, _ in times),
            statistics.median(a for _, a in times), statistics.median(p - a for p, a in times))


def launch(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium",
                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])


def run(demo_logdir=None, logdir=None, rounds=3):
    if logdir is None:
        logdir = tempfile.mkdtemp(prefix="tba-paint-")
    if not os.path.exists(os.path.join(logdir, WRITTEN)):
        write_log(logdir)
    results = {}
    tb = TensorBoard(logdir)
    try:
        tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"), timeout=300)
        with sync_playwright() as p:
            browser = launch(p)
            for heads, tokens in SIZES:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(tb.url + "/")
                state = {"run": "h%d_t%d" % (heads, tokens), "tag": "layer", "example": 0, "step": 0}
                page.evaluate("s => localStorage.setItem('tb-attention-state', s)", json.dumps(state))
                page.goto(tb.url + "/#attention")
                frame = tab_frame(page)
                times = {"cold": [], "prefetched": [], "shown": []}
                for step in list(range(STEPS - 1)) * rounds:
                    times["cold"].append(frame.evaluate(TIME_STEP, [step, "cold"]))
                    times["prefetched"].append(frame.evaluate(TIME_STEP, [step + 1, "prefetched"]))
                    times["shown"] += [frame.evaluate(TIME_STEP, [step + 1, "shown"]) for _ in range(3)]
                results[(heads, tokens)] = {how: (statistics.median(t), max(t)) for how, t in times.items()}
                page.close()
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(tb.url + "/")
            state = {"run": "model", "tag": "layer00", "example": 0, "step": 0}
            page.evaluate("s => localStorage.setItem('tb-attention-state', s)", json.dumps(state))
            page.goto(tb.url + "/#attention")
            frame = tab_frame(page)
            times = [frame.evaluate(TIME_MODEL, [step]) for step in [1, 2, 3, 0, 1, 2] * rounds]
            results["model"] = (statistics.median(times), max(times))
            page.close()
            heads, tokens = FIRST_PAINT
            state = {"run": "h%d_t%d" % (heads, tokens), "tag": "layer", "example": 0, "step": STEPS - 1}
            results["first"] = {how: _medians(t) for how, t in _first_paints(browser, tb.url, state, rounds).items()}
            browser.close()
    finally:
        tb.stop()
    demo_first = None
    if demo_logdir and not os.path.isdir(demo_logdir):
        print("no demo logdir %r: first paint not measured (run `make demo-train` first)" % demo_logdir)
    elif demo_logdir:
        tb = TensorBoard(demo_logdir)
        try:
            tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
            with sync_playwright() as p:
                browser = launch(p)
                demo_first = {how: _medians(t) for how, t in _first_paints(browser, tb.url, None, rounds).items()}
                browser.close()
        finally:
            tb.stop()
    return results, demo_first


def report(results, demo_first):
    lines = ["| layer (one example) | new step, fetched + decoded: median / max (ms) | next step, prefetched "
             "(ms) | step already shown, repaint only (ms) |", "|---|---|---|---|"]
    model = results.pop("model", None)
    first = results.pop("first", None)
    for (heads, tokens), r in results.items():
        lines.append("| %d heads x %d tokens (%.1f M cells) | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f |" % (
            heads, tokens, heads * tokens * tokens / 1e6, *r["cold"], *r["prefetched"], *r["shown"]))
    if model:
        lines += ["", "Model view of %d layers x %d heads x %d tokens, a step not seen before (every layer "
                  "fetched), until it and the main view are painted: %.0f ms median, %.0f ms max." % (*MODEL, *model)]
    firsts = [("the %d heads x %d tokens layer" % FIRST_PAINT, first), ("the demo logdir", demo_first)]
    if any(f for _, f in firsts):
        lines += ["", "First paint of the tab: its iframe's navigation to the rendered frame with painted maps "
                  "(median / max), of which TensorBoard's page before the iframe asks for index.js, and the tab's "
                  "own rest (medians); cold: a new browser context, warm: a second visit in the same context.", "",
                  "| log | cold: first paint | TensorBoard | tab | warm: first paint | TensorBoard | tab |",
                  "|---|---|---|---|---|---|---|"]
        for name, f in firsts:
            if f:
                lines.append("| %s | %.0f / %.0f | %.0f | %.0f | %.0f / %.0f | %.0f | %.0f |" % (name, *f["cold"], *f["warm"]))
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo-logdir")
    parser.add_argument("--logdir", help="where to write the generated log, or reuse it from")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the steps (3 cold steps each)")
    args = parser.parse_args()
    print(report(*run(args.demo_logdir, args.logdir, args.rounds)))
