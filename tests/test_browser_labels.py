"""The enlarged map's key (column) labels in headless Chromium: one-letter
tokens (a character-level model such as the GRU seq2seq demo) and long words,
at every zoom that shows text, at device pixel ratios 1 and 2. Helpers and
fixtures from test_browser.py."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tb_attention_plugin.writing import summary
from tensorboard_server import serving
from test_browser import ARTIFACTS, browser, opened, wait_painted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
LETTERS_Q = ["<start>", "j", "b", "a", "l", "j", "g"]
LETTERS_K = ["g", "j", "l", "a", "b", "j"]  # the reversed word, as the GRU demo's probe
LONG_TOKEN = "internationalisation-of-everything"  # longer than the labels' 14em: ends in an ellipsis
WORDS = ["the", "a", "supercalifragilistic", LONG_TOKEN, "W", "attention", "is", "all"]
ZOOMS = [6, 8, 11, 12, 13, 20, 32, 64]  # below 6 px a cell shows no label text


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels") / "logs"
    rng = np.random.default_rng(0)
    for run, q_tokens, k_tokens in [("letters", LETTERS_Q, LETTERS_K), ("words", WORDS, WORDS)]:
        logits = rng.normal(size=(1, 1, len(q_tokens), len(k_tokens)))
        writer = tf.summary.create_file_writer(str(root / run))
        with writer.as_default():
            summary.attention("attention", np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), step=0,
                              query_tokens=[q_tokens], key_tokens=[k_tokens])
        writer.close()
    return root


@pytest.fixture(scope="module")
def server(logdir):
    with serving(logdir, 2) as tb:
        yield tb


# Per key label: its box, the box of its text (a Range around the text node:
# what the glyphs take, before the label's overflow clips it) and whether the
# text is cut by the label's own width (an ellipsis); the row's box and font.
KEY_LABELS = """() => {
  const row = document.querySelector('#col-labels');
  const box = (r) => ({ top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height, width: r.width });
  const labels = [...row.children].map((span) => {
    const range = document.createRange();
    range.selectNodeContents(span);
    const vertical = getComputedStyle(span).writingMode !== 'horizontal-tb';
    return { token: span.textContent, title: span.title, box: box(span.getBoundingClientRect()), text: box(range.getBoundingClientRect()),
             cut: vertical ? span.scrollHeight > span.clientHeight : span.scrollWidth > span.clientWidth };
  });
  return { row: box(row.getBoundingClientRect()), rowClient: row.clientHeight,
           body: box(document.querySelector('#focus-body').getBoundingClientRect()),
           font: parseFloat(getComputedStyle(row).fontSize), labels };
}"""


def _inside(inner, outer, tol=0.5):
    return (inner["top"] >= outer["top"] - tol and inner["bottom"] <= outer["bottom"] + tol
            and inner["left"] >= outer["left"] - tol and inner["right"] <= outer["right"] + tol)


def _open(opened, run, scale):
    page = opened(scale=scale)
    tab = page.tab
    tab.evaluate("async s => { await window.attentionTab.select(s); }", {"run": run, "tag": "attention", "step": 0})
    wait_painted(tab, 0)
    return page


def _key_labels_at(tab, zoom):
    tab.fill("#zoom", str(zoom))
    return tab.evaluate(KEY_LABELS)


@pytest.mark.parametrize("scale", [1, 2])
def test_one_letter_key_labels_are_whole_and_as_tall_as_their_font_at_every_zoom(opened, scale):
    page = _open(opened, "letters", scale)
    tab = page.tab
    for zoom in ZOOMS:
        got = _key_labels_at(tab, zoom)
        assert [label["token"] for label in got["labels"]] == LETTERS_K
        # The row is at least a line of its font: a 12 px letter needs 12 px,
        # not the 7 px of its width that a letter turned on its side takes.
        assert got["row"]["height"] >= got["font"], (zoom, got["row"], got["font"])
        for label in got["labels"]:
            text = label["text"]
            assert text["height"] >= got["font"], (zoom, label)
            assert got["rowClient"] + 1 >= text["height"], (zoom, got["rowClient"], label)
            # nothing of the letter lies outside its label, the row or the scrolled view
            assert not label["cut"], (zoom, label)
            assert _inside(text, label["box"]) and _inside(text, got["row"]) and _inside(text, got["body"]), (zoom, label, got["row"])
        if zoom == 32:
            tab.locator("#focus-panel").screenshot(path=_artifact("key-labels-letters-dpr%d.png" % scale))
    assert page.console_errors == []


@pytest.mark.parametrize("scale", [1, 2])
def test_word_key_labels_are_whole_and_a_long_one_ends_in_an_ellipsis_at_every_zoom(opened, scale):
    page = _open(opened, "words", scale)
    tab = page.tab
    for zoom in ZOOMS:
        got = _key_labels_at(tab, zoom)
        assert [label["token"] for label in got["labels"]] == WORDS
        assert got["row"]["height"] >= got["font"], (zoom, got["row"], got["font"])
        for label in got["labels"]:
            box = label["box"]
            assert _inside(box, got["row"]) and _inside(box, got["body"]), (zoom, label, got["row"])
            if label["token"] == LONG_TOKEN:
                assert label["cut"], (zoom, label)  # 34 characters: more than the 14em the labels allow
            else:
                assert not label["cut"] and _inside(label["text"], box), (zoom, label)
        if zoom == 32:
            tab.locator("#focus-panel").screenshot(path=_artifact("key-labels-words-dpr%d.png" % scale))
    assert page.console_errors == []


def _artifact(name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    return os.path.join(ARTIFACTS, name)


# The enlarged map's pixels, one per cell ([row][col] = [r, g, b]), and their
# luminance: viridis grows lighter with the weight, so a dimmed cell is darker.
MAP_PIXELS = """() => {
  const canvas = document.querySelector('#focus-map');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const rows = [];
  for (let r = 0; r < canvas.height; r++) {
    const row = [];
    for (let c = 0; c < canvas.width; c++) row.push(Array.from(data.slice((r * canvas.width + c) * 4, (r * canvas.width + c) * 4 + 3)));
    rows.push(row);
  }
  return rows;
}"""


def _luminance(rgb):
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def _dimmed_outside(shown, plain, inside):
    """Cells `inside` (row, col) -> bool keep their colour; every other cell is
    no lighter, and each row's or column's brightest cell is darker."""
    n = len(plain)
    for r in range(n):
        for c in range(n):
            if inside(r, c):
                assert shown[r][c] == plain[r][c], (r, c)
            else:
                assert _luminance(shown[r][c]) <= _luminance(plain[r][c]) + 0.5, (r, c)
    outside = [(r, c) for r in range(n) for c in range(n) if not inside(r, c)]
    brightest = max(outside, key=lambda rc: _luminance(plain[rc[0]][rc[1]]))
    assert _luminance(shown[brightest[0]][brightest[1]]) < _luminance(plain[brightest[0]][brightest[1]]) - 5, brightest


def test_hovering_a_label_dims_the_other_rows_or_columns_and_cells_under_6_px_have_no_labels(opened):
    page = _open(opened, "words", 1)
    tab = page.tab
    tab.fill("#zoom", "32")
    plain = tab.evaluate(MAP_PIXELS)
    assert len(plain) == len(WORDS) and len(plain[0]) == len(WORDS)  # a pixel per cell
    tab.hover("#row-labels span[data-index='2']")
    _dimmed_outside(tab.evaluate(MAP_PIXELS), plain, lambda r, c: r == 2)
    tab.hover("#col-labels span[data-index='5']")
    _dimmed_outside(tab.evaluate(MAP_PIXELS), plain, lambda r, c: c == 5)
    tab.hover("#zoom")  # off the labels: nothing dimmed
    assert tab.evaluate(MAP_PIXELS) == plain
    # Under 6 px a label's font would be under 5 px: no labels, the tooltip names the tokens.
    tab.fill("#zoom", "5")
    assert tab.locator("#row-labels span").count() == 0 and tab.locator("#col-labels span").count() == 0
    assert tab.inner_text("#axis-titles").endswith("token labels from 6 px cells; hover a cell for its tokens")
    box = tab.locator("#focus-map").bounding_box()
    assert box["width"] == 5 * len(WORDS)
    tab.hover("#focus-map", position={"x": 3 * 5 + 2, "y": 6 * 5 + 2})
    assert tab.text_content("#tooltip .tip-cell") == 'q 6 "%s" → k 3 "%s"' % (WORDS[6], WORDS[3])
    tab.fill("#zoom", "6")
    # each label's title holds the whole token and its position
    assert tab.eval_on_selector_all("#col-labels span", "l => l.map((s) => s.title)") == ['k %d "%s"' % (j, w) for j, w in enumerate(WORDS)]
    assert tab.eval_on_selector_all("#row-labels span", "l => l.map((s) => s.title)") == ['q %d "%s"' % (i, w) for i, w in enumerate(WORDS)]
    assert tab.inner_text("#axis-titles").endswith("labels stay in view while the map scrolls")
    tab.hover("#col-labels span[data-index='1']")  # labels built anew hover as the first ones did
    _dimmed_outside(tab.evaluate(MAP_PIXELS), plain, lambda r, c: c == 1)
    # Another example shown at 5 px (as a long one opens at its fit zoom): the labels of the one before go.
    tab.evaluate("() => { const t = window.attentionTab; t.focus.setExample({ ...t.example }, 5); }")
    assert tab.locator("#row-labels span").count() == 0 and tab.locator("#col-labels span").count() == 0
    assert page.console_errors == []
