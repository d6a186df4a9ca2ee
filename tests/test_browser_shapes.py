"""The tab in headless Chromium on logs of other shapes than test_browser.py's:
a real fit of a two-layer model whose probe holds an all-padding example, a
run whose earlier steps have another shape, and a 300-token map. Each test
opens its own page (helpers from test_browser.py)."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models import LEN, VOCAB, tiny_data
from tb_attention_plugin import AttentionCallback
from tb_attention_plugin.writing import summary
from tensorboard_server import serving
from test_browser import CHROMIUM, browser, opened, screenshot, tab_frame, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
LONG = 300
HUGE = 2048
HOT = [j for j in range(LONG) if j % 5 == 2]  # key columns that receive all of some rows' attention


def _two_layer_model():
    """Embedding with mask_zero, then two self-attention layers named so that
    their alphabetical order is not the model's."""
    inp = keras.Input((LEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inp)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="z_first")(x, x)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="a_second")(x, x)
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inp, out)
    model.compile("adam", "mse")
    return model


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes") / "logs"
    x, y = tiny_data(16)
    probe = x[:3].copy()
    probe[1] = 0  # example 1: every token is padding
    _two_layer_model().fit(x, y, batch_size=4, epochs=1, verbose=0,
                           callbacks=[AttentionCallback(root / "padded", probe, update_freq=2)])
    # max_cells for one example of 2 layers x 2 heads x 10 x 10: the callback
    # keeps the first example of the 3 and says so (probe_examples)
    _two_layer_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[
        AttentionCallback(root / "kept", x[:3], update_freq=4, max_cells=2 * 2 * LEN * LEN)])
    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(str(root / "reshaped"))
    with writer.as_default():
        for step, tokens in [(0, 5), (1, 5), (2, 5), (3, 7), (4, 7)]:  # the probe grew at step 3
            logits = rng.normal(size=(1, 2, tokens, tokens))
            summary.attention("enc/mha", np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), step=step)
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "long"))
    with writer.as_default():
        scores = np.zeros((1, 2, LONG, LONG), np.float32)
        for i in range(LONG):
            scores[0, 0, i, HOT[i % len(HOT)]] = 1.0  # head 0: one-hot rows on the hot columns
        scores[0, 1] = 1.0 / LONG
        summary.attention("long", scores, step=0, kind="self")
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "reduced"))
    with writer.as_default():  # the same map stored reduced (issue 34)
        summary.attention("long", scores, step=0, kind="self", storage="reduced")
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "valued"))
    with writer.as_default():  # value-weighted attention (issue 35): a sink that sends nothing
        scores, norms = _sink_and_norms()
        summary.attention("sink", scores, step=0, kind="self", encoding="float32", value_norms=norms,
                          relevance=_sink_relevance(), relevance_target="class 1")
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "partly"))
    with writer.as_default():  # relevance= passed from step 1 on (a re-run of the notebook)
        summary.attention("sink", _sink_and_norms()[0], step=0, kind="self", encoding="float32")
        summary.attention("sink", _sink_and_norms()[0], step=1, kind="self", encoding="float32",
                          relevance=_sink_relevance(), relevance_target="class 1")
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "plain"))
    with writer.as_default():  # the same layer without value norms or relevance
        summary.attention("sink", _sink_and_norms()[0], step=0, kind="self", encoding="float32")
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "huge"))
    with writer.as_default():
        scores = np.zeros((1, 1, HUGE, HUGE), np.float32)
        scores[0, 0, np.arange(HUGE), (np.arange(HUGE) * 7) % HUGE] = 1.0
        summary.attention("huge", scores, step=0, kind="self")
    writer.close()
    return root


SINK, CONTENT, TOKENS = 0, 5, 8


