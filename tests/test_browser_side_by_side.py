"""Runs side by side (issue 32 item 6), in headless Chromium against the real
`tensorboard`: two seeds of a real fit of the tiny classifier (layer "mha",
self attention over 8 real tokens) and a seq2seq-like run written with the
summary op whose layer is also named "mha" but is cross attention over 5 x 4
tokens. Only comparable layers are offered; the maps zoom and their labels
read at DPR 1 (at least 9 px, or none and the hover line names the cell).
Helpers and fixtures from test_browser.py."""

import os
import urllib.parse

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback
from tb_attention_plugin.writing import summary
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, opened, tab_frame  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
SEEDS = ["seed 1", "seed 2"]
SEQ2SEQ = "seq2seq"
VOCAB = ["<pad>"] + ["w%d" % i for i in range(1, 30)]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("side") / "logs"
    x, y = tiny_data(16)
    for seed, name in enumerate(SEEDS, 1):
        keras.utils.set_random_seed(seed)
        tiny_mha_classifier(heads=2).fit(x, y, batch_size=4, verbose=0, callbacks=[
            AttentionCallback(root / name, x[:2], tokens=VOCAB, update_freq=2, encoding="uint8")])
    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(str(root / SEQ2SEQ))
    with writer.as_default():
        for step in range(2):
            logits = rng.normal(size=(2, 2, 5, 4))
            scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            summary.attention("mha", scores.astype("float32"), step=step, kind="cross")
    writer.close()
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 3) as tb:
        yield tb


def _show(tab, **state):
    tab.evaluate("async s => { await window.attentionTab.select(s); await window.attentionTab.compared; }", state)


def _zoom(tab, cell):
    tab.evaluate("""c => { const z = document.querySelector('#compare-zoom');
        z.value = String(c); z.dispatchEvent(new Event('input')); }""", cell)
    tab.wait_for_function("c => document.querySelector('.cmp-col canvas.cmp')?.style.width === (8 * c) + 'px'", arg=cell)


def _label_fonts(tab):
    return tab.eval_on_selector_all(".cmp-col .cmp-cols span, .cmp-col .cmp-rows span",
                                    "ss => ss.map(s => parseFloat(getComputedStyle(s).fontSize))")


def test_only_runs_whose_layer_is_of_the_same_kind_and_shape_are_offered(opened):
    tab = opened().tab
    _show(tab, run=SEEDS[0], tag="mha")
    offered = tab.eval_on_selector_all("#compare-runs input", "bs => bs.map(b => b.dataset.run)")
    assert offered == [SEEDS[1]]
    assert tab.inner_text("#compare-not") == (
        "Not comparable with mha, example 0 of this run: %s (its mha is cross attention, this one self)" % SEQ2SEQ)
    # a link asking for it is not obeyed either, nor is it run B of a difference
    _show(tab, compare=[SEQ2SEQ, SEEDS[1]], diff={"run": SEQ2SEQ, "step": 0})
    assert tab.evaluate("() => window.attentionTab.state.compare") == [SEEDS[1]]
    assert tab.eval_on_selector_all(".cmp-col", "cs => cs.map(c => c.dataset.run)") == SEEDS
    assert tab.evaluate("() => window.attentionTab.state.diff.run") == SEEDS[0]
    assert SEQ2SEQ not in tab.eval_on_selector_all("#diff-run option", "os => os.map(o => o.value)")


def test_side_by_side_maps_zoom_and_their_labels_read_at_dpr_1(opened):
    page = opened(scale=1)
    tab = page.tab
    _show(tab, run=SEEDS[0], tag="mha", compare=[SEEDS[1]])
    fonts = _label_fonts(tab)
    assert fonts and min(fonts) >= 9
    _zoom(tab, 8)  # a 6 px font would not read: no labels, the hover line names the cell
    assert _label_fonts(tab) == []
    assert tab.get_attribute(".cmp-col canvas.cmp", "data-label-font") == "0"
    canvas = tab.locator(".cmp-col canvas.cmp").first
    canvas.hover(position={"x": 3 * 8 + 4, "y": 2 * 8 + 4})
    hover = tab.inner_text("#compare-hover")
    assert hover.startswith("%s · step" % SEEDS[0]) and "q 2 " in hover and "→ k 3 " in hover
    _zoom(tab, 30)
    assert tab.inner_text("#compare-zoom-label") == "30 px"
    assert min(_label_fonts(tab)) == 11
    page.wait_for_timeout(500)
    fragment = urllib.parse.unquote(urllib.parse.urlsplit(page.url).fragment)
    assert "p.attention.czoom=30" in fragment
    page.reload()
    tab = tab_frame(page)
    tab.evaluate("async () => { await window.attentionTab.compared; }")
    assert tab.evaluate("() => document.querySelector('#compare-zoom').value") == "30"
    assert tab.evaluate("() => document.querySelector('.cmp-col canvas.cmp').style.width") == "240px"


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("scale", [1, 2])
def test_screenshots_of_runs_side_by_side(opened, theme, scale):
    page = opened(scale=scale)
    tab = page.tab
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    _show(tab, run=SEEDS[0], tag="mha", compare=[SEEDS[1]])
    os.makedirs(ARTIFACTS, exist_ok=True)
    tab.locator("#compare-panel").screenshot(path=os.path.join(ARTIFACTS, "side-by-side-%s-dpr%d.png" % (theme, scale)))
    _zoom(tab, 8)
    tab.locator("#compare-panel").screenshot(path=os.path.join(ARTIFACTS, "side-by-side-8px-%s-dpr%d.png" % (theme, scale)))
