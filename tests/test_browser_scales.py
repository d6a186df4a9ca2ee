"""Colour scales, run marks, chart references and the minimap (issue 32
items 2, 3, 4, 5 and 7), in headless Chromium against the real
`tensorboard`: a real fit of the ViT demo's model with an image probe (an
8 x 8 patch grid after a class token, 3 blocks of 4 heads), eight runs of
one causal layer written with the summary op (10 real tokens after 2 of
padding: more runs than TensorBoard's 7 colours, so two share one) and a
2048-token map. Screenshots at DPR 1 and 2, light and dark, in
test-artifacts/scales-*. Helpers and fixtures from test_browser.py."""

import math
import os
import urllib.parse

import numpy as np
import pytest
import tensorflow as tf

from demo_models import vit
from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.writing import summary
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, lut_color, opened, pixel, tab_frame, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
VIT = "vit"
RUNS = ["c%d" % i for i in range(8)]  # one causal layer "att" each: comparable side by side
HUGE_RUN, HUGE = "huge", 2048
COLS = ROWS = vit.GRID  # 8
LEN, REAL = 12, 10  # tokens, of which the last 2 are padding
TOKENS = ["t%d" % i for i in range(REAL)] + ["<pad>"] * (LEN - REAL)


def causal_maps(seed):
    """(1, 2, LEN, LEN): head 0 uniform over the keys each query sees; head 1
    near uniform, with key 3 weighing 1.6x what the others do (IMDB's
    sentiment columns: 0.04 where uniform is 1/41)."""
    scores = np.zeros((1, 2, LEN, LEN), np.float32)
    for i in range(LEN):
        seen = min(i, REAL - 1) + 1
        scores[0, 0, i, :seen] = 1.0 / seen
        w = np.ones(seen)
        if seen > 3:
            w[3] = 1.6 + 0.1 * seed
        scores[0, 1, i, :seen] = w / w.sum()
    return scores


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("scales") / "logs"
    images, labels, _ = vit.shape_images(64, seed=0)
    vit.build_model().fit(images, labels, batch_size=16, verbose=0, callbacks=[
        AttentionCallback(root / VIT, images[:1], update_freq=2, encoding="float32")])
    mask = np.array([[True] * REAL + [False] * (LEN - REAL)])
    for seed, name in enumerate(RUNS):
        writer = tf.summary.create_file_writer(str(root / name))
        with writer.as_default():
            for step in range(2):
                summary.attention("att", causal_maps(seed + step), step=step, kind="causal", encoding="float32",
                                  query_tokens=[TOKENS], key_tokens=[TOKENS], query_mask=mask, key_mask=mask)
        writer.close()
    writer = tf.summary.create_file_writer(str(root / HUGE_RUN))
    with writer.as_default():
        scores = np.zeros((1, 1, HUGE, HUGE), np.float32)
        scores[0, 0, np.arange(HUGE), (np.arange(HUGE) * 7) % HUGE] = 1.0
        summary.attention("huge", scores, step=0, kind="self")
    writer.close()
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2 + len(RUNS)) as tb:
        yield tb


@pytest.fixture(scope="module")
def layers(logdir):
    return read_attention(str(logdir))


def ratio_color(r):
    """The colour of a ratio to uniform on scales.js's log scale from 1/4 to 4 (1: the middle), computed here."""
    t = 0.0 if r <= 0 else min(max((math.log2(r) + 2) / 4, 0.0), 1.0)
    return lut_color(math.floor(t * 255 + 0.5) / 255)


def _show(tab, **state):
    tab.evaluate("async s => { await window.attentionTab.select(s); await window.attentionTab.compared; }", state)


def _show_image(tab, step, query=0, **state):
    _show(tab, run=VIT, step=step, **state)
    wait_painted(tab, step)
    tab.wait_for_selector("#image-heads[data-painted-query='%d'][data-painted-step='%d']" % (query, step),
                          state="attached", timeout=15000)


def _overlay(tab, head):
    return tab.eval_on_selector("#image-heads canvas.overlay[data-head='%s']" % head,
                                "c => [Array.from(c.overlayValues), c.dataset.vmax, Number(c.dataset.count)]")


def _choose_scale(tab, select, scale):
    tab.select_option(select, scale)
    tab.wait_for_selector("#legend[data-scale='%s']" % scale, state="attached")


def _theme(page, theme):
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        page.tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)


