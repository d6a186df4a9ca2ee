"""Links (issue 32 item 12): the address bar restores every control of the
tab. In headless Chromium against the real `tensorboard`, on two runs of a
real fit of the ViT demo's model (an image probe: every view of the tab is
shown, the image view included): every control is set through the tab's
own widgets, then the copied URL is reloaded and opened in a browser that
never saw the tab, and each control is read back from the page.
Helpers and fixtures from test_browser.py."""

import os
import urllib.parse

import keras
import pytest

from demo_models import vit
from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, opened, tab_frame, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
RUNS = ["vit a", "vit&b"]  # odd names: the address bar must carry them


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("links") / "logs"
    images, labels, _ = vit.shape_images(48, seed=0)
    for seed, name in enumerate(RUNS):
        keras.utils.set_random_seed(seed)
        vit.build_model().fit(images, labels, batch_size=16, verbose=0, callbacks=[
            AttentionCallback(root / name, images[:2], update_freq=1, encoding="uint8")])
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2) as tb:
        yield tb


@pytest.fixture(scope="module")
def layers(logdir):
    return read_attention(str(logdir))[RUNS[1]]


def _settled(tab):
    tab.evaluate("""async () => { const t = window.attentionTab;
        await Promise.all([t.compared, t.modelShown]); }""")


def _input(tab, selector, value, event="input"):
    tab.evaluate("""([sel, v, ev]) => { const e = document.querySelector(sel);
        e.value = String(v); e.dispatchEvent(new Event(ev, {bubbles: true})); }""", [selector, value, event])


def _set_every_control(page, layers):
    """Every control of the tab, through its own widget; returns what was chosen."""
    tab = page.tab
    steps = [int(s) for s in layers["block1"].steps]
    _input(tab, "#run-select", RUNS[1], "change")
    tab.wait_for_function("r => window.attentionTab.state.run === r", arg=RUNS[1])
    _input(tab, "#layer-select", "block1", "change")
    _input(tab, "#example-select", 1, "change")
    tab.wait_for_function("() => window.attentionTab.state.example === 1 && window.attentionTab.state.tag === 'block1'")
    _input(tab, "#step-slider", 1)
    wait_painted(tab, steps[1])
    tab.click("#head-grid figure[data-head='2']")
    _input(tab, "#scale-select", "stretch", "change")
    _input(tab, "#zoom", 14)
    tab.click("#given-toggle")
    tab.wait_for_selector('#importance-bars .bar-row[data-index="7"]')
    tab.click('#importance-bars .bar-row[data-index="3"]')
    tab.click('#importance-bars .bar-row[data-index="7"]')
    tab.check("#compare-runs input[data-run='%s']" % RUNS[0])
    _settled(tab)
    _input(tab, "#compare-zoom", 12)
    tab.check("#diff-toggle")
    _settled(tab)
    _input(tab, "#diff-run", RUNS[0], "change")
    _settled(tab)
    _input(tab, "#diff-step", steps[0], "change")
    _settled(tab)
    tab.click("#heads-view > summary")
    tab.wait_for_function("() => document.querySelector('#heads-view').open")
    tab.wait_for_selector("#heads-metric option[value='patch_distance']", state="attached")
    _input(tab, "#heads-metric", "patch_distance", "change")
    _input(tab, "#heads-rank", "value", "change")
    tab.click("#model-view > summary")
    tab.wait_for_function("() => window.attentionTab.state.modelOpen === false")
    _input(tab, "#text-direction", "receives", "change")
    tab.click("#text-queries .token[data-index='5']")
    # the image view: click patch (row 2, column 5) of head 0's image, opacity 35
    stack = tab.locator("#image-heads .image-stack[data-head='0']")
    box = stack.bounding_box()
    stack.click(position={"x": (5 + 0.5) * box["width"] / vit.GRID, "y": (2 + 0.5) * box["height"] / vit.GRID})
    _input(tab, "#image-opacity", 35)
    page.wait_for_timeout(500)  # the last choices written (within 400 ms they share an entry)
    return {
        "run": RUNS[1], "tag": "block1", "example": "1", "step": str(steps[1]), "head": "2", "enlarged": True,
        "scale": "stretch", "zoom": "14", "given": True, "picked": ["3", "7"], "compare": [RUNS[0]], "compareZoom": "12",
        "diff": True, "diffRun": RUNS[0], "diffStep": str(steps[0]),
        "headsOpen": True, "metric": "patch_distance", "rank": "value", "modelOpen": False,
        "direction": "receives", "pinned": ["query", "5"], "patch": str(1 + 2 * vit.GRID + 5), "opacity": "35",
        "overlayOpacity": "0.35",
    }