def _sink_and_norms():
    """(scores (1, 2, 8, 8), value_norms): head 0 puts 0.9 of every row on
    the sink token 0, whose value vector is nearly zero (norm 0.01), and 0.1
    on token 5 (norm 1): value-weighted, token 5 gets 0.1 / 0.109 = 0.917 of
    what each query receives, the sink 0.083. Head 1 is uniform."""
    scores = np.zeros((1, 2, TOKENS, TOKENS), np.float32)
    scores[0, 0, :, SINK], scores[0, 0, :, CONTENT] = 0.9, 0.1
    scores[0, 1] = 1.0 / TOKENS
    norms = np.ones((1, 2, TOKENS), np.float32)
    norms[0, :, SINK] = 0.01
    return scores, norms


def _sink_relevance():
    """d target / d A * A of the sink layer (1, 2, 8, 8): head 0's weight on
    the sink lowered the explained output (-0.2 per row), token 5's raised it
    (0.3) and token 3's (0.1): each row's shares of its positive relevance
    are 0.75 (token 5), 0.25 (token 3), 0 (the sink). Head 1: 0.01 on every
    key, shares of 1/8."""
    products = np.zeros((1, 2, TOKENS, TOKENS), np.float32)
    products[0, 0, :, SINK], products[0, 0, :, CONTENT], products[0, 0, :, 3] = -0.2, 0.3, 0.1
    products[0, 1] = 0.01
    return products


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 9) as tb:
        yield tb


def _index_layer(server, run, tag):
    index = server.get_json("/data/plugin/attention/index")
    (layers,) = [r["layers"] for r in index["runs"] if r["run"] == run]
    return next(layer for layer in layers if layer["tag"] == tag)


def _show(tab, **state):
    tab.evaluate("async s => { await window.attentionTab.select(s); }", state)


def test_the_layer_line_says_how_many_probe_examples_were_stored(opened, server):
    layer = _index_layer(server, "kept", "z_first")
    assert len(layer["examples"]) == 1 and layer["probe_examples"] == 3
    tab = opened().tab
    _show(tab, run="kept", tag="z_first", step=layer["steps"][-1])
    wait_painted(tab, layer["steps"][-1])
    assert "1 of 3 probe examples stored (max_cells or max_map_bytes)" in tab.inner_text("#layer-info")
    padded = _index_layer(server, "padded", "z_first")["steps"][-1]
    _show(tab, run="padded", tag="z_first", step=padded)  # every example stored: nothing said
    wait_painted(tab, padded)
    assert "probe examples stored" not in tab.inner_text("#layer-info")


def test_an_all_padding_example_shows_a_note_and_requests_nothing_for_it(opened, server):
    layer = _index_layer(server, "padded", "z_first")
    empty = layer["examples"][1]
    assert empty["query_length"] == 0 and empty["key_length"] == 0
    page = opened()
    tab = page.tab
    _show(tab, run="padded", tag="z_first", example=0, step=layer["steps"][-1])
    wait_painted(tab, layer["steps"][-1])
    page.requests.clear()
    tab.select_option("#example-select", "1")
    tab.wait_for_selector("#maps-note:not([hidden])", state="attached")
    assert tab.inner_text("#maps-note") == "example 1 has no real tokens (all padding)"
    assert tab.is_hidden("#head-grid") and tab.is_hidden("#focus-panel")
    # no view keeps showing the previous example's numbers
    assert tab.is_hidden("#importance-panel") and tab.is_hidden("#importance-steps") and tab.is_hidden("#stats-panel")
    assert "(all padding)" in tab.eval_on_selector("#example-select", "s => s.selectedOptions[0].text")
    page.wait_for_timeout(500)  # any request would have been sent by now
    asked = [u for u in page.requests if "example=1" in u]
    assert asked == []
    assert tab.inner_text("#status") == ""
    assert page.console_errors == []
    # example 2 has tokens again: the maps come back
    tab.select_option("#example-select", "2")
    tab.wait_for_selector("#maps-note[hidden]", state="attached")
    assert tab.is_visible("#head-grid") and tab.is_visible("#importance-panel") and tab.is_visible("#stats-panel")


