"""The induction demo shows a phase change a person can see: heads that copy
from the previous occurrence form in layer 2, a previous-token head in
layer 1, and the loss on the repeated span falls."""

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from demo_models import induction
from tb_attention_plugin import read_attention
from tb_attention_plugin.math import head_metrics
from test_browser import browser  # noqa: F401 (fixture)


def _best(layer, metric, step_index):
    """The best head's metric at one captured step, mean over probe examples."""
    per_example = [metric(layer.maps[i][step_index], layer.query_tokens[i]) for i in range(len(layer.maps))]
    return float(np.nanmean(per_example, axis=0).max())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The log directory of one run of the demo's tiny preset (trained once for the module)."""
    import logging

    logdir = tmp_path_factory.mktemp("induction_demo")
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("tb_attention_plugin")
    logger.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DEMO_QUIET", "1")
            induction.main(["--logdir", str(logdir / "induction"), "--preset", "tiny"])
    finally:
        logger.removeHandler(handler)
    # A healthy run (as the no_head_warnings fixture checks for the other demos,
    # here for the module's one training): no collapse or stalled-head warning.
    said = [r.getMessage() for r in records
            if "collapsed at step" in r.getMessage() or "stopped changing" in r.getMessage()]
    assert not said, said
    return logdir


@pytest.mark.slow
def test_induction_heads_form_in_layer_2_and_the_repeated_loss_falls(trained):
    tmp_path = trained
    layers = read_attention(str(tmp_path))["induction"]
    assert list(layers) == ["layer1", "layer2"]
    assert all(layer.kind == "causal" for layer in layers.values())
    layer1, layer2 = layers["layer1"], layers["layer2"]
    score = head_metrics.induction_score
    previous = lambda maps, tokens: head_metrics.previous_token_score(maps)
    # Untrained: attention is flat, about 1/(row + 1) on any one key.
    assert _best(layer2, score, 0) < 0.1
    # Trained: a layer-2 head puts at least half its attention on the
    # successor of the previous occurrence; a layer-1 head on the previous token.
    assert _best(layer2, score, -1) >= 0.5
    assert _best(layer1, previous, -1) >= 0.4
    # Layer 1 does not do layer 2's job (the circuit needs both).
    assert _best(layer1, score, -1) < 0.3

    scalars = event_accumulator.EventAccumulator(str(tmp_path / "induction" / "train"))
    scalars.Reload()
    # TF2 scalars are tensor events
    def series(tag):
        return [float(tensor_util.make_ndarray(e.tensor_proto)) for e in scalars.Tensors(tag)]

    repeated, other = series("loss/repeated"), series("loss/other")
    assert repeated[0] > 3.5  # about log(64) = 4.16 before training
    assert repeated[-1] < repeated[0] / 3  # 1.04 here after the tiny preset's 2 epochs
    # The unpredictable tokens stay unpredictable: the fall is induction's.
    assert other[-1] > 3.5


@pytest.mark.slow
@pytest.mark.browser
def test_the_heads_view_ranks_the_induction_head_of_layer_2_first(trained, browser):  # noqa: F811
    from tb_attention_plugin import read_head_metrics
    from tensorboard_server import TensorBoard
    from test_browser import open_tab
    from test_browser_heads import _cells, _open_heads_view

    tmp_path = trained
    table = read_head_metrics(str(tmp_path))
    rows = list(zip(*(table[c] for c in ("layer", "head", "step", "example", "metric", "value"))))
    last = max(row[2] for row in rows)
    # example 0 (what the tab shows) at the last capture: the head with the highest induction score
    scores = {(layer, head): value for layer, head, step, example, metric, value in rows
              if step == last and example == 0 and metric == "induction"}
    best = max(scores, key=scores.get)
    assert best[0] == "layer2" and scores[best] >= 0.5, scores
    tb = TensorBoard(tmp_path)
    try:
        tb.wait_for_index(lambda index: any(len(layer["steps"]) > 1 and layer["steps"][-1] == last
                                            for run in index["runs"] for layer in run["layers"]))
        page = open_tab(browser, tb.url)
        tab = page.tab
        _open_heads_view(tab, "induction", last, metric="induction", tag="layer2")
        tab.select_option("#heads-rank", "value")
        tab.wait_for_selector("#heads-matrix.hm-ranked", state="attached")
        first_tag, first_head, value, *_ = _cells(tab)[0]
        assert (first_tag, first_head) == best
        assert abs(value - scores[best]) <= 1e-5  # JSON's 6 decimals of a float32
        page.context.close()
    finally:
        tb.stop()
