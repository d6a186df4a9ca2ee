"""The Attention tab in a real headless Chromium, against the real
`tensorboard` process serving a logdir written by a real model.fit.

Every test opens its own page in a fresh browser context (no localStorage
from another test), so the tests pass in any order and alone. The helpers
here (`open_tab`, `wait_painted`, `pixel`, `lut_color`) are shared by the
other tests/test_browser_*.py files."""

import csv
import io
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "test-artifacts")
XSS_TOKEN = "<img src=x onerror=alert(1)>"
XSS_RUN = "<img src=y onerror=alert(2)>"
UNTRAINED = "untrained"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("chromium is required in CI: .ci/run installs Debian's chromium")
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
pytestmark = pytest.mark.browser

# The viridis anchors of frontend/colors.js, copied by hand: the expected
# colours below are computed here, not by the code under test.
ANCHORS = [
    (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
]


def lut_color(weight, vmax=1.0):
    """[r, g, b] of weight on a 0..vmax scale, as colors.js's 256-entry table."""
    i = int(np.floor(min(max(weight / vmax, 0.0), 1.0) * 255 + 0.5))
    t = i / 255 * (len(ANCHORS) - 1)
    lo = int(np.floor(t))
    hi = min(lo + 1, len(ANCHORS) - 1)
    f = t - lo
    return [int(np.floor(ANCHORS[lo][c] * (1 - f) + ANCHORS[hi][c] * f + 0.5)) for c in range(3)]


# -- the log, the server, the browser -------------------------------------------


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "logs"
    x, y = tiny_data(24)
    vocab = ["<pad>", XSS_TOKEN] + ["w%d" % i for i in range(2, 30)]
    # A trained-looking run: peaked, varied maps.
    model = tiny_mha_classifier(heads=2)
    for weight in model.get_layer("mha").weights:
        weight.assign(weight * 6)
    x1 = x.copy()
    x1[0, 2] = 1  # the first probe review holds the script-like token
    model.fit(x1, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[AttentionCallback(root / XSS_RUN, x1[:3], tokens=vocab, update_freq=2, encoding="uint8")])
    # An untrained run: the query projection starts at zero, so every logit
    # is 0 and the attention at step 0 is exactly uniform, 1/8 over the 8
    # real keys; training moves it a little.
    model = tiny_mha_classifier(heads=2)
    mha = model.get_layer("mha")
    for weight in mha.query_dense.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[AttentionCallback(root / UNTRAINED, x[:2], tokens=vocab, update_freq=3, encoding="uint8")])
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2) as tb:
        yield tb


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


