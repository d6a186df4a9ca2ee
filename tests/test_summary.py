"""The summary op on hand-made scores, read back with the notebook reader."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import only_layer
from tb_attention_plugin.writing import summary


def _write(logdir, name, scores, step=0, **kwargs):
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        assert summary.attention(name, scores, step=step, **kwargs)
    writer.close()


def test_padded_keys_receive_no_attention_and_are_cropped(tmp_path):
    # 3 real tokens then 1 pad; rows over the real keys only.
    scores = np.zeros((1, 1, 4, 4), np.float32)
    scores[0, 0, :3, :3] = [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.0, 0.2, 0.8]]
    mask = np.array([[True, True, True, False]])
    _write(tmp_path, "enc", scores, query_mask=mask, key_mask=mask,
           query_tokens=[["a", "b", "c", "<pad>"]], encoding="float32")
    layer = only_layer(tmp_path, "enc")
    assert layer.maps[0].shape == (1, 1, 3, 3)  # steps, heads, q, k: pad cropped
    assert layer.key_tokens[0] == ["a", "b", "c"]
    np.testing.assert_allclose(layer.received[0][0, 0], [0.6, 1.25, 1.15], atol=1e-6)
    np.testing.assert_allclose(layer.received[0][0, 1], [0.6, 1.25, 1.15], atol=1e-6)  # head mean
    np.testing.assert_allclose(layer.given[0][0, 0], [1.0, 1.0, 1.0], atol=1e-6)


def test_front_padding_is_cropped_at_its_offset(tmp_path):
    scores = np.zeros((1, 5, 5), np.float32)  # no head axis: one head
    scores[0, 2:, 2:] = 1.0 / 3
    mask = np.array([[False, False, True, True, True]])
    _write(tmp_path, "att", scores, query_mask=mask, key_mask=mask)
    layer = only_layer(tmp_path, "att")
    assert layer.num_heads == 1
    assert layer.query_tokens[0] == ["2", "3", "4"]
    np.testing.assert_allclose(layer.maps[0][0, 0], np.full((3, 3), 1 / 3), atol=1 / 510)


def test_causal_map_is_stored_lower_triangular_and_labelled_causal(tmp_path):
    n = 4
    causal = np.tril(np.ones((n, n)))
    causal /= causal.sum(axis=1, keepdims=True)
    _write(tmp_path, "dec", causal[None, None].astype(np.float32))
    layer = only_layer(tmp_path, "dec")
    assert layer.kind == "causal"
    stored = layer.maps[0][0, 0]
    assert np.all(stored[np.triu_indices(n, 1)] == 0)
    np.testing.assert_allclose(stored[3], [0.25] * 4, atol=1 / 510)


def test_cross_attention_keeps_query_and_key_tokens_apart(tmp_path):
    scores = np.full((1, 2, 2, 3), 1 / 3, np.float32)
    _write(tmp_path, "cross", scores, query_tokens=[["x", "y"]], key_tokens=[["a", "b", "c"]])
    layer = only_layer(tmp_path, "cross")
    assert layer.kind == "cross"
    assert (layer.query_tokens[0], layer.key_tokens[0]) == (["x", "y"], ["a", "b", "c"])
    np.testing.assert_allclose(layer.received[0][0, 0], [2 / 3] * 3, atol=1e-6)


def test_uint8_storage_is_one_byte_per_cell_within_bound(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 16, 16))
    scores = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    _write(tmp_path, "mha", scores)
    layer = only_layer(tmp_path, "mha")
    for i in range(2):
        assert np.abs(layer.maps[i][0] - scores[i]).max() <= 1 / 510 + 1e-7


@pytest.mark.parametrize(
    "scores, kwargs, message",
    [
        (np.full((1, 2, 2), np.nan), {}, "NaN or Inf"),
        (np.ones((2, 2)), {}, "shape \\(batch, heads, q, k\\)"),
        (np.full((1, 2, 2), 0.5), {"query_tokens": [["a"]]}, "has 1 tokens"),
        (np.full((1, 2, 2), 0.5), {"query_tokens": [["a", "b"], ["c", "d"]]}, "has 2 examples"),
        (np.full((1, 2, 2), 0.5), {"encoding": "png"}, 'encoding "png" is not known'),
        (np.full((1, 2, 2), 0.5), {"query_mask": np.ones((1, 3), bool)}, "query_mask must have shape"),
    ],
)
def test_bad_scores_or_arguments_raise_a_clear_error(tmp_path, scores, kwargs, message):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(), pytest.raises(ValueError, match=message):
        summary.attention("bad", scores, step=0, **kwargs)


def test_summary_op_refuses_graph_mode_with_advice():
    @tf.function
    def step():
        summary.attention("x", tf.ones((1, 2, 2)) / 2, step=0)

    with pytest.raises(RuntimeError, match="outside tf.function"):
        step()
