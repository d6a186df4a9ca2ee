"""Faithfulness: what AttentionCallback stores equals a direct eager call of the
same layer with return_attention_scores=True, for every kind of model."""

import keras
import numpy as np

from conftest import GRAPH_VS_EAGER, assert_maps_equal, only_layer
from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.writing import summary

UINT8_BOUND = 1 / 510 + 1e-6
VOCAB, LEN = 30, 10


def _ids(n, length=LEN, pad_front=0, seed=0):
    ids = np.random.default_rng(seed).integers(1, VOCAB, (n, length))
    ids[:, :pad_front] = 0
    return ids


def _fit(model, x, y, callback, steps=6):
    model.compile("adam", "mse")
    model.fit(x, y, batch_size=4, epochs=1, steps_per_epoch=steps, callbacks=[callback], verbose=0)


def _pad_mask(ids):
    mask = ids != 0
    return mask[:, :, None] & mask[:, None, :]


def _spans(mask_q, mask_k):
    _, spans = summary.crop_examples(np.zeros((len(mask_q), 1, mask_q.shape[1], mask_k.shape[1])), mask_q, mask_k)
    return spans


def test_functional_mha_with_padding_mask_matches_eager_call(tmp_path):
    inp = keras.Input((LEN,), dtype="int32")
    emb = keras.layers.Embedding(VOCAB, 8, mask_zero=True)
    mha = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, name="mha")
    h = mha(emb(inp), emb(inp))
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inp, out)
    x = _ids(24, pad_front=3)
    probe = x[:4]
    vocab = ["<pad>"] + ["w%d" % i for i in range(1, VOCAB)]
    cb = AttentionCallback(tmp_path, probe, tokens=vocab, update_freq=2, encoding="float32")
    _fit(model, x, np.zeros((24, 1)), cb)

    layer = only_layer(tmp_path, "mha")
    e = emb(probe)
    _, reference = mha(e, e, attention_mask=_pad_mask(probe), return_attention_scores=True)
    mask = probe != 0
    assert_maps_equal([m[-1] for m in layer.maps], keras.ops.convert_to_numpy(reference), _spans(mask, mask), atol=GRAPH_VS_EAGER)
    assert list(layer.steps) == [0, 2, 4, 6]
    assert layer.kind == "self" and layer.num_heads == 3 and layer.has_head_axis
    assert layer.key_tokens[0] == [vocab[i] for i in probe[0, 3:]]
    # padded keys are cropped, and every stored row is a distribution
    assert layer.maps[0].shape[-1] == LEN - 3
    np.testing.assert_allclose(layer.maps[0][-1].sum(-1), 1.0, atol=1e-5)


class EncoderBlock(keras.layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="self_attention")
        self.norm = keras.layers.LayerNormalization()

    def call(self, x, mask=None):
        return self.norm(x + self.attention(x, x))


