"""The README's first lines do what they say: `make demo` from a fresh clone
installs, trains, serves and ends with the URL of an active Attention tab,
printing one "==>" line per stage; `make test`'s stages are listed; the
README opens with the animation of the tab over training.

`make test` itself is what `.ci/run` runs on a fresh machine, so it is not
run again from here.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tensorboard_server import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
GIF = os.path.join(REPO, "docs", "images", "imdb-training.gif")

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def _readme():
    with open(README) as f:
        return f.read()


def test_readme_opens_with_the_two_commands_and_the_animation():
    text = _readme()
    before_first_section = text.split("\n## ", 1)[0]
    commands = re.search(r"```bash\n(.*?)```", before_first_section, re.S).group(1)
    assert [line.split("#")[0].strip() for line in commands.strip().splitlines()] == ["make demo", "make test"]
    assert "](docs/images/imdb-training.gif)" in before_first_section
    with open(GIF, "rb") as f:
        data = f.read()
    assert data[:6] == b"GIF89a"
    assert len(data) < 1_000_000
    PIL = pytest.importorskip("PIL.Image")
    with PIL.open(GIF) as image:
        assert image.n_frames >= 5  # an animation, one frame per captured step


@needs_make
def test_make_test_runs_pytest_then_the_tabs_unit_tests():
    out = subprocess.run(["make", "-n", "-W", "Makefile", "test"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    # -W marks the Makefile as changed, so the install stage is listed too
    stages = re.findall(r'echo "==> ([^"(]+)', out)
    assert [s.split(" into")[0].strip() for s in stages] == [
        "Installing tb-attention with TensorFlow",
        "Running the Python tests",
        "Running the backend tests again on JAX",
        "Running the backend tests again on PyTorch",
        "Running the tab's unit tests",
        "node not found: the tab's unit tests are skipped",
    ]
    assert "-m pytest tests" in out and "node --test frontend/tests/" in out
    # the backend reruns: each with its backend, on the same files
    assert "KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2" in out
    assert "KERAS_BACKEND=torch" in out
    assert out.count("tests/test_backends.py tests/test_callback_capture.py") == 2


def _run_make_demo(cwd, logdir, port, timeout=900, **make_vars):
    """Runs `make demo` until it prints the URL; returns (lines, process).

    The process runs in its own session so that the caller can stop make,
    the serve script and TensorBoard together."""
    args = ["make", "demo", "PRESET=tiny", "LOGDIR=%s" % logdir, "PORT=%d" % port]
    args += ["%s=%s" % item for item in make_vars.items()]
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env=env)
    lines, url_seen = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Open http"):
                url_seen.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + timeout
    while not url_seen.is_set() and process.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    return lines, process, url_seen.is_set()


def _stop(process):
    """Ctrl+C, as a terminal sends it: SIGINT to make's whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _serving(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stopped_serving(port, within_s=30):
    """Whether the port closes within `within_s` seconds. make may exit on
    Ctrl+C before TensorBoard, which got the same SIGINT, has closed its
    socket (seen once in the full suite at load 3): Ctrl+C must stop it, not
    before make returns."""
    deadline = time.time() + within_s
    while _serving(port):
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


def _check_demo_output(lines, url_seen, logdir, port, installs):
    output = "\n".join(lines)
    assert url_seen, output
    stages = [line for line in lines if line.startswith("==>")]
    installing = [s for s in stages if s.startswith("==> Installing tb-attention with TensorFlow")]
    assert len(installing) <= 1 and (installing or not installs), output
    assert stages[len(installing):] == ["==> Training the imdb demo (tiny preset) into %s/imdb" % logdir,
                                        "==> Starting TensorBoard on %s" % logdir], output
    assert lines[-1].startswith("Open http://127.0.0.1:%d/#attention " % port)  # the last line
    # Python warnings (setuptools', Keras's), TensorFlow's C++ start-up lines,
    # Keras's progress bar. (This machine's pip.conf names a missing index
    # folder, so pip prints "WARNING: Location ... is ignored" here: that is
    # the machine's, not the project's.)
    # Where the IMDB host answers (not here), Keras's download bar follows
    # "Downloading data from ...": that one tells the user what is going on.
    shown = "\n".join(line for i, line in enumerate(lines)
                      if not (line.startswith("Downloading data from")
                              or (i and lines[i - 1].startswith("Downloading data from"))))
    for noise in ["Traceback", "Warning", "absl::", "cpu_feature_guard", "━", "ETA"]:
        assert noise not in shown, output
    with urllib.request.urlopen("http://127.0.0.1:%d/data/plugins_listing" % port, timeout=10) as reply:
        assert json.load(reply)["attention"]["enabled"] is True


@needs_make
@pytest.mark.slow
def test_make_demo_ends_with_the_url_of_an_active_attention_tab(tmp_path):
    if not os.path.exists(os.path.join(REPO, ".venv", ".installed")):
        pytest.skip("run through `make test` (needs the Makefile's .venv)")
    logdir, port = tmp_path / "logs", free_port()
    lines, process, url_seen = _run_make_demo(REPO, logdir, port)
    try:
        # installs only if setup.py or the Makefile changed since `make install`
        _check_demo_output(lines, url_seen, logdir, port, installs=False)
    finally:
        _stop(process)
    assert _stopped_serving(port)  # Ctrl+C stopped TensorBoard too
    assert any(line.startswith("epoch 2/2 (") for line in lines)


@needs_make
@pytest.mark.slow
def test_make_demo_from_a_fresh_clone(tmp_path):
    """The README's `make demo` in a `git clone` of this commit, with nothing
    installed: it makes its own .venv (pip's cache serves what `make install`
    downloaded), trains the tiny preset and serves."""
    if shutil.which("git") is None or not os.path.isdir(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", REPO, str(clone)], check=True)
    logdir, port = tmp_path / "logs", free_port()
    lines, process, url_seen = _run_make_demo(str(clone), logdir, port)
    try:
        _check_demo_output(lines, url_seen, logdir, port, installs=True)
    finally:
        _stop(process)
        shutil.rmtree(clone / ".venv", ignore_errors=True)  # ~2 GB; pytest keeps tmp_path of 3 sessions
    assert _stopped_serving(port)
