"""Early warnings while training: a layer whose entropy collapses, a head
that stops changing while the loss moves. Real fits that make each happen
on purpose; the demos' healthy runs raise neither (tests/test_demo*.py)."""

import logging

import keras
import numpy as np

from tb_attention_plugin import AttentionCallback


class SharpeningAttention(keras.layers.Layer):
    """Dot-product attention whose logits are multiplied by `sharpness`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sharpness = keras.Variable(1.0, trainable=False)

    def call(self, x):
        logits = keras.ops.matmul(x, keras.ops.transpose(x, (0, 2, 1))) * self.sharpness
        return keras.ops.matmul(keras.ops.softmax(logits, axis=-1), x)


class Sharpen(keras.callbacks.Callback):
    def __init__(self, layer, at_batch):
        super().__init__()
        self.layer, self.at_batch = layer, at_batch

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.at_batch:
            self.layer.sharpness.assign(1e4)  # every row on its largest logit


def _warnings(caplog, phrase):
    return [r.getMessage() for r in caplog.records if phrase in r.getMessage()]


def test_an_entropy_collapse_is_warned_once_naming_the_layer_step_and_figure(tmp_path, caplog):
    inp = keras.Input((6, 4))
    layer = SharpeningAttention(name="attention")
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(layer(keras.layers.Dense(4)(inp)))))
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(32, 6, 4)).astype("float32")
    with caplog.at_level(logging.WARNING):
        model.fit(x, np.zeros((32, 1)), batch_size=4, verbose=0, callbacks=[
            Sharpen(layer, at_batch=3), AttentionCallback(tmp_path, x[:2], update_freq=1, layers=["attention"])])
    collapsed = _warnings(caplog, "collapsed")
    assert len(collapsed) == 1, collapsed  # once, though every later capture is collapsed too
    assert 'layer "attention" collapsed at step 3' in collapsed[0]
    assert "below collapse_entropy=0.05" in collapsed[0]


def test_a_head_that_stops_changing_while_the_loss_moves_is_warned_once_per_head(tmp_path, caplog):
    inp = keras.Input((6, 4))
    attention = keras.layers.MultiHeadAttention(2, 4, name="frozen")
    out = keras.layers.Dense(1)(keras.layers.Flatten()(attention(inp, inp)))
    model = keras.Model(inp, out)
    attention.trainable = False  # once built; its inputs are the raw data: its maps never change
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 4)).astype("float32")
    with caplog.at_level(logging.WARNING):
        model.fit(x, rng.normal(size=(64, 1)), batch_size=8, epochs=2, verbose=0,
                  callbacks=[AttentionCallback(tmp_path, x[:2], update_freq=2)])
    stalled = _warnings(caplog, "stopped changing")
    assert sorted(m.split(" of layer")[0] for m in stalled) == ["AttentionCallback: head 0", "AttentionCallback: head 1"]
    assert all('layer "frozen"' in m and "mean change 0 since the last capture" in m for m in stalled)
    assert not _warnings(caplog, "collapsed")


def test_warnings_can_be_switched_off(tmp_path, caplog):
    inp = keras.Input((6, 4))
    attention = keras.layers.MultiHeadAttention(2, 4, name="frozen")
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(attention(inp, inp))))
    attention.trainable = False
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    x = np.random.default_rng(0).normal(size=(64, 6, 4)).astype("float32")
    with caplog.at_level(logging.WARNING):
        model.fit(x, np.ones((64, 1)), batch_size=8, epochs=2, verbose=0, callbacks=[
            AttentionCallback(tmp_path, x[:2], update_freq=2, stalled_ratio=None, collapse_entropy=None)])
    assert not _warnings(caplog, "stopped changing") and not _warnings(caplog, "collapsed")


def _capture_items(changes):
    """What the callback gives HeadWatch at one capture: the serialized head
    metrics of each layer (summary.serialize's items), with `change` set to
    changes[layer][head] and every other metric as a 4-key map has it."""
    import tensorflow as tf

    from tb_attention_plugin.format import metadata
    from tb_attention_plugin.math import head_metrics

    items = []
    for layer, per_head in changes.items():
        values = np.full((1, len(per_head), len(head_metrics.METRIC_NAMES)), 0.5, np.float32)
        values[0, :, head_metrics.METRIC_NAMES.index("change")] = per_head
        data = metadata.PluginData(role=metadata.PluginData.HEAD_METRICS, layer=layer)
        data.metric_names.extend(head_metrics.METRIC_NAMES)
        items.append((layer + "/_head_metrics", tf.constant(values), metadata.create_summary_metadata(data)))
    return items


def test_heads_that_settle_together_are_not_stalled_but_one_left_behind_is(caplog):
    from tb_attention_plugin.writing.head_watch import HeadWatch

    watch = HeadWatch()
    loss = 1.0
    # Every head's change falls from 0.2 to 0.001 (1/200 of its peak) as
    # training converges, while the loss keeps falling by 10% per capture:
    # a healthy run, no warning.
    for step, change in enumerate([0.2, 0.1, 0.05, 0.01, 0.003, 0.001]):
        with caplog.at_level(logging.WARNING):
            watch.observe(_capture_items({"a": [change, change * 1.5], "b": [change * 0.8, change]}), step, loss)
        loss *= 0.9
    assert not _warnings(caplog, "stopped changing")
    # Then head 1 of "b" stops (1e-6) while the others still change (~0.001):
    # under 1% of its own peak and of the typical head.
    with caplog.at_level(logging.WARNING):
        watch.observe(_capture_items({"a": [0.001, 0.0015], "b": [0.0008, 1e-6]}), 6, loss)
    (stalled,) = _warnings(caplog, "stopped changing")
    assert 'head 1 of layer "b" stopped changing at step 6' in stalled
    # the typical head: the median of 0.001, 0.0015, 0.0008 and 1e-6
    assert "1e-06 since the last capture, 0.2 at most before, 0.0009 for the typical head now" in stalled


def test_heads_that_all_change_by_float_noise_are_not_stalled(caplog):
    """A small model whose heads all change by ~1e-9 per capture (float32
    rounding: below head_watch.NOISE_FLOOR, float32's epsilon): one head's
    1e-12 beside the others' 1e-9 says nothing, however the loss moves; a
    head under the floor is compared only where the floor itself is under
    stalled_ratio of the typical head's change."""
    from tb_attention_plugin.writing.head_watch import NOISE_FLOOR, HeadWatch

    assert NOISE_FLOOR == np.finfo(np.float32).eps
    watch = HeadWatch()
    loss = 1.0
    noise = [[1e-9, 2e-9, 1.5e-9], [3e-9, 1e-9, 2e-9], [2e-9, 1e-9, 1e-9], [1e-9, 2e-9, 1e-12],
             [2e-9, 0.0, 1e-9], [5e-10, 1e-9, 1e-13]]
    for step, change in enumerate(noise):
        with caplog.at_level(logging.WARNING):
            watch.observe(_capture_items({"a": change[:2], "b": change[2:]}), step, loss)
        loss *= 0.8
    assert not _warnings(caplog, "stopped changing")
    # Just above the floor is no better: 6.5e-8 (under it) against a typical 2.2e-7 and a peak of 4e-7
    # (a tiny model's real fit, tests/test_browser_reading.py's, warned so).
    with caplog.at_level(logging.WARNING):
        watch.observe(_capture_items({"a": [4e-7, 2.2e-7], "b": [6.5e-8]}), 6, loss)
        watch.observe(_capture_items({"a": [3e-7, 2.2e-7], "b": [6.5e-8]}), 7, loss * 0.5)
    assert not _warnings(caplog, "stopped changing")
    # The same head at noise while the others really change (1e-3) is stalled.
    with caplog.at_level(logging.WARNING):
        watch.observe(_capture_items({"a": [1e-3, 2e-3], "b": [1e-10]}), 8, loss * 0.1)
    (stalled,) = _warnings(caplog, "stopped changing")
    assert 'head 0 of layer "b" stopped changing at step 8' in stalled


def test_heads_frozen_bit_for_bit_are_stalled_though_no_head_changes(caplog):
    """Every head's change exactly 0 (a layer that does not train, the only
    one) is still a frozen layer, not float noise."""
    from tb_attention_plugin.writing.head_watch import HeadWatch

    watch = HeadWatch()
    with caplog.at_level(logging.WARNING):
        watch.observe(_capture_items({"a": [0.0, 0.0]}), 1, 1.0)
        watch.observe(_capture_items({"a": [0.0, 0.0]}), 2, 0.5)
    assert len(_warnings(caplog, "stopped changing")) == 2
