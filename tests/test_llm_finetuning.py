"""What a person fine-tuning a keras_hub language model does first (issue
30): Gemma's and Gemma3's grouped query heads, Gemma3's sliding-window local
layers, LoRA, DeBERTa-v3's relative position embeddings, bfloat16 and float16.
keras_hub models are built from config (random weights, nothing downloaded)
and trained with AttentionCallback in a real model.fit.

The reference is the probabilities as the layer's next product consumes
them: `keras.ops.einsum` is wrapped during an eager call of the trained model
and records the first operand of the probabilities-times-values einsum
(Gemma: "bkgts,bskh->btkgh", DeBERTa: "acbe,aecd->abcd"). The capture hooks
the layer's Softmax sublayer in a traced graph instead.
"""

import numpy as np
import pytest

from conftest import GRAPH_VS_EAGER, explicit_attention
from tb_attention_plugin import AttentionCallback, read_attention

keras_hub = pytest.importorskip(
    "keras_hub", reason="keras-hub needs Python >= 3.11; `make install` installs it there"
)
import keras  # noqa: E402

V, S, PAD = 50, 12, 3  # vocabulary, padded length, padded tail of every example
N, B = 12, 3  # training examples, probe examples
REAL = S - PAD
KV, GROUPS = 2, 2  # Gemma: 4 query heads in 2 key/value groups
VOCAB = ["<pad>", "<bos>"] + ["w%d" % i for i in range(2, V)]


def _text(seed=0):
    ids = np.random.default_rng(seed).integers(2, V, (N, S))
    ids[:, REAL:] = 0
    return {"token_ids": ids, "padding_mask": (ids != 0).astype("int32")}


def _gemma(**kw):
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=V, num_layers=2, num_query_heads=KV * GROUPS, num_key_value_heads=KV,
        hidden_dim=16, intermediate_dim=32, head_dim=4, **kw)


def _gemma3(window=4):
    # 6 layers: Gemma3 makes every 6th layer global, the others local
    return keras_hub.models.Gemma3Backbone(
        vocabulary_size=V, image_size=16, num_layers=6, num_query_heads=KV * GROUPS,
        num_key_value_heads=KV, hidden_dim=16, intermediate_dim=32, head_dim=4,
        sliding_window_size=window, use_sliding_window_attention=True, vision_encoder=None)


def _model(backbone):
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(backbone.output))
    model = keras.Model(backbone.input, out)
    model.compile("adam", "mse")
    return model


