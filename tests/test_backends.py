"""Capture on every Keras backend (issue 31). This file and the others in
the Makefile's BACKEND_TESTS (Keras's attention layers, every mask form,
shared layers, the model zoo, the LLM fine-tuning habits, long probes
stored reduced) run once per
backend: `make test` runs them under TensorFlow with the rest of the suite,
then again with KERAS_BACKEND=jax
(and two host devices, XLA_FLAGS=--xla_force_host_platform_device_count=2,
for the DataParallel test) and with KERAS_BACKEND=torch. Tests that only
mean something on some backends say so when skipped.

References are the probabilities the layer computes in an eager call, read
by a different hook than the capture's (a wrapper around `keras.ops.softmax`
in an eager call, or Keras's `return_attention_scores`).
"""

import keras
import numpy as np
import pytest

from conftest import GRAPH_VS_EAGER, explicit_attention
from tb_attention_plugin import AttentionCallback, read_attention

BACKEND = keras.config.backend()
on_jax = pytest.mark.skipif(BACKEND != "jax", reason="a JAX-only path (run with KERAS_BACKEND=jax)")
with_fused_attention = pytest.mark.skipif(
    BACKEND not in ("jax", "torch"), reason="keras_hub has a fused attention path on JAX and torch only")
V, T, PAD, N, B = 30, 8, 3, 16, 3  # vocabulary, length, padded tail, examples, probe examples


def _ids(seed=0):
    ids = np.random.default_rng(seed).integers(1, V, (N, T))
    ids[:, T - PAD:] = 0
    return ids


class HandWrittenAttention(keras.layers.Layer):
    """Causal single-head attention over real tokens, written with
    keras.ops as a user would on any backend (the mask is 1 = keep)."""

    def __init__(self, dim, **kw):
        super().__init__(**kw)
        self.q, self.k, self.v = (keras.layers.Dense(dim) for _ in range(3))

    def call(self, x, padding_mask):
        scores = keras.ops.einsum("btd,bsd->bts", self.q(x), self.k(x)) / 2.0
        length = keras.ops.shape(x)[1]
        causal = keras.ops.tril(keras.ops.ones((length, length), "bool"))
        keep = keras.ops.logical_and(causal[None], keras.ops.cast(padding_mask, "bool")[:, None, :])
        weights = keras.ops.softmax(keras.ops.where(keep, scores, -1e9), axis=-1)
        return keras.ops.einsum("bts,bsd->btd", weights, self.v(x))


def _hand_written_model():
    ids = keras.Input((T,), dtype="int32", name="token_ids")
    mask = keras.Input((T,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(V, 8)(ids)
    x = x + HandWrittenAttention(8, name="my_attention")(x, mask)
    model = keras.Model({"token_ids": ids, "padding_mask": mask},
                        keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))
    model.compile("adam", "mse")
    return model


def _softmax_in_eager_call(model, probe):
    seen, original = [], keras.ops.softmax

    def softmax(x, *a, **k):
        out = original(x, *a, **k)
        seen.append(keras.ops.convert_to_numpy(out))
        return out

    keras.ops.softmax = softmax
    try:
        model(probe, training=False)
    finally:
        keras.ops.softmax = original
    return seen


def test_hand_written_keras_ops_attention_is_found_cropped_and_faithful(tmp_path):
    model = _hand_written_model()
    ids = _ids()
    x = {"token_ids": ids, "padding_mask": (ids != 0).astype("int32")}
    probe = {k: v[:B] for k, v in x.items()}
    callback = AttentionCallback(tmp_path, probe, update_freq=2, encoding="float32", tokens=None)
    model.fit(x, np.zeros((N, 1)), batch_size=4, verbose=0, callbacks=[callback])
    assert callback.captured_steps == [0, 2, 4]
    stored = read_attention(str(tmp_path))["."]["my_attention"]
    (reference,) = _softmax_in_eager_call(model, probe)
    real = T - PAD
    assert stored.kind == "causal" and stored.num_heads == 1
    assert stored.layer_class == "HandWrittenAttention"
    for i in range(B):
        assert stored.maps[i].shape == (3, 1, real, real)  # padding cropped
        np.testing.assert_allclose(stored.maps[i][-1][0], reference[i, :real, :real], atol=GRAPH_VS_EAGER, rtol=0)
        # row r spreads over keys 0..r only (causal), each row summing to 1
        assert np.all(np.triu(stored.maps[i][-1][0], 1) == 0)


def _mha_model():
    inp = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(V, 8, mask_zero=True)(inp)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))
    model.compile("adam", "mse")
    return model


