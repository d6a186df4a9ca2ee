"""Comparing runs and steps in the Attention tab (issue 19), in a real
headless Chromium against the real `tensorboard`, on runs of a real fit:
two seeds with one probe, and a third run given another probe. Runs side by
side, the difference of two steps, the choices in TensorBoard's address bar
(reload, a colleague's browser, back and forward), TensorBoard's run
selection, chart clicks and keys."""

import os
import urllib.parse

import keras
import numpy as np
import pytest

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import serving
from test_browser import browser, lut_color, opened, pixel, tab_frame, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

SEEDS = ["seed 1", "seed&2=b"]  # odd names: the address bar must carry them
OTHER_PROBE = "other probe"
VOCAB = ["<pad>"] + ["w%d" % i for i in range(1, 30)]
UINT8_DIFF_TOLERANCE = 1 / 255 + 1e-6  # each stored uint8 weight is within 1/510: a difference within 1/255
WHITE = [247, 247, 247]  # the diverging scale's 0 (compare.js)
DARK_ZERO = [48, 48, 48]  # its 0 in the dark theme (compare.js DARK_ZERO)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare") / "logs"
    x, y = tiny_data(24)
    for name, seed, probe in [(SEEDS[0], 1, x[:3]), (SEEDS[1], 2, x[:3]), (OTHER_PROBE, 1, x[5:8])]:
        keras.utils.set_random_seed(seed)
        model = tiny_mha_classifier(heads=2)
        # peaked maps that differ between seeds and move while training
        for weight in model.get_layer("mha").weights + model.layers[1].weights:
            weight.assign(weight * 12)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0,
                  callbacks=[AttentionCallback(root / name, probe, tokens=VOCAB, update_freq=2, encoding="uint8")])
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 3) as tb:
        yield tb


@pytest.fixture(scope="module")
def logs(logdir):
    return read_attention(str(logdir))


def state(tab):
    return tab.evaluate("""() => { const s = window.attentionTab.state;
        return {run: s.run, compare: s.compare, tag: s.tag, head: s.head, example: s.example, step: s.step,
                zoom: s.zoom, picked: s.picked, scale: s.scale, diff: s.diff, enlarged: s.enlarged}; }""")


def select(tab, **change):
    tab.evaluate("async c => { await window.attentionTab.select(c); await window.attentionTab.compared; }", change)


def compared(tab):
    tab.evaluate("async () => { await window.attentionTab.compared; }")


def run_options(tab):
    return tab.eval_on_selector_all("#run-select option", "os => os.map(o => o.value)")


def test_the_same_head_of_two_runs_is_shown_side_by_side_on_one_scale(opened, logs):
    page = opened()
    tab = page.tab
    assert run_options(tab) == [OTHER_PROBE] + SEEDS or sorted(run_options(tab)) == sorted([OTHER_PROBE] + SEEDS)
    a, b = logs[SEEDS[0]]["mha"], logs[SEEDS[1]]["mha"]
    step = int(a.steps[-2])
    select(tab, run=SEEDS[0], compare=[], head=1, example=0, step=step)
    assert tab.is_visible("#compare-panel") and tab.is_hidden("#compare-legend-row")  # no scale without maps
    select(tab, run=SEEDS[0], compare=[SEEDS[1]], head=1, example=0, step=step)
    assert tab.is_visible("#compare-legend-row")
    cols = tab.eval_on_selector_all(".cmp-col", "cs => cs.map(c => [c.dataset.run, c.dataset.step])")
    assert cols == [[SEEDS[0], str(step)], [SEEDS[1], str(step)]]
    assert tab.get_attribute("#compare-legend", "data-vmax") == "1"  # one fixed 0..1 scale for both
    for run, log in [(SEEDS[0], a), (SEEDS[1], b)]:
        maps = log.maps[0][list(log.steps).index(step)]  # (heads, q, k)
        sel = '.cmp-col[data-run="%s"] canvas' % run
        for row, col in [(0, 0), (2, 5), (maps.shape[1] - 1, maps.shape[2] - 1)]:
            assert pixel(tab, sel, col, row) == lut_color(maps[1, row, col]), (run, row, col)
    assert tab.is_hidden("#compare-note")  # one probe: nothing to say
    assert page.console_errors == []


