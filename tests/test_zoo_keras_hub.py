"""The model zoo: keras_hub backbones built from config (random weights,
nothing downloaded), each trained with AttentionCallback in a real model.fit.
Every captured map equals the probabilities the layer itself computes in an
eager call of the trained model, cropped to the real tokens, with the right
kind and tokens.

The reference is taken with a different hook than the capture's: Keras
attention layers are called again with `return_attention_scores=True` on the
arguments they received; LlamaAttention's `attention_softmax` sublayer and
T5's attention dropout (which receives the probabilities) are read in the
eager call.
"""

import numpy as np
import pytest

from conftest import GRAPH_VS_EAGER, explicit_attention
from tb_attention_plugin import AttentionCallback, read_attention

keras_hub = pytest.importorskip(
    "keras_hub", reason="keras-hub needs Python >= 3.11; `make install` installs it there"
)
import keras  # noqa: E402

V, ENC, DEC, PAD = 50, 12, 8, 3
N, B = 12, 3  # training examples, probe examples
VOCAB = ["[PAD]", "[CLS]"] + ["w%d" % i for i in range(2, V)]


def _text(seed, length, pad=PAD):
    ids = np.random.default_rng(seed).integers(2, V, (N, length))
    ids[:, length - pad:] = 0
    return ids, (ids != 0).astype("int32")


def _seq2seq_inputs():
    enc, enc_mask = _text(1, ENC)
    dec, dec_mask = _text(2, DEC, pad=2)
    return {"encoder_token_ids": enc, "encoder_padding_mask": enc_mask,
            "decoder_token_ids": dec, "decoder_padding_mask": dec_mask}


