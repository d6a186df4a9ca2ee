"""How people train: notebook cells interrupted and re-run, fits repeated into
one log_dir, recompiles, full disks, remote file systems, empty examples.
Every test is a real `model.fit`."""

import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.writing import run_dirs
from models import tiny_data, tiny_mha_classifier

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RaiseAt(keras.callbacks.Callback):
    """Raises `error` at the start of batch `batch` of the first epoch."""

    def __init__(self, error, batch=2):
        super().__init__()
        self.error, self.batch = error, batch

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.batch:
            raise self.error


def _fit(model, callbacks, epochs=1):
    x, y = tiny_data(16)
    return model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=callbacks)


def _probe():
    return tiny_data(16)[0][:2]


def _leave_a_fit(way, model, cb):
    """Runs `cb` through one way out of Keras (a fit that ends, raises or is
    interrupted; evaluate; predict; a callback dropped after an interrupt)."""
    x, y = tiny_data(16)
    if way == "normal end":
        _fit(model, [cb])
    elif way in ("exception", "KeyboardInterrupt", "garbage collection"):
        error = RuntimeError("boom") if way == "exception" else KeyboardInterrupt()
        with pytest.raises(type(error)):
            _fit(model, [RaiseAt(error), cb])
        if way == "garbage collection":
            del cb
            gc.collect()
    elif way == "evaluate":
        model.evaluate(x, y, verbose=0, callbacks=[cb])
    elif way == "predict":
        model.predict(x, verbose=0, callbacks=[cb])


WAYS_OUT = ["normal end", "exception", "KeyboardInterrupt", "evaluate", "predict", "garbage collection"]


@pytest.mark.parametrize("way", WAYS_OUT)
def test_every_way_out_of_a_fit_releases_the_log_dir(tmp_path, way):
    model = tiny_mha_classifier()
    _leave_a_fit(way, model, AttentionCallback(tmp_path, _probe(), update_freq=1))
    # The notebook's next cell: a new callback on the same log_dir trains.
    cb = AttentionCallback(tmp_path, _probe(), update_freq=1)
    _fit(model, [cb])
    assert cb.captured_steps, "the second callback wrote nothing"
    layer = read_attention(str(tmp_path))["."]["mha"]
    assert list(layer.steps) == sorted(set(layer.steps)), "steps written twice"
    assert layer.steps[-1] == int(model.optimizer.iterations)


def test_two_callbacks_on_one_log_dir_in_one_fit_are_refused_in_either_order(tmp_path):
    model = tiny_mha_classifier()
    first = AttentionCallback(tmp_path, _probe())
    second = AttentionCallback(tmp_path, _probe())
    for callbacks in ([first, second], [second, first]):
        with pytest.raises(ValueError, match="another AttentionCallback already writes to"):
            _fit(model, callbacks)
    # Refused before anything was written.
    assert first.captured_steps == [] and second.captured_steps == []


def test_a_fit_in_another_thread_on_the_same_log_dir_is_refused_while_it_runs(tmp_path):
    in_fit, release = threading.Event(), threading.Event()

    class Hold(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:
                in_fit.set()
                release.wait(60)

    errors = []

    def train():
        try:
            _fit(tiny_mha_classifier(), [Hold(), AttentionCallback(tmp_path, _probe(), update_freq=1)])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=train)
    thread.start()
    try:
        assert in_fit.wait(60)
        with pytest.raises(ValueError, match="another AttentionCallback already writes to"):
            _fit(tiny_mha_classifier(), [AttentionCallback(tmp_path, _probe())])
    finally:
        release.set()
        thread.join(60)
    assert errors == []
    # That fit has ended: the log_dir is free again.
    _fit(tiny_mha_classifier(), [AttentionCallback(tmp_path, _probe())])


def test_fitting_the_same_model_again_appends_steps_to_the_same_run(tmp_path):
    model = tiny_mha_classifier()
    first = AttentionCallback(tmp_path, _probe(), update_freq=2)
    _fit(model, [first])  # 4 steps: 0, 2, 4
    second = AttentionCallback(tmp_path, _probe(), update_freq=2)
    _fit(model, [second], epochs=2)  # iterations 4 -> 12; 4 is already written
    assert first.captured_steps == [0, 2, 4]
    assert second.captured_steps == [6, 8, 10, 12]
    runs = read_attention(str(tmp_path))
    assert list(runs) == ["."]
    assert list(runs["."]["mha"].steps) == [0, 2, 4, 6, 8, 10, 12]


