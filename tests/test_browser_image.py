"""The image view (issue 18 item 2) in headless Chromium against the real
`tensorboard`: a real fit of the ViT demo's model (48 x 48 images, 6 x 6
patches: an 8 x 8 grid after a class token, 3 blocks of 4 heads) for a few
steps with an image probe; the heatmaps are compared with read_attention."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from demo_models import vit
from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback, read_attention, read_probe_images
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, lut_color, opened, pixel, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
RUN, TEXT = "vit", "text"
ROWS = COLS = vit.GRID  # 8
# The maps are stored as float32 and served as those bytes: the heatmap's
# values are the very float32 numbers read_attention gives.
SAME_FLOAT32 = 0.0
# Rollout comes as JSON rounded to 6 decimals (http_api.md).
JSON_ROUNDING = 5e-7


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("image") / "logs"
    images, labels, _ = vit.shape_images(64, seed=0)
    vit.build_model().fit(images, labels, batch_size=16, verbose=0, callbacks=[
        AttentionCallback(root / RUN, images[:2], update_freq=2, encoding="float32", relevance="predicted")])
    x, y = tiny_data(8)  # a text model: no image view
    tiny_mha_classifier().fit(x, y, batch_size=4, verbose=0, callbacks=[AttentionCallback(root / TEXT, x[:1])])
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2) as tb:
        yield tb


@pytest.fixture(scope="module")
def layers(logdir):
    return read_attention(str(logdir))[RUN]


def _show(tab, step, query=0, **state):
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"run": RUN, "step": step, **state})
    wait_painted(tab, step)
    tab.wait_for_selector("#image-heads[data-painted-query='%d'][data-painted-step='%d']" % (query, step),
                          state="attached", timeout=15000)


def _overlay(tab, head):
    """(values painted, prefix share, vmax) of a figure's heatmap."""
    return tab.eval_on_selector("#image-heads canvas.overlay[data-head='%s']" % head, """c => [
        Array.from(c.overlayValues), Number(c.dataset.prefix), Number(c.dataset.vmax), c.width, c.height]""")


def test_the_image_and_a_heatmap_of_rows_x_cols_patches_per_head_show_the_class_tokens_map_row(opened, server, logdir, layers):
    page = opened()
    tab = page.tab
    layer = layers["block0"]
    assert layer.grid == (ROWS, COLS, 1)
    step = int(layer.steps[-1])
    _show(tab, step, tag="block0")
    assert tab.is_visible("#image-view")
    # the probe image itself, as stored
    status, headers, body = server.get("/data/plugin/attention/probe_image?run=%s&example=0" % RUN)
    assert status == 200 and headers["Content-Type"].startswith("image/png")
    stored = read_probe_images(str(logdir))[RUN][0]  # (48, 48, 1) uint8
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))).reshape(stored.shape), stored)
    tab.wait_for_function("() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth === 48)")
    heads = tab.eval_on_selector_all("#image-heads figure", "fs => fs.map(f => f.dataset.head)")
    assert heads == ["mean", "0", "1", "2", "3", "rollout"]
    # the default query is the class token (token 0)
    assert tab.get_attribute("#image-query", "data-query") == "0"
    for h in range(4):
        values, prefix, vmax, width, height = _overlay(tab, h)
        row = layer.maps[0][-1][h][0]  # head h, query 0 (CLS), over CLS + 64 patches
        assert (width, height) == (COLS, ROWS)
        np.testing.assert_allclose(values, row[1:], atol=SAME_FLOAT32, rtol=0)
        assert prefix == pytest.approx(row[0], abs=1e-7)
        assert vmax == 1  # the fixed scale 0 to 1 by default (issue 32 item 3; tests/test_browser_scales.py)
        # patch (r, c) is pixel (c, r) of the heatmap, coloured on 0..1
        for r, c in [(0, 0), (3, 5), (7, 7)]:
            assert pixel(tab, "#image-heads canvas.overlay[data-head='%d']" % h, c, r) == lut_color(row[1 + r * COLS + c])
    values, *_ = _overlay(tab, "mean")
    np.testing.assert_allclose(values, layer.maps[0][-1][:, 0, 1:].mean(axis=0), atol=1e-7, rtol=0)  # float32 sums
    # rollout: the stored rollout of this step over the patches, the class token's share apart
    values, prefix, *_ = _overlay(tab, "rollout")
    np.testing.assert_allclose(values, layer.rollout[0][-1][1:], atol=JSON_ROUNDING, rtol=0)
    assert prefix == pytest.approx(layer.rollout[0][-1][0], abs=JSON_ROUNDING)
    assert page.console_errors == []