def test_runs_with_another_probe_are_compared_by_example_index_and_the_tab_says_so(opened, logs):
    tab = opened().tab
    select(tab, run=SEEDS[0], compare=[OTHER_PROBE], example=1)
    note = tab.inner_text("#compare-note")
    assert "probes differ" in note and "example index 1" in note and OTHER_PROBE in note
    labels = tab.eval_on_selector_all('.cmp-col[data-run="%s"] .cmp-cols span' % OTHER_PROBE, "s => s.map(e => e.textContent)")
    assert labels == list(logs[OTHER_PROBE]["mha"].key_tokens[1])  # its own tokens
    assert labels != list(logs[SEEDS[0]]["mha"].key_tokens[1])


def test_the_difference_of_a_step_with_itself_is_zero_everywhere(opened, logs):
    tab = opened().tab
    last = int(logs[SEEDS[0]]["mha"].steps[-1])
    select(tab, run=SEEDS[0], step=last, head="mean", diff={"run": SEEDS[0], "step": last})
    values = tab.evaluate("() => Array.from(window.attentionTab.compare.diffValues)")
    assert len(values) == 64 and all(v == 0 for v in values)
    assert "All zero" in tab.inner_text("#diff-summary")
    for col, row in [(0, 0), (3, 4), (7, 7)]:
        assert pixel(tab, "#diff-map", col, row) == WHITE
    assert tab.inner_text("#diff-top") == "no cell changed"


def test_an_unchanged_difference_is_dark_grey_in_the_dark_theme_not_a_white_square(opened, logs):
    """Issue 32 item 13: on a dark page 0 is the page's grey; the legend follows a theme switch."""
    page = opened()
    tab = page.tab
    last = int(logs[SEEDS[0]]["mha"].steps[-1])
    select(tab, run=SEEDS[0], step=last, head="mean", diff={"run": SEEDS[0], "step": last})
    assert pixel(tab, "#diff-map", 3, 4) == WHITE and pixel(tab, "#diff-legend", 128, 0) == WHITE
    page.evaluate("() => document.body.classList.add('dark-mode')")
    tab.wait_for_selector("#diff-map[data-theme='dark']", state="attached", timeout=10000)
    compared(tab)
    for col, row in [(0, 0), (3, 4), (7, 7)]:
        assert pixel(tab, "#diff-map", col, row) == DARK_ZERO
    assert pixel(tab, "#diff-legend", 128, 0) == DARK_ZERO
    assert pixel(tab, "#diff-legend", 0, 0) != [5, 48, 97]  # the dark table's ends, light blue
    assert "dark grey unchanged" in tab.inner_text("#diff-legend-text")


def test_a_difference_cell_is_map_a_minus_map_b_as_read_attention_reads_them(opened, logs):
    tab = opened().tab
    a, b = logs[SEEDS[0]]["mha"], logs[SEEDS[1]]["mha"]
    step_a, step_b = int(a.steps[-1]), int(b.steps[0])
    select(tab, run=SEEDS[0], step=step_a, head=1, example=0, diff={"run": SEEDS[1], "step": step_b})
    got = np.array(tab.evaluate("() => Array.from(window.attentionTab.compare.diffValues)")).reshape(8, 8)
    want = a.maps[0][-1][1] - b.maps[0][0][1]
    # uint8 storage: each weight is within 1/510 of the model's, so a difference within 1/255
    assert np.abs(got - want).max() <= UINT8_DIFF_TOLERANCE
    assert np.abs(want).max() > 0.05  # a real difference, not a trivially small one
    top = tab.eval_on_selector_all("#diff-top li", "ls => ls.map(l => [+l.dataset.row, +l.dataset.col, +l.dataset.delta])")
    assert abs(abs(top[0][2]) - np.abs(got).max()) < 1e-6
    assert abs(got[top[0][0], top[0][1]] - top[0][2]) < 1e-6
    # what changed most: both heads, by mean |A - B|
    tab.wait_for_selector("#changed-heads[data-ready=true]", state="attached")
    heads = tab.eval_on_selector_all("#changed-heads li", "ls => ls.map(l => [+l.dataset.head, +l.dataset.change])")
    want_change = {h: np.abs(a.maps[0][-1][h] - b.maps[0][0][h]).mean() for h in range(2)}
    assert [h for h, _ in heads] == sorted(want_change, key=lambda h: -want_change[h])
    for h, change in heads:
        assert abs(change - want_change[h]) <= UINT8_DIFF_TOLERANCE


