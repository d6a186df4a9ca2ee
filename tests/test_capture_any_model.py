"""Attention written as users write it: hand-written layers with their own
softmax (seed 003, keras.io tutorials), every mask form and convention, layers
called twice, layers that are not attention, and every way a capture can fail
while training. Each in a real model.fit."""

import logging
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import GRAPH_VS_EAGER, only_layer
from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.format import encoding
from tb_attention_plugin.writing import summary

B, T, D, H, PAD = 3, 7, 8, 2, 2  # probe examples, tokens, width, heads, padded tail


def _fit(model, x, callback, n=12, steps=None):
    model.compile("adam", "mse")
    model.fit(x, np.zeros((n, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[callback])


def _pad_tail(n=12, length=T, pad=PAD):
    real = np.ones((n, length), "float32")
    real[:, length - pad:] = 0
    return real


# -- seed 003: the TensorFlow tutorial's Transformer, as written ------------


def scaled_dot_product_attention(query, key, value, mask):
    logits = tf.matmul(query, key, transpose_b=True) / tf.math.sqrt(tf.cast(tf.shape(key)[-1], tf.float32))
    if mask is not None:
        logits += mask * -1e9  # 1 marks padding: the "drop" convention
    attention_weights = tf.nn.softmax(logits, axis=-1)
    return tf.matmul(attention_weights, value), attention_weights


class TutorialMultiHeadAttention(keras.layers.Layer):
    """Seed 003's layer: a dict input, its own softmax, returns the output only."""

    def __init__(self, d_model, num_heads, **kw):
        super().__init__(**kw)
        self.num_heads, self.depth = num_heads, d_model // num_heads
        self.wq, self.wk, self.wv = (keras.layers.Dense(d_model) for _ in range(3))
        self.dense = keras.layers.Dense(d_model)

    def split_heads(self, x):
        x = tf.reshape(x, (tf.shape(x)[0], -1, self.num_heads, self.depth))
        return tf.transpose(x, perm=[0, 2, 1, 3])

    def call(self, inputs):
        query, key, value, mask = inputs["query"], inputs["key"], inputs["value"], inputs["mask"]
        out, _ = scaled_dot_product_attention(
            self.split_heads(self.wq(query)), self.split_heads(self.wk(key)),
            self.split_heads(self.wv(value)), mask)
        out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), (tf.shape(query)[0], -1, self.num_heads * self.depth))
        return self.dense(out)


def create_padding_mask(x):
    return tf.cast(tf.math.equal(x, 0), tf.float32)[:, tf.newaxis, tf.newaxis, :]


def create_look_ahead_mask(x):
    seq_len = tf.shape(x)[1]
    look_ahead = 1 - tf.linalg.band_part(tf.ones((seq_len, seq_len)), -1, 0)
    return tf.maximum(look_ahead, create_padding_mask(x))


def _seed_003_transformer():
    enc_in = keras.Input((T,), dtype="int32", name="inputs")
    dec_in = keras.Input((T,), dtype="int32", name="dec_inputs")
    emb = keras.layers.Embedding(30, D)
    enc_mask = keras.layers.Lambda(create_padding_mask)(enc_in)
    look_ahead = keras.layers.Lambda(create_look_ahead_mask)(dec_in)
    e = emb(enc_in)
    enc = e + TutorialMultiHeadAttention(D, H, name="encoder_attention")(
        {"query": e, "key": e, "value": e, "mask": enc_mask})
    d = emb(dec_in)
    d = d + TutorialMultiHeadAttention(D, H, name="decoder_attention_1")(
        {"query": d, "key": d, "value": d, "mask": look_ahead})
    d = d + TutorialMultiHeadAttention(D, H, name="decoder_attention_2")(
        {"query": d, "key": enc, "value": enc, "mask": enc_mask})
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(d))
    return keras.Model([enc_in, dec_in], out)


def _weights_in_eager_call(model, probe, names):
    """{name: weights} of the tutorial layers' own tf.nn.softmax, eagerly."""
    seen = {}
    original = tf.nn.softmax
    current = []

    def recording_softmax(x, *a, **k):
        out = original(x, *a, **k)
        if current and current[-1] not in seen:
            seen[current[-1]] = out.numpy()
        return out

    wrapped = []
    for name in names:
        layer = model.get_layer(name)
        call = layer.call

        def traced(inputs, _call=call, _name=name):
            current.append(_name)
            try:
                return _call(inputs)
            finally:
                current.pop()

        object.__setattr__(layer, "call", traced)
        wrapped.append(layer)
    tf.nn.softmax = recording_softmax
    try:
        model(probe, training=False)
    finally:
        tf.nn.softmax = original
        for layer in wrapped:
            object.__delattr__(layer, "call")
    return seen


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="seed 003 is TensorFlow code "
                    "(tf.matmul, tf.nn.softmax); tests/test_backends.py has a keras.ops one on every backend")