def tab_frame(page, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for frame in page.frames:
            if "plugin_entry" in frame.url and frame.query_selector("#attention-root[data-ready=true]"):
                return frame
        page.wait_for_timeout(250)  # lets Playwright process events; time.sleep would not
    raise TimeoutError("the Attention tab did not render")


def open_tab(browser, url, scale=1, width=1280, height=1600, color_scheme="light", before=None):
    """A new context (empty localStorage) and page on TensorBoard's Attention
    tab; page.tab is the tab's frame, page.console_errors and page.dialogs
    collect what went wrong. `before(page)` runs before navigation (routes)."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=scale, color_scheme=color_scheme)
    page = context.new_page()
    page.console_errors, page.dialogs, page.requests = [], [], []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: page.requests.append(r.url))
    if before:
        before(page)
    page.goto(url + "/#attention")
    page.tab = tab_frame(page)
    return page


@pytest.fixture
def opened(browser, server):
    """open_page(**open_tab's options) -> a new page on the tab of the
    requesting module's `server`; every page is closed after the test. The
    browser suites import it with `browser`."""
    pages = []

    def open_page(**kwargs):
        pages.append(open_tab(browser, server.url, **kwargs))
        return pages[-1]

    yield open_page
    for page in pages:
        page.context.close()


@pytest.fixture
def page(browser, server):
    page = open_tab(browser, server.url)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def captured(logdir):
    return read_attention(str(logdir))[XSS_RUN]["mha"]


@pytest.fixture(scope="module")
def untrained(logdir):
    return read_attention(str(logdir))[UNTRAINED]["mha"]


def wait_painted(tab, step):
    tab.wait_for_selector("#attention-root[data-painted-step='%d']" % step, state="attached", timeout=15000)


def show(tab, **state):
    """Selects run/tag/example/step/head through the tab and waits for every view."""
    tab.evaluate("async s => { await window.attentionTab.select(s); }", state)


def set_step(tab, index):
    tab.evaluate("""i => { const s = document.querySelector('#step-slider');
                           s.value = String(i); s.dispatchEvent(new Event('input')); }""", index)


def pixel(tab, selector, col, row):
    return tab.evaluate(
        """([sel, x, y]) => {
            const c = document.querySelector(sel);
            return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
        }""",
        [selector, col, row],
    )


def screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name), full_page=True)


# -- the tab loads, maps and their colours --------------------------------------


def test_tab_loads_without_console_errors(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    assert page.console_errors == []
    assert tab.inner_text("#step-label") == str(captured.steps[-1])
    screenshot(page, "attention-tab.png")


def test_head_map_pixel_has_the_colour_of_the_captured_weight_on_the_0_to_1_scale(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    maps = captured.maps[0][-1]  # example 0, last step: (heads, q, k)
    assert tab.get_attribute('#head-grid canvas[data-head="1"]', "data-vmax") == "1"
    for row, col in [(0, 0), (3, 5), (maps.shape[1] - 1, maps.shape[2] - 1)]:
        assert pixel(tab, '#head-grid canvas[data-head="1"]', col, row) == lut_color(maps[1, row, col]), (row, col)
    assert "fixed scale 0 to 1" in tab.inner_text("#legend-scale")
    assert tab.inner_text("#legend-max") == "1.000"


def test_uniform_attention_at_step_0_is_faint_and_keeps_its_colour_when_the_step_changes(page, untrained):
    tab = page.tab
    steps = [int(s) for s in untrained.steps]
    show(tab, run=UNTRAINED, step=steps[0], head=0)
    wait_painted(tab, steps[0])
    first, last = untrained.maps[0][0][0], untrained.maps[0][-1][0]  # head 0: (q, k)
    np.testing.assert_allclose(first, 1 / 8, atol=1 / 510)  # uniform over 8 real keys
    expected = lut_color(first[2, 3])
    assert expected == lut_color(32 / 255) == [71, 44, 122]  # index 32 of 255: dark purple, not yellow
    assert pixel(tab, '#head-grid canvas[data-head="0"]', 3, 2) == expected
    assert pixel(tab, "#focus-map", 3, 2) == expected
    # The legend says why every map is dark and which scale shows the pattern:
    # the step's largest weight over every head, from the stored bytes.
    largest = np.rint(untrained.maps[0][0] * 255).max() / 255
    assert largest < 0.2
    assert ("the largest weight at this step is %.3f: attention is spread thin (every map is dark)" % largest) in tab.inner_text("#legend-faint")
    # A cell whose stored weight is the same at the last step keeps its colour.
    same = np.argwhere(np.isclose(first, last, atol=1e-6))
    assert len(same), "training changed every cell; the test needs one unchanged weight"
    row, col = (int(v) for v in same[0])
    before = pixel(tab, '#head-grid canvas[data-head="0"]', col, row)
    set_step(tab, len(steps) - 1)
    wait_painted(tab, steps[-1])
    assert pixel(tab, '#head-grid canvas[data-head="0"]', col, row) == before == lut_color(last[row, col])


def test_the_faint_step_note_keeps_its_line_so_the_page_does_not_jump_while_playing(page, untrained):
    """Issue 32 item 13: the note under the legend for a step whose largest
    weight is under 0.2 has its own line, kept (invisible) at other steps."""
    tab = page.tab

    def maps_top():
        return tab.evaluate("""() => document.querySelector('#head-grid').getBoundingClientRect().top -
            document.querySelector('#scale-select').getBoundingClientRect().top""")

    steps = [int(s) for s in untrained.steps]
    show(tab, run=UNTRAINED, step=steps[0], head=0)
    wait_painted(tab, steps[0])
    assert "attention is spread thin" in tab.inner_text("#legend-faint")
    faint = maps_top()
    tab.select_option("#scale-select", "stretch")  # not faint: said nowhere, its line kept
    tab.wait_for_selector("#legend[data-scale='stretch']", state="attached")
    assert tab.inner_text("#legend-faint") == ""
    assert maps_top() == faint
    assert tab.evaluate("() => document.querySelector('#scale-select').parentElement.getBoundingClientRect().height") < 40  # one line


def test_the_layer_list_shows_a_layers_kind_and_heads_in_full(page, captured):
    """Issue 32 item 13: "(causal, 4 heads)" was cut at the list's 22em."""
    tab = page.tab
    tab.evaluate("""() => { const o = document.querySelector('#layer-select option');
        o.textContent = 'transformer_block/multi_head_attention_with_a_long_name (causal, 4 heads)'; }""")
    fits = tab.evaluate("""() => { const s = document.querySelector('#layer-select');
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = getComputedStyle(s).font;
        return [ctx.measureText(s.options[s.selectedIndex].textContent).width, s.clientWidth]; }""")
    assert fits[0] + 24 <= fits[1], fits  # the text and the list's arrow


def test_maps_sent_compressed_decode_to_the_stored_bytes_at_every_step(browser, server, untrained):
    replies = []
    page = open_tab(browser, server.url, before=lambda p: p.on("response", lambda r: "/maps?" in r.url and replies.append(r)))
    try:
        tab = page.tab
        show(tab, run=UNTRAINED, step=int(untrained.steps[0]))
        for example in range(len(untrained.maps)):
            show(tab, example=example)
            for i, step in enumerate(untrained.steps):
                got = tab.evaluate("async s => Array.from((await window.attentionTab.mapsAt(s)).bytes)", int(step))
                expected = np.rint(untrained.maps[example][i] * 255).astype(int).ravel()
                np.testing.assert_array_equal(got, expected, err_msg="example %d step %d" % (example, step))
        # the uniform maps of step 0 are stored compressed: they came as stored and the tab inflated them
        asked = [r for r in replies if "compression=zlib" in r.url]
        assert asked and len(asked) == len(replies)
        assert any(r.headers.get("x-attention-compression") == "zlib" for r in asked)
        assert page.console_errors == []
    finally:
        page.context.close()


def test_maps_load_on_the_tabs_thread_when_the_worker_cannot_start(browser, server, captured):
    """api.js fetches and inflates maps in maps_worker.js; a worker that fails
    to load (here: its script refused) leaves the maps to the tab's thread."""
    page = open_tab(browser, server.url, before=lambda p: p.route("**/maps_worker.js", lambda route: route.abort()))
    try:
        tab = page.tab
        step = int(captured.steps[-1])
        wait_painted(tab, step)
        got = tab.evaluate("async s => Array.from((await window.attentionTab.mapsAt(s)).bytes)", step)
        np.testing.assert_array_equal(got, np.rint(captured.maps[0][-1] * 255).astype(int).ravel())
        assert tab.inner_text("#status") == ""
    finally:
        page.context.close()


def test_maps_asked_for_before_the_worker_runs_come_on_the_tabs_thread_and_later_ones_through_it(browser, server, captured):
    """The worker takes requests once it says it runs (starting it cost the
    first paint ~70 ms); until then the tab's thread fetches. Here its script
    is held back: the tab paints without it, and once it runs it fetches the
    maps (a request's referrer is the script that made it)."""
    held, referrers = [], []

    def before(page):
        page.route("**/maps_worker.js", lambda route: held.append(route))
        page.on("request", lambda r: "/maps?" in r.url and referrers.append(r.headers.get("referer", "")))

    page = open_tab(browser, server.url, before=before)
    try:
        tab = page.tab
        last = int(captured.steps[-1])
        wait_painted(tab, last)
        assert held, "the worker's script was not asked for"
        assert referrers and not any(r.endswith("maps_worker.js") for r in referrers)
        for route in held:
            route.continue_()
        first = int(captured.steps[0])
        for _ in range(50):  # until the worker says it runs: a fresh fetch of the maps each time
            tab.evaluate("() => window.attentionTab.cache.clear()")
            got = tab.evaluate("async s => Array.from((await window.attentionTab.mapsAt(s)).bytes)", first)
            np.testing.assert_array_equal(got, np.rint(captured.maps[0][0] * 255).astype(int).ravel())
            if referrers[-1].endswith("maps_worker.js"):
                break
            page.wait_for_timeout(100)
        assert referrers[-1].endswith("maps_worker.js")
        assert tab.inner_text("#status") == ""
    finally:
        page.context.close()


def test_stretching_the_colour_scale_to_the_steps_max_is_stated_in_the_legend(page, untrained):
    tab = page.tab
    steps = [int(s) for s in untrained.steps]
    show(tab, run=UNTRAINED, step=steps[0], head=0)
    wait_painted(tab, steps[0])
    tab.select_option("#scale-select", "stretch")
    vmax = float(tab.get_attribute('#head-grid canvas[data-head="0"]', "data-vmax"))
    np.testing.assert_allclose(vmax, untrained.maps[0][0].max(), atol=1e-6)
    assert "stretched to this step's max" in tab.inner_text("#legend-scale")
    assert "every map is dark" not in tab.inner_text("#legend-faint")  # stretched, they are not
    assert tab.inner_text("#legend-max") == "%.3f" % vmax
    # uniform 1/8 stretched to its own max is the top of the scale
    assert pixel(tab, '#head-grid canvas[data-head="0"]', 3, 2) == lut_color(untrained.maps[0][0][0, 2, 3], vmax)


def test_importance_bars_use_one_scale_for_every_step_of_the_layer(page, untrained):
    tab = page.tab
    steps = [int(s) for s in untrained.steps]
    show(tab, run=UNTRAINED, step=steps[0], head="mean")
    tab.wait_for_selector("#importance-bars[data-step='%d']" % steps[0], state="attached")
    received = untrained.received[0][:, -1]  # (steps, keys), head mean
    top = received.max()
    np.testing.assert_allclose(float(tab.get_attribute("#importance-scale", "data-max")), top, rtol=1e-5)
    assert "one scale for every step" in tab.inner_text("#importance-scale")
    widths = tab.eval_on_selector_all("#importance-bars .bar", "bars => bars.map(b => parseFloat(b.style.width))")
    np.testing.assert_allclose(widths, 100 * received[0] / top, atol=1e-3)


def test_hover_shows_query_token_key_token_and_weight(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    tab.click('#head-grid figure[data-head="0"]')
    box = tab.locator("#focus-map").bounding_box()
    q, k = captured.maps[0].shape[2:]
    row, col = 2, 4
    tab.locator("#focus-map").hover(position={"x": (col + 0.5) * box["width"] / k, "y": (row + 0.5) * box["height"] / q})
    # both tokens with their positions: a repeated token is told apart
    assert tab.inner_text("#tooltip .tip-cell") == 'q %d "%s" → k %d "%s"' % (
        row, captured.query_tokens[0][row], col, captured.key_tokens[0][col])
    weight = float(tab.inner_text("#tooltip .tip-weight").split(": ")[1])
    assert abs(weight - captured.maps[0][-1][0, row, col]) < 1e-4


def test_step_slider_changes_the_maps_to_that_steps_values(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    set_step(tab, 0)
    wait_painted(tab, int(captured.steps[0]))
    assert tab.inner_text("#step-label") == str(captured.steps[0])
    first = captured.maps[0][0]
    assert pixel(tab, '#head-grid canvas[data-head="0"]', 1, 0) == lut_color(first[0, 0, 1])


def test_importance_chart_matches_the_stored_received_attention(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    tab.click('#head-grid figure[data-head="mean"]')
    tab.wait_for_selector("#importance-bars[data-head='2']", state="attached")
    tab.wait_for_selector("#importance-bars[data-step='%d']" % captured.steps[-1], state="attached")
    values = [float(v) for v in tab.eval_on_selector_all("#importance-bars .bar-row", "rows => rows.map(r => r.dataset.value)")]
    np.testing.assert_allclose(values, captured.received[0][-1, -1], atol=1e-5)  # head mean
    labels = tab.eval_on_selector_all("#importance-bars .bar-label", "l => l.map(x => x.textContent)")
    assert labels == captured.key_tokens[0]
    assert "sum over queries" in tab.inner_text("#importance-title")


def test_script_like_tokens_and_run_names_show_literally_and_run_nothing(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    assert XSS_TOKEN in captured.key_tokens[0]
    labels = tab.eval_on_selector_all("#col-labels span", "l => l.map(x => x.textContent)")
    assert XSS_TOKEN in labels
    assert tab.eval_on_selector("#run-select", "s => s.options[0].text") == XSS_RUN
    assert tab.query_selector("img") is None  # nothing parsed as HTML
    assert page.dialogs == []
    assert page.console_errors == []


def test_clicking_a_token_follows_its_importance_over_training(page, captured):
    tab = page.tab
    tab.wait_for_selector("#importance-bars .bar-row[data-index='3']", state="attached")
    tab.click("#importance-bars .bar-row[data-index='3']")
    legend = tab.eval_on_selector_all("#importance-lines-legend .legend-item", "l => l.map(x => x.textContent)")
    assert legend == ['k 3 "%s"' % captured.key_tokens[0][3]]
    assert tab.get_attribute("#importance-lines", "hidden") is None
    tab.click("#importance-bars .bar-row[data-index='3']")  # click again: unfollow
    assert tab.eval_on_selector_all("#importance-lines-legend .legend-item", "l => l.length") == 0


def test_chosen_step_and_head_survive_a_reload(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    tab.click('#head-grid figure[data-head="1"]')
    set_step(tab, 1)
    wait_painted(tab, int(captured.steps[1]))
    page.reload()
    page.tab = tab = tab_frame(page)
    wait_painted(tab, int(captured.steps[1]))
    assert tab.inner_text("#step-label") == str(captured.steps[1])
    assert tab.get_attribute("#head-grid figure.selected", "data-head") == "1"


def test_dark_mode_of_tensorboard_reaches_the_tab_its_controls_and_charts(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    tab.wait_for_selector("#entropy-chart[data-marker]", state="attached")
    assert pixel(tab, "#entropy-chart", 52, 60) == [33, 33, 33]  # the y axis, in the light theme's text colour
    page.evaluate("() => document.body.classList.add('dark-mode')")
    tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    background = tab.evaluate("() => getComputedStyle(document.querySelector('#attention-root')).backgroundColor")
    assert background == "rgb(48, 48, 48)"
    select = tab.eval_on_selector("#run-select", "s => getComputedStyle(s).backgroundColor")
    assert select == "rgb(48, 48, 48)"  # not a light native select on a dark page
    assert pixel(tab, "#entropy-chart", 52, 60) == [224, 224, 224]  # redrawn in the dark theme's text colour
    marker = tab.eval_on_selector("#entropy-chart-marker", "m => getComputedStyle(m).borderLeftColor")
    assert marker == "rgb(255, 183, 77)"
    page.evaluate("() => document.body.classList.remove('dark-mode')")
    tab.wait_for_selector("#attention-root:not(.dark)", state="attached", timeout=5000)


# -- bugs of issue 17, each with the test that would have caught it -------------


def test_enlarged_map_of_a_short_example_is_larger_than_its_thumbnail_and_zooms_to_readable_cells(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    q, k = captured.maps[0].shape[2:]  # 8 x 8 real tokens
    thumb = tab.locator('#head-grid canvas[data-head="mean"]').bounding_box()
    focus = tab.locator("#focus-map").bounding_box()
    assert focus["width"] >= 2 * thumb["width"], (focus, thumb)
    assert int(tab.get_attribute("#zoom", "max")) >= 48
    tab.fill("#zoom", tab.get_attribute("#zoom", "max"))
    cell = int(tab.get_attribute("#zoom", "max"))
    assert tab.locator("#focus-map").bounding_box()["width"] == k * cell
    assert tab.eval_on_selector("#col-labels", "e => getComputedStyle(e).fontSize") == "12px"


def test_zoom_and_followed_tokens_survive_a_reload(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    tab.fill("#zoom", "30")
    tab.wait_for_selector("#importance-bars .bar-row[data-index='3']", state="attached")
    tab.click("#importance-bars .bar-row[data-index='3']")
    page.reload()
    page.tab = tab = tab_frame(page)
    wait_painted(tab, int(captured.steps[-1]))
    tab.wait_for_selector("#importance-bars .bar-row[data-index='3']", state="attached")
    assert tab.input_value("#zoom") == "30"
    assert tab.locator("#focus-map").bounding_box()["width"] == 30 * captured.maps[0].shape[3]
    assert tab.get_attribute("#importance-bars .bar-row[data-index='3']", "class") == "bar-row picked"
    legend = tab.eval_on_selector_all("#importance-lines-legend .legend-item", "l => l.map(x => x.textContent)")
    assert legend == ['k 3 "%s"' % captured.key_tokens[0][3]]


def _hold_the_index(page):
    """Holds every /index request until released: [held routes]."""
    held = []
    page.route("**/data/plugin/attention/index", lambda route: held.append(route))
    return held


def _asked_while_held(page, held, run, step):
    """Waits, the index held, for the maps of `run` at `step` to be asked
    for; then lets the index through. How many such requests were made."""
    wanted = lambda: [u for u in page.requests if "/maps?" in u and "run=%s&" % run in u and "step=%d&" % step in u]
    for _ in range(100):
        if held and wanted():
            break
        page.wait_for_timeout(100)
    asked_before = len(wanted())
    for route in held:
        route.continue_()
    page.unroute("**/data/plugin/attention/index")
    return asked_before, wanted


@pytest.mark.parametrize("how", ["reload", "new visit", "link", "link to a removed run"])
def test_a_returning_users_maps_are_asked_for_while_the_index_is_on_its_way(browser, server, untrained, how):
    """The first paint waits for one round trip, not the index's and then
    the maps': the step shown last (localStorage) or named by a link is asked
    for at once. A guess the index contradicts costs a request, nothing else."""
    steps = [int(s) for s in untrained.steps]
    page = open_tab(browser, server.url)
    try:
        show(page.tab, run=UNTRAINED, step=steps[1], head=1)
        wait_painted(page.tab, steps[1])
        page.wait_for_timeout(500)  # the address bar is written after the choice
        url, run = page.url, UNTRAINED
        if how.startswith("link"):
            page.context.close()
            page = browser.new_context(viewport={"width": 1280, "height": 1600}).new_page()  # never saw the tab
            page.console_errors, page.requests = [], []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("request", lambda r: page.requests.append(r.url))
        if how == "link to a removed run":
            assert "p.attention.run=%s&" % UNTRAINED in url
            url, run = url.replace("p.attention.run=%s&" % UNTRAINED, "p.attention.run=gone&"), "gone"
        if how == "new visit":
            page.goto("about:blank")  # TensorBoard opened anew, its address without the tab's choices
        page.requests.clear()
        held = _hold_the_index(page)
        if how == "reload":
            page.reload(wait_until="commit")
        else:
            page.goto(server.url + "/#attention" if how == "new visit" else url, wait_until="commit")
        asked, wanted = _asked_while_held(page, held, run, steps[1])
        assert held, "the index was never asked for"
        assert asked == 1, "the maps were not asked for while the index was held"
        page.tab = tab = tab_frame(page)
        if run == "gone":
            # the index has no such run: the tab shows the first run it lists, as before
            assert tab.evaluate("() => window.attentionTab.state.run") != "gone"
            wait_painted(tab, tab.evaluate("() => window.attentionTab.state.step"))
        else:
            wait_painted(tab, steps[1])
            assert tab.evaluate("() => window.attentionTab.state.head") == 1
            assert len(wanted()) == 1, "the tab asked again for maps it already had"
        assert tab.inner_text("#status") == ""
        # the one trace of a wrong guess: the browser's own line for its 404
        wrong_guess = ["Failed to load resource: the server responded with a status of 404 (NOT FOUND)"]
        assert page.console_errors == (wrong_guess if run == "gone" else [])
    finally:
        page.context.close()


def test_head_max_shows_the_max_over_heads_of_importance_not_the_head_mean(page, captured):
    tab = page.tab
    step = int(captured.steps[-1])
    wait_painted(tab, step)
    tab.click('#head-grid figure[data-head="max"]')
    tab.wait_for_selector("#importance-bars[data-head='max'][data-step='%d']" % step, state="attached")
    values = [float(v) for v in tab.eval_on_selector_all("#importance-bars .bar-row", "rows => rows.map(r => r.dataset.value)")]
    per_head = captured.received[0][-1, :2]  # (heads, keys) at the last step
    np.testing.assert_allclose(values, per_head.max(axis=0), atol=1e-5)
    assert not np.allclose(values, captured.received[0][-1, -1], atol=1e-3)  # not the head mean
    assert "max over heads" in tab.inner_text("#importance-title")


def test_received_attention_is_the_default_and_given_is_a_labelled_check(page, captured):
    tab = page.tab
    step = int(captured.steps[-1])
    wait_painted(tab, step)
    tab.wait_for_selector("#importance-bars[data-mode='received']", state="attached")
    assert not tab.is_checked("#given-toggle")
    assert "1 per query for softmax rows" in tab.inner_text("#given-note")
    assert tab.inner_text("#importance-title").startswith("Received attention per key token")
    tab.check("#given-toggle")
    tab.wait_for_selector("#importance-bars[data-mode='given'][data-step='%d']" % step, state="attached")
    values = [float(v) for v in tab.eval_on_selector_all("#importance-bars .bar-row", "rows => rows.map(r => r.dataset.value)")]
    np.testing.assert_allclose(values, 1.0, atol=1e-3)  # softmax rows: the check passes
    assert tab.inner_text("#importance-title").startswith("Given attention per query token")


def test_stats_charts_have_axis_titles_the_distance_and_a_marker_at_the_current_step(page, captured):
    tab = page.tab
    steps = [int(s) for s in captured.steps]
    wait_painted(tab, steps[-1])
    tab.wait_for_selector("#distance-chart[data-marker='%d']" % steps[-1], state="attached")
    charts = {c: tab.get_attribute("#" + c, "data-y-label") for c in ("entropy-chart", "maxweight-chart", "distance-chart")}
    assert charts == {"entropy-chart": "entropy (nats)", "maxweight-chart": "max weight",
                      "distance-chart": "distance (tokens)"}
    assert tab.get_attribute("#entropy-chart", "data-x-label") == "step"
    # The y axes stop 5% above the data, never above what the statistic can
    # be: a softmax weight 1, a row's entropy log K (K keys).
    served = tab.evaluate("() => ({ stats: window.attentionTab.stats.stats, keys: window.attentionTab.example.key_length })")
    for chart, key, ceiling in [("maxweight-chart", "max_weight", 1.0), ("entropy-chart", "entropy", np.log(served["keys"]))]:
        top = max(v for row in served["stats"][key] for v in row)
        assert top <= ceiling + 1e-6
        ymax = float(tab.get_attribute("#" + chart, "data-ymax"))
        assert ymax == pytest.approx(min(1.05 * top, ceiling), rel=1e-6)  # float32 stats, float64 axis
    right = float(tab.get_attribute("#entropy-chart", "data-marker-x"))
    set_step(tab, 0)
    tab.wait_for_selector("#entropy-chart[data-marker='%d']" % steps[0], state="attached")
    left = float(tab.get_attribute("#entropy-chart", "data-marker-x"))
    assert left < right
    # the marker is shown there: a dashed accent line over the chart
    chart, marker = tab.locator("#entropy-chart").bounding_box(), tab.locator("#entropy-chart-marker").bounding_box()
    assert abs(marker["x"] + 1 - (chart["x"] + left)) <= 1 and marker["height"] > 100
    style = tab.eval_on_selector("#entropy-chart-marker", "m => [getComputedStyle(m).borderLeftStyle, getComputedStyle(m).borderLeftColor]")
    assert style == ["dashed", "rgb(245, 124, 0)"]


def test_long_key_labels_end_in_an_ellipsis_and_keep_the_whole_token_in_their_title(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    j = captured.key_tokens[0].index(XSS_TOKEN)
    label = tab.locator("#col-labels span[data-index='%d']" % j)
    assert label.get_attribute("title") == 'k %d "%s"' % (j, XSS_TOKEN)  # the whole token and its position
    # the whole label lies inside the labels' box: nothing cut off by the container
    inner, outer = label.bounding_box(), tab.locator("#col-labels").bounding_box()
    assert inner["y"] >= outer["y"] - 0.5 and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    assert tab.eval_on_selector("#col-labels span[data-index='%d']" % j, "e => getComputedStyle(e).textOverflow") == "ellipsis"


def test_followed_tokens_are_dropped_when_the_mode_changes_the_tokens_they_index(page, captured):
    tab = page.tab
    step = int(captured.steps[-1])
    wait_painted(tab, step)
    tab.wait_for_selector("#importance-bars .bar-row[data-index='3']", state="attached")
    tab.click("#importance-bars .bar-row[data-index='3']")
    tab.check("#given-toggle")  # query tokens now: position 3 is another token in cross attention
    tab.wait_for_selector("#importance-bars[data-mode='given'][data-step='%d']" % step, state="attached")
    assert tab.eval_on_selector_all("#importance-bars .bar-row.picked", "rows => rows.length") == 0
    assert tab.eval_on_selector_all("#importance-lines-legend .legend-item", "l => l.length") == 0


def test_hovering_the_steps_by_tokens_heatmap_names_the_step_token_and_value(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    tab.wait_for_selector("#importance-bars[data-mode='received']", state="attached")
    box = tab.locator("#importance-steps").bounding_box()
    steps, tokens = len(captured.steps), len(captured.key_tokens[0])
    s, j = 1, 4
    tab.locator("#importance-steps").hover(position={"x": (j + 0.5) * box["width"] / tokens,
                                                      "y": (s + 0.5) * box["height"] / steps})
    value = captured.received[0][s, -1, j]  # head mean
    assert tab.inner_text("#importance-steps-hover") == '%s · step %d (click to go there) · k %d "%s" · received attention %.3f' % (
        XSS_RUN, captured.steps[s], j, captured.key_tokens[0][j], value)
    assert "rows are steps" in tab.inner_text("#importance-panel ~ section h3")


def test_tooltip_sits_beside_the_pointer(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    box = tab.locator("#focus-map").bounding_box()
    x, y = box["x"] + 5, box["y"] + 5
    tab.locator("#focus-map").hover(position={"x": 5, "y": 5})
    tip = tab.locator("#tooltip").bounding_box()
    assert abs(tip["x"] - (x + 14)) <= 1 and abs(tip["y"] - (y + 14)) <= 1, (tip, x, y)


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_in_light_and_dark_at_pixel_ratios_1_and_2(browser, server, untrained, theme, scale):
    """Keeps what a user sees in test-artifacts/ (step 0 of the untrained run:
    faint uniform maps) and checks the theme reached the tab."""
    page = open_tab(browser, server.url, scale=scale, height=2600)
    try:
        tab = page.tab
        if theme == "dark":
            page.evaluate("() => document.body.classList.add('dark-mode')")
            tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
        steps = [int(s) for s in untrained.steps]
        show(tab, run=UNTRAINED, step=steps[0], head=0)
        wait_painted(tab, steps[0])
        tab.wait_for_selector("#distance-chart[data-marker='%d']" % steps[0], state="attached")
        screenshot(page, "tab-%s-dpr%d.png" % (theme, scale))
        assert page.console_errors == []
    finally:
        page.context.close()



def test_text_view_tints_every_token_by_the_attention_a_hovered_token_gives_or_receives(page, captured):
    tab = page.tab
    step = int(captured.steps[-1])
    wait_painted(tab, step)
    tab.click('#head-grid figure[data-head="1"]')
    maps = captured.maps[0][-1][1]  # head 1 at the last step: (q, k)
    tab.hover("#text-queries .token[data-index='2']")
    backgrounds = tab.eval_on_selector_all("#text-queries .token", "s => s.map(x => getComputedStyle(x).backgroundColor)")
    assert backgrounds == ["rgb(%d, %d, %d)" % tuple(lut_color(w)) for w in maps[2]]  # row 2: what token 2 gives
    tab.select_option("#text-direction", "receives")
    tab.hover("#text-queries .token[data-index='4']")
    weights = [float(w) for w in tab.eval_on_selector_all("#text-queries .token", "s => s.map(x => x.dataset.weight)")]
    np.testing.assert_allclose(weights, maps[:, 4], atol=1e-6)  # column 4: what every token gives token 4
    # a clicked token stays picked while the step changes, tinted by that step's weights
    tab.click("#text-queries .token[data-index='4']")
    tab.hover("#step-label")
    set_step(tab, 0)
    wait_painted(tab, int(captured.steps[0]))
    weights = [float(w) for w in tab.eval_on_selector_all("#text-queries .token", "s => s.map(x => x.dataset.weight)")]
    np.testing.assert_allclose(weights, captured.maps[0][0][1][:, 4], atol=1e-6)



def test_a_downsampled_importance_series_shows_the_nearest_served_step_and_says_so(browser, server, captured):
    """A log with more steps than max_points gets a subset over steps
    (http_api.md); here the tab's requests ask for 2 points of 4 steps."""
    def two_points(page):
        page.route("**/data/plugin/attention/importance?*",
                   lambda route: route.continue_(url=route.request.url + "&max_points=2"))

    import urllib.parse
    served = server.get_json("/data/plugin/attention/importance?" + urllib.parse.urlencode(
        {"run": XSS_RUN, "tag": "mha", "example": 0, "max_points": 2}))
    steps = [int(s) for s in captured.steps]
    assert served["downsampled"] and served["steps_total"] == len(steps)
    missing = next(s for s in steps if s not in served["steps"])
    shown = min(served["steps"], key=lambda s: (abs(s - missing), s))  # nearest, the earlier on a tie
    page = open_tab(browser, server.url, before=two_points)
    try:
        tab = page.tab
        show(tab, run=XSS_RUN, step=missing, head="mean")
        tab.wait_for_selector("#importance-bars[data-step='%d']" % missing, state="attached")
        title = tab.inner_text("#importance-title")
        assert title.endswith("(showing step %d, the nearest served step to %d; the series holds %d of %d steps)"
                              % (shown, missing, len(served["steps"]), len(steps))), title
        values = [float(v) for v in tab.eval_on_selector_all("#importance-bars .bar-row", "rows => rows.map(r => r.dataset.value)")]
        np.testing.assert_allclose(values, captured.received[0][steps.index(shown), -1], atol=1e-5)
        assert "of %d captured steps" % len(steps) in tab.inner_text("#importance-steps-info")
    finally:
        page.context.close()


# -- exports ------------------------------------------------------------------


def _download(page, selector):
    with page.expect_download() as info:
        page.tab.click(selector)
    download = info.value
    with open(download.path(), "rb") as f:
        return download.suggested_filename, f.read()


def test_png_export_has_a_title_token_labels_and_readable_cells(page, captured):
    tab = page.tab
    step = int(captured.steps[-1])
    wait_painted(tab, step)
    tab.click('#head-grid figure[data-head="1"]')
    name, data = _download(page, "#export-png")
    assert name.endswith("head1-step%d-example0.png" % step) and "<" not in name
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "export-map.png"), "wb") as f:
        f.write(data)
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    cell, left, top = (int(tab.get_attribute("#focus-map", "data-export-" + k)) for k in ("cell", "left", "top"))
    q, k = captured.maps[0].shape[2:]
    assert cell == 24 and image.shape[1] >= left + k * cell and image.shape[0] >= top + q * cell
    maps = captured.maps[0][-1][1]
    for row, col in [(0, 0), (2, 3), (q - 1, k - 1)]:
        y, x = top + row * cell + cell // 2, left + col * cell + cell // 2
        assert list(image[y, x]) == lut_color(maps[row, col]), (row, col)
    assert (image[4:24, 8:200] < 100).all(axis=2).any()  # the title's dark text
    assert (image[top:top + q * cell, 4:left - 4] < 100).all(axis=2).any()  # query token labels
    assert (image[30:top - 4, left:left + k * cell] < 100).all(axis=2).any()  # key token labels


def test_map_csv_export_has_query_rows_key_columns_and_where_it_comes_from(page, captured):
    tab = page.tab
    step = int(captured.steps[-1])
    wait_painted(tab, step)
    tab.click('#head-grid figure[data-head="0"]')
    name, data = _download(page, "#export-map-csv")
    assert name.endswith(".csv")
    rows = list(csv.reader(io.StringIO(data.decode())))
    keys = captured.key_tokens[0]
    assert rows[0] == ["run", "layer", "step", "example", "head", "query_position", "query_token"] + [
        "%d:%s" % (j, t) for j, t in enumerate(keys)]
    assert len(rows) == 1 + len(captured.query_tokens[0])
    assert rows[3][:7] == [XSS_RUN, "mha", str(step), "0", "0", "2", captured.query_tokens[0][2]]
    np.testing.assert_allclose([float(v) for v in rows[3][7:]], captured.maps[0][-1][0, 2], atol=1e-6)


def test_importance_csv_export_says_run_layer_and_example(page, captured):
    tab = page.tab
    wait_painted(tab, int(captured.steps[-1]))
    name, data = _download(page, "#export-csv")
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == ["run", "layer", "example", "step", "position", "token", "head_0", "head_1", "head_mean"]
    assert rows[1][:6] == [XSS_RUN, "mha", "0", str(captured.steps[0]), "0", captured.key_tokens[0][0]]
    np.testing.assert_allclose(float(rows[1][8]), captured.received[0][0, -1, 0], atol=1e-5)
