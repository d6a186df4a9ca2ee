"""How people hand their model and probe over (issue 30): a dataset, an
(x, y) tuple, a keras_hub preprocessor's output, raw text for a task model,
a custom loop on a model never compiled, seed 003's functional sub-models,
and `plan(model)` to see what would be captured before training."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from tb_attention_plugin import AttentionCallback, read_attention
from models import LEN, tiny_data, tiny_mha_classifier


def _fit(model, probe, logdir, **kw):
    x, y = tiny_data(16)
    callback = AttentionCallback(logdir, probe, update_freq=2, encoding="float32", **kw)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[callback])
    assert callback.captured_steps == [0, 2, 4]
    return read_attention(str(logdir))["."]["mha"]


def _stored_inputs(layer, x, examples=2):
    """The probe's ids as the log labels them (positions' tokens are the
    ids themselves when no tokens are given), for the kept tokens."""
    return [[str(i) for i in x[e, LEN - len(layer.key_tokens[e]):]] for e in range(examples)]


@pytest.mark.parametrize("habit", ["(x, y)", "(x, y, sample_weight)", "dataset of (x, y)", "dataset of x"])
def test_the_inputs_of_a_labelled_probe_are_captured(tmp_path, habit, caplog):
    caplog.set_level(logging.INFO, logger="tb_attention_plugin")
    x, y = tiny_data(16)
    probe = {
        "(x, y)": (x[:2], y[:2]),
        "(x, y, sample_weight)": (x[:2], y[:2], np.ones(2)),
        "dataset of (x, y)": tf.data.Dataset.from_tensor_slices((x, y)).batch(2),
        "dataset of x": tf.data.Dataset.from_tensor_slices(x).batch(2),
    }[habit]
    layer = _fit(tiny_mha_classifier(), probe, tmp_path, tokens=lambda ids: ["t%d" % i for i in ids])
    # tiny_data pads the first 2 positions: 8 real tokens of examples 0 and 1
    assert [m.shape for m in layer.maps] == [(3, 2, 8, 8)] * 2
    assert layer.key_tokens == [["t%d" % i for i in x[e, 2:]] for e in range(2)]
    assert "captures" in caplog.text and ("dataset" in caplog.text or "(x, y" in caplog.text)


def test_a_generator_probe_is_refused_in_the_constructor_with_the_fix(tmp_path):
    x, _ = tiny_data(16)
    with pytest.raises(ValueError, match=r"probe= is a generator.*consumed.*probe=next\(iter\(dataset\)\)\[0\]"):
        AttentionCallback(tmp_path, (row for row in x))


def _bert_classifier():
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub needs Python >= 3.11")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "bad", "a"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=8)
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model, preprocessor, tokenizer


TEXTS = ["the movie was great", "bad", "a bad movie", "great great movie"] * 3
LABELS = np.array([1, 0, 0, 1] * 3)
TAG = "transformer_layer_0/self_attention_layer"


def _train_on_text(model, callback):
    """The README's custom loop around `train_on_batch`, which preprocesses
    the text eagerly (`fit` on raw text tokenizes in tf.data, which needs
    tensorflow-text, not installed here)."""
    callback.set_model(model)
    callback.on_train_begin()
    for batch in range(3):
        callback.on_train_batch_begin(batch)
        model.train_on_batch(TEXTS[4 * batch : 4 * batch + 4], LABELS[4 * batch : 4 * batch + 4])
    callback.on_train_end()


def test_raw_text_for_a_task_model_goes_through_its_preprocessor_and_tokenizer(tmp_path):
    model, _, _ = _bert_classifier()
    callback = AttentionCallback(tmp_path, probe=TEXTS[:3], update_freq=2)
    _train_on_text(model, callback)
    layer = read_attention(str(tmp_path))["."][TAG]
    assert list(layer.steps) == [0, 2, 3]
    # [CLS] text [SEP], padding cropped by the preprocessor's padding mask
    assert layer.key_tokens == [
        ["[CLS]", "the", "movie", "was", "great", "[SEP]"], ["[CLS]", "bad", "[SEP]"],
        ["[CLS]", "a", "bad", "movie", "[SEP]"]]


@pytest.mark.parametrize("output", ["dict", "(dict, y, sample_weight)"])
def test_a_preprocessors_output_is_taken_as_the_probe(tmp_path, output):
    model, preprocessor, tokenizer = _bert_classifier()
    probe = preprocessor(TEXTS[:2]) if output == "dict" else preprocessor(TEXTS[:2], LABELS[:2], np.ones(2))
    # no tokens=: a keras_hub task's tokens come from its preprocessor's tokenizer
    callback = AttentionCallback(tmp_path, probe=probe, update_freq=2)
    _train_on_text(model, callback)
    layer = read_attention(str(tmp_path))["."][TAG]
    assert layer.key_tokens == [["[CLS]", "the", "movie", "was", "great", "[SEP]"], ["[CLS]", "bad", "[SEP]"]]


def test_text_the_preprocessor_does_not_take_is_refused_with_its_words_and_the_fix(tmp_path):
    model, _, _ = _bert_classifier()
    callback = AttentionCallback(tmp_path, probe={"prompts": TEXTS[:2], "responses": TEXTS[2:4]})
    with pytest.raises(ValueError) as raised:
        callback.plan(model)
    message = str(raised.value)
    assert message.startswith('AttentionCallback: probe= holds text, and the preprocessor of model '
                              '"bert_text_classifier" (BertTextClassifierPreprocessor) did not take it: ')
    assert "probe=model.preprocessor(texts)" in message and "\x1b" not in message


def test_raw_text_for_a_model_without_a_preprocessor_is_refused_before_training(tmp_path):
    callback = AttentionCallback(tmp_path, probe=TEXTS[:2])
    with pytest.raises(ValueError, match=r"probe= holds text, and model \"tiny\" has no preprocessor.*token ids"):
        callback.set_model(tiny_mha_classifier())


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="the README's custom loop is TensorFlow code (tf.GradientTape)")
def test_the_readme_custom_loop_writes_on_a_model_that_was_never_compiled(tmp_path, caplog):
    inp = keras.Input((LEN,), dtype="int32")
    h = keras.layers.Embedding(30, 8, mask_zero=True)(inp)
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(h, h)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h)))
    assert not hasattr(model, "optimizer") or model.optimizer is None
    optimizer = keras.optimizers.Adam(0.05)
    x, y = tiny_data(20)
    callback = AttentionCallback(tmp_path, probe=x[:2], update_freq=2, encoding="float32")
    callback.set_model(model)
    callback.on_train_begin()
    for batch in range(5):
        callback.on_train_batch_begin(batch)
        with tf.GradientTape() as tape:
            loss = keras.ops.mean((model(x[4 * batch : 4 * batch + 4], training=True) - y[4 * batch : 4 * batch + 4]) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    callback.on_train_end()
    assert "unexpected error" not in caplog.text
    # steps are the batches begun: 0 before training, 2 and 4, 5 at the end
    assert callback.captured_steps == [0, 2, 4, 5]
    layer = read_attention(str(tmp_path))["."]["mha"]
    assert list(layer.steps) == [0, 2, 4, 5]
    _, reference = model.get_layer("mha")(
        model.layers[1](x[:2]), model.layers[1](x[:2]),
        attention_mask=(x[:2] != 0)[:, None, :], return_attention_scores=True)
    np.testing.assert_allclose(layer.maps[0][-1], keras.ops.convert_to_numpy(reference)[0][:, 2:, 2:], atol=1e-6)


def test_plan_shows_every_layer_before_training_and_writes_nothing(tmp_path):
    model = tiny_mha_classifier()
    x, y = tiny_data(16)
    logdir = tmp_path / "run"
    callback = AttentionCallback(logdir, probe=x[:2], tokens=lambda ids: ["t%d" % i for i in ids])
    plan = callback.plan(model)
    text = str(plan)
    assert not logdir.exists()
    # one layer: 2 heads x 2 examples x 8 x 8 real tokens = 256 weights
    assert plan.weights_per_capture == 256
    assert 'model "tiny": 1 layers, probe of 2 examples; 256 numbers per capture (256 bytes as uint8' in text
    row = next(line for line in text.splitlines() if line.strip().startswith("mha"))
    assert row.split()[:4] == ["mha", "MultiHeadAttention", "self", "2"]
    assert 'probe input "input"' in row and "the layer's mask" in row and row.split()[-2:] == ["full", "256"]
    # the fit after it reuses the plan and writes as usual
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[callback])
    assert callback.captured_steps == [0, 4]


def test_plan_of_gemma3_names_grouped_heads_windows_and_what_is_left_out(tmp_path):
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub needs Python >= 3.11")
    backbone = keras_hub.models.Gemma3Backbone(
        vocabulary_size=50, image_size=16, num_layers=6, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=16, intermediate_dim=32, head_dim=4, sliding_window_size=4,
        use_sliding_window_attention=True, vision_encoder=None)
    ids = np.random.default_rng(0).integers(2, 50, (2, 12))
    ids[:, 9:] = 0
    callback = AttentionCallback(tmp_path, {"token_ids": ids, "padding_mask": ids != 0})
    rows = {line.split()[0]: line for line in str(callback.plan(backbone)).splitlines()[2:]}
    assert sorted(rows) == ["decoder_block_%d/attention" % i for i in range(6)]
    for i in range(5):
        assert "causal, window 4  4 (2 kv)" in rows["decoder_block_%d/attention" % i]
    assert "window" not in rows["decoder_block_5/attention"]
    assert 'probe input "token_ids"' in rows["decoder_block_5/attention"]


def _seed_003_transformer():
    """Seed 003 as written: every encoder and decoder layer is a functional
    sub-model whose attention layers are named alike in each."""
    from test_capture_any_model import TutorialMultiHeadAttention, create_look_ahead_mask, create_padding_mask

    def encoder_layer(name):
        x, mask = keras.Input((None, 8)), keras.Input((1, 1, None))
        a = TutorialMultiHeadAttention(8, 2, name="attention")({"query": x, "key": x, "value": x, "mask": mask})
        return keras.Model([x, mask], x + a, name=name)

    def decoder_layer(name):
        x, enc = keras.Input((None, 8)), keras.Input((None, 8))
        look_ahead, mask = keras.Input((1, None, None)), keras.Input((1, 1, None))
        a1 = TutorialMultiHeadAttention(8, 2, name="attention_1")(
            {"query": x, "key": x, "value": x, "mask": look_ahead})
        a2 = TutorialMultiHeadAttention(8, 2, name="attention_2")({"query": a1, "key": enc, "value": enc, "mask": mask})
        return keras.Model([x, enc, look_ahead, mask], a1 + a2, name=name)

    src = keras.Input((None,), dtype="int32", name="inputs")
    tgt = keras.Input((None,), dtype="int32", name="dec_inputs")
    padding = keras.layers.Lambda(create_padding_mask, name="enc_padding_mask")(src)
    look_ahead = keras.layers.Lambda(create_look_ahead_mask, name="look_ahead_mask")(tgt)
    embedding = keras.layers.Embedding(30, 8)
    x = embedding(src)
    for i in range(2):
        x = encoder_layer("encoder_layer_%d" % i)([x, padding])
    y = embedding(tgt)
    for i in range(2):
        y = decoder_layer("decoder_layer_%d" % i)([y, x, look_ahead, padding])
    model = keras.Model([src, tgt], keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(y)))
    model.compile("adam", "mse")
    return model


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="seed 003 is TensorFlow code (tf.matmul, tf.nn.softmax)")
def test_seed_003_sub_models_layers_are_tagged_by_the_sub_model_that_holds_them(tmp_path):
    model = _seed_003_transformer()
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, (12, 7)), rng.integers(1, 30, (12, 7))
    src[:, 5:] = 0
    callback = AttentionCallback(tmp_path, [src[:2], tgt[:2]], update_freq=2)
    model.fit([src, tgt], np.zeros((12, 1)), batch_size=4, verbose=0, callbacks=[callback])
    layers = read_attention(str(tmp_path))["."]
    assert {tag: layer.kind for tag, layer in layers.items()} == {
        "encoder_layer_0/attention": "self", "encoder_layer_1/attention": "self",
        "decoder_layer_0/attention_1": "causal", "decoder_layer_0/attention_2": "cross",
        "decoder_layer_1/attention_1": "causal", "decoder_layer_1/attention_2": "cross",
    }
    assert [layers[t].layer_index for t in sorted(layers, key=lambda t: layers[t].layer_index)] == list(range(6))
    # a tag picks the layer in layers= too
    picked = AttentionCallback(tmp_path / "picked", [src[:2], tgt[:2]], layers=["encoder_layer_1/attention"])
    assert [t for t in str(picked.plan(model)).split() if "/attention" in t] == ["encoder_layer_1/attention"]


@pytest.mark.parametrize("habit", ["x", "(x, y)", "(x, y, sample_weight)", "dataset of (x, y)"])
def test_a_model_of_two_inputs_takes_its_probe_with_or_without_labels(tmp_path, habit):
    """An encoder-decoder's probe as fit takes its data: the inputs alone
    ((encoder, decoder)), with labels, with sample weights, or a dataset of
    ((encoder, decoder), y) batches: the same two examples are captured."""
    enc_in, dec_in = keras.Input((LEN,), dtype="int32"), keras.Input((4,), dtype="int32")
    enc = keras.layers.Embedding(30, 8)(enc_in)
    dec = keras.layers.Embedding(30, 8)(dec_in)
    dec = keras.layers.MultiHeadAttention(2, 4, name="cross")(dec, enc)
    model = keras.Model([enc_in, dec_in], keras.layers.Dense(30)(dec))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    source, target, y = rng.integers(1, 30, (16, LEN)), rng.integers(1, 30, (16, 4)), rng.integers(1, 30, (16, 4))
    x = (source[:2], target[:2])
    probe = {
        "x": x,
        "(x, y)": (x, y[:2]),
        "(x, y, sample_weight)": (x, y[:2], np.ones((2, 4))),
        "dataset of (x, y)": tf.data.Dataset.from_tensor_slices(((source, target), y)).batch(2),
    }[habit]
    model.fit([source, target], y, batch_size=4, verbose=0, callbacks=[
        AttentionCallback(tmp_path, probe, update_freq=2, encoding="float32", tokens=lambda ids: ["t%d" % i for i in ids])])
    layer = read_attention(str(tmp_path))["."]["cross"]
    assert [m.shape for m in layer.maps] == [(3, 2, 4, LEN)] * 2  # steps 0, 2, 4; 2 heads; 4 x 10
    # labelled from each input's ids: the decoder's two examples query, the encoder's are the keys
    assert layer.query_tokens == [["t%d" % i for i in target[e]] for e in range(2)]
    assert layer.key_tokens == [["t%d" % i for i in source[e]] for e in range(2)]