def _shot(tab, selector, name, theme, scale):
    os.makedirs(ARTIFACTS, exist_ok=True)
    tab.eval_on_selector(selector, "e => e.scrollIntoView({ block: 'center' })")  # not under the sticky toolbar
    tab.locator(selector).screenshot(path=os.path.join(ARTIFACTS, "scales-%s-%s-dpr%d.png" % (name, theme, scale)))


# -- item 3: the image view is on the fixed scale by default -------------------


def test_the_image_view_is_fixed_0_to_1_by_default_and_the_stretched_scale_stays_labelled(opened, layers):
    page = opened()
    tab = page.tab
    layer = layers[VIT]["block2"]
    step = int(layer.steps[-1])
    _show_image(tab, step, tag="block2")
    row = layer.maps[0][-1][1][0]  # head 1, the class token's row
    values, vmax, _ = _overlay(tab, 1)
    np.testing.assert_allclose(values, row[1:], atol=0, rtol=0)
    assert vmax == "1"  # not stretched to the heatmap's own max
    for r, c in [(0, 0), (3, 5), (7, 7)]:
        assert pixel(tab, "#image-heads canvas.overlay[data-head='1']", c, r) == lut_color(row[1 + r * COLS + c])
    assert tab.inner_text("#image-scale-text").startswith("fixed scale 0 to 1")
    assert tab.eval_on_selector("#image-scale", "s => s.value") == "fixed"
    # Stretched, chosen in the image view: each heatmap to its own max, and said so; the tab follows.
    tab.select_option("#image-scale", "stretch")
    tab.wait_for_function("() => document.querySelector(\"#image-heads canvas.overlay[data-head='1']\").dataset.vmax !== '1'")
    values, vmax, _ = _overlay(tab, 1)
    assert float(vmax) == pytest.approx(row[1:].max(), abs=1e-7)
    assert pixel(tab, "#image-heads canvas.overlay[data-head='1']", 5, 3) == lut_color(row[1 + 3 * COLS + 5], float(vmax))
    assert tab.inner_text("#image-scale-text").startswith("each heatmap stretched to its own largest patch weight")
    assert tab.inner_text("#image-legend-max") == "max"
    assert tab.eval_on_selector("#scale-select", "s => s.value") == "stretch"
    assert page.console_errors == []


# -- item 5: ratio to uniform, everywhere maps are drawn -------------------------


def test_ratio_to_uniform_is_weight_times_the_keys_each_query_sees_in_every_view(opened, layers):
    page = opened()
    tab = page.tab
    maps = layers[RUNS[0]]["att"].maps[0][-1]  # (2, 10, 10): padding cropped
    assert maps.shape == (2, REAL, REAL)
    _show(tab, run=RUNS[0], tag="att", step=1, head=1, compare=[RUNS[1]])
    wait_painted(tab, 1)
    _choose_scale(tab, "#scale-select", "ratio")
    assert [tab.inner_text("#legend-min"), tab.inner_text("#legend-max")] == ["≤ ¼", "≥ 4"]
    assert "1 = uniform" in tab.inner_text("#legend-scale")
    # Head 0 is uniform over the keys each query sees (causal: row i sees i + 1): the middle colour everywhere.
    middle = ratio_color(1.0)
    assert middle == lut_color(128 / 255)
    for r, c in [(0, 0), (4, 2), (9, 9), (9, 0)]:
        assert pixel(tab, '#head-grid canvas[data-head="0"]', c, r) == middle, (r, c)
    # Head 1: key 3 is 1.6x the others, a little over uniform; the fixed scale shows no such thing.
    for r, c in [(5, 3), (5, 0), (9, 3), (3, 3)]:
        assert pixel(tab, '#head-grid canvas[data-head="1"]', c, r) == ratio_color(maps[1, r, c] * (r + 1)), (r, c)
    assert pixel(tab, '#head-grid canvas[data-head="1"]', 3, 5) != pixel(tab, '#head-grid canvas[data-head="1"]', 0, 5)
    assert pixel(tab, "#focus-map", 3, 9) == ratio_color(maps[1, 9, 3] * 10)
    # the enlarged map's tooltip gives the weight and its ratio
    box = tab.locator("#focus-map").bounding_box()
    tab.locator("#focus-map").hover(position={"x": 3.5 * box["width"] / REAL, "y": 9.5 * box["height"] / REAL})
    assert tab.inner_text("#tooltip .tip-weight") == "weight: %.4f (%.2g× uniform)" % (maps[1, 9, 3], maps[1, 9, 3] * 10)
    # runs side by side, the text view (the model view: the image test below; one layer has none)
    side = "#compare-columns canvas.cmp[data-run='%s']" % RUNS[0]
    assert tab.get_attribute(side, "data-vmax") == "ratio"
    assert pixel(tab, side, 3, 9) == ratio_color(maps[1, 9, 3] * 10)
    other = layers[RUNS[1]]["att"].maps[0][-1]
    assert pixel(tab, "#compare-columns canvas.cmp[data-run='%s']" % RUNS[1], 3, 9) == ratio_color(other[1, 9, 3] * 10)
    assert tab.eval_on_selector("#compare-scale-select", "s => s.value") == "ratio"
    assert tab.inner_text("#compare-legend-min") == "≤ ¼"
    tab.hover("#text-queries .token[data-index='6']")  # query 6 sees 7 keys
    tint = tab.eval_on_selector("#text-queries .token[data-index='3']", "s => [getComputedStyle(s).backgroundColor, s.title]")
    assert tint[0] == "rgb(%d, %d, %d)" % tuple(ratio_color(maps[1, 6, 3] * 7))
    assert tint[1].endswith("(%.2g× uniform)" % (maps[1, 6, 3] * 7))
    # Kept in the address bar like the other controls: a reload opens on it.
    page.wait_for_timeout(500)
    assert "p.attention.scale=ratio" in urllib.parse.unquote(urllib.parse.urlsplit(page.url).fragment)
    page.reload()
    tab = tab_frame(page)
    wait_painted(tab, 1)
    tab.wait_for_selector("#legend[data-scale='ratio']", state="attached")
    assert tab.get_attribute('#head-grid canvas[data-head="1"]', "data-vmax") == "ratio"
    assert pixel(tab, '#head-grid canvas[data-head="1"]', 3, 5) == ratio_color(maps[1, 5, 3] * 6)
    assert page.console_errors == []