def _fit(backbone, x, logdir, **callback_args):
    """A regression head on every pooled output; 3 steps, captures at 0, 2, 3."""
    outputs = backbone.output
    outputs = list(outputs.values()) if isinstance(outputs, dict) else [outputs]
    pooled = [keras.layers.GlobalAveragePooling1D()(o) for o in outputs if len(o.shape) == 3]
    head = keras.layers.Dense(1)(keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0])
    model = keras.Model(backbone.input, head)
    model.compile("adam", "mse")
    probe = {k: v[:B] for k, v in x.items()} if isinstance(x, dict) else x[:B]
    callback = AttentionCallback(logdir, probe, update_freq=2, encoding="float32", **callback_args)
    model.fit(x, np.zeros((N, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.captured_steps == [0, 2, 3]
    return model, probe, read_attention(str(logdir))["."]


def _own_probabilities(model, probe, layers):
    """{path: (batch, heads, q, k)} the layers compute in an eager call."""
    seen, restore = {}, []

    def record(path, owner, attr, keep):
        original = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            seen.setdefault(path, keep(args, kwargs, out))
            return out

        object.__setattr__(owner, attr, wrapper)
        restore.append((owner, attr))

    for layer in layers:
        if isinstance(layer, keras.layers.MultiHeadAttention):
            record(layer.path, layer, "call", lambda a, k, o: (a, k))
        elif hasattr(layer, "_softmax"):  # LlamaAttention
            record(layer.path, layer._softmax, "call", lambda a, k, o: o)
        else:  # T5MultiHeadAttention: its dropout gets the probabilities
            record(layer.path, layer.dropout_layer, "call", lambda a, k, o: a[0])
    try:
        with explicit_attention():
            model(probe, training=False)
    finally:
        for owner, attr in restore:
            object.__delattr__(owner, attr)
    out = {}
    for layer in layers:
        value = seen[layer.path]
        if isinstance(value, tuple):  # a Keras attention layer: call it again
            args, kwargs = value
            kwargs = dict(kwargs, return_attention_scores=True, training=False)
            value = layer(*args, **kwargs)[1]
        out[layer.path] = keras.ops.convert_to_numpy(value)
    return out


def _attention_layers(model, cls):
    return [l for l in model._flatten_layers(include_self=False) if isinstance(l, cls)]


def _assert_faithful(stored, reference, q_len, k_len):
    """The last capture (after training) equals the layer's probabilities on
    the real tokens (padding at the end of every probe example)."""
    for i, maps in enumerate(stored.maps):
        expected = reference[i, :, :q_len, :k_len]
        assert maps[-1].shape == expected.shape, stored.layer
        np.testing.assert_allclose(maps[-1], expected, atol=GRAPH_VS_EAGER, rtol=0)


def test_bert_broadcast_padding_mask_is_cropped_and_faithful(tmp_path):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=ENC)
    ids, mask = _text(0, ENC)
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
    model, probe, layers = _fit(backbone, x, tmp_path, tokens={"token_ids": VOCAB})
    mha = _attention_layers(model, keras.layers.MultiHeadAttention)
    assert [l.path for l in mha] == list(layers) == [
        "transformer_layer_0/self_attention_layer", "transformer_layer_1/self_attention_layer"]
    reference = _own_probabilities(model, probe, mha)
    real = ENC - PAD
    for path, stored in layers.items():
        assert stored.kind == "self" and stored.num_heads == 2
        _assert_faithful(stored, reference[path], real, real)
        # labelled from token_ids, never from segment_ids or padding_mask
        assert stored.key_tokens[0] == [VOCAB[i] for i in probe["token_ids"][0, :real]]
    # rollout follows the model's order: layer 0 starts the stack
    assert layers["transformer_layer_1/self_attention_layer"].rollout_stack == (
        "transformer_layer_0/self_attention_layer")


def test_gpt2_causal_and_padding_in_one_mask_is_causal_and_square(tmp_path):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=ENC)
    ids, mask = _text(0, ENC)
    model, probe, layers = _fit(backbone, {"token_ids": ids, "padding_mask": mask}, tmp_path)
    reference = _own_probabilities(model, probe, _attention_layers(model, keras.layers.MultiHeadAttention))
    real = ENC - PAD
    assert len(layers) == 2
    for path, stored in layers.items():
        assert stored.kind == "causal" and stored.layer_class == "CachedMultiHeadAttention"
        # padded query rows are gone too, not only padded keys
        _assert_faithful(stored, reference[path], real, real)
        upper = np.triu_indices(real, 1)
        assert np.all(stored.maps[0][-1][:, upper[0], upper[1]] == 0)


def test_llama_grouped_query_attention_with_its_own_softmax_is_captured_per_query_head(tmp_path):
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=V, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=8, intermediate_dim=16)
    ids, mask = _text(0, ENC)
    model, probe, layers = _fit(backbone, {"token_ids": ids, "padding_mask": mask}, tmp_path)
    llama_layers = [l for l in model._flatten_layers(include_self=False)
                    if type(l).__name__ == "LlamaAttention"]
    reference = _own_probabilities(model, probe, llama_layers)
    assert sorted(layers) == sorted(reference) and len(layers) == 2
    for path, stored in layers.items():
        assert stored.kind == "causal" and stored.num_heads == 4
        assert stored.layer_class == "LlamaAttention"
        _assert_faithful(stored, reference[path], ENC - PAD, ENC - PAD)


def test_bart_encoder_decoder_self_causal_and_cross_attention(tmp_path):
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=V, num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=ENC)
    model, probe, layers = _fit(backbone, _seq2seq_inputs(), tmp_path)
    reference = _own_probabilities(model, probe, _attention_layers(model, keras.layers.MultiHeadAttention))
    kinds = {path: stored.kind for path, stored in layers.items()}
    assert kinds == {
        "transformer_encoder_layer_0/self_attention_layer": "self",
        "transformer_decoder_layer_0/self_attention": "causal",
        "transformer_decoder_layer_0/cross_attention": "cross",
    }
    # model order: encoder, then decoder self, then cross attention
    assert [layers[p].layer_index for p in kinds] == [0, 1, 2]
    enc, dec = ENC - PAD, DEC - 2
    sizes = {"self": (enc, enc), "causal": (dec, dec), "cross": (dec, enc)}
    for path, stored in layers.items():
        _assert_faithful(stored, reference[path], *sizes[stored.kind])


