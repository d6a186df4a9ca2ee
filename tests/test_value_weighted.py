"""Value-weighted attention (issue 35, Kobayashi et al., EMNLP 2020): in real
fits, the stored norm of what each key sends through each head equals
||(x_j W_V^h + b_V^h) W_O^h|| computed by hand, in float64 numpy, from the
layer's own weights and the inputs it received in an eager call of the
trained model; weight x norm equals the hand value-weighted map; the head
metrics of the value-weighted maps equal the hand formula; a layer whose
value is not known stores none (missing, never zeros); value_weighted=False
stores nothing extra.

Tolerances: the probe computes the norms in float32, through each head's
Gram matrix W_O W_O^T (writing/value_vectors.py), the reference in float64
directly: their sums round differently, a few float32 ulps of the norm;
rtol 1e-5 is ~80 ulps and far below any difference a reader could see.
"""

import keras
import numpy as np
import pytest

from conftest import GRAPH_VS_EAGER
from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.format import metadata
from tb_attention_plugin.format import reader as reader_lib

NORM_RTOL = 1e-5
LEN, VOCAB, PAD = 10, 30, 3


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (n, LEN))
    x[:, LEN - PAD:] = 0  # padded at the end: the maps are cropped to 7 tokens
    return x, rng.normal(size=(n, 1)).astype("float32")


def _model(gate=False):
    """Embedding (mask_zero) -> MultiHeadAttention -> GroupQueryAttention (4
    query heads, 2 key/value heads) -> regression head."""
    inp = keras.Input((LEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=True, name="embed")(inp)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    x = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2,
                                         use_gate=gate, name="gqa")(x, x)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))
    model.compile("adam", "mse")
    return model


def _eager_calls(model, probe, layers):
    """{layer path: (args, kwargs)} each of `layers` received in an eager
    call of `model` on `probe` (keras_hub's layers on their explicit path)."""
    from conftest import explicit_attention

    seen, restore = {}, []
    for layer in layers:
        original = layer.call

        def wrapper(*args, _original=original, _layer=layer, **kwargs):
            seen.setdefault(_layer.path, (args, kwargs))
            return _original(*args, **kwargs)

        object.__setattr__(layer, "call", wrapper)
        restore.append(layer)
    try:
        with explicit_attention():
            model(probe, training=False)
    finally:
        for layer in restore:
            object.__delattr__(layer, "call")
    return seen


def _inputs_and_weights(model, probe, layers):
    """{layer path: (its `value` input (batch, k, width) as it received it in
    an eager call, its attention probabilities (batch, heads, q, k))}."""
    seen = _eager_calls(model, probe, layers)
    out = {}
    for layer in layers:
        args, kwargs = seen[layer.path]
        value = kwargs["value"] if "value" in kwargs else args[1] if len(args) > 1 else None
        value = (kwargs["query"] if "query" in kwargs else args[0]) if value is None else value
        scores = layer(*args, **dict(kwargs, return_attention_scores=True, training=False))[1]
        out[layer.path] = (np.asarray(keras.ops.convert_to_numpy(value), np.float64),
                           np.asarray(keras.ops.convert_to_numpy(scores), np.float64))
    return out


