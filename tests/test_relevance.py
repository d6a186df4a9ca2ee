"""Gradient-weighted relevance (issue 35 item 2, Chefer, Gur and Wolf, ICCV
2021): in real fits, on every backend, the stored relevance of each
attention weight equals d target / d a_hij * a_hij derived by hand, in
float64 numpy, from the trained layer's own weights:

    embedding x -> MultiHeadAttention (heads h: v_h = x W_V^h + b_V^h,
    o_i = sum_h sum_j a_hij v_hj W_O^h + b_O) -> mean over the 6 positions
    -> logits z = W_d mean(o) + b_d,

so with g_z = d target / d z (one_hot(y) - softmax(z) for minus the
cross-entropy, one_hot(c) for class c's logit), every position's output
gets the gradient g_o = W_d g_z / 6 and

    d target / d a_hij = (W_O^h g_o) . v_hj.

Relevance rollout through a stack of one layer is the mean over real query
rows of I + mean_h (d target / d A_h * A_h)^+ (Chefer et al., eq. 6-7).

Tolerances: the probe computes the gradients in float32 (through the
backend's autodiff), the reference in float64: products of a few float32
roundings, far below 1e-4 of the largest relevance; the shares are stored as
float32 here (encoding="float32"), exact to float32.
"""

import keras
import numpy as np
import pytest

from tb_attention_plugin import AttentionCallback, read_attention

LEN, VOCAB, WIDTH, CLASSES = 6, 20, 8, 3
RTOL = 1e-4  # of the largest |relevance| of the example: float32 backward vs float64