def test_clicking_a_patch_picks_its_token_as_the_query(opened, layers):
    page = opened()
    tab = page.tab
    layer = layers["block1"]
    step = int(layer.steps[-1])
    _show(tab, step, tag="block1")
    stack = tab.locator("#image-heads .image-stack[data-head='2']")
    box = stack.bounding_box()
    r, c = 5, 2
    stack.click(position={"x": (c + 0.5) * box["width"] / COLS, "y": (r + 0.5) * box["height"] / ROWS})
    query = 1 + r * COLS + c
    tab.wait_for_selector("#image-heads[data-painted-query='%d']" % query, state="attached")
    assert tab.inner_text("#image-query") == 'query: patch row 5, column 2 (token %d, "5,2")' % query
    for h in range(4):
        values, prefix, *_ = _overlay(tab, h)
        np.testing.assert_allclose(values, layer.maps[0][-1][h][query][1:], atol=SAME_FLOAT32, rtol=0)
    # the picked patch is outlined on every head's image
    outline = tab.locator("#image-heads figure[data-head='0'] .query-box").bounding_box()
    image = tab.locator("#image-heads figure[data-head='0'] .image-stack").bounding_box()
    assert abs(outline["x"] - image["x"] - c * image["width"] / COLS) <= 1
    assert abs(outline["y"] - image["y"] - r * image["height"] / ROWS) <= 1
    # the step slider keeps the query: the first step's row of the same token
    first = int(layer.steps[0])
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"step": first})
    tab.wait_for_selector("#image-heads[data-painted-query='%d'][data-painted-step='%d']" % (query, first), state="attached")
    values, *_ = _overlay(tab, 1)
    np.testing.assert_allclose(values, layer.maps[0][0][1][query][1:], atol=SAME_FLOAT32, rtol=0)
    # back to the class token
    tab.click("#image-query-reset")
    tab.wait_for_selector("#image-heads[data-painted-query='0']", state="attached")
    assert tab.is_hidden("#image-heads figure[data-head='0'] .query-box")


def test_mean_attention_distance_is_the_vit_papers_in_pixels_per_head_and_by_layer_over_training(opened, layers):
    page = opened()
    tab = page.tab
    step = int(layers["block0"].steps[-1])
    _show(tab, step, tag="block0")
    tab.wait_for_function("() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth)")
    tab.wait_for_selector("#image-distance-chart[data-marker='%d']" % step, state="attached")
    # 48 px images on an 8 x 8 grid: a patch is 6 px wide, distances in pixels
    tab.wait_for_selector("#image-distance-chart[data-y-label='distance (pixels)']", state="attached")
    assert "one patch is 6 px" in tab.inner_text("#image-distance-title")
    assert tab.eval_on_selector_all("#image-distance-legend .legend-item", "ls => ls.map(l => l.textContent)") == [
        "block0", "block1", "block2"]
    # The ViT paper's figure at this step: per layer, each head's stored
    # patch_distance x 6 px (JSON rounds to 6 decimals: x 6 is within 3e-6).
    tab.wait_for_selector("#image-distance-heads[data-step='%d']" % step, state="attached")
    drawn = tab.eval_on_selector("#image-distance-heads", "c => c.values")
    # the dots stand over their layers' names (not "1 2 3" under block0..block2)
    assert json.loads(tab.get_attribute("#image-distance-heads", "data-ticks")) == ["block0", "block1", "block2"]
    for name, column in zip(["block0", "block1", "block2"], drawn):
        layer = layers[name]
        stored = layer.head_metrics[list(layer.steps).index(step), 0, :, layer.metric_names.index("patch_distance")]
        np.testing.assert_allclose(column, 6 * stored, atol=1e-5)
        assert all(0 <= v <= 6 * np.hypot(7, 7) for v in column)
    # it follows the step slider
    first = int(layers["block0"].steps[0])
    _show(tab, first, tag="block0")
    tab.wait_for_selector("#image-distance-heads[data-step='%d']" % first, state="attached")