def _hash_state(url):
    fragment = urllib.parse.urlsplit(url).fragment
    items = dict(part.split("=", 1) for part in fragment.split("&") if "=" in part)
    return {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in items.items()}


CHOSEN = dict(head=1, example=1, zoom=20, picked=[3, 5], scale="stretch")


def _choose(tab, logs):
    """Makes the choices through the tab's own controls where it has them."""
    steps = [int(s) for s in logs[SEEDS[1]]["mha"].steps]
    select(tab, run=SEEDS[1], compare=[SEEDS[0]], step=steps[1], diff={"run": SEEDS[0], "step": steps[0]},
           head=1, example=1, scale="stretch")
    tab.evaluate("""() => { const z = document.querySelector('#zoom'); z.value = '20'; z.dispatchEvent(new Event('input')); }""")
    tab.wait_for_selector('#importance-bars .bar-row[data-index="5"]')
    tab.click('#importance-bars .bar-row[data-index="3"]')
    tab.click('#importance-bars .bar-row[data-index="5"]')
    return dict(run=SEEDS[1], compare=[SEEDS[0]], tag="mha", step=steps[1], diff={"run": SEEDS[0], "step": steps[0]},
                enlarged=True, **CHOSEN)


def test_reload_and_a_copied_link_restore_the_exact_view(opened, browser, server, logs):  # noqa: F811
    page = opened()
    want = _choose(page.tab, logs)
    assert state(page.tab) == want
    url = page.url
    params = _hash_state(url)
    assert params["p.attention.run"] == SEEDS[1] and params["p.attention.head"] == "1"
    assert params["p.attention.picked"] == "3,5" and params["p.attention.zoom"] == "20"
    page.reload()
    page.tab = tab_frame(page)
    compared(page.tab)
    assert state(page.tab) == want
    assert page.tab.evaluate("() => document.querySelector('#zoom').value") == "20"
    # a colleague's browser that never saw the tab (no localStorage): the link alone
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        other = context.new_page()
        other.goto(url)
        tab = tab_frame(other)
        compared(tab)
        assert state(tab) == want
        assert tab.eval_on_selector_all(".cmp-col", "cs => cs.map(c => c.dataset.run)") == [SEEDS[1], SEEDS[0]]
        assert tab.is_visible("#diff-map")
    finally:
        context.close()


def test_back_and_forward_move_through_choices(opened, logs):
    page = opened()
    tab = page.tab
    steps = [int(s) for s in logs[SEEDS[0]]["mha"].steps]
    select(tab, run=SEEDS[0], step=steps[0], head="mean")
    page.wait_for_timeout(500)  # choices closer than 400 ms share an entry (a dragged slider)
    select(tab, head=1)
    page.wait_for_timeout(500)
    select(tab, step=steps[2])
    page.go_back()
    tab.wait_for_function("s => window.attentionTab.state.step === s", arg=steps[0])
    assert state(tab)["head"] == 1
    page.go_back()
    tab.wait_for_function("() => window.attentionTab.state.head === 'mean'")
    page.go_forward()
    tab.wait_for_function("() => window.attentionTab.state.head === 1")
    assert page.console_errors == []


def test_a_run_hidden_in_tensorboards_run_selector_disappears_from_the_tab(opened):
    page = opened()
    assert SEEDS[1] in run_options(page.tab)
    # TensorBoard's run selector lives beside the Time Series dashboard.
    page.evaluate("location.hash = 'timeseries'")
    row = 'runs-selector tb-data-table-content-row[data-id$="/%s"]' % SEEDS[1]
    page.wait_for_selector(row)
    colors = page.eval_on_selector_all("runs-selector .run-color-swatch", "s => s.map(e => getComputedStyle(e).backgroundColor)")
    page.click(row + " input[type=checkbox]")
    page.get_by_role("tab", name="Attention").click()
    tab = tab_frame(page)
    tab.wait_for_function("r => !JSON.parse(document.querySelector('#attention-root').dataset.runs).includes(r)", arg=SEEDS[1])
    assert SEEDS[1] not in run_options(tab)
    assert all(box != SEEDS[1] for box in tab.eval_on_selector_all("#compare-runs input", "bs => bs.map(b => b.dataset.run)"))
    # the run's colour is TensorBoard's
    swatch = tab.evaluate("() => getComputedStyle(document.querySelector('#run-swatch')).backgroundColor")
    assert swatch in colors