def _model():
    ids = keras.Input((LEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, WIDTH, name="embed")(ids)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(ids, keras.layers.Dense(CLASSES, name="head")(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, VOCAB, (n, LEN)), rng.integers(0, CLASSES, (n,))


def _hand(model, ids, gradient_of_logits):
    """(weights (batch, heads, q, k), d target / d A * A) by hand, float64."""
    weights = lambda layer: [np.asarray(w, np.float64) for w in layer.get_weights()]
    (table,) = weights(model.get_layer("embed"))
    wq, bq, wk, bk, wv, bv, wo, bo = weights(model.get_layer("mha"))
    wd, bd = weights(model.get_layer("head"))
    x = table[ids]  # (b, n, width)
    q = np.einsum("bnw,whd->bnhd", x, wq) + bq
    k = np.einsum("bnw,whd->bnhd", x, wk) + bk
    v = np.einsum("bnw,whd->bnhd", x, wv) + bv
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    a = np.exp(scores - scores.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    o = np.einsum("bhqk,bkhd,hdw->bqw", a, v, wo) + bo
    z = o.mean(axis=1) @ wd + bd
    g_o = gradient_of_logits(z) @ wd.T / LEN  # (b, width), the same at every position
    through = np.einsum("hdw,bw->bhd", wo, g_o)  # W_O^h g_o
    gradient = np.einsum("bhd,bkhd->bhk", through, v)[:, :, None, :]  # the same for every query i
    return a, gradient * a


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


TARGETS = {
    "loss": lambda y: lambda z: np.eye(CLASSES)[y] - _softmax(z),
    "predicted": lambda y: lambda z: np.eye(CLASSES)[z.argmax(-1)],
    2: lambda y: lambda z: np.tile(np.eye(CLASSES)[2], (len(z), 1)),
    "callable": lambda y: lambda z: np.tile([1.0, -1.0, 0.0], (len(z), 1)),
}


def _fit(tmp_path, relevance, **callback_args):
    keras.utils.set_random_seed(0)
    model = _model()
    x, y = _data()
    callback = AttentionCallback(str(tmp_path), probe=(x[:3], y[:3]), update_freq=2,
                                 encoding="float32", relevance=relevance, **callback_args)
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[callback], verbose=0)
    return model, x[:3], y[:3], read_attention(str(tmp_path))["."]


@pytest.mark.parametrize("target", list(TARGETS))
def test_stored_relevance_equals_the_hand_gradient_of_the_explained_output(tmp_path, target):
    relevance = (lambda logits: logits[:, 0] - logits[:, 1]) if target == "callable" else target
    model, x, y, run = _fit(tmp_path, relevance)
    assert list(run) == ["mha"]  # the relevance is listed with its layer, not as one
    layer = run["mha"]
    stored = layer.relevance
    assert stored is not None and list(stored.steps) == list(layer.steps)
    assert stored.relevance_target == {
        "loss": "loss (minus the loss on the probe's labels)", "predicted": "predicted class",
        2: "class 2", "callable": "output <lambda>"}[target]
    weights, products = _hand(model, x, TARGETS[target](y))
    np.testing.assert_allclose(layer.maps[0][-1], weights[0], atol=1e-5)  # the same trained weights
    for e in range(3):
        expected = np.maximum(products[e], 0)
        scale = np.abs(products[e]).max()
        assert scale > 0
        np.testing.assert_allclose(layer.relevance_maps(e, -1), expected, rtol=0, atol=RTOL * scale)
        np.testing.assert_allclose(stored.relevance_rows[e][-1], expected.sum(-1), rtol=0, atol=LEN * RTOL * scale)
        # Relevance rollout of a stack of one layer: mean over rows of I + A_bar.
        rollout = (np.eye(LEN) + expected.mean(axis=0)).mean(axis=0)
        np.testing.assert_allclose(stored.rollout[e][-1], rollout, rtol=1e-4)
    # The shares are each row's share of its positive relevance: rows sum to 1.
    shares = stored.maps[0][-1]
    nonzero = stored.relevance_rows[0][-1] > 0
    np.testing.assert_allclose(shares.sum(-1)[nonzero], 1.0, atol=1e-5)


def test_without_relevance_nothing_extra_is_stored(tmp_path):
    _, _, _, run = _fit(tmp_path, None)
    assert run["mha"].relevance is None
    tags = [p.name for p in tmp_path.rglob("*")]
    assert not any("relevance" in t for t in tags)


@pytest.mark.parametrize("relevance, probe, says", [
    ("loss", "x", "probe=(x, y)"),
    (7, "xy", "relevance=7 is no class of this model's 3 outputs"),
    ("everything", "xy", "names no output to explain"),
])
def test_relevance_that_cannot_be_computed_is_refused_before_training_naming_the_fix(tmp_path, relevance, probe, says):
    model = _model()
    x, y = _data()
    given = x[:2] if probe == "x" else (x[:2], y[:2])
    with pytest.raises(ValueError, match=".*".join(map(__import__("re").escape, [says]))):
        callback = AttentionCallback(str(tmp_path), probe=given, relevance=relevance)
        model.fit(x, y, epochs=1, callbacks=[callback], verbose=0)
    assert not list(tmp_path.rglob("events.out.tfevents*"))  # nothing written, no step run


HUB_LEN, HUB_PAD = 10, 3


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "gemma"])
def test_keras_hub_models_store_the_relevance_a_gradient_tape_gives(tmp_path, family):
    """keras_hub models built from config, in a real fit explaining a
    regression head (relevance=0): every attention layer's stored relevance
    is (d out / d A * A)^+ as TensorFlow's GradientTape gives it in an eager
    call of the trained model, recording each layer's softmax output (BERT
    and GPT-2: MultiHeadAttention; Llama and Gemma: their own softmax, 4
    query heads over 2 key/value heads). On JAX and PyTorch (no tape), every
    layer stores finite relevance whose rows are shares of one."""
    keras_hub = pytest.importorskip("keras_hub")
    from conftest import explicit_attention

    config = dict(vocabulary_size=VOCAB, num_layers=2, hidden_dim=8, intermediate_dim=16)
    if family in ("bert", "gpt2"):
        kind = keras_hub.models.BertBackbone if family == "bert" else keras_hub.models.GPT2Backbone
        backbone = kind(num_heads=2, max_sequence_length=HUB_LEN, **config)
    else:
        config.update(num_query_heads=4, num_key_value_heads=2, hidden_dim=16, intermediate_dim=32)
        backbone = (keras_hub.models.LlamaBackbone(**config) if family == "llama"
                    else keras_hub.models.GemmaBackbone(head_dim=4, **config))
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (8, HUB_LEN))
    x[:, HUB_LEN - HUB_PAD:] = 0
    inputs = {"token_ids": x, "padding_mask": (x != 0).astype("int32")}
    if family == "bert":
        inputs["segment_ids"] = np.zeros_like(x)
    output = backbone.output["sequence_output"] if family == "bert" else backbone.output
    keras.utils.set_random_seed(1)
    model = keras.Model(backbone.input, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(output)))
    model.compile("adam", "mse")
    probe = {k: v[:2] for k, v in inputs.items()}
    model.fit(inputs, rng.normal(size=(8, 1)), batch_size=4, verbose=0, callbacks=[
        AttentionCallback(tmp_path, probe, update_freq=2, encoding="float32", relevance=0)])
    layers = read_attention(str(tmp_path))["."]
    real = HUB_LEN - HUB_PAD
    for stored in layers.values():
        assert stored.relevance is not None and stored.relevance.relevance_target == "class 0"
        shares = stored.relevance.maps[0][-1]
        assert np.isfinite(shares).all() and shares.shape[-2:] == (real, real)
        rows = stored.relevance.relevance_rows[0][-1]
        np.testing.assert_allclose(shares.sum(-1)[rows > 0], 1.0, atol=1e-5)
    if keras.config.backend() != "tensorflow":
        return
    import tensorflow as tf

    attention = [l for l in model._flatten_layers(include_self=False) if l.path in layers]
    assert len(attention) == 2
    softmaxes, restore = {}, []
    for layer in attention:
        softmax = next(l for l in layer._flatten_layers(include_self=False) if isinstance(l, keras.layers.Softmax))

        def call(*args, _original=softmax.call, _path=layer.path, **kwargs):
            softmaxes[_path] = _original(*args, **kwargs)
            return softmaxes[_path]

        object.__setattr__(softmax, "call", call)
        restore.append(softmax)
    try:
        with explicit_attention(), tf.GradientTape() as tape:
            target = tf.reduce_sum(model(probe, training=False)[:, 0])
        paths = [l.path for l in attention]
        gradients = tape.gradient(target, [softmaxes[p] for p in paths])
    finally:
        for softmax in restore:
            object.__delattr__(softmax, "call")
    for path, gradient in zip(paths, gradients):
        a = softmaxes[path].numpy()
        products = (gradient.numpy() * a).reshape((2, -1) + a.shape[-2:])  # Gemma's (kv, groups) -> heads
        for e in range(2):
            expected = np.maximum(products[e, :, :real, :real], 0)
            scale = np.abs(products[e]).max()
            assert scale > 0
            np.testing.assert_allclose(layers[path].relevance_maps(e, -1), expected, rtol=0, atol=RTOL * scale)


