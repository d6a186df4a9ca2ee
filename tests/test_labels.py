"""Every map labelled right: tokens and padding come from the probe input that
feeds each side of each layer (followed through the model's graph, not
matched by length), kinds from what the layer was given, one tag per layer,
layers in the order the model runs them, and every token form users have.
Real model.fit runs; expected tokens and crops are written out by hand."""

import keras
import numpy as np
import pytest

from tb_attention_plugin import AttentionCallback, read_attention

T = 8  # encoder and decoder length: equal on purpose
ENC_VOCAB = ["<pad>"] + ["e%d" % i for i in range(1, 20)]
DEC_VOCAB = ["<pad>"] + ["d%d" % i for i in range(1, 20)]


def _translation_model(names, mask_zero=True):
    """A two-block decoder over a one-block encoder, like keras.io's
    English-to-Spanish example; inputs named `names` (encoder, decoder).
    Only the first attention of each side gets the Embedding's mask: Add
    drops it, since attention outputs carry none."""
    enc_in = keras.Input((T,), dtype="int32", name=names[0])
    dec_in = keras.Input((T,), dtype="int32", name=names[1])
    enc = keras.layers.Embedding(20, 8, mask_zero=mask_zero)(enc_in)
    enc = keras.layers.Add()([enc, keras.layers.MultiHeadAttention(2, 4, name="enc_self")(enc, enc)])
    x = keras.layers.Embedding(20, 8, mask_zero=mask_zero)(dec_in)
    for block in (1, 2):
        self_attention = keras.layers.MultiHeadAttention(2, 4, name="dec%d_self" % block)
        x = keras.layers.Add()([x, self_attention(x, x, use_causal_mask=True)])
        cross_attention = keras.layers.MultiHeadAttention(2, 4, name="dec%d_cross" % block)
        x = keras.layers.Add()([x, cross_attention(x, enc, enc)])
    out = keras.layers.Dense(20)(x)
    model = keras.Model({names[0]: enc_in, names[1]: dec_in}, out)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _translation_data(n=16):
    rng = np.random.default_rng(0)
    enc = rng.integers(1, 20, (n, T))
    dec = rng.integers(1, 20, (n, T))
    enc[0, 5:] = 0  # example 0: 5 real source tokens, 6 real target tokens
    dec[0, 6:] = 0
    enc[1, 7:] = 0  # example 1: 7 and 4
    dec[1, 4:] = 0
    return enc, dec


@pytest.mark.parametrize("names", [("enc", "dec"), ("source", "target")], ids=["decoder key sorts first", "encoder key sorts first"])
def test_encoder_decoder_of_equal_lengths_gets_each_sides_tokens_in_any_key_order(tmp_path, names):
    enc, dec = _translation_data()
    model = _translation_model(names)
    x = {names[0]: enc, names[1]: dec}
    probe = {k: v[:2] for k, v in x.items()}
    tokens = {names[0]: ENC_VOCAB, names[1]: DEC_VOCAB}
    # Keras's Add drops the mask (attention outputs carry none): pad_id crops
    # where no mask says what padding is (the cross attention, block 2).
    cb = AttentionCallback(tmp_path, probe, tokens=tokens, pad_id=0, update_freq=1)
    model.fit(x, dec, batch_size=8, verbose=0, callbacks=[cb])
    layers = read_attention(str(tmp_path))["."]
    assert list(layers) == ["enc_self", "dec1_self", "dec1_cross", "dec2_self", "dec2_cross"]

    src = [["e%d" % t for t in enc[i] if t] for i in range(2)]
    tgt = [["d%d" % t for t in dec[i] if t] for i in range(2)]
    assert [len(s) for s in src] == [5, 7] and [len(t) for t in tgt] == [6, 4]
    expected = {  # layer: (kind, query tokens, key tokens)
        "enc_self": ("self", src, src),
        "dec1_self": ("causal", tgt, tgt),
        "dec1_cross": ("cross", tgt, src),
        "dec2_self": ("causal", tgt, tgt),  # after a cross attention: still the decoder's
        "dec2_cross": ("cross", tgt, src),
    }
    for name, (kind, queries, keys) in expected.items():
        layer = layers[name]
        assert layer.kind == kind, name
        assert layer.query_tokens == queries, name
        assert layer.key_tokens == keys, name
        for i in range(2):
            assert layer.maps[i].shape[-2:] == (len(queries[i]), len(keys[i])), name


def test_bert_style_inputs_label_from_token_ids_and_never_from_segment_ids(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=20, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=T)
    inputs = {k: keras.Input((T,), dtype="int32", name=k) for k in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(inputs, keras.layers.Dense(1)(backbone(inputs)["pooled_output"]))
    model.compile("adam", "mse")
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 20, (8, T))
    ids[:, 6:] = 0
    segments = np.zeros_like(ids)
    segments[:, 3:6] = 1  # same length, integer, feeds the same stream: never the labels
    x = {"token_ids": ids, "segment_ids": segments, "padding_mask": (ids != 0).astype("int32")}
    vocab = ["[PAD]"] + ["w%d" % i for i in range(1, 20)]
    cb = AttentionCallback(tmp_path, {k: v[:2] for k, v in x.items()}, tokens=vocab, update_freq=1)
    model.fit(x, np.zeros((8, 1)), batch_size=4, verbose=0, callbacks=[cb])
    for layer in read_attention(str(tmp_path))["."].values():
        assert layer.kind == "self"
        assert layer.key_tokens[0] == ["w%d" % t for t in ids[0, :6]]
        assert layer.query_tokens[0] == layer.key_tokens[0]


