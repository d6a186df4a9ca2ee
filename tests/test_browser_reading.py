"""Reading the tab (issue 32), in headless Chromium on a real fit: a probe
review of 41 tokens in which "last" occurs at positions 2 and 3, a causal
self-attention layer ("causal") and a plain one ("mha") over it, so there
is a rollout. Every tooltip and label that names a token gives its
position, cells the query cannot see say so instead of a number; lists and
the map box that are cut off say how much is in view and never end on a
row's edge; the importance-over-training heatmap has axes and a colour bar.
Screenshots at DPR 1 and 2, light and dark, in test-artifacts/. Helpers and
fixtures from test_browser.py."""

import os

import keras
import numpy as np
import pytest

from tb_attention_plugin import AttentionCallback, read_attention
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, opened, show, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
RUN = "reading"
LEN = 41
VOCAB = ["<pad>", "the", "last", "film", "was", "good", "bad", "plot", "and", "acting"] + ["w%d" % i for i in range(10, 40)]
BAR_PX, BOX_PX = 16, 408  # charts.js BAR_PX; its box: 25.5 bars (layout.js cutMidItem(420, 16))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reading") / "logs"
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(3, len(VOCAB), (16, LEN))
    x[:, :4] = [1, 3, 2, 2]  # "the film last last": one token at positions 2 and 3
    inp = keras.Input((LEN,), dtype="int32")
    h = keras.layers.Embedding(len(VOCAB), 8)(inp)
    h = keras.layers.MultiHeadAttention(2, 4, name="causal")(h, h, use_causal_mask=True)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h)))
    model.compile(keras.optimizers.Adam(0.05), "mse")  # maps that move between captures: a difference to list
    model.fit(x, rng.normal(size=(16, 1)), batch_size=2, epochs=1, verbose=0, callbacks=[
        AttentionCallback(root / RUN, x[:2], tokens=VOCAB, update_freq=2)])
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 1) as tb:
        yield tb


@pytest.fixture(scope="module")
def layers(logdir):
    return read_attention(str(logdir))[RUN]


def _open(opened, layers, tag="mha", head=0, **kwargs):
    page = opened(**kwargs)
    tab = page.tab
    step = int(layers[tag].steps[-1])
    show(tab, run=RUN, tag=tag, step=step, head=head)
    wait_painted(tab, step)
    return page, tab, step


def _hover_cell(tab, row, col, selector="#focus-map", cells=LEN):
    box = tab.locator(selector).bounding_box()
    tab.locator(selector).hover(position={"x": (col + 0.5) * box["width"] / cells, "y": (row + 0.5) * box["height"] / cells})


