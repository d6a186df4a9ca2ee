"""The tab in headless Chromium on crafted runs: the status line shows the
short error of the view that failed and clears when that view loads;
numbers stored as NaN are shown as missing."""

import numpy as np
import pytest

from crafted_events import array_of, layer_step, replace, write_run
from tb_attention_plugin.format import metadata
from tensorboard_server import TensorBoard
from test_browser import CHROMIUM, tab_frame  # skips without Chromium, as test_browser does

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
pytestmark = pytest.mark.browser

PluginData = metadata.PluginData


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("status") / "logs"
    base = layer_step(heads=2, tokens=4, examples=2)
    importance = array_of(base, PluginData.IMPORTANCE, example=0).copy()
    importance[0, 2, 1] = np.nan  # example 0: received attention of token 1, head mean
    blobs = base[0][1].copy()
    blobs[0] = b"\x01" * 31
    write_run(logdir / "a_short_blob", {0: [(base[0][0], blobs, base[0][2])] + base[1:]})
    write_run(logdir / "b_healthy", {0: base})
    write_run(logdir / "c_bad_stats", {0: replace(base, PluginData.HEAD_STATS, np.zeros((2, 5), np.float32))})
    write_run(logdir / "d_nan", {0: replace(base, PluginData.IMPORTANCE, importance, example=0)})
    tb = TensorBoard(logdir)
    try:
        tb.wait_for_index(lambda index: len(index["runs"]) == 4)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(tb.url + "/#attention")
            yield tab_frame(page)
            browser.close()
    finally:
        tb.stop()




def _show(tab, run):
    """Selects run (example 0) and waits until every view has answered."""
    tab.evaluate("async run => { await window.attentionTab.select({ run, example: 0 }); }", run)
    return tab.text_content("#status")


def test_the_status_line_shows_the_failed_views_short_error_and_clears_when_it_loads(tab):
    status = _show(tab, "a_short_blob")
    assert status == ("Could not load maps: maps blob of run 'a_short_blob' layer 'layer' at step 0, "
                      "shape (2, 4, 4): blob of 31 bytes is neither 32 raw bytes nor zlib data "
                      "(Error -3 while decompressing data: incorrect header check)")
    assert _show(tab, "b_healthy") == ""
    status = _show(tab, "c_bad_stats")
    assert status.startswith("Could not load head statistics: head_stats of run 'c_bad_stats' layer 'layer' "
                             "at step 0 has shape (2, 5)")
    assert "<" not in status
    assert _show(tab, "b_healthy") == ""


def test_a_nan_importance_is_shown_as_missing(tab):
    assert _show(tab, "d_nan") == ""
    values = tab.eval_on_selector_all("#importance-bars .bar-value", "els => els.map(e => e.textContent)")
    assert values[1] == "missing" and values[0] != "missing" and len(values) == 4
    assert tab.eval_on_selector_all("#importance-bars .bar", "els => els[1].style.width") == "0%"