def test_without_a_run_selector_the_runs_take_tensorboards_palette_in_its_order(opened):
    tab = opened().tab
    select(tab, run=SEEDS[0], compare=[SEEDS[1]])
    swatches = tab.eval_on_selector_all("#compare-runs .swatch", "s => s.map(e => getComputedStyle(e).backgroundColor)")
    # GetRuns order is the host's (by name here: "other probe", "seed 1", "seed&2=b"): slate, cyan, pink
    assert "rgb(66, 80, 102)" in swatches or "rgb(229, 37, 146)" in swatches


def test_arrows_step_and_change_head_and_escape_closes_the_enlarged_map(opened, logs):
    page = opened()
    tab = page.tab
    steps = [int(s) for s in logs[SEEDS[0]]["mha"].steps]
    select(tab, run=SEEDS[0], step=steps[1], head="mean")
    tab.click("#layer-info")
    page.keyboard.press("ArrowRight")
    wait_painted(tab, steps[2])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    wait_painted(tab, steps[0])
    page.keyboard.press("ArrowDown")
    assert state(tab)["head"] == "max"
    page.keyboard.press("ArrowDown")
    assert state(tab)["head"] == 0
    page.keyboard.press("ArrowUp")
    assert state(tab)["head"] == "max"
    assert tab.is_visible("#focus-panel")
    page.keyboard.press("Escape")
    assert tab.is_hidden("#focus-panel") and state(tab)["enlarged"] is False
    tab.click('#head-grid canvas[data-head="1"]')
    assert tab.is_visible("#focus-panel")


def test_clicking_a_stats_chart_goes_to_that_step_and_hover_names_value_step_and_run(opened, logs):
    page = opened()
    tab = page.tab
    steps = [int(s) for s in logs[SEEDS[0]]["mha"].steps]
    select(tab, run=SEEDS[0], step=steps[-1], head="mean")
    tab.wait_for_function("() => document.querySelector('#entropy-chart').plot")
    tab.evaluate("() => document.querySelector('#entropy-chart').scrollIntoView({block: 'center'})")
    x = tab.evaluate("s => document.querySelector('#entropy-chart').plot.x(s)", steps[0])
    box = tab.query_selector("#entropy-chart").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    hover = tab.inner_text("#stats-hover")
    assert SEEDS[0] in hover and "step %d" % steps[0] in hover
    page.mouse.click(box["x"] + x, box["y"] + box["height"] / 2)
    wait_painted(tab, steps[0])
    assert tab.get_attribute("#entropy-chart", "data-marker") == str(steps[0])


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_runs_side_by_side_and_the_difference(opened, logs, theme, scale):
    page = opened(scale=scale, color_scheme=theme, height=1200)
    tab = page.tab
    if theme == "dark":
        page.evaluate("document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached")
    steps = [int(s) for s in logs[SEEDS[0]]["mha"].steps]
    select(tab, run=SEEDS[0], compare=[SEEDS[1], OTHER_PROBE], head=0, step=steps[-1], diff={"run": SEEDS[0], "step": steps[0]})
    # the sticky toolbar would cover the panel's own header in an element screenshot
    tab.evaluate("() => { document.querySelector('header.toolbar').style.position = 'static'; }")
    tab.wait_for_selector("#changed-heads[data-ready=true]", state="attached")
    tab.evaluate("() => document.querySelector('#compare-panel').scrollIntoView()")
    name = "compare-%s-dpr%d.png" % (theme, scale)
    tab.query_selector("#compare-panel").screenshot(path=os.path.join(os.path.dirname(__file__), "..", "test-artifacts", name))
    tab.query_selector("#diff-panel").screenshot(
        path=os.path.join(os.path.dirname(__file__), "..", "test-artifacts", "difference-%s-dpr%d.png" % (theme, scale)))
    assert page.console_errors == []