def test_every_tooltip_and_label_names_its_tokens_with_their_positions(opened, layers):
    page, tab, step = _open(opened, layers, tag="causal")
    tokens = layers["causal"].key_tokens[0]
    assert tokens[2] == tokens[3] == "last"
    maps = layers["causal"].maps[0][-1][0]  # head 0, the last step
    # The enlarged map: cell (3, 2) is not the diagonal, and says so.
    _hover_cell(tab, 3, 2)
    assert tab.inner_text("#tooltip .tip-cell") == 'q 3 "last" → k 2 "last"'
    assert abs(float(tab.inner_text("#tooltip .tip-weight").split(": ")[1]) - maps[3, 2]) < 1e-4
    # A key after the query (causal): why, never a number.
    _hover_cell(tab, 2, 3)
    assert tab.inner_text("#tooltip .tip-cell") == 'q 2 "last" → k 3 "last"'
    assert tab.inner_text("#tooltip .tip-hidden") == "not visible: after the query (causal)"
    assert tab.locator("#tooltip .tip-weight").count() == 0
    assert tab.get_attribute("#col-labels span[data-index='3']", "title") == 'k 3 "last"'
    assert tab.get_attribute("#row-labels span[data-index='2']", "title") == 'q 2 "last"'
    # The text view: every token's title has its position; tinted ones the cell and weight or why not.
    assert tab.get_attribute("#text-queries .token[data-index='3']", "title") == '3 "last"'
    tab.hover("#text-queries .token[data-index='2']")  # what query 2 gives
    assert tab.get_attribute("#text-queries .token[data-index='1']", "title") == 'q 2 "last" → k 1 "film": %.3f' % maps[2, 1]
    assert tab.get_attribute("#text-queries .token[data-index='3']", "title") == (
        'q 2 "last" → k 3 "last": not visible: after the query (causal)')
    hidden = tab.eval_on_selector("#text-queries .token[data-index='3']",
                                  "s => [s.classList.contains('not-visible'), s.dataset.weight, s.dataset.hidden]")
    assert hidden == [True, None, "after the query (causal)"]
    # The importance bars: a position before each token, and the token with its position when hovered.
    tab.wait_for_selector("#importance-bars .bar-row[data-index='3']", state="attached")
    assert tab.eval_on_selector_all("#importance-bars .bar-pos", "l => l.map(x => x.textContent)")[:4] == ["0", "1", "2", "3"]
    tab.locator("#importance-bars .bar-row[data-index='3']").hover()
    received = layers["causal"].received[0][-1, 0]  # head 0 (shown), the last step
    title = tab.get_attribute("#importance-bars .bar-row[data-index='3']", "title")
    assert title.startswith('k 3 "last": ') and abs(float(title.split(": ")[1]) - received[3]) <= 6e-4, title
    # The steps x tokens heatmap's hover and a followed token's legend.
    box = tab.locator("#importance-steps").bounding_box()
    tab.locator("#importance-steps").hover(position={"x": 3.5 * box["width"] / LEN, "y": 2})
    assert '· k 3 "last" ·' in tab.inner_text("#importance-steps-hover")
    tab.click("#importance-bars .bar-row[data-index='2']")
    assert tab.inner_text("#importance-lines-legend") == 'k 2 "last"'
    # The difference of two steps: its list and its hover name positions.
    tab.check("#diff-toggle")
    tab.wait_for_selector("#diff-panel[data-painted=true]", state="attached")
    tab.select_option("#diff-step", str(int(layers["causal"].steps[0])))  # against the untrained step
    tab.wait_for_selector("#diff-top li[data-row]", state="attached")
    top = tab.eval_on_selector_all("#diff-top li", "ls => ls.map(l => [l.dataset.row, l.dataset.col, l.textContent])")
    assert top and all(text.startswith('q %s "%s" → k %s "%s": ' % (r, tokens[int(r)], c, tokens[int(c)])) for r, c, text in top)
    _hover_cell(tab, 3, 2, "#diff-map")
    assert tab.inner_text("#diff-hover").startswith('q 3 "last" → k 2 "last": A ')
    # The rollout bars (the stack ends at "mha").
    show(tab, tag="mha")
    wait_painted(tab, step)
    tab.wait_for_selector("#rollout-bars .bar-row[data-index='3']", state="attached")
    tab.locator("#rollout-bars .bar-row[data-index='3']").scroll_into_view_if_needed()
    tab.locator("#rollout-bars .bar-row[data-index='3']").hover()
    assert tab.get_attribute("#rollout-bars .bar-row[data-index='3']", "title").startswith('k 3 "last": ')
    assert page.console_errors == []


