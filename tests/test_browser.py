"""The Attention tab in a real headless Chromium, against the real
`tensorboard` process serving a logdir written by a real model.fit."""

import os
import shutil
import time

import numpy as np
import pytest

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import TensorBoard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "test-artifacts")
XSS_TOKEN = "<img src=x onerror=alert(1)>"
XSS_RUN = "<img src=y onerror=alert(2)>"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("chromium is required in CI: .ci/run installs Debian's chromium")
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "logs"
    model = tiny_mha_classifier(heads=2)
    for weight in model.get_layer("mha").weights:  # peaked, varied maps, not near-uniform
        weight.assign(weight * 6)
    x, y = tiny_data(24)
    vocab = ["<pad>", XSS_TOKEN] + ["w%d" % i for i in range(2, 30)]
    x[0, 2] = 1  # the first probe review holds the script-like token
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[AttentionCallback(root / XSS_RUN, x[:3], tokens=vocab, update_freq=2, encoding="uint8")])
    return root


@pytest.fixture(scope="module")
def page(logdir):
    tb = TensorBoard(logdir)
    tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.console_errors, page.dialogs = [], []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(tb.url + "/#attention")
        page.tab = _tab_frame(page)
        yield page
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "attention-tab.png"), full_page=True)
        browser.close()
    tb.stop()