def test_layer_names_too_wide_for_their_slots_give_way_to_places_in_model_order(opened):
    tab = opened().tab
    ticks = tab.evaluate("""async (names) => {
      const { paintDots } = await import('./view_image.js');
      const canvas = document.createElement('canvas');
      document.body.append(canvas);
      paintDots(canvas, names, names.map(() => [1, 2]), ['#000'], 'distance (pixels)');
      canvas.remove();
      return JSON.parse(canvas.dataset.ticks);
    }""", ["vit_backbone/transformer_layer_%d/self_attention" % i for i in range(3)])
    assert ticks == ["1", "2", "3"]


def test_the_view_is_hidden_for_a_run_without_images(opened):
    page = opened()
    tab = page.tab
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"run": TEXT})
    assert tab.is_hidden("#image-view")
    assert not [u for u in page.requests if "probe_image" in u]


def test_png_export_holds_a_title_every_image_with_its_heatmap_and_the_scale(opened, layers):
    page = opened()
    tab = page.tab
    step = int(layers["block2"].steps[-1])
    _show(tab, step, tag="block2")
    tab.wait_for_function("() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth)")
    with page.expect_download() as info:
        tab.click("#image-export-png")
    download = info.value
    assert download.suggested_filename == "image-view-vit-block2-step%d-example0-query0.png" % step
    with open(download.path(), "rb") as f:
        data = f.read()
    with open(os.path.join(ARTIFACTS, "export-image-view.png"), "wb") as f:
        f.write(data)
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    width, top, left = (int(tab.get_attribute("#image-export-png", "data-export-" + k)) for k in ("image-width", "top", "left"))
    assert image.shape[1] == int(tab.get_attribute("#image-export-png", "data-export-width"))
    assert (image[4:30, 8:300] < 100).all(axis=2).any()  # the title's dark text
    figure = image[top:top + width, left:left + width]
    assert figure.std() > 10  # the image and its heatmap, not a blank square


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_in_light_and_dark_at_pixel_ratios_1_and_2(opened, layers, theme, scale):
    page = opened(scale=scale, color_scheme=theme)
    tab = page.tab
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    step = int(layers["block2"].steps[-1])
    _show(tab, step, tag="block2")
    tab.wait_for_function("() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth)")
    stack = tab.locator("#image-heads .image-stack[data-head='mean']")
    box = stack.bounding_box()
    stack.click(position={"x": 3.5 * box["width"] / COLS, "y": 4.5 * box["height"] / ROWS})
    tab.wait_for_selector("#image-heads[data-painted-query='%d']" % (1 + 4 * COLS + 3), state="attached")
    os.makedirs(ARTIFACTS, exist_ok=True)
    tab.locator("#image-view").screenshot(path=os.path.join(ARTIFACTS, "image-view-%s-dpr%d.png" % (theme, scale)))
    assert page.console_errors == []


def test_relevance_over_the_image_shows_the_class_tokens_relevance_shares_and_relevance_rollout(opened, layers):
    """Chefer et al.'s ViT use: with the Show control on relevance, each
    head's heatmap is the class token's row of the relevance shares and the
    rollout figure is relevance rollout (`relevance="predicted"`), the very
    float32 numbers read_attention gives."""
    page = opened()
    tab = page.tab
    layer = layers["block2"]
    step = int(layer.relevance.steps[-1])
    _show(tab, step, tag="block2", show="relevance")
    tab.wait_for_function("() => window.attentionTab.image.rolloutKey && window.attentionTab.image.rolloutKey.includes('_relevance')")
    for h in range(4):
        values, prefix, *_ = _overlay(tab, h)
        row = layer.relevance.maps[0][-1][h][0]  # shares of the class token's row
        np.testing.assert_allclose(values, row[1:], atol=SAME_FLOAT32, rtol=0)
    tab.wait_for_function("() => document.querySelector(\"#image-heads canvas.overlay[data-head='rollout']\").dataset.step === '%d'" % step)
    values, prefix, *_ = _overlay(tab, "rollout")
    np.testing.assert_allclose(values, layer.relevance.rollout[0][-1][1:], atol=JSON_ROUNDING * max(1, layer.relevance.rollout[0][-1].max()), rtol=0)
    tab.evaluate("() => document.querySelector('#image-view').scrollIntoView()")
    tab.locator("#image-view").screenshot(path=os.path.join(ARTIFACTS, "vit-relevance.png"))
    assert page.console_errors == []
    _show(tab, step, tag="block2", show="weights")  # the choice is kept (localStorage): back for the other tests