def _hand_norms(layer, value_input, through_output=True):
    """(batch, query heads, k) float64: ||(x W_V^h + b_V^h) W_O^h|| by hand."""
    w_v = np.asarray(keras.ops.convert_to_numpy(layer._value_dense.kernel), np.float64)  # (width, heads, dv)
    b_v = np.asarray(keras.ops.convert_to_numpy(layer._value_dense.bias), np.float64)  # (heads, dv)
    v = np.einsum("bkw,whd->bkhd", value_input, w_v) + b_v
    w_o = np.asarray(keras.ops.convert_to_numpy(layer._output_dense.kernel), np.float64)  # (heads, dv, out)
    if v.shape[2] != w_o.shape[0]:  # grouped-query: key/value head g serves query heads g*r .. g*r + r - 1
        v = np.repeat(v, w_o.shape[0] // v.shape[2], axis=2)
    sent = np.einsum("bkhd,hdo->bkho", v, w_o) if through_output else v
    return np.linalg.norm(sent, axis=-1).transpose(0, 2, 1)


def _fit_backbone(tmp_path, backbone, inputs, output):
    """A regression head on a keras_hub backbone's `output`, fit on `inputs`
    with AttentionCallback (float32 maps, probe of 2): (model, probe, what
    read_attention reads of the run)."""
    model = keras.Model(backbone.input, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(output)))
    model.compile("adam", "mse")
    probe = {k: v[:2] for k, v in inputs.items()}
    model.fit(inputs, _data()[1], batch_size=4, verbose=0, callbacks=[
        AttentionCallback(tmp_path, probe, update_freq=2, encoding="float32")])
    return model, probe, read_attention(str(tmp_path))["."]


def _fit(tmp_path, model, **callback_args):
    x, y = _data()
    callback = AttentionCallback(tmp_path, x[:2], update_freq=2, encoding="float32", **callback_args)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.captured_steps == [0, 2, 3]
    return x[:2], read_attention(str(tmp_path))["."]


def test_value_norms_and_value_weighted_maps_equal_the_hand_computation(tmp_path):
    model = _model()
    probe, layers = _fit(tmp_path, model)
    attention = [model.get_layer("mha"), model.get_layer("gqa")]
    seen = _inputs_and_weights(model, probe, attention)
    real = LEN - PAD
    for layer in attention:
        stored = layers[layer.path]
        value_input, probabilities = seen[layer.path]
        norms = _hand_norms(layer, value_input)
        assert stored.value_vector == "value_output"
        heads = 2 if layer.name == "mha" else 4
        for e in range(2):
            # The last capture is the trained model's; every key the maps keep.
            assert stored.value_norms[e].shape == (3, heads, real)
            np.testing.assert_allclose(stored.value_norms[e][-1], norms[e, :, :real], rtol=NORM_RTOL)
            # weight x norm: what key j passes to query i, by hand
            expected = probabilities[e, :, :real, :real] * norms[e, :, None, :real]
            np.testing.assert_allclose(stored.value_weighted(e, -1), expected,
                                       rtol=NORM_RTOL, atol=GRAPH_VS_EAGER * norms.max())
            # The value-weighted head metrics: the entropy of each row's
            # shares, averaged over the rows, as head_metrics' "entropy".
            shares = expected / expected.sum(-1, keepdims=True)
            entropy = -(shares * np.log(shares)).sum(-1).mean(-1)
            column = stored.value_metric_names.index("entropy")
            np.testing.assert_allclose(stored.value_metrics[-1, e, :, column], entropy, rtol=1e-5)
            assert np.all(np.isnan(stored.value_metrics[:, e, :, stored.value_metric_names.index("change")]))
        # The norms differ between heads and keys: a weight alone does not say them.
        assert np.ptp(norms[:, :, :real]) > 0.1 * norms.max()


def test_a_gated_layer_stores_the_value_vectors_own_norm_and_says_so(tmp_path):
    # The gate multiplies each query's output before W_O: no per-key vector
    # goes through it, so the norm is that of x W_V + b_V, labelled.
    model = _model(gate=True)
    probe, layers = _fit(tmp_path, model)
    gqa = model.get_layer("gqa")
    value_input, _ = _inputs_and_weights(model, probe, [gqa])[gqa.path]
    stored = layers[gqa.path]
    assert stored.value_vector == "value_only" and layers["mha"].value_vector == "value_output"
    np.testing.assert_allclose(stored.value_norms[0][-1], _hand_norms(gqa, value_input, False)[0, :, :LEN - PAD],
                               rtol=NORM_RTOL)


