"""Cross attention in the tab (issue 32 item 9), in headless Chromium against
the real `tensorboard`, on a real fit of a tiny encoder-decoder (a causal
decoder self-attention, "decoder_self", and a cross attention over the
encoder, "cross"): statistics that mix decoder and encoder positions (the
mean distance |query - key|) are not offered for the cross layer, and its
map says what its rows and columns are. Helpers and fixtures from
test_browser.py."""

import os

import keras
import numpy as np
import pytest

from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, opened, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
RUN = "seq2seq"
VOCAB = ["<pad>", "<start>"] + ["t%d" % i for i in range(2, 12)]
ENC, DEC = 7, 5


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross") / "logs"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    src = rng.integers(2, len(VOCAB), (16, ENC))
    target = rng.integers(2, len(VOCAB), (16, DEC))
    dec_in = np.concatenate([np.ones((16, 1), "int64"), target[:, :-1]], axis=1)  # shifted right after <start>
    enc_inp, dec_inp = keras.Input((ENC,), dtype="int32"), keras.Input((DEC,), dtype="int32")
    enc = keras.layers.Embedding(len(VOCAB), 8)(enc_inp)
    dec = keras.layers.Embedding(len(VOCAB), 8)(dec_inp)
    dec = dec + keras.layers.MultiHeadAttention(2, 4, name="decoder_self")(dec, dec, use_causal_mask=True)
    dec = dec + keras.layers.MultiHeadAttention(2, 4, name="cross")(dec, enc)
    model = keras.Model([enc_inp, dec_inp], keras.layers.Dense(len(VOCAB))(dec))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit([src, dec_in], target, batch_size=4, verbose=0, callbacks=[
        AttentionCallback(root / RUN, [src[:2], dec_in[:2]], tokens=VOCAB, update_freq=2)])
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 1) as tb:
        yield tb


@pytest.fixture(scope="module")
def layers(logdir):
    return read_attention(str(logdir))[RUN]


def _show(tab, layers, tag):
    step = int(layers[tag].steps[-1])
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"run": RUN, "tag": tag, "step": step, "head": 0})
    wait_painted(tab, step)
    tab.wait_for_selector("#entropy-chart[data-marker='%d']" % step, state="attached", timeout=15000)
    return step


def test_the_distance_chart_is_not_offered_for_cross_attention_and_its_map_names_decoder_rows(opened, layers):
    assert layers["cross"].kind == "cross" and layers["decoder_self"].kind == "causal"
    page = opened()
    tab = page.tab
    _show(tab, layers, "cross")
    assert tab.is_visible("#entropy-chart") and tab.is_visible("#maxweight-chart")
    assert not tab.is_visible("#distance-chart")
    assert tab.inner_text("#stats-note") == (
        "no mean distance |query - key| chart: it means nothing for cross attention: "
        "its rows are decoder positions, its columns encoder positions")
    assert "mean distance" not in tab.inner_text("#stats-title")
    assert tab.inner_text("#axis-titles").startswith(
        "rows: the decoder's input tokens ↓ (as fed to the decoder: the target shifted right, row i predicts the token "
        "after it) · columns: the encoder's tokens →")
    # the decoder's own (causal) layer: positions of one sequence, the chart is there
    _show(tab, layers, "decoder_self")
    assert tab.is_visible("#distance-chart") and not tab.is_visible("#stats-note")
    assert tab.inner_text("#axis-titles").startswith("rows: query tokens ↓ · columns: key tokens →")
    assert page.console_errors == []


def test_the_heads_view_says_distance_means_nothing_for_the_cross_layer(opened, layers):
    page = opened()
    tab = page.tab
    _show(tab, layers, "decoder_self")
    tab.click("#heads-view > summary")
    tab.wait_for_selector("#heads-metric option[value='mean_distance']", state="attached")
    tab.select_option("#heads-metric", "mean_distance")
    tab.wait_for_selector(".hm-layer", state="attached")
    tab.wait_for_function("() => [...document.querySelectorAll('.hm-layer')].some(l => l.title.includes('mean_distance'))")
    titles = tab.eval_on_selector_all(".hm-layer", "ls => ls.map(l => [l.textContent, l.title])")
    cross = [t for name, t in titles if name == "cross"]
    assert cross and "mean_distance means nothing for cross attention" in cross[0]
    assert [t for name, t in titles if name == "decoder_self"][0].endswith("(causal, 2 heads)")
    # a metric only the cross layer offers stays: monotone alignment
    assert "monotone_alignment" in tab.eval_on_selector_all("#heads-metric option", "os => os.map(o => o.value)")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("scale", [1, 2])
def test_screenshots_of_a_cross_layer(opened, layers, theme, scale):
    page = opened(scale=scale)
    tab = page.tab
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    _show(tab, layers, "cross")
    os.makedirs(ARTIFACTS, exist_ok=True)
    for part in ["focus-panel", "stats-panel"]:
        tab.locator("#" + part).screenshot(path=os.path.join(ARTIFACTS, "cross-%s-%s-dpr%d.png" % (part, theme, scale)))