def test_t5_attention_with_relative_position_bias_stores_probabilities_not_the_bias(tmp_path):
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=V, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    model, probe, layers = _fit(backbone, _seq2seq_inputs(), tmp_path)
    t5_layers = [l for l in model._flatten_layers(include_self=False)
                 if type(l).__name__ == "T5MultiHeadAttention"]
    reference = _own_probabilities(model, probe, t5_layers)
    assert {p: s.kind for p, s in layers.items()} == {
        "transformer_encoder_layer_0/self_attention": "self",
        "transformer_decoder_layer_0/self_attention": "causal",
        "transformer_decoder_layer_0/cross_attention": "cross",
    }
    enc, dec = ENC - PAD, DEC - 2
    sizes = {"self": (enc, enc), "causal": (dec, dec), "cross": (dec, enc)}
    for path, stored in layers.items():
        np.testing.assert_allclose(stored.maps[0][-1].sum(-1), 1.0, atol=1e-5)
        _assert_faithful(stored, reference[path], *sizes[stored.kind])


def test_vit_blocks_are_ordered_as_the_model_runs_them(tmp_path):
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=3, num_heads=2,
        hidden_dim=8, mlp_dim=16)
    images = np.random.default_rng(0).normal(size=(N, 16, 16, 3)).astype("float32")
    model, probe, layers = _fit(backbone, images, tmp_path)
    mha = _attention_layers(model, keras.layers.MultiHeadAttention)
    reference = _own_probabilities(model, probe, mha)
    # keras_hub keeps the blocks in a list, which _flatten_layers reverses;
    # layer_index is the order of the forward pass, and rollout follows it.
    order = sorted(layers, key=lambda p: layers[p].layer_index)
    assert [p.split("/")[1] for p in order] == [
        "transformer_block_1", "transformer_block_2", "transformer_block_3"]
    for path, stored in layers.items():
        assert stored.kind == "self" and stored.maps[0].shape[-1] == 17  # class token + 16 patches
        _assert_faithful(stored, reference[path], 17, 17)
        # The grid comes from the backbone's patch_size: 16 / 4 = 4 x 4 after the class token.
        assert stored.grid == (4, 4, 1)
        assert stored.key_tokens[0] == ["CLS"] + ["%d,%d" % (r, c) for r in range(4) for c in range(4)]
    # the last layer's rollout is A_hat_3 @ A_hat_2 @ A_hat_1, by hand
    hats = []
    for path in order:
        a = reference[path][0].mean(axis=0)
        hat = 0.5 * a + 0.5 * np.eye(17)
        hats.append(hat / hat.sum(-1, keepdims=True))
    expected = (hats[2] @ hats[1] @ hats[0]).mean(axis=0)
    np.testing.assert_allclose(layers[order[-1]].rollout[0][-1], expected, atol=1e-5)


def test_keras_hub_transformer_layers_with_mask_zero_embeddings(tmp_path):
    enc_in = keras.Input((ENC,), dtype="int32", name="source")
    dec_in = keras.Input((DEC,), dtype="int32", name="target")
    enc = keras_hub.layers.TokenAndPositionEmbedding(V, ENC, 8, mask_zero=True)(enc_in)
    enc = keras_hub.layers.TransformerEncoder(16, 2, name="encoder")(enc)
    dec = keras_hub.layers.TokenAndPositionEmbedding(V, DEC, 8, mask_zero=True)(dec_in)
    dec = keras_hub.layers.TransformerDecoder(16, 2, name="decoder")(dec, enc)
    model = keras.Model([enc_in, dec_in], keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(dec)))
    model.compile("adam", "mse")
    src, _ = _text(1, ENC)
    tgt, _ = _text(2, DEC, pad=2)
    words = lambda ids: ["s%d" % i for i in ids]
    callback = AttentionCallback(tmp_path, [src[:B], tgt[:B]], tokens=words, update_freq=2, encoding="float32")
    model.fit([src, tgt], np.zeros((N, 1)), batch_size=4, verbose=0, callbacks=[callback])
    layers = read_attention(str(tmp_path))["."]
    reference = _own_probabilities(model, [src[:B], tgt[:B]], _attention_layers(model, keras.layers.MultiHeadAttention))
    kinds = {p: s.kind for p, s in layers.items()}
    assert sorted(kinds.values()) == ["causal", "cross", "self"]
    e, d = ENC - PAD, DEC - 2
    for path, stored in layers.items():
        q, k = {"self": (e, e), "causal": (d, d), "cross": (d, e)}[stored.kind]
        _assert_faithful(stored, reference[path], q, k)
        if stored.kind == "cross":
            assert stored.query_tokens[0] == words(tgt[0, :d])
            assert stored.key_tokens[0] == words(src[0, :e])