def test_value_weighted_false_stores_nothing_extra_and_other_layers_are_marked_missing(tmp_path):
    _, off = _fit(tmp_path / "off", _model(), value_weighted=False)
    assert all(layer.value_norms is None and layer.value_metrics is None for layer in off.values())
    tags = reader_lib._read_run(reader_lib.event_files(str(tmp_path / "off"))["."])
    assert not [t for t in tags if t.endswith(("/_value_norms", "/_value_metrics"))]
    # A Dense(softmax) attention block (the seed's LSTM attention): no value
    # is known, so none is stored, and the reader says None, never zeros.
    inp = keras.Input((LEN, 4))
    weights = keras.layers.Dense(LEN, activation="softmax", name="attention_weights")(
        keras.layers.Permute((2, 1))(inp))
    out = keras.layers.Dense(1)(keras.layers.Flatten()(weights))
    model = keras.Model(inp, out)
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(8, LEN, 4)).astype("float32")
    model.fit(x, np.zeros((8, 1)), batch_size=4, verbose=0, callbacks=[
        AttentionCallback(tmp_path / "dense", x[:2], layers=["attention_weights"], update_freq=2)])
    stored = read_attention(str(tmp_path / "dense"))["."]["attention_weights"]
    assert stored.value_norms is None and stored.value_vector == "" and stored.value_weighted(0, -1) is None


@pytest.mark.parametrize("family", ["bert", "gpt2", "gpt2-lora"])
def test_keras_hub_models_store_the_norms_their_layers_compute(tmp_path, family):
    keras_hub = pytest.importorskip("keras_hub")
    config = dict(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                  max_sequence_length=LEN)
    backbone = (keras_hub.models.BertBackbone if family == "bert" else keras_hub.models.GPT2Backbone)(**config)
    if family == "gpt2-lora":
        # LoRA on the query and value projections (keras_hub's default targets):
        # the value vectors are those of the adapted kernel (W + a b alpha / r),
        # which the hand computation reads as Keras defines it (EinsumDense.kernel).
        backbone.enable_lora(rank=2)
    x, _ = _data()
    inputs = {"token_ids": x, "padding_mask": (x != 0).astype("int32")}
    if family == "bert":
        inputs["segment_ids"] = np.zeros_like(x)
    model, probe, layers = _fit_backbone(
        tmp_path, backbone, inputs, backbone.output["sequence_output"] if family == "bert" else backbone.output)
    attention = [l for l in model._flatten_layers(include_self=False)
                 if isinstance(l, keras.layers.MultiHeadAttention)]
    seen = _inputs_and_weights(model, probe, attention)
    assert sorted(layers) == sorted(l.path for l in attention)
    for layer in attention:
        value_input, _ = seen[layer.path]
        stored = layers[layer.path]
        assert stored.value_vector == "value_output"
        if family == "gpt2-lora":  # the adapter was trained: the norms differ from the frozen kernel's
            dense = layer._value_dense
            assert dense.lora_enabled and np.abs(keras.ops.convert_to_numpy(dense.lora_kernel_b)).max() > 0
            w_v = np.asarray(keras.ops.convert_to_numpy(dense._kernel), np.float64)  # without the adapter
            b_v = np.asarray(keras.ops.convert_to_numpy(dense.bias), np.float64)
            frozen = np.einsum("bkw,whd->bkhd", value_input, w_v) + b_v
            w_o = np.asarray(keras.ops.convert_to_numpy(layer._output_dense.kernel), np.float64)
            frozen = np.linalg.norm(np.einsum("bkhd,hdo->bkho", frozen, w_o), axis=-1).transpose(0, 2, 1)
            assert not np.allclose(stored.value_norms[0][-1], frozen[0, :, :LEN - PAD], rtol=10 * NORM_RTOL)
        np.testing.assert_allclose(stored.value_norms[0][-1], _hand_norms(layer, value_input)[0, :, :LEN - PAD],
                                   rtol=NORM_RTOL)