def test_relevance_that_is_not_finite_is_left_out_with_one_warning_and_the_weights_are_stored(tmp_path, caplog):
    """An explained output that overflowed (here it is the logit times
    Inf: its gradient is Inf, times a weight of 0 NaN) costs that capture's
    relevance, never the capture: the weights of every step are stored,
    one warning per layer."""
    def overflowing(logits):
        return logits[:, 0] * float("inf")

    with caplog.at_level("WARNING", logger="tb_attention_plugin.writing.callback"):
        _, _, _, run = _fit(tmp_path, overflowing)
    layer = run["mha"]
    assert list(layer.steps) == [0, 2, 4] and layer.relevance is None
    said = [r.getMessage() for r in caplog.records if "relevance of layer" in r.getMessage()]
    assert len(said) == 1 and "mha" in said[0] and "stored without it" in said[0]


@pytest.mark.parametrize("loss", ["binary_crossentropy", "function"])
def test_a_loss_compiled_by_name_or_as_a_function_explains_as_its_loss_object_does(tmp_path, loss):
    """relevance="loss" reads the loss as compile was given it: by name
    ("binary_crossentropy"), as a function, or as a Loss object; labels of
    shape (batch,) against a sigmoid output of (batch, 1) are brought to one
    rank as compile does. Same model, same seed: the same relevance (float32
    of the same computation: exact up to a few ulps)."""
    runs = {}
    for name, given in (("object", keras.losses.BinaryCrossentropy()),
                        (loss, keras.losses.binary_crossentropy if loss == "function" else loss)):
        keras.utils.set_random_seed(0)
        ids = keras.Input((LEN,), dtype="int32")
        x = keras.layers.Embedding(VOCAB, WIDTH)(ids)
        x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
        model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling1D()(x)))
        model.compile("adam", given)
        x_data, _ = _data()
        y = (x_data[:, 0] > VOCAB // 2).astype("int32")  # (batch,)
        model.fit(x_data, y, batch_size=4, verbose=0, callbacks=[AttentionCallback(
            tmp_path / name, probe=(x_data[:2], y[:2]), update_freq=2, encoding="float32", relevance="loss")])
        runs[name] = read_attention(str(tmp_path / name))["."]["mha"]
    for e in range(2):
        reference = runs["object"].relevance_maps(e, -1)
        assert reference.max() > 0
        np.testing.assert_allclose(runs[loss].relevance_maps(e, -1), reference, rtol=1e-5, atol=1e-7 * reference.max())


class HandWrittenAttention(keras.layers.Layer):
    """Attention written by hand with keras.ops.softmax (found by its class
    name); keeps its last eager probabilities for the reference."""

    def build(self, input_shape):
        self.qkv = keras.layers.Dense(3 * WIDTH)
        self.qkv.build(input_shape)

    def call(self, x):
        q, k, v = keras.ops.split(self.qkv(x), 3, axis=-1)
        self.probabilities = keras.ops.softmax(keras.ops.einsum("bqd,bkd->bqk", q, k) / np.sqrt(WIDTH), axis=-1)
        return keras.ops.einsum("bqk,bkd->bqd", self.probabilities, v)


def test_a_hand_written_softmax_layer_stores_the_relevance_a_gradient_tape_gives(tmp_path):
    """A layer of the user's own (one head, keras.ops.softmax), in a real
    fit explaining class 1: its stored relevance is (d z_1 / d A * A)^+ as
    TensorFlow's GradientTape gives it in an eager call of the trained model
    (on JAX and PyTorch, that it is stored and finite)."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((LEN,), dtype="int32")
    layer = HandWrittenAttention(name="mine")
    x = layer(keras.layers.Embedding(VOCAB, WIDTH)(ids))
    model = keras.Model(ids, keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling1D()(x)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_data, y = _data()
    model.fit(x_data, y, batch_size=4, verbose=0, callbacks=[AttentionCallback(
        tmp_path, probe=x_data[:2], update_freq=2, encoding="float32", relevance=1)])
    stored = read_attention(str(tmp_path))["."]["mine"]
    assert stored.relevance is not None and np.isfinite(stored.relevance_maps(0, -1)).all()
    if keras.config.backend() != "tensorflow":
        return
    import tensorflow as tf

    with tf.GradientTape() as tape:
        target = tf.reduce_sum(model(x_data[:2], training=False)[:, 1])
    a = layer.probabilities
    products = (tape.gradient(target, a) * a).numpy()
    for e in range(2):
        scale = np.abs(products[e]).max()
        assert scale > 0
        np.testing.assert_allclose(stored.relevance_maps(e, -1)[0], np.maximum(products[e], 0), rtol=0, atol=RTOL * scale)


def test_the_plan_says_which_layers_store_relevance_and_counts_its_maps(tmp_path):
    """plan() before training: the MHA layer stores relevance beside its
    weights, a second set of maps: 2 x (3 examples x 2 heads x 6 x 6)."""
    x, y = _data()
    callback = AttentionCallback(str(tmp_path), probe=(x[:3], y[:3]), relevance="loss")
    text = str(callback.plan(_model()))
    assert "full + relevance" in text
    assert text.splitlines()[-1].split()[-1] == str(2 * 3 * 2 * LEN * LEN)


def test_an_encoder_decoder_explains_its_loss_from_a_probe_of_inputs_and_labels(tmp_path):
    """A two-input model (encoder ids, decoder ids: self attention on each,
    cross attention from the decoder), probe=((encoder, decoder), y) as fit
    takes its data: the inputs are captured and the labels explained. The
    cross layer's relevance is stored; relevance rollout runs through each
    self-attention stack only (cross attention mixes two sequences)."""
    keras.utils.set_random_seed(0)
    enc_in, dec_in = keras.Input((LEN,), dtype="int32"), keras.Input((4,), dtype="int32")
    enc = keras.layers.Embedding(VOCAB, WIDTH)(enc_in)
    enc = keras.layers.MultiHeadAttention(2, 4, name="encoder_self")(enc, enc)
    dec = keras.layers.Embedding(VOCAB, WIDTH)(dec_in)
    dec = keras.layers.MultiHeadAttention(2, 4, name="decoder_self")(dec, dec, use_causal_mask=True)
    dec = keras.layers.MultiHeadAttention(2, 4, name="cross")(dec, enc)
    model = keras.Model([enc_in, dec_in], keras.layers.Dense(VOCAB)(dec))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    source, target = rng.integers(1, VOCAB, (16, LEN)), rng.integers(1, VOCAB, (16, 5))
    x, y = [source, target[:, :-1]], target[:, 1:]
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[AttentionCallback(
        tmp_path, probe=((source[:2], target[:2, :-1]), y[:2]), update_freq=2, relevance="loss")])
    run = read_attention(str(tmp_path))["."]
    assert sorted(run) == ["cross", "decoder_self", "encoder_self"]
    assert run["cross"].kind == "cross" and run["cross"].maps[0].shape[-2:] == (4, LEN)
    for name, layer in run.items():
        assert layer.relevance.relevance_target.startswith("loss") and np.isfinite(layer.relevance_maps(0, -1)).all()
        assert layer.relevance.relevance_rows[0][-1].max() > 0  # every layer moved the loss
    assert run["cross"].relevance.rollout is None and run["decoder_self"].relevance.rollout is not None


def test_turning_relevance_on_in_a_reused_log_dir_continues_the_run(tmp_path):
    """A notebook re-run with relevance= added, into the same log_dir: the
    same model and probe continue the same run (no rerun_2), the weights at
    every step, the relevance from the steps it was asked at."""
    keras.utils.set_random_seed(0)
    model = _model()
    x, y = _data()
    for relevance in (None, "predicted"):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[AttentionCallback(
            str(tmp_path), probe=(x[:3], y[:3]), update_freq=2, relevance=relevance)])
    assert not (tmp_path / "rerun_2").exists()
    layer = read_attention(str(tmp_path))["."]["mha"]
    assert list(layer.steps) == [0, 2, 4, 6, 8]
    # The second fit begins at step 4, which the first fit's last capture wrote
    # (without relevance) and is not written twice: relevance from step 6.
    assert list(layer.relevance.steps) == [6, 8]
