"""The heads view (issue 21 item 2) in headless Chromium against the real
`tensorboard`: a real fit of a two-layer, four-head causal model (2 x 4
cells) whose head metrics are compared with read_head_metrics, and a
12-layer x 12-head log written with the summary op for the screenshots of
a model of BERT-base's shape."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tb_attention_plugin import AttentionCallback, read_attention, read_head_metrics
from tb_attention_plugin.writing import summary
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, lut_color, opened, tab_frame, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
FIT, BIG = "fit", "big"
LAYERS, HEADS = ["layer1", "layer2"], 4
# The route rounds JSON numbers to 6 decimals (http_api.md) and the metrics
# are stored as float32: a shown value is within 5e-7 of read_head_metrics.
VALUE_TOLERANCE = 1e-5
# A colour is one of 256 table entries: a value that JSON rounding moves
# across an entry boundary lands on the neighbouring entry, a few units away.
COLOUR_TOLERANCE = 4


def _two_layer_causal_model():
    inp = keras.Input((12,), dtype="int32")
    x = keras.layers.Embedding(10, 16)(inp)
    for name in LAYERS:
        x = x + keras.layers.MultiHeadAttention(HEADS, 4, name=name)(x, x, use_causal_mask=True)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    for name in LAYERS:  # larger logits and a fast optimizer: the heads move apart within a dozen steps
        for weight in model.get_layer(name).query_dense.weights + model.get_layer(name).key_dense.weights:
            weight.assign(weight * 4)
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads") / "logs"
    rng = np.random.default_rng(0)
    half = rng.integers(1, 10, (48, 6))
    seq = np.concatenate([half, half], axis=1)  # every example repeats: induction applies
    vocab = ["w%d" % i for i in range(10)]
    _two_layer_causal_model().fit(
        seq, np.roll(seq, -1, axis=1), batch_size=4, verbose=0,
        callbacks=[AttentionCallback(root / FIT, seq[:2], tokens=vocab, update_freq=2)])
    # BERT-base's shape for the screenshots: 12 layers x 12 heads, 6 steps.
    writer = tf.summary.create_file_writer(str(root / BIG))
    with writer.as_default():
        for step in range(6):
            for layer in range(12):
                logits = rng.normal(size=(1, 12, 16, 16)) * (1 + step * layer / 12)
                scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
                summary.attention("encoder/layer_%d/self_attention" % layer, scores.astype("float32"), step=step * 10,
                                  kind="self", layer_index=layer)
    writer.close()
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2) as tb:
        yield tb


@pytest.fixture(scope="module")
def metrics(logdir):
    """{(layer, head, step, metric): value} of probe example 0 of the fit."""
    table = read_head_metrics(str(logdir))
    return {(layer, head, step, metric): value for run, layer, head, step, example, metric, value in zip(
        *(table[c] for c in ("run", "layer", "head", "step", "example", "metric", "value")))
        if run == FIT and example == 0}


@pytest.fixture(scope="module")
def steps(logdir):
    return [int(s) for s in read_attention(str(logdir))[FIT]["layer1"].steps]


def _open_heads_view(tab, run, step, metric=None, tag=None):
    if tag is None:
        tag = "layer1" if run == FIT else "encoder/layer_0/self_attention"
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"run": run, "tag": tag, "step": step})
    wait_painted(tab, step)
    if not tab.eval_on_selector("#heads-view", "d => d.open"):
        tab.click("#heads-view > summary")
    if metric:
        tab.select_option("#heads-metric", metric)
    # 120 s: opening it sends one request per layer (12 for the BERT-shaped
    # run); on 2 cores shared with other benches (load 10-12) the full suite
    # once took over 15 s and once over 60 s. A wait, not a timing check.
    tab.wait_for_selector("#heads-matrix[data-painted-step='%d'] .hm-cell" % step, state="attached", timeout=120000)
    if metric:
        tab.wait_for_function("m => document.querySelector('#heads-scale').textContent.startsWith(m)", arg=metric)


def _cells(tab):
    """[(tag, head, value or None, rgb of the value box, class)] in the order shown."""
    return tab.eval_on_selector_all("#heads-matrix .hm-cell", """cells => cells.map(c => {
        const rgb = getComputedStyle(c.querySelector('.hm-value')).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number);
        return [c.dataset.tag, Number(c.dataset.head), c.dataset.value === 'missing' ? null : Number(c.dataset.value),
                rgb, c.className];
    })""")


def test_the_matrix_has_a_cell_per_head_of_every_layer_valued_as_read_head_metrics(opened, metrics, steps):
    page = opened()
    tab = page.tab
    step = steps[-1]
    _open_heads_view(tab, FIT, step)
    assert tab.eval_on_selector("#heads-metric", "s => s.value") == "entropy"  # the default
    cells = _cells(tab)
    assert [(tag, head) for tag, head, *_ in cells] == [(layer, h) for layer in LAYERS for h in range(HEADS)]
    assert tab.eval_on_selector_all("#heads-matrix .hm-layer", "ls => ls.map(l => l.textContent)") == LAYERS
    expected = [metrics[(tag, head, step, "entropy")] for tag, head, *_ in cells]
    np.testing.assert_allclose([value for _, _, value, _, _ in cells], expected, atol=VALUE_TOLERANCE, rtol=0)
    # entropy is unbounded: the colours span this step's min..max over every layer and head, as the legend says
    low, high = min(expected), max(expected)
    assert tab.inner_text("#heads-scale").startswith(
        "entropy at step %d: min %.3f to max %.3f nats over every layer and head at this step" % (step, low, high))
    assert tab.inner_text("#heads-legend-min") == "%.3f" % low and tab.inner_text("#heads-legend-max") == "%.3f" % high
    for (tag, head, _, rgb, _), value in zip(cells, expected):
        want = lut_color((value - low) / (high - low))
        assert max(abs(a - b) for a, b in zip(rgb, want)) <= COLOUR_TOLERANCE, (tag, head, rgb, want)
    assert page.console_errors == []


def test_opening_the_heads_view_as_the_tab_redraws_keeps_it_open(opened, steps):
    # TensorBoard's reload and the run selector's poll redraw the tab at any
    # moment. A click on the summary opens the panel at once but reports it
    # in a later task ('toggle'); a redraw in between closed it again (the
    # suite's screenshot test then waited 120 s for cells that never came).
    page = opened()
    tab = page.tab
    step = steps[-1]
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"run": FIT, "tag": "layer1", "step": step})
    wait_painted(tab, step)
    assert not tab.eval_on_selector("#heads-view", "d => d.open")
    tab.evaluate("""async () => {
      document.querySelector('#heads-view > summary').click();  // opens; 'toggle' is queued
      await window.attentionTab.select({});  // a redraw before that task runs
    }""")
    tab.wait_for_selector("#heads-matrix[data-painted-step='%d'] .hm-cell" % step, state="attached", timeout=30000)
    assert tab.eval_on_selector("#heads-view", "d => d.open")
    assert tab.evaluate("() => window.attentionTab.state.headsOpen") is True
    # Closing it the same way keeps it closed, and a link's (back's) headsOpen still applies.
    tab.evaluate("""async () => {
      document.querySelector('#heads-view > summary').click();
      await window.attentionTab.select({});
    }""")
    tab.wait_for_function("() => window.attentionTab.state.headsOpen === false")
    assert not tab.eval_on_selector("#heads-view", "d => d.open")
    tab.evaluate("async () => { await window.attentionTab.select({ headsOpen: true }); }")
    assert tab.eval_on_selector("#heads-view", "d => d.open")
    assert page.console_errors == []


def test_a_bounded_metric_is_on_a_fixed_0_to_1_scale_and_missing_values_are_hatched_not_0(opened, metrics, steps):
    page = opened()
    tab = page.tab
    step = steps[-1]
    _open_heads_view(tab, FIT, step, metric="previous_token")
    assert tab.inner_text("#heads-scale").startswith("previous_token: fixed scale 0 to 1")
    for tag, head, value, rgb, _ in _cells(tab):
        assert abs(value - metrics[(tag, head, step, "previous_token")]) <= VALUE_TOLERANCE
        want = lut_color(metrics[(tag, head, step, "previous_token")])
        assert max(abs(a - b) for a, b in zip(rgb, want)) <= COLOUR_TOLERANCE
    # monotone_alignment (cross attention) and patch_distance (patch grids) are NaN for every head of
    # these causal text layers by definition: not offered (issue 32 item 13)
    assert not any(key[3] in ("monotone_alignment", "patch_distance") for key in metrics)
    offered = tab.eval_on_selector_all("#heads-metric option", "os => os.map(o => o.value)")
    assert "monotone_alignment" not in offered and "patch_distance" not in offered and "entropy" in offered
    # change has no value at the first capture (nothing before it)
    tab.select_option("#heads-metric", "change")
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"step": steps[0]})
    tab.wait_for_selector("#heads-matrix[data-painted-step='%d']" % steps[0], state="attached")
    assert all(value is None for _, _, value, _, _ in _cells(tab))
    # the choice of metric survives a reload
    page.reload()
    tab = page.tab = tab_frame(page)
    tab.wait_for_selector("#heads-matrix .hm-cell", state="attached", timeout=15000)
    assert tab.eval_on_selector("#heads-metric", "s => s.value") == "change"


def test_ranking_by_value_orders_the_cells_by_their_value_at_this_step(opened, metrics, steps):
    page = opened()
    tab = page.tab
    step = steps[-1]
    _open_heads_view(tab, FIT, step)
    tab.select_option("#heads-rank", "value")
    tab.wait_for_selector("#heads-matrix.hm-ranked", state="attached")
    shown = [(tag, head) for tag, head, *_ in _cells(tab)]
    expected = sorted(((layer, h) for layer in LAYERS for h in range(HEADS)),
                      key=lambda lh: -metrics[(lh[0], lh[1], step, "entropy")])
    assert shown == expected
    # ranked cells name their layer and head
    assert tab.inner_text("#heads-matrix .hm-cell:first-child .hm-caption") == "%s · h%d" % expected[0]
    # by change over training: |last - first|
    tab.select_option("#heads-rank", "change")
    tab.wait_for_selector("#heads-matrix[data-ranking='change']", state="attached")
    change = {lh: abs(metrics[(*lh, steps[-1], "entropy")] - metrics[(*lh, steps[0], "entropy")]) for lh in expected}
    assert [(tag, head) for tag, head, *_ in _cells(tab)] == sorted(change, key=lambda lh: -change[lh])


def test_clicking_a_cell_opens_that_head_and_its_jump_mark_opens_it_at_the_largest_jump(opened, metrics, steps):
    page = opened()
    tab = page.tab
    step = steps[-1]
    _open_heads_view(tab, FIT, step)
    tab.click("#heads-matrix .hm-cell[data-tag='layer2'][data-head='3'] .hm-value")
    wait_painted(tab, step)
    tab.wait_for_function("() => document.querySelector('#focus-title').textContent === 'head 3 · step %d'" % step)
    assert tab.eval_on_selector("#layer-select", "s => s.value") == "layer2"
    assert tab.get_attribute("#heads-matrix .hm-cell.selected", "data-tag") == "layer2"
    # the largest |difference| between consecutive captures of layer1 head 2's entropy
    series = [round(metrics[("layer1", 2, s, "entropy")], 6) for s in steps]  # as the route sends them
    jump = steps[1 + int(np.argmax(np.abs(np.diff(series))))]
    cell = "#heads-matrix .hm-cell[data-tag='layer1'][data-head='2']"
    assert int(tab.get_attribute(cell, "data-jump-step")) == jump
    tab.click(cell + " .hm-jump")
    wait_painted(tab, jump)
    tab.wait_for_function("() => document.querySelector('#focus-title').textContent === 'head 2 · step %d'" % jump)
    assert tab.eval_on_selector("#layer-select", "s => s.value") == "layer1"
    assert tab.inner_text("#step-label") == str(jump)
    assert page.console_errors == []


def test_each_sparkline_is_as_wide_as_its_cell_in_model_order_and_ranked(opened, steps):
    """Issue 32 item 13: ranked cells are 104 px wide, their sparklines were 64."""
    tab = opened().tab
    _open_heads_view(tab, FIT, steps[-1], metric="entropy")

    def widths():
        return tab.eval_on_selector_all("#heads-matrix .hm-cell", """cs => cs.map(c => [
            c.querySelector('canvas.hm-spark').getBoundingClientRect().width, c.clientWidth,
            c.querySelector('canvas.hm-spark').width])""")

    for ranking in ["model", "jump", "model"]:
        tab.select_option("#heads-rank", ranking)
        got = widths()
        assert got and all(abs(spark - cell) <= 1 for spark, cell, _ in got), (ranking, got)
        assert got[0][1] == (64 if ranking == "model" else 104)
    # the dashed line of the current (last) step sits at the sparkline's right end
    right = tab.eval_on_selector("#heads-matrix .hm-cell:not(.missing) .hm-now", "n => parseFloat(n.style.left)")
    assert right == pytest.approx(64 - 3, abs=0.5)


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_2_by_4_and_12_by_12_heads_in_light_and_dark(opened, steps, theme, scale):
    page = opened(scale=scale, color_scheme=theme)
    tab = page.tab
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    _open_heads_view(tab, FIT, steps[-1], metric="previous_token")
    tab.locator("#heads-view").screenshot(path=_artifact("heads-2x4-%s-dpr%d.png" % (theme, scale)))
    tab.select_option("#heads-metric", "change")  # nothing before the first capture: every cell missing
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"step": steps[0]})
    tab.wait_for_selector("#heads-matrix[data-painted-step='%d']" % steps[0], state="attached")
    tab.locator("#heads-view").screenshot(path=_artifact("heads-2x4-missing-%s-dpr%d.png" % (theme, scale)))
    _open_heads_view(tab, BIG, 50, metric="entropy")
    assert tab.eval_on_selector_all("#heads-matrix .hm-cell", "c => c.length") == 144
    # every cell of a 12-head row fits beside its layer label in a 1280 px wide tab
    assert tab.eval_on_selector("#heads-matrix", "m => m.scrollWidth <= m.clientWidth")
    tab.locator("#heads-view").screenshot(path=_artifact("heads-12x12-%s-dpr%d.png" % (theme, scale)))
    tab.select_option("#heads-rank", "jump")
    tab.locator("#heads-view").screenshot(path=_artifact("heads-12x12-ranked-%s-dpr%d.png" % (theme, scale)))
    assert page.console_errors == []


def _artifact(name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    return os.path.join(ARTIFACTS, name)
