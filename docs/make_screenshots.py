"""Makes the README's screenshots of the tab from the demos' own runs.

    make demo-train DEMO=all LOGDIR=/tmp/demo-logs      # about 8 minutes on 2 cores
    .venv/bin/python docs/make_screenshots.py --logdir /tmp/demo-logs

Serves LOGDIR (one sub-directory per demo, as `make demo-train` writes them)
with the real `tensorboard`, opens the tab in headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright) and writes one PNG per view into
docs/images/: each is a screenshot of the tab at the demo's last captured
step, nothing drawn by this script. A demo missing from LOGDIR is skipped.
"""

import argparse
import json
import os
import shutil
import sys
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from docs.make_gif import serving, tab_frame  # noqa: E402
from tb_attention_plugin import read_attention  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUT = os.path.join(REPO, "docs", "images")

# (file, run, layer, extra state, (metric, order) of the heads view to open,
# the element to screenshot; None: TensorBoard's page as a user sees it, the
# top 1280 x 1100 px)
SHOTS = [
    ("vit-image-view.png", "vit", "block2", {}, None, "#image-view"),
    ("transformer-heads.png", "transformer", "decoder_0/cross_attention", {}, ("monotone_alignment", "model"),
     "#heads-view"),
    ("induction-heads.png", "induction", "layer2", {}, ("induction", "value"), "#heads-view"),
    ("transformer.png", "transformer", "decoder_0/cross_attention", {}, None, None),
    ("lstm_attention.png", "lstm_attention", "attention_vec", {}, None, None),
    ("gru_seq2seq.png", "gru_seq2seq", "attention", {}, None, None),
    # Issue 35: the same review's head mean as weights, then value-weighted (README, "The numbers")
    ("imdb-weights.png", "imdb", "attention", {"example": 4, "head": "mean", "enlarged": True, "show": "weights"},
     None, None),
    ("imdb-value-weighted.png", "imdb", "attention",
     {"example": 4, "head": "mean", "enlarged": True, "show": "value"}, None, None),
]


def run_of(index, demo):
    """The tab's run name of a demo's attention (e.g. 'vit' or 'vit/train'...)."""
    names = [r["run"] for r in index["runs"] if r["run"] == demo or r["run"].startswith(demo + "/")]
    return names[0] if names else None


def take(url, logdir, shots, scale, theme):
    from playwright.sync_api import sync_playwright

    index = json.load(urllib.request.urlopen(url + "/data/plugin/attention/index"))
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 1800}, device_scale_factor=scale,
                                      color_scheme=theme)
        page = context.new_page()
        page.goto(url + "/#attention")
        tab = tab_frame(page)
        for name, demo, tag, extra, heads, selector in shots:
            run = run_of(index, demo)
            layers = {l["tag"]: l for r in index["runs"] if r["run"] == run for l in r["layers"]}
            if tag not in layers:
                print("    skipped %s: no layer %r of a %s run in %s" % (name, tag, demo, logdir), flush=True)
                continue
            step = layers[tag]["steps"][-1]
            tab.evaluate("async s => { await window.attentionTab.select(s); }",
                         {"run": run, "tag": tag, "step": step, "example": 0, **extra})
            tab.wait_for_selector("#attention-root[data-painted-step='%d']" % step, state="attached", timeout=60000)
            if heads:
                metric, rank = heads
                if not tab.eval_on_selector("#heads-view", "d => d.open"):
                    tab.click("#heads-view > summary")
                tab.select_option("#heads-metric", metric)
                tab.select_option("#heads-rank", rank)
                tab.wait_for_function("m => document.querySelector('#heads-scale').textContent.startsWith(m)",
                                      arg=metric, timeout=60000)
            if selector == "#image-view":
                tab.wait_for_function(
                    "() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth)")
                tab.wait_for_selector("#image-distance-heads[data-step='%d']" % step, state="attached", timeout=60000)
            page.wait_for_timeout(500)  # transitions settle
            path = os.path.join(OUT, name)
            if selector is None:
                page.screenshot(path=path, clip={"x": 0, "y": 0, "width": 1280, "height": 1100})
            else:
                tab.locator(selector).screenshot(path=path)
            written.append(path)
            print("    %s: %s %s step %d" % (name, run, tag, step), flush=True)
        browser.close()
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", required=True, help="the demos' runs, as `make demo-train DEMO=all` writes them")
    parser.add_argument("--only", help="comma-separated file names of SHOTS to make")
    parser.add_argument("--scale", type=int, default=1, help="device pixel ratio")
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    args = parser.parse_args(argv)
    shots = [s for s in SHOTS if not args.only or s[0] in args.only.split(",")]
    read_attention(args.logdir)  # fails early, with the reader's message, on a logdir without attention

    with serving(args.logdir) as url:
        print("==> Taking %d screenshots in headless Chromium" % len(shots), flush=True)
        written = take(url, args.logdir, shots, args.scale, args.theme)
    print("==> Wrote %d files into %s" % (len(written), os.path.relpath(OUT)), flush=True)


if __name__ == "__main__":
    main()