def test_a_changed_model_goes_to_a_numbered_run_of_its_own_and_keeps_the_first(tmp_path, caplog):
    _fit(tiny_mha_classifier(heads=2), [AttentionCallback(tmp_path, _probe(), update_freq=2)])
    before = read_attention(str(tmp_path))["."]["mha"]
    with caplog.at_level(logging.WARNING):
        _fit(tiny_mha_classifier(heads=3), [AttentionCallback(tmp_path, _probe(), update_freq=2)])
    lines = [r.getMessage() for r in caplog.records if "a run of its own" in r.getMessage()]
    assert len(lines) == 1
    assert os.path.join(str(tmp_path), "rerun_2") in lines[0]
    assert "layer mha has 2 heads there and 3 here" in lines[0]

    runs = read_attention(str(tmp_path))
    assert sorted(runs) == [".", "rerun_2"]
    assert runs["."]["mha"].num_heads == 2 and runs["rerun_2"]["mha"].num_heads == 3
    # The first run is untouched: same steps, same maps.
    assert list(runs["."]["mha"].steps) == list(before.steps)
    for a, b in zip(runs["."]["mha"].maps, before.maps):
        np.testing.assert_array_equal(a, b)
    assert list(runs["rerun_2"]["mha"].steps) == [0, 2, 4]

    # Re-running the changed model's cell appends to its run, not a third one.
    _fit(tiny_mha_classifier(heads=3), [AttentionCallback(tmp_path, _probe(), update_freq=2)])
    runs = read_attention(str(tmp_path))
    assert sorted(runs) == [".", "rerun_2"]
    assert list(runs["rerun_2"]["mha"].steps) == [0, 2, 4, 5, 7, 9]  # iterations + 5


def test_another_probe_or_a_callback_given_another_model_gets_its_own_run(tmp_path):
    cb = AttentionCallback(tmp_path, _probe(), update_freq=4)
    _fit(tiny_mha_classifier(), [cb])
    # The same callback given a second, differently shaped model.
    _fit(tiny_mha_classifier(heads=4), [cb])
    other_probe = tiny_data(16, seed=1)[0][:2]
    _fit(tiny_mha_classifier(), [AttentionCallback(tmp_path, other_probe, update_freq=4)])
    runs = read_attention(str(tmp_path))
    assert sorted(runs) == [".", "rerun_2", "rerun_3"]
    assert [runs[r]["mha"].num_heads for r in (".", "rerun_2", "rerun_3")] == [2, 4, 2]
    tokens = runs["rerun_3"]["mha"].key_tokens[0]
    assert len(tokens) == int((other_probe[0] != 0).sum())


def test_a_changed_model_rerun_is_served_by_every_route_under_both_readers(tmp_path):
    from tensorboard_server import TensorBoard

    logdir = tmp_path / "logs"
    _fit(tiny_mha_classifier(heads=2), [AttentionCallback(logdir / "run1", _probe(), update_freq=2)])
    _fit(tiny_mha_classifier(heads=3), [AttentionCallback(logdir / "run1", _probe(), update_freq=2)])
    expected = read_attention(str(logdir))
    assert sorted(expected) == ["run1", "run1/rerun_2"]
    for load_fast in ("true", "false"):
        tb = TensorBoard(logdir, "--load_fast=%s" % load_fast)
        try:
            tb.wait_for(lambda listing: "attention" in listing and listing["attention"]["enabled"])
            index = tb.get_json("/data/plugin/attention/index")
            served = {run["run"]: run for run in index["runs"]}
            assert sorted(served) == ["run1", "run1/rerun_2"]
            for run, layers in expected.items():
                layer = layers["mha"]
                for step in layer.steps:
                    status, headers, body = tb.get(
                        "/data/plugin/attention/maps?run=%s&tag=mha&step=%d&example=0" % (run, step))
                    assert status == 200, body[:200]
                    assert len(body) == layer.maps[0][0].size  # uint8: one byte per cell
                for route in ("importance?mode=received&", "head_stats?", "rollout?"):
                    status, _, body = tb.get("/data/plugin/attention/%srun=%s&tag=mha&example=0" % (route, run))
                    assert status in (200, 404), (route, status, body[:200])
        finally:
            tb.stop()


def test_a_recompile_never_writes_steps_backwards_and_keeps_the_first_fit(tmp_path, caplog):
    model = tiny_mha_classifier()
    cb = AttentionCallback(tmp_path, _probe(), update_freq=2)
    _fit(model, [cb])
    first = read_attention(str(tmp_path))["."]["mha"]
    model.compile(keras.optimizers.Adam(), "mse")  # a new optimizer: iterations back to 0
    assert int(model.optimizer.iterations) == 0
    with caplog.at_level(logging.WARNING):
        _fit(model, [cb])
    warnings = [r.getMessage() for r in caplog.records if "never go backwards" in r.getMessage()]
    assert len(warnings) == 1
    assert "captures up to step 4" in warnings[0] and "from step 5 on" in warnings[0]
    # Iterations 0, 2, 4 of the second fit are written at 5, 7, 9.
    assert cb.captured_steps == [0, 2, 4, 5, 7, 9]
    layer = read_attention(str(tmp_path))["."]["mha"]
    assert list(layer.steps) == [0, 2, 4, 5, 7, 9]
    for example in range(2):
        np.testing.assert_array_equal(layer.maps[example][:3], first.maps[example])