def test_seed_003_hand_written_attention_is_found_cropped_and_faithful(tmp_path):
    model = _seed_003_transformer()
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, (12, T)), rng.integers(1, 30, (12, T))
    src[:, T - PAD:] = 0  # encoder: 5 real tokens
    tgt[:, T - 1:] = 0  # decoder: 6 real tokens, same padded length as the encoder
    probe = [src[:B], tgt[:B]]
    cb = AttentionCallback(tmp_path, probe, update_freq=2, encoding="float32")
    _fit(model, [src, tgt], cb)
    layers = read_attention(str(tmp_path))["."]
    assert {n: l.kind for n, l in layers.items()} == {
        "encoder_attention": "self", "decoder_attention_1": "causal", "decoder_attention_2": "cross"}
    assert all(l.layer_class == "TutorialMultiHeadAttention" and l.num_heads == H for l in layers.values())
    reference = _weights_in_eager_call(model, probe, list(layers))
    sizes = {"encoder_attention": (5, 5), "decoder_attention_1": (6, 6), "decoder_attention_2": (6, 5)}
    for name, (q, k) in sizes.items():
        for i in range(B):
            stored = layers[name].maps[i][-1]
            assert stored.shape == (H, q, k), name
            np.testing.assert_allclose(stored, reference[name][i, :, :q, :k], atol=GRAPH_VS_EAGER)


# -- keras.io's English-to-Spanish Transformer (MultiHeadAttention) ----------


class KerasIoEncoder(keras.layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.attention = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        padding_mask = None if mask is None else keras.ops.cast(mask[:, None, :], dtype="int32")
        return inputs + self.attention(query=inputs, value=inputs, key=inputs, attention_mask=padding_mask)


class KerasIoDecoder(keras.layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.attention_1 = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D)
        self.attention_2 = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D)
        self.supports_masking = True

    def call(self, inputs, encoder_outputs, mask=None):
        x = inputs + self.attention_1(query=inputs, value=inputs, key=inputs, use_causal_mask=True)
        enc_mask = None
        if mask is not None and mask[1] is not None:
            enc_mask = keras.ops.cast(mask[1][:, None, :], dtype="int32")
        return x + self.attention_2(query=x, value=encoder_outputs, key=encoder_outputs, attention_mask=enc_mask)


def test_keras_io_translation_transformer_labels_and_crops_every_layer(tmp_path):
    enc_in = keras.Input((T,), dtype="int32")
    dec_in = keras.Input((T,), dtype="int32")
    enc = KerasIoEncoder(name="encoder")(keras.layers.Embedding(30, D, mask_zero=True)(enc_in))
    dec = KerasIoDecoder(name="decoder")(keras.layers.Embedding(30, D, mask_zero=True)(dec_in), enc)
    model = keras.Model([enc_in, dec_in], keras.layers.Dense(1)(keras.layers.Flatten()(dec)))
    rng = np.random.default_rng(1)
    src, tgt = rng.integers(1, 30, (12, T)), rng.integers(1, 30, (12, T))
    src[:, T - PAD:] = 0
    words = lambda ids: ["w%d" % i for i in ids]
    cb = AttentionCallback(tmp_path, [src[:B], tgt[:B]], tokens=words, update_freq=2)
    _fit(model, [src, tgt], cb)
    layers = read_attention(str(tmp_path))["."]
    by_kind = {l.kind: l for l in layers.values()}
    assert set(by_kind) == {"self", "causal", "cross"}
    assert by_kind["self"].maps[0].shape[-2:] == (T - PAD, T - PAD)
    assert by_kind["causal"].maps[0].shape[-2:] == (T, T)
    assert by_kind["cross"].maps[0].shape[-2:] == (T, T - PAD)
    assert by_kind["cross"].key_tokens[0] == words(src[0, : T - PAD])
    # the run order: encoder, decoder causal, decoder cross
    assert [l.kind for l in sorted(layers.values(), key=lambda l: l.layer_index)] == ["self", "causal", "cross"]


