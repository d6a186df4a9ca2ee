"""Every message the callback gives a user reads as a sentence: it says who
speaks (AttentionCallback), what happened and what to do, and holds no Python
repr (quoted reprs of names, tuples of shapes, exception class names,
object addresses). Each case is a real misuse or fault in a real fit."""

import logging
import re

import keras
import numpy as np
import pytest

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback

REPR_TRACES = [
    (re.compile(r"'[^'\s]+'"), "a single-quoted repr of a name"),
    (re.compile(r"\(\d+, \d+[,)]"), "a tuple repr of a shape"),
    (re.compile(r"\b[A-Z]\w*(Error|Exception)\b"), "an exception class name"),
    (re.compile(r"<[\w.]+ object at"), "an object repr"),
    (re.compile(r"array\(|dtype\(|tf\.Tensor\("), "a numpy or TensorFlow repr"),
]


def assert_is_sentence(message):
    assert message.startswith("AttentionCallback"), message
    assert message.rstrip().endswith("."), message
    # Exempt: what Keras or the model said, quoted verbatim; what a bug
    # report needs after "please report it with this line:".
    ours = re.sub("\u201c.*?\u201d", "", message).split("please report it with this line:")[0]
    for pattern, what in REPR_TRACES:
        found = pattern.search(ours)
        assert found is None, "%s (%r) in: %s" % (what, found.group(0), message)
    # Says what to do: an instruction follows what happened.
    assert re.search(r"\b(Pass|pass|Give|give|Train|train|Return|return|slice|Slice|upgrade|"
                     r"report|check|watch|consider|Training goes on|so its maps|so it is not|"
                     r"writes this training|steps never go backwards)\b", message), message


def _fit(model, callbacks, x=None):
    x_train, y = tiny_data(16)
    return model.fit(x_train if x is None else x, y, batch_size=4, verbose=0, callbacks=callbacks)


def _probe():
    return tiny_data(16)[0][:2]


# Each: (name, a function that raises the ValueError the user sees).
SETUP_ERRORS = {
    "bad update_freq": lambda tmp: AttentionCallback(tmp, _probe(), update_freq=0),
    "bad encoding": lambda tmp: AttentionCallback(tmp, _probe(), encoding="float16"),
    "empty probe": lambda tmp: AttentionCallback(tmp, np.zeros((0, 10))),
    "ragged probe": lambda tmp: AttentionCallback(tmp, (np.zeros((2, 3)), np.zeros((3, 3)))),
    "token count": lambda tmp: AttentionCallback(tmp, _probe(), tokens=[["a"]] * 2),
    "token type": lambda tmp: AttentionCallback(tmp, _probe(), tokens=3.5),
    "unknown layer": lambda tmp: _fit(tiny_mha_classifier(), [AttentionCallback(tmp, _probe(), layers=["atention"])]),
    "no attention": lambda tmp: _fit(_dense_model(), [AttentionCallback(tmp, _probe())]),
    "not attention": lambda tmp: _fit(_dense_model(), [AttentionCallback(tmp, _probe(), layers=["hidden"])]),
    "probe of the wrong shape": lambda tmp: _fit(tiny_mha_classifier(), [AttentionCallback(tmp, np.zeros((2, 7), "int32"))]),
    "over budget": lambda tmp: _fit(tiny_mha_classifier(), [AttentionCallback(tmp, _probe(), max_cells=10)]),
    "two callbacks": lambda tmp: _fit(tiny_mha_classifier(), [AttentionCallback(tmp, _probe()), AttentionCallback(tmp, _probe())]),
    "unwritable log_dir": lambda tmp: _fit(tiny_mha_classifier(), [AttentionCallback(_file_in(tmp) + "/run", _probe())]),
}


def _dense_model():
    inp = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(30, 4)(inp)
    x = keras.layers.Dense(4, name="hidden")(keras.layers.Flatten()(x))
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    model.compile("adam", "mse")
    return model


def _file_in(tmp):
    path = tmp / "a_file"
    path.write_text("not a directory")
    return str(path)


@pytest.mark.parametrize("case", sorted(SETUP_ERRORS))
def test_every_setup_error_is_a_sentence_naming_the_fix(tmp_path, case):
    with pytest.raises(ValueError) as raised:
        SETUP_ERRORS[case](tmp_path)
    assert_is_sentence(str(raised.value))


class NaNAttention(keras.layers.Layer):
    """Attention whose probabilities turn NaN at iterations 2 and 3."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.poisoned = keras.Variable(0.0, trainable=False)

    def call(self, x, training=None):
        logits = keras.ops.matmul(x, keras.ops.transpose(x, (0, 2, 1)))
        if not training:  # the probe sees NaN, training does not
            logits = logits + self.poisoned
        weights = keras.ops.softmax(logits, axis=-1)
        return keras.ops.matmul(weights, x), weights


class Poison(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def on_train_batch_begin(self, batch, logs=None):
        self.layer.poisoned.assign(np.nan if batch in (2, 3) else 0.0)


def test_every_warning_while_training_is_a_sentence(tmp_path, caplog):
    # A NaN capture, a fault in writing, a re-run of a changed model, a recompile.
    inp = keras.Input((5, 4))
    layer = NaNAttention(name="att")
    x, _ = layer(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(x)))
    model.compile("adam", "mse")
    data = np.random.default_rng(0).normal(size=(24, 5, 4)).astype("float32")
    with caplog.at_level(logging.WARNING):
        model.fit(data, np.zeros((24, 1)), batch_size=4, verbose=0,
                  callbacks=[Poison(layer), AttentionCallback(tmp_path, data[:2], layers=["att"], update_freq=1)])
        model.compile("adam", "mse")  # iterations back to 0
        model.fit(data, np.zeros((24, 1)), batch_size=4, verbose=0,
                  callbacks=[AttentionCallback(tmp_path, data[:2], layers=["att"], update_freq=2)])
        _fit(tiny_mha_classifier(), [AttentionCallback(tmp_path, _probe())])
        cb = AttentionCallback(tmp_path / "faults", _probe(), update_freq=1)
        model = tiny_mha_classifier()
        _fit(model, [cb])
        cb._write = _raise_key_error  # a bug of ours: the message still reads as a sentence
        _fit(model, [cb])
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("tb_attention_plugin")]
    kinds = {
        "NaN": "contain NaN or Inf",
        "offset": "steps never go backwards",
        "rerun": "a run of its own",
        "bug": "please report it",
        "stalled": "stopped changing",  # the NaN layer has no weights of its own: its maps never change
    }
    for kind, phrase in kinds.items():
        assert any(phrase in m for m in messages), (kind, messages)
    for message in messages:
        assert_is_sentence(message)


def _raise_key_error(serialized, step):
    raise KeyError()