def test_cut_off_lists_and_the_map_box_say_how_much_is_shown_and_end_mid_row(opened, layers):
    page, tab, step = _open(opened, layers, tag="mha", height=900)
    tab.wait_for_selector("#importance-bars .bar-row[data-index='40']", state="attached")
    for bars in ("#importance-bars", "#rollout-bars"):
        more = bars + "-more"
        tab.locator(bars).scroll_into_view_if_needed()
        assert tab.inner_text(more) == "25 of 41 tokens shown (0–24): scroll for more"
        box = tab.eval_on_selector(bars, "b => [b.clientHeight, b.scrollHeight, [...b.classList]]")
        assert box[0] == BOX_PX and box[1] == LEN * BAR_PX
        assert (box[0] / BAR_PX) % 1 == 0.5  # half a bar at the bottom: visibly cut, never on a row's edge
        assert "more-below" in box[2]
        tab.eval_on_selector(bars, "b => { b.scrollTop = b.scrollHeight; }")
        tab.wait_for_function("s => document.querySelector(s).textContent.includes('(16–40)')", arg=more)
        assert tab.inner_text(more) == "25 of 41 tokens shown (16–40): scroll for more"
    # The enlarged map at 32 px cells is taller than its box (80% of 900 px): the line above it says what is
    # in view, and the box ends half way through a row.
    tab.fill("#zoom", "32")
    tab.locator("#focus-panel").scroll_into_view_if_needed()
    tab.wait_for_selector("#focus-extent:not([hidden])", state="attached")
    geometry = tab.evaluate("""() => {
      const body = document.querySelector('#focus-body');
      return [body.clientHeight, document.querySelector('#col-labels').offsetHeight, body.clientWidth,
              document.querySelector('#row-labels').offsetWidth];
    }""")
    rows_px = geometry[0] - geometry[1]
    assert abs(rows_px % 32 - 16) <= 1, geometry
    whole_rows, whole_cols = int(rows_px // 32), int((geometry[2] - geometry[3]) // 32)
    assert tab.inner_text("#focus-extent") == "rows 0–%d of 41 and columns 0–%d of 41 in view: scroll the map for more" % (
        whole_rows - 1, min(whole_cols, LEN) - 1)
    tab.eval_on_selector("#focus-body", "b => { b.scrollTop = b.scrollHeight; }")
    tab.wait_for_function("() => document.querySelector('#focus-extent').textContent.startsWith('rows %d–40')" % (LEN - whole_rows))
    # A map that fits says nothing.
    tab.fill("#zoom", "8")
    tab.wait_for_selector("#focus-extent[hidden]", state="attached")
    assert page.console_errors == []


def test_importance_over_training_has_step_and_token_axes_and_a_colour_bar(opened, layers):
    page, tab, step = _open(opened, layers, tag="mha")
    steps = [int(s) for s in layers["mha"].steps]
    tab.wait_for_selector("#importance-steps-y span", state="attached")
    y = tab.eval_on_selector_all("#importance-steps-y span", "l => l.map(s => [+s.dataset.row, s.textContent, parseFloat(s.style.top)])")
    assert y[0][:2] == [0, str(steps[0])] and abs(y[0][2] - 50 / len(steps)) < 1e-6  # the first step at its row's middle
    assert all(text == str(steps[row]) for row, text, _ in y)
    x = tab.eval_on_selector_all("#importance-steps-x span", "l => l.map(s => [+s.dataset.index, s.textContent, s.title])")
    assert len(x) >= 10 and x[0][0] == 0
    tokens = layers["mha"].key_tokens[0]
    assert all(text == "%d %s" % (j, tokens[j]) and title == 'k %d "%s"' % (j, tokens[j]) for j, text, title in x)
    assert "key tokens →" in tab.inner_text("#importance-steps-x-title")
    assert tab.inner_text("#importance-steps-frame .steps-y-title") == "step ↓"
    # The labels lie beside and under the heatmap, not over it.
    heat = tab.locator("#importance-steps").bounding_box()
    assert tab.locator("#importance-steps-y").bounding_box()["x"] + tab.locator("#importance-steps-y").bounding_box()["width"] <= heat["x"] + 0.5
    assert tab.locator("#importance-steps-x").bounding_box()["y"] >= heat["y"] + heat["height"] - 0.5
    # The colour bar: 0 to the largest value of any step.
    vmax = float(tab.get_attribute("#importance-steps-legend", "data-vmax"))
    np.testing.assert_allclose(vmax, layers["mha"].received[0][:, 0].max(), rtol=1e-5)  # head 0, shown
    assert tab.inner_text("#importance-steps-scale").startswith("%.3f · received attention, head 0" % vmax)
    assert page.console_errors == []


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_the_reading_views(opened, layers, theme, scale):
    """What a person sees, kept in test-artifacts/reading-*: the enlarged
    map's tooltip, the text view, the bars with their counts and the heatmap
    with its axes, in both themes at DPR 1 and 2."""
    page, tab, step = _open(opened, layers, tag="causal", scale=scale, height=900)
    if theme == "dark":
        page.evaluate("() => document.body.classList.add('dark-mode')")
        tab.wait_for_selector("#attention-root.dark", state="attached", timeout=5000)
    os.makedirs(ARTIFACTS, exist_ok=True)
    name = lambda part: os.path.join(ARTIFACTS, "reading-%s-%s-dpr%d.png" % (part, theme, scale))  # noqa: E731
    tab.fill("#zoom", "24")
    tab.locator("#focus-panel").scroll_into_view_if_needed()
    _hover_cell(tab, 2, 3)
    tab.locator("#focus-panel").screenshot(path=name("map"))
    tab.hover("#text-queries .token[data-index='2']")
    tab.locator("#text-panel").screenshot(path=name("text"))
    tab.locator("#importance-panel").scroll_into_view_if_needed()
    tab.locator("#importance-panel").screenshot(path=name("bars"))
    tab.locator("#importance-steps-frame").scroll_into_view_if_needed()
    tab.locator("#importance-panel + section").screenshot(path=name("training"))
    assert page.console_errors == []