def test_layers_are_listed_in_model_order_whatever_order_the_index_sends(opened, server):
    order = [layer["tag"] for layer in sorted(
        (_index_layer(server, "padded", t) for t in ("z_first", "a_second")), key=lambda layer: layer["layer_index"])]
    assert order == ["z_first", "a_second"]  # the model's order, not the alphabet's

    def reverse_layers(page):
        def handle(route):
            index = route.fetch().json()
            for run in index["runs"]:
                run["layers"].reverse()
            route.fulfill(json=index)
        page.route("**/data/plugin/attention/index", handle)

    page = opened(before=reverse_layers)
    tab = page.tab
    _show(tab, run="padded")
    listed = tab.eval_on_selector_all("#layer-select option", "o => o.map(x => x.value)")
    assert listed == order
    assert tab.eval_on_selector("#layer-select", "s => s.value") == "z_first"  # the first layer is the default


def test_steps_of_another_shape_are_stated_in_one_line(opened, server):
    layer = _index_layer(server, "reshaped", "enc/mha")
    assert layer["other_shapes"] == {"steps": 3, "first": 0, "last": 2}
    page = opened()
    tab = page.tab
    _show(tab, run="reshaped")
    wait_painted(tab, 4)
    assert tab.inner_text("#other-shapes") == (
        "3 earlier steps (0..2) have another shape (the probe or model changed) and are not shown; "
        "read them with read_attention")
    _show(tab, run="long")  # other_shapes null: no line
    assert tab.is_hidden("#other-shapes")