class TwoAttentions(keras.layers.Layer):
    """A stack of attention layers held in a list, all named "att": their
    paths collide, and Keras keeps such lists' layers in an order of its own."""

    def __init__(self, depth=3, **kwargs):
        super().__init__(**kwargs)
        self.stack = [keras.layers.MultiHeadAttention(2, 4, name="att") for _ in range(depth)]

    def call(self, x):
        for attention in self.stack:
            x = x + attention(x, x)
        return x


def test_layers_with_colliding_paths_get_their_own_tags_in_model_order_and_rollout_by_hand(tmp_path):
    inp = keras.Input((6, 8))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(TwoAttentions(name="block")(inp))))
    model.compile("adam", "mse")
    x = np.random.default_rng(2).normal(size=(8, 6, 8)).astype("float32")
    cb = AttentionCallback(tmp_path, x[:2], update_freq=1, encoding="float32")
    model.fit(x, np.zeros((8, 1)), batch_size=4, verbose=0, callbacks=[cb])
    layers = read_attention(str(tmp_path))["."]
    assert list(layers) == ["block/att", "block/att_2", "block/att_3"]
    assert [l.layer_index for l in layers.values()] == [0, 1, 2]
    # Three different layers: three different maps.
    a1, a2, a3 = (layers[n].maps[0][-1] for n in layers)
    assert not np.allclose(a1, a2) and not np.allclose(a2, a3)
    # Rollout (Abnar & Zuidema): head-mean with the residual, rows renormalised,
    # multiplied bottom-up; stored as the mean over query rows.
    rollout = np.eye(6)
    for maps in (a1, a2, a3):
        step = 0.5 * maps.mean(axis=0) + 0.5 * np.eye(6)
        step /= step.sum(axis=-1, keepdims=True)
        rollout = step @ rollout
    np.testing.assert_allclose(layers["block/att_3"].rollout[0][-1], rollout.mean(axis=0), atol=1e-5)


def test_per_input_pad_ids_crop_each_side_by_its_own_padding(tmp_path):
    enc, dec = _translation_data()
    enc[enc == 19] = 18
    enc[enc == 0] = 19  # the source pads with 19, the target with 0
    model = _translation_model(("enc", "dec"), mask_zero=False)  # no mask: pad_id decides
    x = {"enc": enc, "dec": dec}
    cb = AttentionCallback(tmp_path, {k: v[:2] for k, v in x.items()}, pad_id={"enc": 19, "dec": 0},
                           layers=["dec1_cross"], update_freq=1)
    model.fit(x, dec, batch_size=8, verbose=0, callbacks=[cb])
    layer = read_attention(str(tmp_path))["."]["dec1_cross"]
    # Keys cropped by the source's 19s, queries by the target's 0s.
    assert [m.shape[-2:] for m in layer.maps] == [(6, 5), (4, 7)]


def _single_input_fit(tmp_path, tokens):
    inp = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(20, 8)(inp)
    x = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(x)))
    model.compile("adam", "mse")
    ids = np.tile(np.arange(1, T + 1), (4, 1))
    model.fit(ids, np.zeros((4, 1)), verbose=0, callbacks=[AttentionCallback(tmp_path, ids[:1], tokens=tokens)])
    return read_attention(str(tmp_path))["."]["mha"].key_tokens[0]


WORDS = ["w%d" % i for i in range(20)]


def _text_vectorization():
    layer = keras.layers.TextVectorization(standardize=None, split="whitespace", output_mode="int")
    layer.adapt([" ".join(WORDS[2:])])
    return layer


@pytest.mark.parametrize("form", ["dict_keys", "numpy array", "tuple", "TextVectorization", "keras_hub tokenizer"])
def test_every_vocabulary_form_users_have_labels_the_map(tmp_path, form):
    if form == "TextVectorization":
        tokens = _text_vectorization()
        expected = tokens.get_vocabulary()[1 : T + 1]
    elif form == "keras_hub tokenizer":
        keras_hub = pytest.importorskip("keras_hub")
        tokens = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=WORDS, oov_token="w0")
        expected = WORDS[1 : T + 1]
    else:
        tokens = {"dict_keys": dict.fromkeys(WORDS).keys(), "numpy array": np.array(WORDS), "tuple": tuple(WORDS)}[form]
        expected = WORDS[1 : T + 1]
    assert _single_input_fit(tmp_path, tokens) == list(expected)


@pytest.mark.parametrize(
    "tokens, says",
    [
        (list(range(20)), "is a list of 20 numbers"),
        ([["ok"] * (T - 1) + ["\ud800"]], "not valid Unicode text"),
        (lambda ids: [b"w" for _ in ids], "are bytes"),
        ({"w%d" % i: i for i in range(20)}, "dict keyed by strings"),
        ("w0 w1", "tokens is one string"),
    ],
    ids=["list(range(n))", "lone surrogate", "bytes from a callable", "dict keyed by strings", "one string"],
)
def test_what_cannot_be_tokens_is_refused_at_construction_naming_the_fix(tokens, says):
    ids = np.tile(np.arange(1, T + 1), (1, 1))
    with pytest.raises(ValueError, match=says) as raised:
        AttentionCallback("unused", ids, tokens=tokens)
    assert "pass" in str(raised.value) or "give" in str(raised.value)


def test_a_suffix_for_layers_alike_in_their_whole_nesting_is_never_another_layers_path():
    from tb_attention_plugin.writing.capture import numbered_in_run_order

    # three "att" layers in one list of block "b", and a real layer whose path is "b/att_2"
    tags = numbered_in_run_order(["b/att", "b/att", "b/att", "other"], taken={"b/att_2", "other"})
    assert tags == ["b/att", "b/att_3", "b/att_4", "other"]