# -- every mask form and convention -----------------------------------------


def _forms():
    """name -> (mask from `real` (batch, T) 0/1, how the layer applies it)."""
    keep = lambda m: keras.ops.cast(m, "float32") > 0.5
    return {
        "(B,S) bool": (lambda r: r > 0.5, keep),
        "(B,1,S) 0/1": (lambda r: r[:, None, :], keep),
        "(B,T,S) 0/1": (lambda r: r[:, :, None] * r[:, None, :], keep),
        "(B,1,T,S) bool": (lambda r: (r[:, :, None] * r[:, None, :] > 0.5)[:, None], keep),
        "(B,H,T,S) 0/1": (lambda r: keras.ops.repeat((r[:, :, None] * r[:, None, :])[:, None], H, axis=1), keep),
        "(B,1,1,S) drop 0/1": (lambda r: (1 - r)[:, None, None, :], lambda m: m < 0.5),
        "(B,1,1,S) additive -1e9": (lambda r: ((1 - r) * -1e9)[:, None, None, :], lambda m: m > -1),
        "(B,1,1,S) additive -inf": (lambda r: keras.ops.where(r > 0.5, 0.0, float("-inf"))[:, None, None, :], lambda m: m > -1),
        "(B,T,T) causal and padding": (
            lambda r: (keras.ops.tril(keras.ops.ones((T, T)))[None] * r[:, None, :]) > 0.5, keep),
    }


class FormAttention(keras.layers.Layer):
    """Two heads of dot-product attention applying any mask form."""

    def __init__(self, allowed, **kw):
        super().__init__(**kw)
        self.allowed = allowed
        self.q, self.k = keras.layers.Dense(H * 4), keras.layers.Dense(H * 4)

    def call(self, x, attention_mask):
        split = lambda t: keras.ops.transpose(keras.ops.reshape(t, (-1, T, H, 4)), (0, 2, 1, 3))
        logits = keras.ops.einsum("bhqd,bhkd->bhqk", split(self.q(x)), split(self.k(x)))
        mask = attention_mask
        while len(mask.shape) < 4:
            mask = keras.ops.expand_dims(mask, 1)
        logits = keras.ops.where(self.allowed(mask), logits, -1e9)
        weights = keras.ops.softmax(logits, axis=-1)
        return keras.ops.einsum("bhqk,bkd->bqd", weights, x), weights


class MakeMask(keras.layers.Layer):
    def __init__(self, form, **kw):
        super().__init__(**kw)
        self.form = form

    def call(self, real):
        return self.form(real)


@pytest.mark.parametrize("form", list(_forms()))
def test_every_mask_form_crops_the_padding(tmp_path, form):
    make, allowed = _forms()[form]
    x_in, real_in = keras.Input((T, D)), keras.Input((T,))
    attention = FormAttention(allowed, name="att")
    out, _ = attention(x_in, attention_mask=MakeMask(make)(real_in))
    model = keras.Model([x_in, real_in], keras.layers.Dense(1)(keras.layers.Flatten()(out)))
    x, real = np.random.default_rng(0).normal(size=(12, T, D)).astype("float32"), _pad_tail()
    cb = AttentionCallback(tmp_path, [x[:B], real[:B]], update_freq=100, encoding="float32")
    _fit(model, [x, real], cb)
    layer = only_layer(tmp_path, "att")
    assert layer.maps[0].shape[-2:] == (T - PAD, T - PAD)  # padded rows and columns cropped
    _, reference = attention(x[:B], attention_mask=MakeMask(make)(real[:B]))
    reference = keras.ops.convert_to_numpy(reference)
    np.testing.assert_allclose(layer.maps[0][-1], reference[0, :, : T - PAD, : T - PAD], atol=GRAPH_VS_EAGER)
    expected_kind = "causal" if "causal" in form else "self"
    assert layer.kind == expected_kind