def test_ratio_to_uniform_in_the_image_and_model_views_counts_every_token_the_query_sees(opened, layers):
    page = opened(scale=2)  # the model view's 64 px thumbnails of 65 tokens: one device pixel per cell
    tab = page.tab
    layer = layers[VIT]["block2"]
    step = int(layer.steps[-1])
    _show_image(tab, step, tag="block2")
    tab.select_option("#image-scale", "ratio")
    tab.wait_for_selector("#legend[data-scale='ratio']", state="attached")
    tab.wait_for_function("() => document.querySelector(\"#image-heads canvas.overlay[data-head='2']\").dataset.vmax === 'ratio'")
    row = layer.maps[0][-1][2][0]  # head 2, the class token's row over 65 tokens
    _, vmax, count = _overlay(tab, 2)
    assert count == 1 + ROWS * COLS
    for r, c in [(0, 0), (3, 5), (7, 7)]:
        got = pixel(tab, "#image-heads canvas.overlay[data-head='2']", c, r)
        assert got == ratio_color(row[1 + r * COLS + c] * 65), (r, c)
    assert "1 = uniform" in tab.inner_text("#image-scale-text")
    assert [tab.inner_text("#image-legend-min"), tab.inner_text("#image-legend-max")] == ["≤ ¼", "≥ 4"]
    caption = tab.inner_text("#image-heads figure[data-head='2'] .image-caption")
    assert caption.endswith("(%.2g× uniform)" % (row[1:].max() * 65))
    # the model view, on the same scale with its own choice and legend
    tab.wait_for_selector("#model-grid[data-painted-step='%d']" % step, state="attached")
    assert tab.eval_on_selector("#model-scale", "s => s.value") == "ratio"
    assert tab.inner_text("#model-legend-min") == "≤ ¼" and "1 = uniform" in tab.inner_text("#model-legend-text")
    model = "#model-grid .model-row[data-tag='block1'] canvas[data-head='3']"
    assert tab.get_attribute(model, "data-vmax") == "ratio" and tab.get_attribute(model, "data-pooled") == "false"
    cells = layers[VIT]["block1"].maps[0][-1][3]
    for r, c in [(0, 0), (10, 33), (64, 2)]:
        assert pixel(tab, model, c, r) == ratio_color(cells[r, c] * 65), (r, c)
    assert page.console_errors == []


# -- item 2: runs that share a colour are told apart -----------------------------


