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


# -- item 5: ratio to uniform, everywhere maps are drawn -------------------------


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