def test_an_unknown_mask_form_stores_the_map_uncropped_with_a_warning(tmp_path, caplog):
    x_in, real_in = keras.Input((T, D)), keras.Input((T,))
    odd = MakeMask(lambda r: (r[:, :, None] * r[:, None, :])[..., None])  # (B, T, S, 1)
    attention = FormAttention(lambda m: keras.ops.transpose(m, (0, 3, 1, 2))[..., 0:1, :, :] > 0.5, name="att")
    out, _ = attention(x_in, attention_mask=odd(real_in))
    model = keras.Model([x_in, real_in], keras.layers.Dense(1)(keras.layers.Flatten()(out)))
    x, real = np.random.default_rng(0).normal(size=(12, T, D)).astype("float32"), _pad_tail()
    cb = AttentionCallback(tmp_path, [x[:B], real[:B]], update_freq=100)
    with caplog.at_level(logging.WARNING):
        _fit(model, [x, real], cb)
    assert 'could not read the mask of layer "att"' in caplog.text and "3 x 7 x 7 x 1" in caplog.text
    assert only_layer(tmp_path, "att").maps[0].shape[-2:] == (T, T)


# -- layers called twice, layers that are not attention, probes ----------------


def test_a_layer_called_twice_records_both_calls(tmp_path):
    a_in, b_in = keras.Input((T, D)), keras.Input((T, D))
    shared = keras.layers.MultiHeadAttention(num_heads=H, key_dim=4, name="shared")
    merged = keras.layers.Concatenate()([shared(a_in, a_in), shared(b_in, a_in)])
    model = keras.Model([a_in, b_in], keras.layers.Dense(1)(keras.layers.Flatten()(merged)))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, T, D)).astype("float32"), rng.normal(size=(12, T, D)).astype("float32")
    cb = AttentionCallback(tmp_path, [a[:B], b[:B]], update_freq=100, encoding="float32")
    _fit(model, [a, b], cb)
    layers = read_attention(str(tmp_path))["."]
    assert sorted(layers) == ["shared", "shared/call_2"]
    assert layers["shared"].kind == "self" and layers["shared/call_2"].kind == "cross"
    _, second = shared(b[:B], a[:B], return_attention_scores=True)
    np.testing.assert_allclose(layers["shared/call_2"].maps[0][-1], keras.ops.convert_to_numpy(second)[0],
                               atol=GRAPH_VS_EAGER)


class PositionBias(keras.layers.Layer):
    """Like T5's attention: returns (output, position_bias), not weights."""

    def build(self, shape):
        self.bias = self.add_weight(shape=(1, H, T, T), initializer="random_normal")

    def call(self, x):
        return x * 2.0, self.bias + 0.0 * keras.ops.sum(x)


def test_a_picked_layer_that_is_not_attention_is_refused_before_training(tmp_path):
    x_in = keras.Input((T, D))
    out, _ = PositionBias(name="bias")(x_in)
    dense = keras.layers.Dense(D, name="projection")(out)
    model = keras.Model(x_in, keras.layers.Dense(1)(keras.layers.Flatten()(dense)))
    x = np.zeros((12, T, D), "float32")
    for name, what in [("bias", "its output"), ("projection", "its output")]:
        model.compile("adam", "mse")
        cb = AttentionCallback(tmp_path / name, x[:B], layers=[name])
        with pytest.raises(ValueError, match='layer "%s" .* is not attention: %s holds' % (name, what)):
            model.fit(x, np.zeros((12, 1)), verbose=0, callbacks=[cb])
        assert int(model.optimizer.iterations) == 0


def test_a_dict_probe_with_a_key_the_model_does_not_take_names_the_key(tmp_path):
    ids = keras.Input((T,), dtype="int32", name="token_ids")
    e = keras.layers.Embedding(30, D)(ids)
    model = keras.Model({"token_ids": ids}, keras.layers.Dense(1)(keras.layers.Flatten()(
        keras.layers.MultiHeadAttention(H, 4)(e, e))))
    x = np.ones((12, T), "int32")
    cb = AttentionCallback(tmp_path, {"token_ids": x[:B], "tokens_ids": x[:B]})
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match='unknown "tokens_ids".*takes .*"token_ids"'):
        model.fit({"token_ids": x}, np.zeros((12, 1)), verbose=0, callbacks=[cb])


def test_a_backend_capture_does_not_run_on_is_refused_at_set_model_naming_the_backend(tmp_path, monkeypatch):
    # The backend Keras reports is replaced here (a real torch install is
    # large); the callback reads nothing else about the backend before it
    # refuses. The message blames the backend, not the probe or the model.
    from models import tiny_mha_classifier

    model = tiny_mha_classifier()
    cb = AttentionCallback(tmp_path, np.ones((2, 10), "int32"))
    monkeypatch.setattr(keras.config, "backend", lambda: "numpy")
    with pytest.raises(ValueError) as raised:
        cb.set_model(model)
    said = str(raised.value)
    assert "Keras runs on the numpy backend here" in said
    assert "tensorflow, jax and torch backends" in said and "Set KERAS_BACKEND" in said
    assert "probe" not in said