def test_runs_that_share_tensorboards_colour_are_told_apart_by_pattern_letter_and_border(opened):
    page = opened()
    tab = page.tab
    _show(tab, run=RUNS[0], tag="att", step=1)
    visible = tab.evaluate("() => window.attentionTab.visible")
    by_color = {}
    for r in visible:
        by_color.setdefault(r["color"], []).append(r["run"])
    pairs = [[run for run in runs if run in RUNS] for runs in by_color.values()]
    a, b = next(p for p in pairs if len(p) >= 2)[:2]  # 8 runs and more, 7 colours: two share one
    _show(tab, run=a, compare=[b])
    cols = {c["run"]: c for c in tab.eval_on_selector_all("#compare-columns .cmp-col", """cs => cs.map(c => ({
        run: c.dataset.run, border: getComputedStyle(c).borderTopStyle, color: getComputedStyle(c).borderTopColor,
        pattern: c.querySelector('.swatch').dataset.pattern,
        image: getComputedStyle(c.querySelector('.swatch')).backgroundImage,
        letter: c.querySelector('.run-letter')?.textContent }))""")}
    # TensorBoard's colour is kept in both ...
    assert cols[a]["color"] == cols[b]["color"]
    # ... and more than it tells them apart: the border's style, the swatch's pattern, a letter.
    assert cols[a]["border"] != cols[b]["border"]
    assert cols[a]["pattern"] != cols[b]["pattern"] and cols[a]["image"] != cols[b]["image"]
    assert {cols[a]["letter"], cols[b]["letter"]} == {"A", "B"}
    # The checkboxes and the toolbar's swatch say it too; a run whose colour is its own stays plain.
    boxes = {i["run"]: i for i in tab.eval_on_selector_all("#compare-runs .legend-item", """ls => ls.map(l => ({
        run: l.dataset.run, pattern: l.querySelector('.swatch').dataset.pattern,
        letter: l.querySelector('.run-letter')?.textContent || '', title: l.querySelector('.swatch').title }))""")}
    assert boxes[b]["letter"] and a in boxes[b]["title"]
    own = [runs[0] for runs in by_color.values() if len(runs) == 1 and runs[0] in RUNS]
    for run in own:
        assert boxes[run]["pattern"] == "solid" and boxes[run]["letter"] == ""
    assert tab.inner_text("#run-letter") == cols[a]["letter"]
    assert tab.get_attribute("#run-swatch", "data-pattern") == cols[a]["pattern"]
    assert page.console_errors == []


# -- item 4: charts carry their reference ----------------------------------------


def uniform_patch_distance(rows, cols):
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :]).mean()


def test_distance_charts_draw_what_uniform_attention_gives_with_room_and_heads_apart(opened, layers):
    page = opened()
    tab = page.tab
    step = int(layers[VIT]["block0"].steps[-1])
    _show_image(tab, step, tag="block0")
    tab.wait_for_function("() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth)")
    tab.wait_for_selector("#image-distance-chart[data-y-label='distance (pixels)']", state="attached")
    tab.wait_for_selector("#image-distance-heads[data-step='%d']" % step, state="attached")
    uniform = 6 * uniform_patch_distance(ROWS, COLS)  # a patch is 6 px: ~25.0 px
    for chart in ("#image-distance-chart", "#image-distance-heads"):
        assert float(tab.get_attribute(chart, "data-reference")) == pytest.approx(uniform, rel=1e-9)
        # room above the higher of the data and the reference: 15%
        drawn = tab.eval_on_selector("#image-distance-heads", "c => c.values").copy()
        ymax = float(tab.get_attribute(chart, "data-ymax"))
        top = max(max(v for col in drawn for v in col), uniform)
        if chart == "#image-distance-heads":
            assert ymax == pytest.approx(1.15 * top, rel=1e-9)
        else:
            assert ymax >= 1.15 * uniform - 1e-9
    assert "uniform attention" in tab.inner_text("#image-distance-title")
    # The heads of a layer are side by side: as many x positions as heads, 0 on the left.
    dots = tab.eval_on_selector("#image-distance-heads", "c => c.dots")
    for layer in range(3):
        xs = [d["x"] for d in sorted((d for d in dots if d["layer"] == layer), key=lambda d: d["head"])]
        assert len(xs) == 4 and all(b - a >= 5 for a, b in zip(xs, xs[1:])), xs
    # The text view's distance chart: causal over 10 keys, uniform gives mean_i i / 2 = 2.25 positions.
    _show(tab, run=RUNS[0], tag="att", step=1)
    wait_painted(tab, 1)
    tab.wait_for_selector("#distance-chart[data-reference='2.25']", state="attached")
    assert float(tab.get_attribute("#distance-chart", "data-ymax")) >= 1.15 * 2.25 - 1e-9
    assert "uniform attention" in tab.inner_text("#stats-title")
    assert page.console_errors == []


