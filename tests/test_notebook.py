"""The README's Notebooks section, line by line: `%load_ext tensorboard` and
`%tensorboard --logdir` start a TensorBoard whose Attention tab is active,
and `read_attention` goes into a pandas DataFrame in one line."""

import contextlib
import json
import os
import signal
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.writing import summary
from tensorboard_server import free_port

pd = pytest.importorskip("pandas")
pytest.importorskip("IPython")


@pytest.fixture
def logdir(tmp_path):
    root = tmp_path / "logs"
    model = tiny_mha_classifier(heads=2)
    x, y = tiny_data(16)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[AttentionCallback(str(root / "run1"), x[:2], update_freq=2)])
    return root


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def _running_tensorboards():
    from tensorboard import manager

    # get_all lists TensorBoard's info directory, then opens each file in it: a
    # TensorBoard that exits in between (the one stopped below, or one another
    # test stops) has removed its file, and get_all raises FileNotFoundError.
    # Asking again sees the directory without it.
    for _ in range(20):
        try:
            return manager.get_all()
        except FileNotFoundError:
            time.sleep(0.05)
    return manager.get_all()


def _stop_tensorboard_on(port):
    for info in _running_tensorboards():
        if info.port == port:
            os.kill(info.pid, signal.SIGTERM)
            for _ in range(40):
                if not any(i.port == port for i in _running_tensorboards()):
                    return
                time.sleep(0.25)
            os.kill(info.pid, signal.SIGKILL)


def test_tensorboard_magic_in_ipython_serves_the_attention_tab(logdir, monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    # A notebook kernel running in this environment finds its `tensorboard`
    # on PATH; make sure this one does too when pytest runs as .venv/bin/python.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    shell = InteractiveShell.instance()
    port = free_port()
    try:
        result = shell.run_cell("%%load_ext tensorboard\n%%tensorboard --logdir %s --port %d" % (logdir, port))
        assert result.success, result.error_in_exec
        printed = capsys.readouterr().out
        assert "http://localhost:%d" % port in printed, printed
        url = "http://localhost:%d" % port
        deadline = time.time() + 90
        listing = {}
        while time.time() < deadline and not listing.get("attention", {}).get("enabled"):
            with contextlib.suppress(OSError, ValueError):
                listing = _get_json(url + "/data/plugins_listing")
            time.sleep(0.5)
        assert listing["attention"]["enabled"] is True
        assert listing["attention"]["tab_name"] == "Attention"
    finally:
        _stop_tensorboard_on(port)
        InteractiveShell.clear_instance()


def test_read_attention_goes_into_a_pandas_dataframe_in_one_line(tmp_path):
    # One head, 2 queries x 3 keys, at steps 0 and 10; received attention of a
    # key is its column sum: step 0 -> [0.6, 1.05, 0.35], step 10 -> [0.2, 0.7, 1.1].
    writer = tf.summary.create_file_writer(str(tmp_path / "logs" / "run1"))
    with writer.as_default():
        for step, rows in [(0, [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]), (10, [[0.2, 0.2, 0.6], [0.0, 0.5, 0.5]])]:
            assert summary.attention("attention", np.array([[rows]], np.float32), step=step,
                                     query_tokens=[["good", "bad"]], key_tokens=[["good", "bad", "film"]],
                                     encoding="float32")
    writer.close()

    # The README's lines:
    layer = read_attention(str(tmp_path / "logs"))["run1"]["attention"]
    importance = pd.DataFrame(layer.received[0][:, -1], index=layer.steps, columns=layer.key_tokens[0])

    assert list(importance.index) == [0, 10]
    assert list(importance.columns) == ["good", "bad", "film"]
    np.testing.assert_allclose(importance.loc[0].to_numpy(), [0.6, 1.05, 0.35], atol=1e-6)
    np.testing.assert_allclose(importance.loc[10].to_numpy(), [0.2, 0.7, 1.1], atol=1e-6)
    assert importance["film"].idxmax() == 10  # "film" gained the most attention by step 10