class DecoderBlock(keras.layers.Layer):
    """keras_hub TransformerDecoder-style: causal self attention, then cross."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.self_attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="causal_attention")
        self.cross_attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="cross_attention")

    def call(self, x, encoded):
        x = x + self.self_attention(x, x, use_causal_mask=True)
        return x + self.cross_attention(x, encoded)


class Seq2Seq(keras.Model):
    def __init__(self):
        super().__init__()
        self.src_emb = keras.layers.Embedding(VOCAB, 8)
        self.tgt_emb = keras.layers.Embedding(VOCAB, 8)
        self.encoder = EncoderBlock(name="encoder")
        self.decoder = DecoderBlock(name="decoder")
        self.out = keras.layers.Dense(VOCAB)

    def call(self, inputs):
        src, tgt = inputs
        encoded = self.encoder(self.src_emb(src))
        return self.out(self.decoder(self.tgt_emb(tgt), encoded))


def test_subclassed_encoder_decoder_captures_self_causal_and_cross(tmp_path):
    model = Seq2Seq()
    src, tgt = _ids(16, 7, seed=1), _ids(16, 5, seed=2)
    probe = (src[:3], tgt[:3])
    cb = AttentionCallback(tmp_path, probe, tokens=lambda ids: ["t%d" % i for i in ids], update_freq=3)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((src, tgt), tgt, batch_size=4, epochs=1, callbacks=[cb], verbose=0)

    runs = read_attention(str(tmp_path))["."]
    assert len(runs) == 3 and all(layer.layer_class == "MultiHeadAttention" for layer in runs.values())
    by_kind = {layer.kind: layer for layer in runs.values()}
    assert set(by_kind) == {"self", "causal", "cross"}

    e_src, e_tgt = model.src_emb(probe[0]), model.tgt_emb(probe[1])
    enc_attn = model.encoder.attention
    _, ref_self = enc_attn(e_src, e_src, return_attention_scores=True)
    encoded = model.encoder(e_src)
    dec = model.decoder
    _, ref_causal = dec.self_attention(e_tgt, e_tgt, use_causal_mask=True, return_attention_scores=True)
    x = e_tgt + dec.self_attention(e_tgt, e_tgt, use_causal_mask=True)
    _, ref_cross = dec.cross_attention(x, encoded, return_attention_scores=True)

    full = lambda n, l: [((0, l), (0, l))] * n
    assert_maps_equal([m[-1] for m in by_kind["self"].maps], keras.ops.convert_to_numpy(ref_self), full(3, 7), UINT8_BOUND)
    assert_maps_equal([m[-1] for m in by_kind["causal"].maps], keras.ops.convert_to_numpy(ref_causal), full(3, 5), UINT8_BOUND)
    cross_spans = [((0, 5), (0, 7))] * 3
    assert_maps_equal([m[-1] for m in by_kind["cross"].maps], keras.ops.convert_to_numpy(ref_cross), cross_spans, UINT8_BOUND)
    # cross attention: queries are decoder tokens, keys encoder tokens
    assert by_kind["cross"].query_tokens[0] == ["t%d" % i for i in probe[1][0]]
    assert by_kind["cross"].key_tokens[0] == ["t%d" % i for i in probe[0][0]]
    causal = by_kind["causal"].maps[0][-1]
    assert np.all(causal[:, np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)


def test_group_query_attention_in_sequential_wrapper_matches(tmp_path):
    class GQABlock(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.gqa = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2, name="gqa")

        def call(self, x):
            return self.gqa(x, x)

    block = GQABlock(name="block")
    model = keras.Sequential([keras.Input((6, 8)), block, keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    x = np.random.default_rng(0).normal(size=(16, 6, 8)).astype("float32")
    cb = AttentionCallback(tmp_path, x[:2], update_freq=100)
    _fit(model, x, np.zeros((16, 1)), cb, steps=3)
    (layer,) = read_attention(str(tmp_path))["."].values()
    _, reference = block.gqa(x[:2], x[:2], return_attention_scores=True)
    assert layer.num_heads == 4 and layer.layer_class == "GroupedQueryAttention"
    assert_maps_equal([m[-1] for m in layer.maps], keras.ops.convert_to_numpy(reference), [((0, 6), (0, 6))] * 2, UINT8_BOUND)
    assert list(layer.steps) == [0, 3]


def test_keras_attention_layer_without_heads_is_one_head_cross(tmp_path):
    q_in, v_in = keras.Input((4, 8)), keras.Input((6, 8))
    att = keras.layers.Attention(name="dot_attention")
    out = keras.layers.Dense(1)(keras.layers.Flatten()(att([q_in, v_in])))
    model = keras.Model([q_in, v_in], out)
    rng = np.random.default_rng(0)
    xq, xv = rng.normal(size=(12, 4, 8)).astype("float32"), rng.normal(size=(12, 6, 8)).astype("float32")
    cb = AttentionCallback(tmp_path, [xq[:2], xv[:2]], encoding="float32")
    model.compile("adam", "mse")
    model.fit([xq, xv], np.zeros((12, 1)), batch_size=4, verbose=0, callbacks=[cb])
    layer = only_layer(tmp_path, "dot_attention")
    _, reference = att([xq[:2], xv[:2]], return_attention_scores=True)
    assert layer.num_heads == 1 and layer.kind == "cross" and not layer.has_head_axis
    assert_maps_equal([m[-1] for m in layer.maps], keras.ops.convert_to_numpy(reference)[:, None], [((0, 4), (0, 6))] * 2, GRAPH_VS_EAGER)


def test_dense_softmax_attention_vec_is_captured_by_name_as_features_by_time(tmp_path):
    # Seed 002: Permute -> Dense(softmax over time) -> Permute named attention_vec.
    steps, features = 8, 2
    inp = keras.Input((steps, features))
    a = keras.layers.Permute((2, 1))(inp)
    a = keras.layers.Dense(steps, activation="softmax")(a)
    probs = keras.layers.Permute((2, 1), name="attention_vec")(a)
    out = keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Multiply()([inp, probs])))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(size=(16, steps, features)).astype("float32")
    cb = AttentionCallback(tmp_path, x[:3], layers=["attention_vec"], encoding="float32")
    _fit(model, x, np.zeros((16, 1)), cb, steps=2)
    layer = only_layer(tmp_path, "attention_vec")
    reference = keras.ops.convert_to_numpy(keras.Model(inp, probs)(x[:3]))  # (batch, time, features)
    stored = np.stack([m[-1, 0] for m in layer.maps])  # (batch, features, time)
    np.testing.assert_allclose(stored, reference.transpose(0, 2, 1), atol=1e-6)
    assert layer.key_tokens[0] == [str(t) for t in range(steps)]
    np.testing.assert_allclose(layer.given[0][-1, 0], [1.0, 1.0], atol=1e-5)
    # features x time: two different axes (not one sequence attending to
    # itself), named after the layer that computed the softmax
    assert layer.kind == "cross" and layer.layer_class == "Dense(softmax) via Permute"


def test_a_rearranging_layer_is_named_after_the_layer_whose_output_it_rearranges():
    from tb_attention_plugin.writing.capture import source_class

    inp = keras.Input((4, 6))
    dense = keras.layers.Dense(6, activation="softmax")(inp)
    reshaped = keras.layers.Reshape((6, 4), name="reshaped")(dense)
    conv = keras.layers.Conv1D(6, 1)(inp)
    permuted = keras.layers.Permute((2, 1), name="permuted")(conv)
    mha = keras.layers.MultiHeadAttention(2, 3, name="mha")
    keras.Model(inp, [reshaped, permuted, mha(inp, inp)])
    assert source_class(reshaped._keras_history.operation) == "Dense(softmax) via Reshape"
    assert source_class(permuted._keras_history.operation) == "Conv1D via Permute"  # no softmax: no claim
    assert source_class(mha) == "MultiHeadAttention"
    assert source_class(keras.layers.Permute((2, 1))) == "Permute"  # never called: nothing to go by


class ScaledDotProductAttention(keras.layers.Layer):
    """Seeds 003/004: a hand-written attention returning (output, weights)."""

    def call(self, q, k):
        weights = keras.ops.softmax(keras.ops.matmul(q, keras.ops.transpose(k, (0, 2, 1))), axis=-1)
        return keras.ops.matmul(weights, k), weights


def test_custom_layer_returning_output_and_weights_is_captured_by_name(tmp_path):
    dec_in, enc_in = keras.Input((3, 4)), keras.Input((5, 4))
    sdpa = ScaledDotProductAttention(name="sdpa")
    context, _ = sdpa(dec_in, enc_in)
    model = keras.Model([dec_in, enc_in], keras.layers.Dense(1)(keras.layers.Flatten()(context)))
    rng = np.random.default_rng(0)
    xd, xe = rng.normal(size=(8, 3, 4)).astype("float32"), rng.normal(size=(8, 5, 4)).astype("float32")
    cb = AttentionCallback(tmp_path, (xd[:2], xe[:2]), layers="sdpa", encoding="float32")
    model.compile("adam", "mse")
    model.fit([xd, xe], np.zeros((8, 1)), batch_size=4, verbose=0, callbacks=[cb])
    layer = only_layer(tmp_path, "sdpa")
    _, reference = sdpa(xd[:2], xe[:2])
    assert layer.kind == "cross" and layer.num_heads == 1
    assert_maps_equal([m[-1] for m in layer.maps], keras.ops.convert_to_numpy(reference)[:, None], [((0, 3), (0, 5))] * 2, 1e-6)
