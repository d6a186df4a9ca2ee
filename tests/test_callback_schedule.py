"""When captures happen, and that they reach TensorBoard's own reader."""

import keras
import numpy as np
from tensorboard import context
from tensorboard.backend.event_processing import data_provider as tb_data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.compat.proto import summary_pb2

from conftest import only_layer
from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback
from tb_attention_plugin.format import metadata


def test_captures_at_start_every_n_steps_and_end_with_steps_per_execution(tmp_path):
    model = tiny_mha_classifier()
    model.compile("adam", "mse", steps_per_execution=3)
    x, y = tiny_data(40)
    cb = AttentionCallback(tmp_path, x[:2], update_freq=4)
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)  # 10 steps
    # batch ends are seen at steps 3, 6, 9, 10; due at 4, then 8
    assert cb.captured_steps == [0, 6, 9, 10]
    assert list(only_layer(tmp_path, "mha").steps) == [0, 6, 9, 10]


def test_the_schedule_holds_across_epochs_chunks_and_a_restored_optimizer(tmp_path):
    # The callback counts batches to know when a capture is due (reading
    # optimizer.iterations every batch cost 1% of a fit) and re-reads the
    # optimizer at each epoch's start: 3 epochs of 10 steps in chunks of 3,
    # on an optimizer restored at 100 steps, as from a checkpoint.
    model = tiny_mha_classifier()
    model.compile("adam", "mse", steps_per_execution=3)
    x, y = tiny_data(40)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(100)
    cb = AttentionCallback(tmp_path, x[:2], update_freq=4)
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[cb], verbose=0)
    # chunks begin at 100 + 10 e + (0, 3, 6, 9); due at 104, then the next multiple of 4
    # after each capture: 106 (due 108), 109 (112), 113 (116), 116 (120), 120 (124),
    # 126 (128), 129 (132), then the end at 130
    assert cb.captured_steps == [100, 106, 109, 113, 116, 120, 126, 129, 130]
    assert list(only_layer(tmp_path, "mha").steps) == cb.captured_steps


def test_a_second_fit_continues_the_step_count(tmp_path):
    model = tiny_mha_classifier()
    x, y = tiny_data(16)
    cb = AttentionCallback(tmp_path, x[:2], update_freq=3, encoding="float32")
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)  # steps 1..4
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)  # steps 5..8
    assert cb.captured_steps == [0, 3, 4, 6, 8]
    layer = only_layer(tmp_path, "mha")
    assert list(layer.steps) == [0, 3, 4, 6, 8]
    # the same probe examples every time: maps change only through training
    assert not np.array_equal(layer.maps[0][0], layer.maps[0][-1])


def test_keras_tensorboard_update_freq_does_not_drop_captures(tmp_path):
    model = tiny_mha_classifier()
    x, y = tiny_data(32)
    callbacks = [
        keras.callbacks.TensorBoard(str(tmp_path), update_freq=7),
        AttentionCallback(tmp_path, x[:2], update_freq=2),
    ]
    model.fit(x, y, batch_size=4, epochs=1, callbacks=callbacks, verbose=0)
    assert list(only_layer(tmp_path, "mha").steps) == [0, 2, 4, 6, 8]


def test_epoch_cadence_captures_each_epoch_end(tmp_path):
    model = tiny_mha_classifier()
    x, y = tiny_data(8)
    cb = AttentionCallback(tmp_path, x[:2], update_freq="epoch")
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[cb], verbose=0)
    assert cb.captured_steps == [0, 2, 4, 6]


def test_events_read_through_tensorboard_data_provider(tmp_path):
    model = tiny_mha_classifier()
    x, y = tiny_data(8)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[AttentionCallback(tmp_path, x[:3], update_freq=1)])
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0}
    )
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = tb_data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    ctx = context.RequestContext()
    assert metadata.PLUGIN_NAME in provider.list_plugins(ctx, experiment_id="")
    blobs = provider.list_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    assert list(blobs["."]) == ["mha"]
    assert blobs["."]["mha"].max_length == 4  # one blob per probe example, then the step's facts
    tensors = provider.list_tensors(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    # importance: one tag per probe example (3 here)
    assert set(tensors["."]) == {"mha/_importance/0", "mha/_importance/1", "mha/_importance/2",
                                 "mha/_head_stats", "mha/_rollout", "mha/_head_metrics",
                                 "mha/_value_norms", "mha/_value_metrics"}
    for _, _, value in _summary_values(tmp_path):
        assert value.metadata.plugin_data.plugin_name == "attention"
        expected = summary_pb2.DATA_CLASS_BLOB_SEQUENCE if value.tag == "mha" else summary_pb2.DATA_CLASS_TENSOR
        assert value.metadata.data_class == expected
    data = provider.read_blob_sequences(
        ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME, downsample=100
    )
    assert [d.step for d in data["."]["mha"]] == [0, 1, 2]


def _summary_values(logdir):
    from tensorboard.backend.event_processing import event_file_loader

    for path in sorted(p for p in logdir.iterdir() if "tfevents" in p.name):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                    yield path, event.step, value