def _fit(model, x, logdir, **callback_args):
    """3 steps of batch 4, captures at 0, 2 and 3; returns the log's layers."""
    probe = {k: v[:B] for k, v in x.items()}
    callback = AttentionCallback(logdir, probe, update_freq=2, encoding="float32", **callback_args)
    history = model.fit(x, np.zeros((N, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.captured_steps == [0, 2, 3]
    return read_attention(str(logdir))["."], probe, history


def _probabilities_consumed(model, probe, equation):
    """[array] the first operand of every `equation` einsum of an eager
    call of `model` on `probe`, in the order the layers ran."""
    seen, original = [], keras.ops.einsum

    def einsum(eq, *operands, **kw):
        if eq == equation:
            seen.append(keras.ops.convert_to_numpy(operands[0]).astype(np.float32))
        return original(eq, *operands, **kw)

    keras.ops.einsum = einsum
    try:
        with explicit_attention():
            model(probe, training=False)
    finally:
        keras.ops.einsum = original
    return seen


def _attention_layers(model, class_name):
    return [l for l in model._flatten_layers(include_self=False) if type(l).__name__ == class_name]


def _zero_query_head(layer, head):
    """A query head whose queries are 0 attends uniformly to every key it
    can see: its place in the stored maps shows the layer's head order."""
    kernel = layer.query_dense.kernel
    values = keras.ops.convert_to_numpy(kernel).copy()
    values[head] = 0  # "btd,ndh->btnh": the kernel's first axis is the query head
    kernel.assign(values)


def test_gemma_grouped_query_heads_are_stored_per_query_head_in_the_layers_order(tmp_path):
    backbone = _gemma()
    model = _model(backbone)
    attention = _attention_layers(model, "CachedGemmaAttention")
    # freeze query head 2 (kv head 1, group 0) at zero queries: training
    # leaves it uniform over what each query can see
    for layer in attention:
        _zero_query_head(layer, 2)
        layer.query_dense.trainable = False
    layers, probe, _ = _fit(model, _text(), tmp_path, tokens=VOCAB)
    assert sorted(layers) == ["decoder_block_0/attention", "decoder_block_1/attention"]
    consumed = _probabilities_consumed(model, probe, "bkgts,bskh->btkgh")
    assert len(consumed) == 2 and consumed[0].shape == (B, KV, GROUPS, S, S)
    for stored, reference in zip((layers[t] for t in sorted(layers)), consumed):
        assert stored.kind == "causal" and stored.num_heads == 4
        assert stored.layer_class == "CachedGemmaAttention"
        for i in range(B):
            for head in range(4):  # query head n is kv head n // groups, group n % groups
                expected = reference[i, head // GROUPS, head % GROUPS, :REAL, :REAL]
                np.testing.assert_allclose(stored.maps[i][-1][head], expected, atol=GRAPH_VS_EAGER, rtol=0)
        # head 2 attends uniformly: row r holds 1 / (r + 1) on keys 0..r
        uniform = np.tril(np.ones((REAL, REAL))) / np.arange(1, REAL + 1)[:, None]
        np.testing.assert_allclose(stored.maps[0][-1][2], uniform, atol=GRAPH_VS_EAGER)
        assert not np.allclose(stored.maps[0][-1][1], uniform, atol=1e-3)
        assert stored.key_tokens[0] == [VOCAB[t] for t in probe["token_ids"][0, :REAL]]


def test_gemma3_local_layers_store_their_sliding_window_and_global_layers_none(tmp_path):
    window = 4
    backbone = _gemma3(window)
    model = _model(backbone)
    attention = _attention_layers(model, "CachedGemma3Attention")
    for layer in attention:
        _zero_query_head(layer, 0)
        layer.query_dense.trainable = False
    layers, probe, _ = _fit(model, _text(), tmp_path)
    tags = ["decoder_block_%d/attention" % i for i in range(6)]
    assert sorted(layers) == tags
    assert [layers[t].sliding_window for t in tags] == [window] * 5 + [0]
    consumed = _probabilities_consumed(model, probe, "bkgts,bskh->btkgh")
    rows, cols = np.indices((REAL, REAL))
    visible_local = (cols <= rows) & (rows - cols < window)
    for tag, reference in zip(tags, consumed):
        stored = layers[tag]
        assert stored.kind == "causal" and stored.num_heads == 4
        for i in range(B):
            expected = reference[i].reshape(4, S, S)[:, :REAL, :REAL]
            np.testing.assert_allclose(stored.maps[i][-1], expected, atol=GRAPH_VS_EAGER, rtol=0)
        visible = visible_local if stored.sliding_window else (cols <= rows)
        # keys out of the window get no weight; head 0 (zero queries) is
        # uniform over the keys a row can see: min(r + 1, window) of them
        assert np.all(stored.maps[0][-1][:, ~visible] == 0)
        uniform = visible / visible.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(stored.maps[0][-1][0], uniform, atol=GRAPH_VS_EAGER)
        # so its normalised entropy, over the keys it could see, is 1
        names = list(stored.metric_names)
        entropy = stored.head_metrics[-1, 0, 0, names.index("normalized_entropy")]
        assert entropy == pytest.approx(1.0, abs=1e-5), tag


def test_lora_backbone_trains_alike_with_and_without_the_callback(tmp_path):
    def run(with_callback):
        keras.backend.clear_session()  # the same layer names in both runs
        keras.utils.set_random_seed(1)
        backbone = _gemma()
        backbone.enable_lora(rank=4)
        model = _model(backbone)
        trainable = sorted(v.path for v in model.trainable_variables)
        x = _text()
        if with_callback:
            layers, _, history = _fit(model, x, tmp_path)
        else:
            history = model.fit(x, np.zeros((N, 1)), batch_size=4, epochs=1, verbose=0)
            layers = None
        assert sorted(v.path for v in model.trainable_variables) == trainable
        return model, trainable, history.history["loss"], layers

    bare, bare_trainable, bare_loss, _ = run(False)
    model, trainable, loss, layers = run(True)
    assert trainable == bare_trainable and any("lora" in path for path in trainable)
    assert loss == bare_loss
    for a, b in zip(bare.weights, model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    consumed = _probabilities_consumed(model, {k: v[:B] for k, v in _text().items()}, "bkgts,bskh->btkgh")
    for tag, reference in zip(sorted(layers), consumed):
        np.testing.assert_allclose(layers[tag].maps[1][-1], reference[1].reshape(4, S, S)[:, :REAL, :REAL],
                                   atol=GRAPH_VS_EAGER, rtol=0)


def test_deberta_relative_position_embeddings_are_not_taken_for_a_second_sequence(tmp_path, caplog):
    # bucket_size 6: the relative embeddings are 2 x 6 = 12 long, the
    # length of the token sequence itself; still not a key sequence
    backbone = keras_hub.models.DebertaV3Backbone(
        vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=S, bucket_size=S // 2)
    model = _model(backbone)
    layers, probe, _ = _fit(model, _text(), tmp_path, tokens={"token_ids": VOCAB})
    consumed = _probabilities_consumed(model, probe, "acbe,aecd->abcd")
    assert len(layers) == 2 and len(consumed) == 2
    for tag, reference in zip(sorted(layers), consumed):
        stored = layers[tag]
        assert stored.kind == "self", tag
        for i in range(B):  # padded query rows are cropped too: REAL x REAL
            np.testing.assert_allclose(stored.maps[i][-1], reference[i, :, :REAL, :REAL], atol=GRAPH_VS_EAGER)
    assert "could not tell" not in caplog.text


def _mha_model():
    ids = keras.Input((S,), dtype="int32")
    x = keras.layers.Embedding(V, 16, mask_zero=True)(ids)
    x = x + keras.layers.MultiHeadAttention(2, 8, name="mha")(x, x)
    return keras.Model(ids, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_alike_and_stores_the_layers_own_probabilities(tmp_path, policy):
    if policy == "mixed_float16" and keras.config.backend() == "jax":
        pytest.skip("JAX cannot train float16 on the CPU, callback or not: XLA's dot_general "
                    "refuses F16_F16_F32 there")
    ids = _text()["token_ids"]

    def run(with_callback):
        keras.backend.clear_session()  # which also resets the global policy
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(2)
        model = _mha_model()
        model.compile("adam", "mse")
        callbacks = [AttentionCallback(tmp_path, ids[:B], update_freq=2)] if with_callback else []
        history = model.fit(ids, np.ones((N, 1)), batch_size=4, verbose=0, callbacks=callbacks)
        return model, history.history["loss"]

    try:
        bare, bare_loss = run(False)
        model, loss = run(True)
        mha = model.get_layer("mha")
        embedded = model.layers[1](ids[:B])
        keep = (ids[:B] != 0)[:, None, :]  # the padding mask Embedding(mask_zero) gives the layer
        _, reference = mha(embedded, embedded, attention_mask=keep, return_attention_scores=True,
                           training=False)
        computed_in = keras.ops.convert_to_numpy(reference).dtype
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert str(computed_in) == policy.split("_")[1]
    assert loss == bare_loss
    for a, b in zip(bare.weights, model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    stored = read_attention(str(tmp_path))["."]["mha"]
    assert stored.rows_normalized  # within the dtype's rounding (numerics.row_sum_tolerance)
    reference = keras.ops.convert_to_numpy(reference).astype(np.float32)
    # The graph and the eager call may round a bfloat16 weight to
    # neighbouring values: one step of the dtype (eps, 2^-7 for bfloat16,
    # 2^-10 for float16) of a weight <= 1, plus the uint8 step (1/510).
    atol = (2.0 ** -7 if policy == "mixed_bfloat16" else 2.0 ** -10) + 1 / 510
    for i in range(B):
        n = int((ids[i] != 0).sum())
        np.testing.assert_allclose(stored.maps[i][-1], reference[i, :, :n, :n], atol=atol, rtol=0)
