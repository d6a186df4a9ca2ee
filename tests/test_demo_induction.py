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

# The demos are healthy runs: no early warning may fire on them.
pytestmark = pytest.mark.usefixtures("no_head_warnings")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("DEMO_QUIET", "1")


def _best(layer, metric, step_index):
    """The best head's metric at one captured step, mean over probe examples."""
    per_example = [metric(layer.maps[i][step_index], layer.query_tokens[i]) for i in range(len(layer.maps))]
    return float(np.nanmean(per_example, axis=0).max())


@pytest.mark.slow
def test_induction_heads_form_in_layer_2_and_the_repeated_loss_falls(tmp_path):
    induction.main(["--logdir", str(tmp_path / "induction"), "--preset", "tiny"])
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