# -- never break the fit: a fault at every stage ------------------------------


def _fault_stages(monkeypatch):
    """stage -> a function that makes that stage fail on its next use."""
    probe_call = None

    def capture():
        from tb_attention_plugin.writing import capture as capture_lib
        monkeypatch.setattr(capture_lib.ProbeFunction, "__call__", _raise)

    def crop():
        monkeypatch.setattr(summary, "crop_examples", _raise)

    def tokens():
        monkeypatch.setattr(summary, "_tokens_or_positions", _raise)

    def encode():
        monkeypatch.setattr(encoding, "encode", _raise)

    def write():
        from tb_attention_plugin.writing import event_writer
        monkeypatch.setattr(event_writer.EventWriter, "_write_event", _raise)

    del probe_call
    return {"capture": capture, "crop": crop, "tokens": tokens, "encoding": encode, "writing": write}


def _raise(*args, **kwargs):
    raise RuntimeError("injected fault")


class FaultAt(keras.callbacks.Callback):
    """Injects a fault at `step`, after the captures already taken by
    `attention` are written (they run on the background writer)."""

    def __init__(self, step, inject, attention):
        super().__init__()
        self.step, self.inject, self.attention, self.done = step, inject, attention, False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.done and int(self.model.optimizer.iterations) == self.step:
            self.attention.flush()
            self.inject()
            self.done = True


@pytest.mark.parametrize("stage", ["capture", "crop", "tokens", "encoding", "writing"])
def test_a_fault_in_any_stage_skips_that_capture_and_the_fit_finishes(tmp_path, monkeypatch, caplog, stage):
    from models import tiny_data, tiny_mha_classifier

    model = tiny_mha_classifier()
    x, y = tiny_data(16)
    inject = _fault_stages(monkeypatch)[stage]
    cb = AttentionCallback(tmp_path, x[:2], update_freq=1)
    with caplog.at_level(logging.WARNING):
        # FaultAt runs first: from step 2 on, every capture fails.
        history = model.fit(x, y, batch_size=4, verbose=0, callbacks=[FaultAt(2, inject, cb), cb])
    assert len(history.history["loss"]) == 1 and int(model.optimizer.iterations) == 4
    assert cb.captured_steps == [0, 1]
    assert "skipped the capture at step 2" in caplog.text and "injected fault" in caplog.text
    monkeypatch.undo()
    layer = only_layer(tmp_path, "mha")
    assert list(layer.steps) == [0, 1]  # earlier steps readable, no partial step
    assert layer.received[0].shape[0] == 2 and layer.head_stats.shape[0] == 2


class PreSplitAttention(keras.layers.Layer):
    """Takes queries and keys already split into heads, (batch, heads, len,
    dim): none of its arguments is a (batch, length, features) sequence."""

    def call(self, query_heads, key_heads):
        logits = keras.ops.matmul(query_heads, keras.ops.transpose(key_heads, (0, 1, 3, 2)))
        return keras.ops.softmax(logits, axis=-1)


def test_a_layer_whose_sequences_cannot_be_told_is_stored_with_a_warning_naming_it(tmp_path, caplog):
    ids = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(30, D)(ids)
    split = keras.layers.Reshape((T, H, D // H))(keras.layers.Dense(D)(x))
    split = keras.layers.Permute((2, 1, 3))(split)
    weights = PreSplitAttention(name="pre_split_attention")(split, split)
    model = keras.Model(ids, keras.layers.Dense(1)(keras.layers.Flatten()(weights)))
    x_train = np.random.default_rng(0).integers(1, 30, (12, T))
    caplog.set_level(logging.WARNING, logger="tb_attention_plugin")
    _fit(model, x_train, AttentionCallback(tmp_path, x_train[:B], update_freq=2))
    said = [r.getMessage() for r in caplog.records if "could not tell" in r.getMessage()]
    assert len(said) == 1
    assert '"pre_split_attention" (PreSplitAttention)' in said[0] and "pad_id=" in said[0]
    assert "stored as self attention (the map is 7 x 7)" in said[0]
    stored = only_layer(tmp_path, "pre_split_attention")
    assert stored.num_heads == H and stored.maps[0].shape[-2:] == (T, T)
