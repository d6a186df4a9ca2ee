"""Cells a query cannot see, in headless Chromium on a real log: a tiny
keras_hub Gemma3 built from config (nothing downloaded) whose local layers
(decoder_block_0..4) attend within a causal sliding window of 4 keys and
whose global layer (decoder_block_5) is causal alone. A key outside the
window or after the query is hatched grey (the map's background through a
transparent cell), never the colour of a weight of 0, in the enlarged map,
the heads grid, the model view, runs side by side, the difference and the
PNG export; the tooltip says why. Helpers and fixtures from test_browser.py."""

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import serving
from test_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS, browser, lut_color, opened, wait_painted,
)

keras_hub = pytest.importorskip(
    "keras_hub", reason="keras-hub needs Python >= 3.11; `make install` installs it there"
)
import keras  # noqa: E402

pytestmark = pytest.mark.browser
RUN, COPY = "gemma3", "gemma3 copy"
WINDOW, LEN, PAD = 4, 12, 3  # 9 real tokens per probe example
ZOOM = 32  # px per cell of the enlarged map
ZERO = lut_color(0.0)  # the colour scale's weight 0: (68, 1, 84)


def visible(row, col, window):
    """The rule, by hand: causal, and within the window when there is one (offsets are 0 here)."""
    return col <= row and (window == 0 or row - col < window)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("window") / "logs"
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.Gemma3Backbone(
        vocabulary_size=50, image_size=16, num_layers=6, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=16, intermediate_dim=32, head_dim=4, sliding_window_size=WINDOW,
        use_sliding_window_attention=True, vision_encoder=None)
    # Query and key norms at scale 1 (x2): sharper maps, so that some keys
    # inside the window get a stored weight of 0 (visible, no attention).
    for i in range(6):
        attention = backbone.get_layer("decoder_block_%d" % i).attention
        for weight in attention.query_norm.weights + attention.key_norm.weights:
            weight.assign(np.ones(weight.shape, "float32"))
    ids = np.random.default_rng(0).integers(2, 50, (8, LEN))
    ids[:, LEN - PAD:] = 0
    x = {"token_ids": ids, "padding_mask": ids != 0}
    pooled = keras.layers.GlobalAveragePooling1D()(backbone.output)
    model = keras.Model(backbone.input, keras.layers.Dense(1)(pooled))
    model.compile("adam", "mse")
    model.fit(x, np.zeros((8, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[
        AttentionCallback(root / RUN, probe={k: v[:3] for k, v in x.items()}, update_freq=2)])
    shutil.copytree(root / RUN, root / COPY)  # a second run, the same maps: runs side by side
    return root


@pytest.fixture(scope="module")
def layers(logdir):
    return read_attention(str(logdir))[RUN]


def _tag(layers, block):
    return next(tag for tag in layers if tag.startswith("decoder_block_%d/" % block))


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2) as tb:
        yield tb


def test_gemma3_local_layers_are_stored_with_a_sliding_window_of_4_and_the_global_one_without(layers):
    for block in range(5):
        layer = layers[_tag(layers, block)]
        assert layer.sliding_window == WINDOW and layer.kind == "causal", block
    assert layers[_tag(layers, 5)].sliding_window == 0 and layers[_tag(layers, 5)].kind == "causal"
    assert layers[_tag(layers, 0)].maps[0][-1].shape == (4, LEN - PAD, LEN - PAD)


# -- reading the tab ---------------------------------------------------------------

RGBA = """([sel, width]) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  if (c.width !== width) return null;
  const rows = [];
  for (let r = 0; r < c.height; r++) {
    const row = [];
    for (let x = 0; x < c.width; x++) row.push(Array.from(d.slice((r * c.width + x) * 4, (r * c.width + x) * 4 + 4)));
    rows.push(row);
  }
  return rows;
}"""


def _cells(tab, selector, n=LEN - PAD):
    """[row][col] = [r, g, b, a] of a canvas painted one pixel per cell."""
    cells = tab.evaluate(RGBA, [selector, n])
    assert cells is not None and len(cells) == n, selector
    return cells


def _open(opened, layers, block, head=0, theme="light"):
    page = opened(height=1800)
    tab = page.tab
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    step = int(layers[_tag(layers, block)].steps[-1])
    tab.evaluate("async s => { await window.attentionTab.select(s); }",
                 {"run": RUN, "tag": _tag(layers, block), "example": 0, "step": step, "head": head})
    wait_painted(tab, step)
    tab.fill("#zoom", str(ZOOM))
    return page, tab


def _grey(rgb, tolerance=3):
    return max(rgb[:3]) - min(rgb[:3]) <= tolerance


def _screen_cell(image, row, col):
    """The screenshot's pixels of the enlarged map's cell, less a pixel at each edge: (h, w, 3)."""
    return image[row * ZOOM + 1:(row + 1) * ZOOM - 1, col * ZOOM + 1:(col + 1) * ZOOM - 1]


def _focus_screenshot(tab):
    return np.asarray(Image.open(io.BytesIO(tab.locator("#focus-map").screenshot())).convert("RGB")).astype(int)


def _hover_text(tab, row, col):
    tab.hover("#focus-map", position={"x": col * ZOOM + ZOOM / 2, "y": row * ZOOM + ZOOM / 2})
    tab.wait_for_selector("#tooltip[data-row='%d'][data-col='%d']" % (row, col), state="visible")
    return tab.inner_text("#tooltip")


# -- the tests -----------------------------------------------------------------------


def test_a_key_outside_the_window_is_hatched_and_a_visible_weight_of_0_keeps_the_scales_colour(opened, layers):
    page, tab = _open(opened, layers, 0)
    maps = layers[_tag(layers, 0)].maps[0][-1][0]  # example 0, last step, head 0: (q, k)
    n = maps.shape[0]
    zeros = [(r, c) for r in range(n) for c in range(n) if visible(r, c, WINDOW) and maps[r, c] == 0]
    assert zeros, "the fixture's sharp maps give some visible key a stored weight of 0"
    cells = _cells(tab, "#focus-map")
    for r in range(n):
        for c in range(n):
            if visible(r, c, WINDOW):  # on the colour scale, opaque
                assert cells[r][c] == lut_color(maps[r, c]) + [255], (r, c)
            else:  # transparent: the hatch behind the map shows
                assert cells[r][c][3] == 0, (r, c)
    assert cells[8][0][3] == 0  # row 8 sees keys 5..8: key 0 is outside the window
    assert all(cells[r][c][3] == 0 for r in range(n) for c in range(r + 1, n))  # the upper triangle: causal
    # On screen: the hidden cell is grey hatch (two greys, no hue), the visible 0 is the scale's dark purple.
    image = _focus_screenshot(tab)
    hidden = _screen_cell(image, 8, 0).reshape(-1, 3)
    assert all(_grey(p) for p in hidden) and len({tuple(p) for p in hidden}) >= 2, "a hatch of greys"
    assert hidden.min() > 120  # light greys, far from the scale's dark end
    zr, zc = zeros[0]
    assert (_screen_cell(image, zr, zc) == ZERO).all()
    assert not _grey(ZERO)
    # The tooltip says why instead of a weight.
    assert _hover_text(tab, 8, 0).splitlines()[-1] == "not visible: outside the sliding window of 4 keys"
    assert tab.locator("#tooltip .tip-weight").count() == 0
    assert _hover_text(tab, 2, 5).splitlines()[-1] == "not visible: after the query (causal)"
    assert _hover_text(tab, zr, zc).splitlines()[-1] == "weight: 0.0000"
    # The layer's line and the legend name the window.
    assert "sliding window of 4 keys (each query sees itself and the 3 keys before it)" in tab.inner_text("#layer-info")
    assert tab.inner_text("#legend-hidden") == (
        "not visible: keys after the query (causal) or outside its sliding window of 4 keys; "
        "a weight of 0 is the scale's darkest colour")
    assert page.console_errors == []


def test_the_heads_grid_and_model_view_hide_the_same_cells(opened, layers):
    page, tab = _open(opened, layers, 0)
    n = LEN - PAD
    for head in ["mean", "max", "0", "3"]:
        cells = _cells(tab, '#head-grid canvas[data-head="%s"]' % head)
        for r in range(n):
            for c in range(n):
                assert (cells[r][c][3] == 255) == visible(r, c, WINDOW), (head, r, c)
    step = int(layers[_tag(layers, 0)].steps[-1])
    tab.wait_for_selector("#model-grid[data-painted-step='%d']" % step, state="attached")
    for block, window in [(0, WINDOW), (4, WINDOW), (5, 0)]:
        row = "#model-grid .model-row[data-tag='%s']" % _tag(layers, block)
        for head in ["mean", "1"]:
            cells = _cells(tab, row + " canvas[data-head='%s']" % head)
            for r in range(n):
                for c in range(n):
                    assert (cells[r][c][3] == 255) == visible(r, c, window), (block, head, r, c)
        label = tab.inner_text(row + " .model-label").replace("\n", "")
        assert label.endswith("(causal, window 4)" if window else "(causal)"), label
    assert "not visible" in tab.inner_text("#model-hidden")


def test_the_global_layer_sees_every_earlier_key_and_says_causal_only(opened, layers):
    page, tab = _open(opened, layers, 5)
    maps = layers[_tag(layers, 5)].maps[0][-1][0]
    cells = _cells(tab, "#focus-map")
    assert cells[8][0] == lut_color(maps[8, 0]) + [255]  # the window's hidden key, visible here
    assert cells[0][8][3] == 0  # after the query
    assert "sliding window" not in tab.inner_text("#layer-info")
    assert tab.inner_text("#legend-hidden").startswith("not visible: keys after the query (causal);")
    assert _hover_text(tab, 0, 8).splitlines()[-1] == "not visible: after the query (causal)"


def test_runs_side_by_side_and_the_difference_hide_the_cells_too(opened, layers):
    page, tab = _open(opened, layers, 0)
    steps = [int(s) for s in layers[_tag(layers, 0)].steps]
    tab.evaluate("async c => { await window.attentionTab.select(c); await window.attentionTab.compared; }",
                 {"compare": [COPY], "diff": {"run": RUN, "step": steps[0]}})
    tab.wait_for_selector("#compare-panel[data-painted='true']", state="attached")
    tab.wait_for_selector("#diff-panel[data-painted='true']", state="attached")
    n = LEN - PAD
    for selector in ['#compare-columns canvas[data-run="%s"]' % RUN, '#compare-columns canvas[data-run="%s"]' % COPY,
                     "#diff-map"]:
        cells = _cells(tab, selector)
        for r in range(n):
            for c in range(n):
                assert (cells[r][c][3] == 255) == visible(r, c, WINDOW), (selector, r, c)
    assert not tab.locator("#compare-hidden").is_hidden()
    assert not tab.locator("#diff-hidden").is_hidden()
    assert page.console_errors == []


def test_the_png_export_hatches_the_hidden_cells(opened, layers):
    page, tab = _open(opened, layers, 0)
    with page.expect_download() as info:
        tab.click("#export-png")
    with open(info.value.path(), "rb") as f:
        image = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB")).astype(int)
    cell, left, top = (int(tab.get_attribute("#focus-map", "data-export-" + k)) for k in ("cell", "left", "top"))
    maps = layers[_tag(layers, 0)].maps[0][-1][0]

    def at(row, col):
        return image[top + row * cell + 2:top + (row + 1) * cell - 2, left + col * cell + 2:left + (col + 1) * cell - 2]

    hidden = at(8, 0).reshape(-1, 3)
    assert all(_grey(p) for p in hidden) and len({tuple(p) for p in hidden}) >= 2
    assert (at(8, 8) == lut_color(maps[8, 8])).all()
    os.makedirs(ARTIFACTS, exist_ok=True)
    Image.fromarray(image.astype(np.uint8)).save(os.path.join(ARTIFACTS, "window-export.png"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_a_windowed_map_in_light_and_dark(opened, layers, theme):
    """Keeps decoder_block_0's enlarged map and heads grid in test-artifacts/
    and checks the hatch follows the theme: light greys on the light theme,
    dark greys on the dark one, neither a colour of the scale."""
    page, tab = _open(opened, layers, 0, head=0, theme=theme)
    image = _focus_screenshot(tab)
    hidden = _screen_cell(image, 8, 0).reshape(-1, 3)
    assert all(_grey(p) for p in hidden)
    assert (hidden.mean() > 150) if theme == "light" else (60 < hidden.mean() < 130), hidden.mean()
    os.makedirs(ARTIFACTS, exist_ok=True)
    tab.locator("#focus-panel").screenshot(path=os.path.join(ARTIFACTS, "window-focus-%s.png" % theme))
    tab.locator(".panel:has(#head-grid)").screenshot(path=os.path.join(ARTIFACTS, "window-heads-%s.png" % theme))
    tab.locator("#model-view").screenshot(path=os.path.join(ARTIFACTS, "window-model-%s.png" % theme))
    assert page.console_errors == []
