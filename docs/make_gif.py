"""Makes docs/images/imdb-training.gif: the Attention tab over training.

    .venv/bin/pip install -e ".[docs]"     # Pillow (and Playwright, already in [test])
    .venv/bin/python docs/make_gif.py      # about 1 minute on 2 cores

Trains the IMDB demo (default preset; offline it uses the generated corpus)
into a temporary logdir, serves it with the real `tensorboard`, opens the tab
in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
picks the probe review whose sentiment words end up with the most received
attention, drives the step slider through the captured steps and writes one
frame per step into an animated GIF. Nothing is drawn by this script: every
frame is a screenshot of the tab.
"""

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DEMO_QUIET", "1")

from demo_models import imdb  # noqa: E402
from demo_models.serve import attention_enabled  # noqa: E402
from tb_attention_plugin import read_attention  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUT = os.path.join(REPO, "docs", "images", "imdb-training.gif")


def best_example(layer):
    """The shortest probe review (easiest to read in a small picture) whose
    most-attended token at the last step is a sentiment word."""
    sentiment = set(imdb.POSITIVE) | set(imdb.NEGATIVE)
    candidates = []
    for i, (received, tokens) in enumerate(zip(layer.received, layer.key_tokens)):
        top = tokens[int(np.argmax(received[-1, -1]))]  # last step, head mean
        candidates.append((top not in sentiment, len(tokens), i))
    return min(candidates)[2]


def frame_steps(steps, count):
    """Indices of `count` captured steps spread over training, first and last
    included; every captured step when count is 0."""
    if count <= 0 or count >= len(steps):
        return list(range(len(steps)))
    picks = np.unique(np.linspace(0, len(steps) - 1, count).round().astype(int))
    return [int(i) for i in picks]


def tab_frame(page, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for frame in page.frames:
            if "plugin_entry" in frame.url and frame.query_selector("#attention-root[data-ready=true]"):
                return frame
        page.wait_for_timeout(250)
    raise TimeoutError("the Attention tab did not render")


@contextlib.contextmanager
def serving(logdir, wait_s=120):
    """The URL of the real `tensorboard` serving `logdir` once its Attention
    tab has data; stopped on leaving. Also used by docs/make_screenshots.py."""
    port = 6100 + os.getpid() % 800
    url = "http://127.0.0.1:%d" % port
    print("==> Serving %s with TensorBoard on %s" % (logdir, url), flush=True)
    tensorboard = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir,
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + wait_s
        while not attention_enabled(url):
            if tensorboard.poll() is not None or time.time() > deadline:
                raise RuntimeError("TensorBoard did not serve the attention data on port %d" % port)
            time.sleep(0.5)
        yield url
    finally:
        tensorboard.terminate()
        tensorboard.wait(15)


def union_box(boxes, pad=8):
    x0 = min(b["x"] for b in boxes) - pad
    y0 = min(b["y"] for b in boxes) - pad
    x1 = max(b["x"] + b["width"] for b in boxes) + pad
    y1 = max(b["y"] + b["height"] for b in boxes) + pad
    return {"x": max(x0, 0), "y": max(y0, 0), "width": x1 - max(x0, 0), "height": y1 - max(y0, 0)}


def screenshots(url, example, slider_positions, painted_steps, selectors):
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 2200})
        page.goto(url + "/#attention")
        tab = tab_frame(page)
        tab.select_option("#example-select", str(example))
        tab.click('#head-grid figure[data-head="mean"]')
        for position, step in zip(slider_positions, painted_steps):
            tab.evaluate("""(v) => { const s = document.querySelector('#step-slider');
                                     s.value = String(v); s.dispatchEvent(new Event('input')); }""", position)
            tab.wait_for_selector("#attention-root[data-painted-step='%d']" % step, state="attached", timeout=30000)
            tab.wait_for_selector("#importance-bars[data-step='%d']" % step, state="attached", timeout=30000)
            page.wait_for_timeout(300)  # let the bars' transition settle
            clip = union_box([tab.locator(s).bounding_box() for s in selectors])
            shots.append(page.screenshot(clip=clip))
        browser.close()
    return shots


def write_gif(shots, path, width, colors, frame_ms, last_ms):
    from PIL import Image

    frames = []
    for shot in shots:
        image = Image.open(io.BytesIO(shot)).convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        frames.append(image)
    # One palette for every frame (from a strip of all of them), so colours do not flicker.
    strip = Image.new("RGB", (frames[0].width, sum(f.height for f in frames)))
    y = 0
    for f in frames:
        strip.paste(f, (0, y))
        y += f.height
    palette = strip.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    quantized = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    durations = [frame_ms] * (len(quantized) - 1) + [last_ms]
    quantized[0].save(path, save_all=True, append_images=quantized[1:], duration=durations, loop=0, optimize=True)
    return os.path.getsize(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--frames", type=int, default=0, help="0: one per captured step")
    parser.add_argument("--width", type=int, default=800, help="pixels; the GIF is scaled down to this")
    parser.add_argument("--colors", type=int, default=96)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--keep-frames", help="also write each frame as PNG into this folder")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix="tb-attention-gif-")
    logdir = os.path.join(work, "logs")
    print("==> Training the IMDB demo (%s preset) into %s" % (args.preset, logdir), flush=True)
    imdb.main(["--logdir", os.path.join(logdir, "imdb"), "--preset", args.preset])
    layer = read_attention(logdir)["imdb"]["attention"]
    example = best_example(layer)
    positions = frame_steps(layer.steps, args.frames)
    steps = [int(layer.steps[i]) for i in positions]
    print("==> Probe review %d, steps %s" % (example, steps), flush=True)

    with serving(logdir) as url:
        print("==> Taking %d screenshots in headless Chromium" % len(steps), flush=True)
        shots = screenshots(url, example, positions, steps,
                            ["#run-select", "#step-label", "#head-grid", "#focus-map", "#row-labels",
                             "#col-labels", "#importance-bars"])
    if args.keep_frames:
        os.makedirs(args.keep_frames, exist_ok=True)
        for i, shot in enumerate(shots):
            with open(os.path.join(args.keep_frames, "frame-%02d.png" % i), "wb") as f:
                f.write(shot)
    size = write_gif(shots, args.out, args.width, args.colors, frame_ms=600, last_ms=2500)
    shutil.rmtree(work, ignore_errors=True)
    print("==> Wrote %s (%d frames, %.0f KB)" % (os.path.relpath(args.out), len(shots), size / 1024), flush=True)


if __name__ == "__main__":
    main()