def _mha_reference(model, probe):
    embedded = model.layers[1](probe)
    keep = (probe != 0)[:, None, :]
    _, weights = model.get_layer("mha")(embedded, embedded, attention_mask=keep,
                                        return_attention_scores=True, training=False)
    return keras.ops.convert_to_numpy(weights)


def test_captures_see_the_weights_of_their_step_not_those_of_the_trace(tmp_path):
    # On JAX the probe is compiled once with the weights as arguments: were
    # they constants of the trace, every capture would repeat the first.
    model = _mha_model()
    model.compile(keras.optimizers.Adam(0.05), "mse")  # large steps: the maps move visibly
    ids = _ids()
    callback = AttentionCallback(tmp_path, ids[:B], update_freq=1, encoding="float32")
    model.fit(ids, 5 * ids[:, :1], batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    stored = read_attention(str(tmp_path))["."]["mha"]
    assert list(stored.steps) == list(range(9))
    first, last = stored.maps[0][0], stored.maps[0][-1]
    assert np.abs(first - last).max() > 0.01  # training moved the maps
    np.testing.assert_allclose(last, _mha_reference(model, ids[:B])[0, :, :T - PAD, :T - PAD],
                               atol=GRAPH_VS_EAGER, rtol=0)


@with_fused_attention
@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_keras_hub_fused_attention_and_the_explicit_path_the_probe_takes_agree(family):
    # On JAX and torch keras_hub's layers train through a fused dot_product_attention
    # that never forms the probabilities; the probe takes their explicit
    # path (capture._explicit_path_patches). Same layer, same weights: the
    # outputs agree to float32 rounding, so the probabilities shown are
    # those of the function that trains.
    keras_hub = pytest.importorskip("keras_hub")
    config = dict(vocabulary_size=V, num_layers=2, num_query_heads=4, num_key_value_heads=2,
                  hidden_dim=16, intermediate_dim=32)
    backbone = (keras_hub.models.LlamaBackbone(**config) if family == "llama"
                else keras_hub.models.GemmaBackbone(head_dim=4, **config))
    ids = _ids()[:B]
    inputs = {"token_ids": ids, "padding_mask": (ids != 0).astype("int32")}
    fused = keras.ops.convert_to_numpy(backbone(inputs))
    with explicit_attention():
        explicit = keras.ops.convert_to_numpy(backbone(inputs))
    assert np.abs(fused).max() > 0.1  # a real output, not zeros
    np.testing.assert_allclose(fused, explicit, atol=1e-5, rtol=1e-5)


@on_jax
def test_data_parallel_on_two_devices_captures_once_and_faithfully(tmp_path):
    import jax

    if jax.device_count() < 2:
        pytest.skip("needs two devices: XLA_FLAGS=--xla_force_host_platform_device_count=2")
    distribution = keras.distribution.DataParallel(devices=jax.devices()[:2])
    keras.distribution.set_distribution(distribution)
    try:
        model = _mha_model()
        ids = _ids()
        callback = AttentionCallback(tmp_path, ids[:B + 1], update_freq=2, encoding="float32")
        model.fit(ids, np.ones((N, 1)), batch_size=4, verbose=0, callbacks=[callback])
        # the weights are laid out over both devices
        kernel = model.get_layer("mha").query_dense.kernel.value
        assert len(kernel.sharding.device_set) == 2
    finally:
        keras.distribution.set_distribution(None)
    assert callback.captured_steps == [0, 2, 4]
    stored = read_attention(str(tmp_path))["."]["mha"]
    assert list(stored.steps) == [0, 2, 4] and len(stored.maps) == B + 1  # one capture per step
    reference = _mha_reference(model, ids[:B + 1])
    for i in range(B + 1):
        np.testing.assert_allclose(stored.maps[i][-1], reference[i, :, :T - PAD, :T - PAD],
                                   atol=GRAPH_VS_EAGER, rtol=0)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="tf.distribute's chief: tests/test_reliability.py::test_multi_worker_mirrored_strategy_only_the_chief_writes")
def test_only_process_zero_writes(tmp_path, monkeypatch):
    # as on the second process of two: JAX's process index, torch.distributed's rank
    if BACKEND == "jax":
        import jax

        monkeypatch.setattr(jax, "process_index", lambda: 1)
    else:  # what the callback asks of torch.distributed (Keras asks it more: not patched)
        import types

        from tb_attention_plugin.writing.backends import torch as torch_backend

        monkeypatch.setattr(torch_backend, "_distributed", types.SimpleNamespace(
            is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda: 1))
    model = _mha_model()
    ids = _ids()
    callback = AttentionCallback(tmp_path / "run", ids[:B], update_freq=2)
    history = model.fit(ids, np.ones((N, 1)), batch_size=4, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 1  # trained
    assert callback.captured_steps == [] and not (tmp_path / "run").exists()