_DISK_FULL = textwrap.dedent('''
    import glob, os, resource, signal, sys
    sys.path[:0] = [%(here)r, %(here)r + "/tests"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    import keras
    from tb_attention_plugin import AttentionCallback
    from models import tiny_data, tiny_mha_classifier

    LOG_DIR = %(log_dir)r
    _, HARD = resource.getrlimit(resource.RLIMIT_FSIZE)

    class Disk(keras.callbacks.Callback):
        """Before the capture at iteration 3: the event file can grow by
        100 bytes (less than a capture: a partial record). At 4: no file can
        grow (the reopened writer fails too). From 6: space is back. The
        disk changes after the captures taken so far are written (they are
        written in the background)."""
        def on_train_batch_begin(self, batch, logs=None):
            if batch in (3, 4, 6):
                cb.flush()
            if batch == 3:
                size = max(os.path.getsize(p) for p in glob.glob(LOG_DIR + "/*tfevents*"))
                resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, HARD))
            elif batch == 4:
                resource.setrlimit(resource.RLIMIT_FSIZE, (1, HARD))
            elif batch == 6:
                resource.setrlimit(resource.RLIMIT_FSIZE, (HARD, HARD))

    keras.utils.set_random_seed(0)
    x, y = tiny_data(32)
    model = tiny_mha_classifier()
    cb = AttentionCallback(LOG_DIR, x[:2], update_freq=1)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Disk(), cb])
    print("EPOCHS", len(history.history["loss"]))
    print("CAPTURED", cb.captured_steps)
''')


def test_a_full_disk_skips_captures_with_warnings_and_every_capture_after_is_readable(tmp_path):
    log_dir = str(tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL % dict(here=HERE, log_dir=log_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("EPOCHS", "CAPTURED")))
    assert out["EPOCHS"] == "1"
    # 8 batches: captures at iterations 0..8; 3, 4 and 5 hit the full disk.
    assert out["CAPTURED"] == "[0, 1, 2, 6, 7, 8]"
    for step in (3, 4, 5):
        assert "skipped the capture at step %d" % step in result.stderr
    layer = read_attention(log_dir)["."]["mha"]
    assert list(layer.steps) == [0, 1, 2, 6, 7, 8]
    assert all(m.shape[0] == 6 for m in layer.maps)
    assert len(tf.io.gfile.glob(log_dir + "/*tfevents*")) >= 2  # a new file after the failure


def test_a_log_dir_on_tf_io_gfile_reruns_and_reads_back_without_local_files(tmp_path):
    log_dir = "ram://habits/run1"
    _fit(tiny_mha_classifier(heads=2), [AttentionCallback(log_dir, _probe(), update_freq=2)])
    _fit(tiny_mha_classifier(heads=2), [AttentionCallback(log_dir, _probe(), update_freq=2)])
    _fit(tiny_mha_classifier(heads=3), [AttentionCallback(log_dir, _probe(), update_freq=2)])
    assert not os.path.exists("ram:"), "something wrote through os instead of tf.io.gfile"
    first = run_dirs.read_run(log_dir)
    rerun = run_dirs.read_run(log_dir + "/rerun_2")
    assert first.facts["mha"].num_heads == 2 and first.last_step == 9  # 0,2,4 then 5,7,9
    assert rerun.facts["mha"].num_heads == 3 and rerun.last_step == 4
    assert tf.io.gfile.glob(log_dir + "/rerun_2/*tfevents*")


def test_an_all_padding_probe_example_is_written_empty_and_the_fit_goes_on(tmp_path, caplog, recwarn):
    model = tiny_mha_classifier()
    probe = _probe().copy()
    probe[1] = 0  # an empty review: every token is padding
    cb = AttentionCallback(tmp_path, probe, update_freq=2)
    with caplog.at_level(logging.WARNING):
        _fit(model, [cb])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in recwarn]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert cb.captured_steps == [0, 2, 4]
    layer = read_attention(str(tmp_path))["."]["mha"]
    assert layer.maps[1].shape == (3, 2, 0, 0)
    assert layer.query_tokens[1] == [] and layer.key_tokens[1] == []
    real = int((probe[0] != 0).sum())
    assert layer.maps[0].shape == (3, 2, real, real)
    np.testing.assert_allclose(layer.maps[0].sum(axis=-1), 1, atol=real / 510)
