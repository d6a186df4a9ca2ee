"""Each seed demo trains briefly with the callback and learns visible signal."""

import numpy as np
import pytest

from demo_models import gru_seq2seq, lstm_attention, transformer
from tb_attention_plugin import read_attention

# The demos are healthy runs: no early warning may fire on them.
pytestmark = pytest.mark.usefixtures("no_head_warnings")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("DEMO_QUIET", "1")


def test_lstm_demo_importance_peaks_at_the_planted_step(tmp_path):
    lstm_attention.main(["--logdir", str(tmp_path / "lstm"), "--preset", "tiny"])
    layer = read_attention(str(tmp_path))["lstm"]["attention_vec"]
    assert layer.maps[0].shape[1:] == (1, 2, 20)  # one head, features x time
    # rows (2 features) and columns (20 time steps) are different axes: not a
    # sequence attending to itself; named after the layer that made the softmax
    assert layer.kind == "cross" and layer.layer_class == "Dense(softmax) via Permute"
    assert layer.key_tokens[0] == [str(t) for t in range(20)]
    mean_received = np.mean([r[-1, -1] for r in layer.received], axis=0)  # over probe examples
    assert mean_received.argmax() == lstm_attention.PLANTED_STEP
    assert mean_received[10] > 2 * np.median(mean_received)
    # at the untrained start there is no such peak
    start = np.mean([r[0, -1] for r in layer.received], axis=0)
    assert start[10] < 2 * np.median(start)


def test_transformer_demo_cross_attention_points_at_the_aligned_source_token(tmp_path):
    transformer.main(["--logdir", str(tmp_path / "tr"), "--preset", "tiny"])
    layers = read_attention(str(tmp_path))["tr"]
    kinds = sorted(layer.kind for layer in layers.values())
    assert kinds == ["causal", "causal", "cross", "cross", "self", "self"]
    _, probe_dec, _, alignments = transformer.date_data(8, seed=1)
    cross = layers["decoder_1/cross_attention"]
    hits = total = 0
    for i, alignment in enumerate(alignments):
        maps = cross.maps[i][-1].mean(axis=0)  # last step, head mean: (decoder, source)
        offset = transformer.SRC_LEN - len(cross.key_tokens[i])  # front padding cropped
        assert cross.query_tokens[i] == [transformer.VOCAB[t] for t in probe_dec[i]]
        for out_position, src_position in alignment.items():
            hits += maps[out_position].argmax() == src_position - offset
            total += 1
    assert hits / total >= 0.8, (hits, total)


def test_gru_demo_writes_headless_cross_attention_with_both_token_sides(tmp_path):
    gru_seq2seq.main(["--logdir", str(tmp_path / "gru"), "--preset", "tiny", "--epochs", "2"])
    layer = read_attention(str(tmp_path))["gru"]["attention"]
    src, dec, _ = gru_seq2seq.reversal_data(8, seed=1)
    assert layer.kind == "cross" and layer.num_heads == 1 and not layer.layer_class == ""
    real_src = [gru_seq2seq.VOCAB[t] for t in src[0] if t != 0]
    assert layer.key_tokens[0] == real_src
    assert layer.query_tokens[0][0] == "<start>"
    assert layer.maps[0].shape[-2:] == (len(real_src) + 1, len(real_src))
    np.testing.assert_allclose(layer.maps[0][-1].sum(-1), 1.0, atol=1 / 255 * len(real_src))