# -- item 7: the minimap hides nothing --------------------------------------------


def test_the_minimap_of_a_2048_token_map_covers_no_cell_or_label_at_any_scroll_position(opened):
    page = opened(height=1400)
    tab = page.tab
    _show(tab, run=HUGE_RUN)
    wait_painted(tab, 0)
    tab.fill("#zoom", "12")  # labels drawn: a column label row over the map
    tab.wait_for_selector("#col-labels span", state="attached")
    assert tab.is_visible("#minimap")
    for left, top in [(0, 0), (0.5, 0), (0.5, 0.5), (0, 1), (1, 1)]:
        tab.eval_on_selector("#focus-body", "(b, [l, t]) => { b.scrollLeft = l * (b.scrollWidth - b.clientWidth); "
                                            "b.scrollTop = t * (b.scrollHeight - b.clientHeight); }", [left, top])
        shown = tab.evaluate("""() => {
          const body = document.querySelector('#focus-body').getBoundingClientRect();
          const mini = document.querySelector('#minimap').getBoundingClientRect();
          return { body: [body.left, body.top, body.right, body.bottom], mini: [mini.left, mini.top, mini.right, mini.bottom] };
        }""")
        body, mini = shown["body"], shown["mini"]
        overlaps = mini[0] < body[2] and body[0] < mini[2] and mini[1] < body[3] and body[1] < mini[3]
        assert not overlaps, (left, top, shown)
    # it still moves the view
    box = tab.locator("#minimap-map").bounding_box()
    page.mouse.click(box["x"] + 2, box["y"] + 2)
    assert tab.eval_on_selector("#focus-body", "b => [b.scrollLeft, b.scrollTop]") == [0, 0]
    assert page.console_errors == []


# -- what a person sees -----------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_scales_marks_charts_and_the_minimap(opened, layers, theme, scale):
    page = opened(scale=scale, height=1100)
    tab = page.tab
    _theme(page, theme)
    step = int(layers[VIT]["block2"].steps[-1])
    _show_image(tab, step, tag="block2")
    tab.wait_for_function("() => [...document.querySelectorAll('#image-heads img')].every(i => i.complete && i.naturalWidth)")
    tab.wait_for_selector("#image-distance-heads[data-step='%d']" % step, state="attached")
    _shot(tab, "#image-view", "image-fixed", theme, scale)
    tab.select_option("#image-scale", "ratio")
    tab.wait_for_selector("#legend[data-scale='ratio']", state="attached")
    tab.wait_for_function("() => document.querySelector(\"#image-heads canvas.overlay[data-head='0']\").dataset.vmax === 'ratio'")
    _shot(tab, "#image-view", "image-ratio", theme, scale)
    tab.wait_for_selector("#model-grid[data-painted-step='%d']" % step, state="attached")
    _shot(tab, "#model-view", "model-ratio", theme, scale)
    tab.select_option("#image-scale", "stretch")
    tab.wait_for_selector("#legend[data-scale='stretch']", state="attached")
    _shot(tab, "#image-view", "image-stretch", theme, scale)
    # ratio to uniform on a causal layer, runs that share a colour side by side
    visible = tab.evaluate("() => window.attentionTab.visible")
    by_color = {}
    for r in visible:
        if r["run"] in RUNS:
            by_color.setdefault(r["color"], []).append(r["run"])
    a, b = next(runs for runs in by_color.values() if len(runs) >= 2)[:2]
    _show(tab, run=a, tag="att", step=1, head=1, compare=[b], scale="ratio")
    wait_painted(tab, 1)
    _shot(tab, "#head-grid >> xpath=..", "grid-ratio", theme, scale)
    _shot(tab, "#compare-panel", "side-by-side-ratio", theme, scale)
    _shot(tab, "#stats-panel", "stats", theme, scale)
    _show(tab, run=HUGE_RUN, scale="fixed")
    wait_painted(tab, 0)
    tab.fill("#zoom", "12")
    _shot(tab, "#focus-panel", "minimap", theme, scale)
    assert page.console_errors == []