@pytest.mark.parametrize("scale", [1, 2])
def test_thumbnails_of_a_long_map_show_every_peak_column(opened, scale):
    page = opened(scale=scale)
    tab = page.tab
    _show(tab, run="long", head=0)
    wait_painted(tab, 0)
    thumb = tab.locator('#head-grid canvas[data-head="0"]')
    png = Image.open(io.BytesIO(thumb.screenshot())).convert("RGB")
    pixels = np.asarray(png).astype(int)  # (rows, cols, 3) in device pixels
    width = pixels.shape[1]
    assert width == 160 * scale
    bright = (pixels[..., 0] > 200) & (pixels[..., 1] > 180)  # yellow: weight 1 on the 0-1 scale
    # pixel columns that column j covers
    missing = [j for j in HOT if not bright[:, j * width // LONG: ((j + 1) * width - 1) // LONG + 1].any()]
    assert missing == [], "peak columns dropped from the thumbnail: %s" % missing
    screenshot(page, "long-map-dpr%d.png" % scale)


def test_a_map_stored_reduced_shows_its_peaks_and_says_what_it_holds(opened, server):
    # Head 0's rows are one-hot: each row's largest weights are kept exactly,
    # so every peak column is there; head 1 is uniform (1/300 each), which
    # the 3 x 3 block means give back within uint8's step.
    layer = _index_layer(server, "reduced", "long")
    assert (layer["storage"], layer["top_k"], layer["block_size"]) == ("reduced", 8, 3)
    status, headers, body = server.get("/data/plugin/attention/maps?run=reduced&tag=long&step=0&example=0")
    assert status == 200 and headers["X-Attention-Storage"] == "reduced"
    assert float(headers["X-Attention-Max-Error"]) <= 2 / 255  # uint8 steps of the stored weights
    maps = np.frombuffer(body, np.uint8).reshape(2, LONG, LONG) / 255
    assert all(maps[0, i, HOT[i % len(HOT)]] == 1 for i in range(LONG))
    page = opened()
    tab = page.tab
    _show(tab, run="reduced", tag="long", head=0)
    wait_painted(tab, 0)
    assert ("reduced maps: each row's 8 largest weights exact, the rest from 3 x 3 block means "
            "(within the row's 8th weight)") in tab.inner_text("#layer-info")
    png = Image.open(io.BytesIO(tab.locator('#head-grid canvas[data-head="0"]').screenshot())).convert("RGB")
    pixels = np.asarray(png).astype(int)
    bright = (pixels[..., 0] > 200) & (pixels[..., 1] > 180)
    width = pixels.shape[1]
    missing = [j for j in HOT if not bright[:, j * width // LONG: ((j + 1) * width - 1) // LONG + 1].any()]
    assert missing == []
    screenshot(page, "reduced-long-map.png")
    # The enlarged map says it was rebuilt and how far any cell can be off (the reply's bound), and so does a cell's tooltip.
    bound = float(headers["X-Attention-Max-Error"])
    _show(tab, run="reduced", tag="long", head=1, enlarged=True)
    wait_painted(tab, 0)
    assert tab.inner_text("#focus-title") == (
        "head 1 · step 0 · rebuilt from the reduced form: every cell within ±%.4f of the stored weight" % bound)
    tab.locator("#focus-map").hover(position={"x": 2, "y": 2})
    tab.wait_for_selector("#tooltip .tip-weight")
    assert tab.inner_text("#tooltip .tip-weight").endswith("±%.4f" % bound)
    _show(tab, run="long", tag="long", head=1)  # full maps: nothing said
    wait_painted(tab, 0)
    assert "reduced maps" not in tab.inner_text("#layer-info")
    assert tab.inner_text("#focus-title") == "head 1 · step 0"


def test_token_labels_stay_in_view_while_a_long_map_scrolls(opened):
    page = opened()
    tab = page.tab
    _show(tab, run="long", head=0)
    wait_painted(tab, 0)
    assert tab.eval_on_selector("#text-queries", "p => p.scrollWidth <= p.clientWidth")  # 300 tokens of text wrap
    tab.fill("#zoom", "20")  # 6000 px: far larger than the view
    assert tab.inner_text("#axis-titles").startswith("rows: query tokens ↓ · columns: key tokens →")
    tab.eval_on_selector("#focus-body", "b => { b.scrollTop = 3000; b.scrollLeft = 3000; }")
    page.wait_for_timeout(100)
    body = tab.locator("#focus-body").bounding_box()
    # the key label of the first column in view sits at the top of the view
    j = 3000 // 20 + 5
    key = tab.locator("#col-labels span[data-index='%d']" % j).bounding_box()
    assert abs(key["y"] + key["height"] - (tab.locator("#col-labels").bounding_box()["y"] + tab.locator("#col-labels").bounding_box()["height"])) <= 1
    assert body["y"] - 1 <= tab.locator("#col-labels").bounding_box()["y"] <= body["y"] + 1
    assert body["x"] - 1 <= tab.locator("#row-labels").bounding_box()["x"] <= body["x"] + 1
    assert key["x"] >= body["x"] and key["x"] + key["width"] <= body["x"] + body["width"]
    i = 3000 // 20 + 5
    query = tab.locator("#row-labels span[data-index='%d']" % i).bounding_box()
    assert body["y"] <= query["y"] <= body["y"] + body["height"]
    screenshot(page, "long-map-scrolled.png")


def test_model_view_shows_every_layer_and_head_in_model_order_and_opens_one(opened, server, logdir):
    from tb_attention_plugin import read_attention
    from test_browser import lut_color

    layer = _index_layer(server, "padded", "z_first")
    step = layer["steps"][-1]
    page = opened()
    tab = page.tab
    _show(tab, run="padded", tag="z_first", example=0, step=step)
    tab.wait_for_selector("#model-grid[data-painted-step='%d']" % step, state="attached")
    rows = tab.eval_on_selector_all("#model-grid .model-row", "rows => rows.map(r => r.dataset.tag)")
    assert rows == ["z_first", "a_second"]
    heads = tab.eval_on_selector_all("#model-grid .model-row[data-tag='a_second'] canvas",
                                     "cs => cs.map(c => c.dataset.head)")
    assert heads == ["mean", "0", "1"]
    assert "per layer the head mean, then heads 0 to H-1" in tab.inner_text("#model-caption")  # the columns, said
    # A keras_hub-length layer name wraps inside its label: all of it shown, nothing scrolled or cut off.
    label = tab.evaluate("""(name) => {
      const label = document.querySelector('#model-grid .model-label');
      label.textContent = name;
      const line = parseFloat(getComputedStyle(label).lineHeight) || 1.2 * parseFloat(getComputedStyle(label).fontSize);
      return { text: label.innerText, overflow: label.scrollWidth - label.clientWidth, lines: label.clientHeight / line };
    }""", "transformer_layer_11/self_attention_layer (self)")
    assert label["text"].replace("\n", "") == "transformer_layer_11/self_attention_layer (self)"
    assert label["overflow"] <= 0 and label["lines"] >= 2
    second = read_attention(str(logdir))["padded"]["a_second"].maps[0][-1]  # (heads, q, k) at the last step
    for row, col in [(0, 0), (3, 5)]:
        got = tab.evaluate("""([r, c]) => Array.from(document.querySelector(
            "#model-grid .model-row[data-tag='a_second'] canvas[data-head='1']").getContext('2d')
            .getImageData(c, r, 1, 1).data.slice(0, 3))""", [row, col])
        assert got == lut_color(second[1, row, col]), (row, col)
    tab.click("#model-grid .model-row[data-tag='a_second'] canvas[data-head='1']")
    tab.wait_for_function("() => document.querySelector('#focus-title').textContent.startsWith('head 1')")
    assert tab.eval_on_selector("#layer-select", "s => s.value") == "a_second"
    assert tab.inner_text("#focus-title") == "head 1 · step %d" % step
    assert tab.get_attribute("#model-grid .model-row.selected", "data-tag") == "a_second"
    # an example that is all padding says so in every row
    tab.select_option("#example-select", "1")
    tab.wait_for_selector("#maps-note:not([hidden])", state="attached")
    notes = tab.eval_on_selector_all("#model-grid .model-row .info", "n => n.map(x => x.textContent)")
    assert notes == ["all padding", "all padding"]
    screenshot(page, "model-view.png")


def test_a_2048_token_map_paints_with_a_minimap_that_moves_the_view(opened):
    page = opened(height=1400)
    tab = page.tab
    _show(tab, run="padded", tag="z_first", example=0)  # a short map: labelled
    assert tab.locator("#col-labels span").count() > 0
    assert tab.eval_on_selector("#focus-map", "c => getComputedStyle(c.parentElement).paddingRight") == "0px"  # no minimap
    _show(tab, run="huge")
    wait_painted(tab, 0)
    assert tab.get_attribute('#head-grid canvas[data-head="0"]', "data-pooled") == "true"
    assert tab.locator("#focus-map").bounding_box()["width"] == 2 * HUGE  # 2 px cells to start
    # no labels at 2 px, not even those of the run shown before
    assert tab.locator("#col-labels span").count() == 0 and tab.locator("#row-labels span").count() == 0
    assert tab.is_visible("#minimap")
    assert "every map is dark" not in tab.inner_text("#legend-scale")  # weights of 1: the fixed scale shows them
    body = tab.eval_on_selector("#focus-body", "b => [b.scrollWidth, b.scrollHeight, b.clientWidth, b.clientHeight]")
    box = tab.locator("#minimap-map").bounding_box()
    view = tab.locator("#minimap-view").bounding_box()
    assert abs(view["width"] - box["width"] * body[2] / body[0]) <= 2  # the box is the part in view
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2)  # the bottom right corner
    scroll = tab.eval_on_selector("#focus-body", "b => [b.scrollLeft, b.scrollTop]")
    assert scroll[0] >= body[0] - body[2] - 2 and scroll[1] >= body[1] - body[3] - 2
    moved = tab.locator("#minimap-view").bounding_box()
    assert moved["x"] > view["x"] + box["width"] / 2 and moved["y"] > view["y"] + box["height"] / 2
    # the map is drawn at every cell: the canvas holds 2048 x 2048 cells, row 2047's one at column 2047 * 7 % 2048
    assert tab.get_attribute("#focus-map", "data-cols") == str(HUGE)
    got = tab.evaluate("""([x, y]) => Array.from(document.querySelector('#focus-map').getContext('2d')
        .getImageData(x, y, 1, 1).data.slice(0, 3))""", [(HUGE - 1) * 7 % HUGE, HUGE - 1])
    assert got == [253, 231, 37]
    # Scrolled to the top right, the map's top right corner is clear of the
    # minimap that floats over that corner of the view: every cell can be seen.
    tab.eval_on_selector("#focus-body", "b => { b.scrollLeft = b.scrollWidth; b.scrollTop = 0; }")
    corner = tab.locator("#focus-map").bounding_box()
    minimap = tab.locator("#minimap").bounding_box()
    assert corner["x"] + corner["width"] <= minimap["x"], (corner, minimap)
    screenshot(page, "huge-map-minimap.png")


def _column_brightness(tab, selector, columns):
    """Mean brightness (0..255) of each map column of a canvas, from its pixels."""
    png = Image.open(io.BytesIO(tab.locator(selector).screenshot())).convert("L")
    pixels = np.asarray(png).astype(float)
    width = pixels.shape[1]
    return [pixels[:, j * width // columns: (j + 1) * width // columns].mean() for j in range(columns)]


def test_the_show_control_switches_the_maps_to_value_weighted_and_marks_a_layer_without_norms(opened, server, browser):  # noqa: F811
    layer = _index_layer(server, "valued", "sink")
    assert layer["value_vector"] == "value_output"
    page = opened()
    tab = page.tab
    _show(tab, run="valued", tag="sink", head=0, enlarged=True)
    wait_painted(tab, 0)
    weights = _column_brightness(tab, '#head-grid canvas[data-head="0"]', TOKENS)
    assert weights[SINK] > weights[CONTENT] + 60  # 0.9 against 0.1 on the fixed scale
    tab.select_option("#show-select", "value")
    tab.wait_for_function("() => window.attentionTab.state.show === 'value' && window.attentionTab.maps && "
                          "window.attentionTab.maps.bytes === null")
    wait_painted(tab, 0)
    shares = _column_brightness(tab, '#head-grid canvas[data-head="0"]', TOKENS)
    assert shares[CONTENT] > shares[SINK] + 60  # 0.917 against 0.083: the sink passes on little
    # The numbers behind it: each row's shares, by hand.
    row = tab.evaluate("() => Array.from(window.attentionTab.mapOf('0').slice(0, %d))" % TOKENS)
    assert abs(row[SINK] - 0.009 / 0.109) < 1e-6 and abs(row[CONTENT] - 0.1 / 0.109) < 1e-6
    # Importance: received value-weighted attention, sum_i a_ij n_j: 8 rows x 0.9 x 0.01 for the sink,
    # 8 x 0.1 x 1 for token 5 (head 0), served exact (float32).
    tab.wait_for_function("() => window.attentionTab.importance.data && window.attentionTab.importance.data.of === 'value_weighted'")
    bars = tab.evaluate("() => Array.from(window.attentionTab.importance.data.values[0])")
    assert abs(bars[SINK] - 0.072) < 1e-6 and abs(bars[CONTENT] - 0.8) < 1e-6 and bars[1] == 0
    assert tab.inner_text("#importance-title").startswith(
        "Received value-weighted attention per key token (sum over queries of weight × ‖value vector‖), head 0")
    assert tab.eval_on_selector("#given-toggle", "c => c.disabled")
    note = tab.inner_text("#show-note")
    assert "value-weighted: each row’s shares of weight × ‖value vector‖" in note
    assert "Kobayashi et al., EMNLP 2020" in note and "head statistics and rollout are of the weights" in note
    assert "p.attention.show=value" in page.url
    screenshot(page, "value-weighted-sink.png")
    # Relevance (Chefer et al.): each row's shares of its positive relevance, by hand 0.75 / 0.25 / 0.
    assert layer["relevance"]["tag"] == "sink/_relevance" and layer["relevance"]["target"] == "class 1"
    tab.select_option("#show-select", "relevance")
    tab.wait_for_function("() => window.attentionTab.state.show === 'relevance' && window.attentionTab.maps && "
                          "Math.abs(window.attentionTab.mapOf('0')[%d] - 0.75) < 1e-6" % CONTENT)
    wait_painted(tab, 0)
    row = tab.evaluate("() => Array.from(window.attentionTab.mapOf('0').slice(0, %d))" % TOKENS)
    assert row[SINK] == 0 and abs(row[CONTENT] - 0.75) < 1e-6 and abs(row[3] - 0.25) < 1e-6
    # The enlarged map's tooltip names what a cell holds: a share, not a weight.
    box = tab.locator("#focus-map").bounding_box()
    tab.locator("#focus-map").hover(position={"x": (CONTENT + 0.5) * box["width"] / TOKENS, "y": 0.5 * box["height"] / TOKENS})
    tab.wait_for_selector("#tooltip .tip-weight")
    assert tab.inner_text("#tooltip .tip-weight").startswith("relevance share: 0.75")
    relevance = _column_brightness(tab, '#head-grid canvas[data-head="0"]', TOKENS)
    assert relevance[CONTENT] > relevance[SINK] + 60  # the sink's heavy weight carried no positive relevance
    # Importance of the shares, read from the relevance tag: 8 rows x 0.75 for token 5, x 0.25 for token 3.
    tab.wait_for_function("() => window.attentionTab.importance.data && window.attentionTab.importance.loading "
                          "&& window.attentionTab.importance.loading.includes('sink/_relevance')")
    bars = tab.evaluate("() => Array.from(window.attentionTab.importance.data.values[0])")
    assert abs(bars[CONTENT] - 6.0) < 1e-5 and abs(bars[3] - 2.0) < 1e-5 and bars[SINK] == 0
    assert tab.inner_text("#importance-title").startswith(
        "Received relevance per key token (sum over queries of each row’s relevance shares), head 0")
    note = tab.inner_text("#show-note")
    assert "Chefer et al., ICCV 2021" in note and "Explained: class 1." in note
    assert "p.attention.show=relevance" in page.url
    screenshot(page, "relevance-sink.png")
    # The heads view reads the metrics of the relevance shares (the relevance tag's head metrics).
    tab.evaluate("async c => { await window.attentionTab.select(c); }", {"headsOpen": True})
    tab.wait_for_function("() => window.attentionTab.heads.data && window.attentionTab.heads.data.key.includes('sink/_relevance')")
    tab.evaluate("async c => { await window.attentionTab.select(c); }", {"headsOpen": False})
    # A step the relevance was not captured at is marked missing, with the steps that have it.
    _show(tab, run="partly", tag="sink", head=0, step=0)
    tab.wait_for_selector("#maps-note:not([hidden])")
    assert tab.inner_text("#maps-note") == "no relevance of sink at step 0: it was captured at step 1"
    assert tab.eval_on_selector("#head-grid", "g => g.hidden")
    _show(tab, run="partly", tag="sink", head=0, step=1)
    wait_painted(tab, 1)
    assert tab.eval_on_selector("#maps-note", "n => n.hidden") and abs(
        tab.evaluate("() => window.attentionTab.mapOf('0')[%d]" % CONTENT) - 0.75) < 1e-6
    _show(tab, run="valued", tag="sink", head=0, step=0)
    wait_painted(tab, 0)
    # Runs side by side: a run that stored no relevance is marked missing in its column, no map asked for.
    tab.evaluate("async c => { await window.attentionTab.select(c); await window.attentionTab.compared; }",
                 {"compare": ["plain"]})
    whys = tab.eval_on_selector_all("#compare-panel .cmp-why", "ws => ws.map(w => w.textContent)")
    assert whys == ["relevance is missing for sink: it stored none (relevance= not passed to AttentionCallback, "
                    "a layer whose probabilities are its output, or a log written before relevance)"]
    tab.evaluate("async c => { await window.attentionTab.select(c); await window.attentionTab.compared; }", {"compare": []})
    _show(tab, run="long", tag="long")
    tab.wait_for_selector("#maps-note:not([hidden])")
    assert tab.inner_text("#maps-note").startswith("relevance is missing for long: it stored none")
    assert tab.eval_on_selector("#head-grid", "g => g.hidden")
    # The heads view marks the layer's heads missing, never zeros.
    tab.evaluate("async c => { await window.attentionTab.select(c); }", {"headsOpen": True})
    tab.wait_for_selector(".hm-layer[title$='no relevance stored: relevance metrics missing']")
    tab.evaluate("async c => { await window.attentionTab.select(c); }", {"headsOpen": False})
    tab.select_option("#show-select", "value")
    # A layer that stored no norms: said, and no map painted (missing, never zeros).
    _show(tab, run="long", tag="long")
    tab.wait_for_selector("#maps-note:not([hidden])")
    assert tab.inner_text("#maps-note").startswith("value-weighted maps are missing for long: it stored no value norms")
    assert tab.eval_on_selector("#head-grid", "g => g.hidden")
    # A link restores the choice in a new page (a new context: nothing kept in localStorage).
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        linked = context.new_page()
        linked.goto(server.url + "/#attention&p.attention.run=valued&p.attention.tag=sink&p.attention.show=value")
        again = tab_frame(linked)
        wait_painted(again, 0)
        assert again.evaluate("() => window.attentionTab.state.show") == "value"
        assert again.eval_on_selector("#show-select", "s => s.value") == "value"
        row = again.evaluate("() => Array.from(window.attentionTab.mapOf('0').slice(0, %d))" % TOKENS)
        assert abs(row[CONTENT] - 0.1 / 0.109) < 1e-6
        linked.goto(server.url + "/#attention&p.attention.run=valued&p.attention.tag=sink&p.attention.show=relevance")
        again = tab_frame(linked)
        again.wait_for_function("() => window.attentionTab.state.show === 'relevance' && window.attentionTab.maps")
        assert again.eval_on_selector("#show-select", "s => s.value") == "relevance"
        row = again.evaluate("() => Array.from(window.attentionTab.mapOf('0').slice(0, %d))" % TOKENS)
        assert abs(row[CONTENT] - 0.75) < 1e-6
    finally:
        context.close()


def test_the_relevance_routes_answer_the_stored_shares_and_rows_and_refuse_what_is_not_there(server):
    """The relevance tag is read with the routes of a layer's (its maps are
    the shares, float32 here), /relevance_rows gives each row's positive
    relevance (0.4 for head 0's rows: 0.3 + 0.1; 0.08 for head 1's:
    8 x 0.01), and it is no layer of its own in /index."""
    index = server.get_json("/data/plugin/attention/index")
    (valued,) = [r["layers"] for r in index["runs"] if r["run"] == "valued"]
    assert [layer["tag"] for layer in valued] == ["sink"]
    assert valued[0]["relevance"] == {"tag": "sink/_relevance", "target": "class 1", "steps": [0], "has_rollout": False}
    assert _index_layer(server, "long", "long")["relevance"] is None
    query = "run=valued&tag=sink%2F_relevance&example=0&step=0"
    status, headers, body = server.get("/data/plugin/attention/maps?" + query)
    assert status == 200
    shares = np.frombuffer(body, "<f4").reshape(2, TOKENS, TOKENS)
    np.testing.assert_allclose(shares[0, :, CONTENT], 0.75, atol=1e-7)
    np.testing.assert_allclose(shares[1], 1 / TOKENS, atol=1e-7)
    rows = server.get_json("/data/plugin/attention/relevance_rows?" + query)
    assert rows["target"] == "class 1" and rows["num_heads"] == 2
    np.testing.assert_allclose(rows["values"], [[0.4] * TOKENS, [0.08] * TOKENS], rtol=1e-6)
    for bad, code in [("run=valued&tag=sink&example=0&step=0", 404),  # the weights' tag has no rows
                      ("run=valued&tag=sink%2F_relevance&example=0&step=9", 404),
                      ("run=valued&tag=sink%2F_relevance&example=5&step=0", 404),
                      ("run=valued&tag=sink%2F_relevance&example=0&step=x", 400)]:
        assert server.get("/data/plugin/attention/relevance_rows?" + bad)[0] == code, bad
