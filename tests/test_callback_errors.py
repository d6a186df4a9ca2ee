"""Bad setup fails before training with a message naming the fix; faults at
capture time skip that capture and training goes on."""

import logging

import keras
import numpy as np
import pytest

from conftest import only_layer
from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback


def _fit(model, cb, n=8):
    x, y = tiny_data(n)
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)


def test_model_without_attention_lists_its_layers_and_names_layers_argument(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(inp))
    model.compile("adam", "mse")
    cb = AttentionCallback(tmp_path, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"found no attention layer.*head \(Dense\).*layers="):
        model.fit(np.zeros((4, 4)), np.zeros((4, 1)), verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations) == 0  # failed before any step


def test_unknown_layer_name_is_rejected_with_the_names_that_exist(tmp_path):
    model = tiny_mha_classifier()
    cb = AttentionCallback(tmp_path, tiny_data(2)[0], layers=["atention"])
    with pytest.raises(ValueError, match=r'layers= names "atention", which is no layer.*mha \(MultiHeadAttention\)'):
        _fit(model, cb)


def test_probe_the_model_cannot_take_fails_at_train_begin(tmp_path):
    model = tiny_mha_classifier()
    cb = AttentionCallback(tmp_path, np.zeros((2, 3, 5), "int32"))
    with pytest.raises(ValueError, match=r"could not run the model on the probe; the model says .*expected shape=\(None, 10\).*Pass probe="):
        _fit(model, cb)
    assert int(model.optimizer.iterations) == 0


@pytest.mark.parametrize(
    "tokens, message",
    [
        ([["a"] * 10], "tokens has 1 examples and the probe has 2"),
        ([["a"] * 10, ["b"] * 9], r'tokens\[1\] has 9 strings and probe input "input" has 10'),
        (lambda ids: ["x"], "returned 1 strings for example 0"),
        (42, "tokens must be None, a callable"),
    ],
)
def test_tokens_whose_count_does_not_match_are_rejected(tmp_path, tokens, message):
    with pytest.raises(ValueError, match=message):
        AttentionCallback(tmp_path, tiny_data(2)[0], tokens=tokens)


@pytest.mark.parametrize(
    "probe, message",
    [(np.zeros((0, 10)), "0 examples"), ([], "probe is empty"), ((np.zeros((2, 3)), np.zeros((3, 3))), "different batch sizes")],
)
def test_empty_or_ragged_probe_is_rejected(tmp_path, probe, message):
    with pytest.raises(ValueError, match=message):
        AttentionCallback(tmp_path, probe)


def test_bad_update_freq_and_encoding_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="update_freq must be"):
        AttentionCallback(tmp_path, np.zeros((1, 2)), update_freq=0)
    with pytest.raises(ValueError, match='encoding "[^"]*" is not known: pass encoding="uint8"'):
        AttentionCallback(tmp_path, np.zeros((1, 2)), encoding="jpeg")


def test_unwritable_log_dir_is_reported_at_set_model(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cb = AttentionCallback(blocker / "logs", tiny_data(2)[0])
    with pytest.raises(ValueError, match="cannot write to log_dir"):
        cb.set_model(tiny_mha_classifier())


def test_two_callbacks_on_one_log_dir_are_rejected(tmp_path):
    model = tiny_mha_classifier()
    x, y = tiny_data(8)
    callbacks = [AttentionCallback(tmp_path, x[:2]), AttentionCallback(tmp_path, x[:2])]
    with pytest.raises(ValueError, match="another AttentionCallback already writes"):
        model.fit(x, y, verbose=0, callbacks=callbacks)


class SometimesNaNAttention(keras.layers.Layer):
    """Returns (x, weights); weights turn NaN while `poison` is NaN."""

    def build(self, input_shape):
        self.poison = self.add_weight(shape=(), initializer="ones", trainable=False, name="poison")

    def call(self, x):
        scores = keras.ops.matmul(x, keras.ops.transpose(x, (0, 2, 1)))
        return x, keras.ops.softmax(scores * self.poison, axis=-1)


class Poison(keras.callbacks.Callback):
    def __init__(self, layer, steps):
        super().__init__()
        self.layer, self.steps = layer, steps

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations)
        self.layer.poison.assign(np.nan if step in self.steps else 1.0)


def test_nan_capture_is_skipped_with_a_warning_and_fit_completes(tmp_path, caplog):
    inp = keras.Input((5, 4))
    attention = SometimesNaNAttention(name="att")
    x, _ = attention(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(x)))
    model.compile("adam", "mse")
    data = np.random.default_rng(0).normal(size=(24, 5, 4)).astype("float32")
    cb = AttentionCallback(tmp_path, data[:2], layers=["att"], update_freq=1)
    with caplog.at_level(logging.WARNING):
        # Poison runs first, so the capture at steps 2 and 3 sees NaN.
        history = model.fit(data, np.zeros((24, 1)), batch_size=4, verbose=0,
                            callbacks=[Poison(attention, {2, 3}), cb])
    assert len(history.history["loss"]) == 1
    assert int(model.optimizer.iterations) == 6
    assert cb.captured_steps == [0, 1, 4, 5, 6]
    assert "skipped the capture at step 2" in caplog.text
    assert list(only_layer(tmp_path, "att").steps) == [0, 1, 4, 5, 6]


def test_a_capture_over_the_storage_budget_keeps_the_first_examples_that_fit(tmp_path, caplog):
    model = tiny_mha_classifier(heads=2)
    x, y = tiny_data(8)
    # 3 examples x 2 heads x 8 x 8 real tokens = 3 x 128 weights
    cb = AttentionCallback(tmp_path / "two", x[:3], max_cells=300)
    with caplog.at_level(logging.WARNING):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[cb])
    assert "stores the first 2 of the 3 probe examples" in caplog.text
    assert "pass max_cells=384 to store all 3" in caplog.text
    layer = only_layer(tmp_path / "two", "mha")
    assert len(layer.maps) == 2 and layer.maps[0].shape[1:] == (2, 8, 8)
    assert cb.captured_steps == [0, 2]
    # Only when one example alone is over the budget is the fit refused.
    model = tiny_mha_classifier(heads=2)
    cb = AttentionCallback(tmp_path / "none", x[:3], max_cells=127)
    with pytest.raises(ValueError, match=r"one probe example alone would store 128 numbers \(largest layers: mha 128 \(full\)\).*max_cells=127, even with every layer reduced where that is smaller.*layers=\[...\]"):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations) == 0
