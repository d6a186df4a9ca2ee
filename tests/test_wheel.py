"""The wheel a user would build (`python -m build`), installed into a clean
virtual environment with one Keras backend: TensorFlow, or JAX or PyTorch
without TensorFlow at all. A real fit writes attention, the reader reads it, and
`tensorboard --logdir` with no other flag shows the Attention tab.

The clean environment is a new venv from the base interpreter (no
--system-site-packages): only the wheel, its dependencies and the backend
(tensorflow-cpu, jax or torch), pinned to the version this suite runs under so
pip's cache serves it after `make install` (a first download of
tensorflow-cpu is about 250 MB, of jax about 90 MB).
"""

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow

FIT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import keras, numpy as np
import tb_attention_plugin
from tb_attention_plugin import AttentionCallback
print(tb_attention_plugin.__file__)
inp = keras.Input((6,), dtype="int32")
x = keras.layers.Embedding(20, 8, mask_zero=True)(inp)
x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))
model.compile("adam", "mse")
x = np.random.default_rng(0).integers(1, 20, (16, 6))
model.fit(x, np.zeros((16, 1)), batch_size=4, epochs=1, verbose=0,
          callbacks=[AttentionCallback(sys.argv[1], x[:2], update_freq=2)])
stored = tb_attention_plugin.read_attention(sys.argv[1])["."]["mha"]
print("backend", keras.config.backend(), "steps", [int(s) for s in stored.steps], "shape", stored.maps[0].shape)
print("tensorflow imported", any(m.split(".")[0] == "tensorflow" for m in sys.modules))
"""


def _requirement(*dists):
    """The first of `dists` installed here, pinned to this suite's version."""
    for dist in dists:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return "%s==%s" % (dist, importlib.metadata.version(dist))
    return dists[0]


BACKENDS = {  # KERAS_BACKEND -> what the clean venv installs beside the wheel
    "tensorflow": lambda: [_requirement("tensorflow-cpu", "tensorflow")],
    "jax": lambda: [_requirement("jax"), _requirement("jaxlib")],
    # the CPU build make install took (a plain `torch` is a CUDA build of GBs)
    "torch": lambda: [_requirement("torch").split("+")[0]],
}


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, "%s failed:\n%s\n%s" % (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_built_wheel_in_a_clean_venv_shows_the_attention_tab(tmp_path, backend):
    # Build from a copy, so the build's own build/ and *.egg-info never touch
    # the checkout (other runs may be building there).
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "logs", "test-artifacts", "node_modules",
        "__pycache__", ".pytest_cache", ".hypothesis", "tensorboard-*.log"))
    _run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)])
    (wheel,) = (tmp_path / "dist").glob("tb_attention-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    bin_dir = venv / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          str(wheel)] + BACKENDS[backend]())

    logdir = tmp_path / "logs"
    fit = _run([str(bin_dir / "python"), "-c", FIT, str(logdir / "run1")], cwd=str(tmp_path),
               env=dict(os.environ, KERAS_BACKEND=backend))
    assert str(venv) in fit.stdout  # the installed wheel, not this checkout
    # captures at steps 0, 2 and 4 (the end) of 4 steps; 2 heads over 6 tokens
    assert "backend %s steps [0, 2, 4] shape (3, 2, 6, 6)" % backend in fit.stdout
    if backend != "tensorflow":
        assert "tensorflow imported False" in fit.stdout
        tensorflow_there = subprocess.run([str(bin_dir / "python"), "-c", "import tensorflow"],
                                          capture_output=True)
        assert tensorflow_there.returncode != 0  # not installed at all

    # Exactly the README's command: no --port, no plugin flags. TensorBoard
    # takes the first free port from 6006 and says which on stderr.
    tensorboard = subprocess.Popen([str(bin_dir / "tensorboard"), "--logdir", str(logdir)],
                                   cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, found = [], threading.Event()

    def read_output():
        for line in tensorboard.stdout:
            lines.append(line)
            if re.search(r"TensorBoard \S+ at http://\S+:\d+/", line):
                found.set()

    threading.Thread(target=read_output, daemon=True).start()
    try:
        assert found.wait(120), "no URL from tensorboard:\n" + "".join(lines)
        url = re.search(r"at (http://\S+:\d+)/", "".join(lines)).group(1)
        deadline, listing = time.time() + 90, {}
        while time.time() < deadline and not listing.get("attention", {}).get("enabled"):
            with contextlib.suppress(OSError, ValueError):
                listing = json.loads(_get(url + "/data/plugins_listing"))
            time.sleep(0.5)
        assert listing.get("attention", {}).get("enabled") is True, "".join(lines)
        assert listing["attention"]["tab_name"] == "Attention"
        # The tab's code comes from the wheel (tb_attention_plugin/frontend/)
        with open(os.path.join(REPO, "frontend", "index.js"), "rb") as f:
            assert _get(url + "/data/plugin/attention/index.js") == f.read()
        runs = json.loads(_get(url + "/data/plugin/attention/index"))["runs"]
        assert [run["run"] for run in runs] == ["run1"]
        assert [layer["layer"] for layer in runs[0]["layers"]] == ["mha"]
    finally:
        tensorboard.terminate()
        try:
            tensorboard.wait(15)
        except subprocess.TimeoutExpired:
            tensorboard.kill()
            tensorboard.wait()
        shutil.rmtree(venv, ignore_errors=True)  # ~1.5 GB; pytest keeps tmp_path of 3 sessions