def _tab_frame(page, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for frame in page.frames:
            if "plugin_entry" in frame.url and frame.query_selector("#attention-root[data-ready=true]"):
                return frame
        page.wait_for_timeout(250)  # lets Playwright process events; time.sleep would not
    raise TimeoutError("the Attention tab did not render")


@pytest.fixture(scope="module")
def captured(logdir):
    return read_attention(str(logdir))[XSS_RUN]["mha"]


def _wait_painted(tab, step):
    tab.wait_for_selector("#attention-root[data-painted-step='%d']" % step, state="attached", timeout=15000)


def _pixel(tab, selector, col, row):
    return tab.evaluate(
        """([sel, x, y]) => {
            const c = document.querySelector(sel);
            return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
        }""",
        [selector, col, row],
    )


def _expected_color(tab, weight, vmax):
    return tab.evaluate("async ([w, v]) => (await import('./colors.js')).colorOf(w, v)", [float(weight), float(vmax)])


def test_tab_loads_without_console_errors(page, captured):
    tab = page.tab
    _wait_painted(tab, int(captured.steps[-1]))
    assert page.console_errors == []
    assert tab.inner_text("#step-label") == str(captured.steps[-1])


def test_head_map_pixel_has_the_colour_of_the_captured_weight(page, captured):
    tab = page.tab
    _wait_painted(tab, int(captured.steps[-1]))
    maps = captured.maps[0][-1]  # example 0, last step: (heads, q, k)
    vmax = float(tab.get_attribute('#head-grid canvas[data-head="1"]', "data-vmax"))
    np.testing.assert_allclose(vmax, captured.maps[0][-1].max(), atol=1e-6)
    for row, col in [(0, 0), (3, 5), (maps.shape[1] - 1, maps.shape[2] - 1)]:
        got = _pixel(tab, '#head-grid canvas[data-head="1"]', col, row)
        assert got == _expected_color(tab, maps[1, row, col], vmax), (row, col)


def test_hover_shows_query_token_key_token_and_weight(page, captured):
    tab = page.tab
    tab.click('#head-grid figure[data-head="0"]')
    box = tab.locator("#focus-map").bounding_box()
    q, k = captured.maps[0].shape[2:]
    row, col = 2, 4
    tab.locator("#focus-map").hover(position={"x": (col + 0.5) * box["width"] / k, "y": (row + 0.5) * box["height"] / q})
    assert tab.inner_text("#tooltip .tip-query") == "query: " + captured.query_tokens[0][row]
    assert tab.inner_text("#tooltip .tip-key") == "key: " + captured.key_tokens[0][col]
    weight = float(tab.inner_text("#tooltip .tip-weight").split(": ")[1])
    assert abs(weight - captured.maps[0][-1][0, row, col]) < 1e-4


def test_step_slider_changes_the_maps_to_that_steps_values(page, captured):
    tab = page.tab
    tab.evaluate("""() => { const s = document.querySelector('#step-slider');
                             s.value = '0'; s.dispatchEvent(new Event('input')); }""")
    _wait_painted(tab, int(captured.steps[0]))
    assert tab.inner_text("#step-label") == str(captured.steps[0])
    first = captured.maps[0][0]
    vmax = float(tab.get_attribute('#head-grid canvas[data-head="0"]', "data-vmax"))
    np.testing.assert_allclose(vmax, first.max(), atol=1e-6)
    assert _pixel(tab, '#head-grid canvas[data-head="0"]', 1, 0) == _expected_color(tab, first[0, 0, 1], vmax)
    # back to the last step for the other tests
    tab.evaluate("""() => { const s = document.querySelector('#step-slider');
                             s.value = s.max; s.dispatchEvent(new Event('input')); }""")
    _wait_painted(tab, int(captured.steps[-1]))


def test_importance_chart_matches_the_stored_received_attention(page, captured):
    tab = page.tab
    tab.click('#head-grid figure[data-head="mean"]')
    tab.wait_for_selector("#importance-bars[data-head='2']", state="attached")
    _wait_painted(tab, int(captured.steps[-1]))
    tab.wait_for_selector("#importance-bars[data-step='%d']" % captured.steps[-1], state="attached")
    values = [float(v) for v in tab.eval_on_selector_all("#importance-bars .bar-row", "rows => rows.map(r => r.dataset.value)")]
    np.testing.assert_allclose(values, captured.received[0][-1, -1], atol=1e-5)  # head mean
    labels = tab.eval_on_selector_all("#importance-bars .bar-label", "l => l.map(x => x.textContent)")
    assert labels == captured.key_tokens[0]
    assert "sum over queries" in tab.inner_text("#importance-title")


def test_script_like_tokens_and_run_names_show_literally_and_run_nothing(page, captured):
    tab = page.tab
    assert XSS_TOKEN in captured.key_tokens[0]
    labels = tab.eval_on_selector_all("#col-labels span", "l => l.map(x => x.textContent)")
    assert XSS_TOKEN in labels
    assert tab.eval_on_selector("#run-select", "s => s.options[0].text") == XSS_RUN
    assert tab.query_selector("img") is None  # nothing parsed as HTML
    assert page.dialogs == []
    assert page.console_errors == []


def test_clicking_a_token_follows_its_importance_over_training(page, captured):
    tab = page.tab
    tab.click("#importance-bars .bar-row[data-index='3']")
    legend = tab.eval_on_selector_all("#importance-lines-legend .legend-item", "l => l.map(x => x.textContent)")
    assert legend == [captured.key_tokens[0][3]]
    assert tab.get_attribute("#importance-lines", "hidden") is None
    tab.click("#importance-bars .bar-row[data-index='3']")  # click again: unfollow
    assert tab.eval_on_selector_all("#importance-lines-legend .legend-item", "l => l.length") == 0


def test_chosen_step_and_head_survive_a_reload(page, captured):
    tab = page.tab
    tab.click('#head-grid figure[data-head="1"]')
    tab.evaluate("""() => { const s = document.querySelector('#step-slider');
                             s.value = '1'; s.dispatchEvent(new Event('input')); }""")
    _wait_painted(tab, int(captured.steps[1]))
    page.reload()
    page.tab = tab = _tab_frame(page)
    _wait_painted(tab, int(captured.steps[1]))
    assert tab.inner_text("#step-label") == str(captured.steps[1])
    assert tab.get_attribute("#head-grid figure.selected", "data-head") == "1"


def test_dark_mode_of_tensorboard_reaches_the_tab(page):
    tab = page.tab
    page.evaluate("() => document.body.classList.add('dark-mode')")
    tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    background = tab.evaluate("() => getComputedStyle(document.querySelector('#attention-root')).backgroundColor")
    assert background == "rgb(48, 48, 48)"
    page.evaluate("() => document.body.classList.remove('dark-mode')")
    tab.wait_for_selector("#attention-root:not(.dark)", state="attached", timeout=5000)