def test_the_summary_op_stores_given_norms_and_refuses_bad_ones(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from tb_attention_plugin import summary

    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(5), size=(1, 2, 5)).astype("float32")  # (batch, heads, q, k)
    norms = rng.uniform(0.5, 2.0, (1, 2, 5)).astype("float32")
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        assert summary.attention("layer", scores, step=1, value_norms=norms, encoding="float32")
        with pytest.raises(ValueError, match=r"value_norms of 'layer' must have shape \(batch, heads, k\)"):
            summary.attention("layer", scores, step=2, value_norms=norms[:, :1])
        with pytest.raises(ValueError, match="negative, NaN or Inf"):
            summary.attention("layer", scores, step=2, value_norms=-norms)
    stored = read_attention(str(tmp_path))["."]["layer"]
    np.testing.assert_array_equal(stored.value_norms[0][0], norms[0])
    np.testing.assert_allclose(stored.value_weighted(0, 0), scores[0] * norms[0][:, None, :], rtol=1e-7)
    assert metadata.ROLE_NAMES[metadata.PluginData.VALUE_NORMS] == "value_norms"


def _dense_value(dense, x):
    """An EinsumDense applied by hand, in float64, with its own equation."""
    kernel = np.asarray(keras.ops.convert_to_numpy(dense.kernel), np.float64)
    out = np.einsum(dense.equation, x, kernel)
    if getattr(dense, "bias", None) is not None:
        out = out + np.asarray(keras.ops.convert_to_numpy(dense.bias), np.float64)
    return out


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_layers_with_their_own_softmax_store_the_norms_of_the_values_their_product_reads(tmp_path, family):
    # keras_hub Llama (key/value heads repeated before "buqk,bkuh->bquh") and
    # Gemma (kept apart: "bkgts,bskh->btkgh"), 4 query heads over 2 key/value
    # heads: query head n reads key/value head n // 2, through W_O[n].
    keras_hub = pytest.importorskip("keras_hub")
    config = dict(vocabulary_size=VOCAB, num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=16,
                  intermediate_dim=32)
    backbone = (keras_hub.models.LlamaBackbone(**config) if family == "llama"
                else keras_hub.models.GemmaBackbone(head_dim=4, **config))
    x, _ = _data()
    model, probe, layers = _fit_backbone(
        tmp_path, backbone, {"token_ids": x, "padding_mask": (x != 0).astype("int32")}, backbone.output)
    attention = [l for l in model._flatten_layers(include_self=False)
                 if type(l).__name__ in ("LlamaAttention", "CachedGemmaAttention")]
    assert len(attention) == 2 and sorted(layers) == sorted(l.path for l in attention)
    seen = _eager_calls(model, probe, attention)  # the input each layer received (hidden_states / x)
    for layer in attention:
        value_dense = layer._value_dense if family == "llama" else layer.value_dense
        output_dense = layer._output_dense if family == "llama" else layer.output_dense
        args, kwargs = seen[layer.path]
        given = np.asarray(keras.ops.convert_to_numpy(args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))),
                           np.float64)
        v = np.repeat(_dense_value(value_dense, given), 2, axis=2)  # (batch, keys, 4 query heads, dim)
        w_o = np.asarray(keras.ops.convert_to_numpy(output_dense.kernel), np.float64)  # (4, dim, width)
        norms = np.linalg.norm(np.einsum("bkhd,hdo->bkho", v, w_o), axis=-1).transpose(0, 2, 1)
        stored = layers[layer.path]
        assert stored.value_vector == "value_output" and stored.value_norms[0].shape == (3, 4, LEN - PAD)
        for e in range(2):
            np.testing.assert_allclose(stored.value_norms[e][-1], norms[e, :, :LEN - PAD], rtol=NORM_RTOL)
        # each key/value head's two query heads differ only by W_O
        assert not np.allclose(norms[:, 0], norms[:, 1], rtol=1e-3)