def _read_every_control(tab):
    """Each control as the page shows it (the widgets, not the tab's state)."""
    tab.wait_for_selector("#image-heads[data-painted-query]", state="attached", timeout=15000)
    _settled(tab)
    return tab.evaluate("""() => {
        const q = (s) => document.querySelector(s);
        const pinned = q('#text-queries .token.source');
        return {
          run: q('#run-select').value, tag: q('#layer-select').value, example: q('#example-select').value,
          step: q('#step-label').textContent,
          head: q('#head-grid figure.selected').dataset.head, enlarged: !q('#focus-panel').hidden,
          scale: q('#scale-select').value, zoom: q('#zoom').value, given: q('#given-toggle').checked,
          picked: [...document.querySelectorAll('#importance-bars .bar-row.picked')].map((r) => r.dataset.index),
          compare: [...document.querySelectorAll('#compare-runs input:checked')].map((b) => b.dataset.run),
          compareZoom: q('#compare-zoom').value,
          diff: q('#diff-toggle').checked, diffRun: q('#diff-run').value, diffStep: q('#diff-step').value,
          headsOpen: q('#heads-view').open, metric: q('#heads-metric').value, rank: q('#heads-rank').value,
          modelOpen: q('#model-view').open,
          direction: q('#text-direction').value, pinned: pinned ? [pinned.dataset.side, pinned.dataset.index] : null,
          patch: q('#image-query').dataset.query, opacity: q('#image-opacity').value,
          overlayOpacity: q("#image-heads canvas.overlay[data-head='0']").style.opacity,
        };
    }""")


def _params(url):
    fragment = urllib.parse.urlsplit(url).fragment
    items = dict(part.split("=", 1) for part in fragment.split("&") if "=" in part)
    return {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in items.items()}


def test_the_example_list_names_images_not_their_patch_tokens(opened):
    """Issue 32 item 13: ViT's examples read 'CLS 0,0 0,1 ...', the same for every image."""
    tab = opened().tab
    labels = tab.eval_on_selector_all("#example-select option", "os => os.map(o => o.textContent)")
    assert labels == ["0: image 0 (8 x 8 patches)", "1: image 1 (8 x 8 patches)"]


def test_a_copied_link_restores_every_control_of_the_tab(opened, browser, layers):  # noqa: F811
    page = opened()
    want = _set_every_control(page, layers)
    assert _read_every_control(page.tab) == want
    url = page.url
    params = _params(url)
    assert params["p.attention.patch"] == want["patch"] and params["p.attention.opacity"] == "35"
    assert params["p.attention.direction"] == "receives" and params["p.attention.pin"] == "q5"
    assert params["p.attention.model"] == "0"
    page.reload()
    page.tab = tab_frame(page)
    assert _read_every_control(page.tab) == want
    # a colleague's browser that never saw the tab (no localStorage): the link alone
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        other = context.new_page()
        other.goto(url)
        assert _read_every_control(tab_frame(other)) == want
    finally:
        context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("scale", [1, 2])
def test_screenshots_of_a_link_opening_a_patch_an_opacity_and_a_pinned_token(browser, server, theme, scale):  # noqa: F811
    patch = 1 + 2 * vit.GRID + 5
    hash_ = "&".join("p.attention.%s=%s" % (k, urllib.parse.quote(v, safe="")) for k, v in [
        ("run", RUNS[0]), ("tag", "block1"), ("patch", str(patch)), ("opacity", "35"),
        ("direction", "receives"), ("pin", "q%d" % patch), ("model", "0")])
    context = browser.new_context(viewport={"width": 1280, "height": 1600}, device_scale_factor=scale)
    try:
        page = context.new_page()
        page.goto(server.url + "/#attention&" + hash_)
        tab = tab_frame(page)
        if theme == "dark":
            page.evaluate("() => document.body.classList.add('dark-mode')")
            tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
        tab.wait_for_selector("#image-heads[data-painted-query='%d']" % patch, state="attached", timeout=15000)
        assert tab.evaluate("() => document.querySelector('#image-opacity').value") == "35"
        assert tab.evaluate("() => document.querySelector('#text-direction').value") == "receives"
        os.makedirs(ARTIFACTS, exist_ok=True)
        for part in ["image-view", "text-panel"]:
            tab.locator("#" + part).screenshot(path=os.path.join(ARTIFACTS, "links-%s-%s-dpr%d.png" % (part, theme, scale)))
    finally:
        context.close()
