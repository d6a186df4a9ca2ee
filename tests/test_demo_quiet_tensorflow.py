"""The demos' output holds no TensorFlow C++ start-up lines (TensorFlow 2.21
prints them whatever TF_CPP_MIN_LOG_LEVEL says), and nothing else written
to stderr during the import is lost."""

import os
import subprocess
import sys

from demo_models.quiet_tensorflow import shown_lines

# What TensorFlow 2.21's import printed on this project's CI machine (one
# absl notice per TensorFlow shared library that logs first, a feature hint
# over two lines), then what must never be hidden.
START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796422164.987688   20809 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796422165.031693   20809 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
W1204 22:03:48.123456   20809 gpu_device.cc:2342] Cannot dlopen some GPU libraries.
"""
KEPT = """\
E0000 00:00:1796422166.899035   20809 cuda_dnn.cc:8579] Unable to register cuDNN factory
/usr/lib/python3/site.py:1: UserWarning: something the user should see
Traceback (most recent call last):
ImportError: libcudart.so.12: cannot open shared object file
"""


def test_info_and_warning_start_up_lines_go_and_everything_else_stays():
    assert "".join(shown_lines(START_UP + KEPT, hidden="IW")) == KEPT


def test_tf_cpp_min_log_level_chooses_what_goes(monkeypatch):
    from demo_models import quiet_tensorflow

    for level, hidden in [("0", ""), ("1", "I"), ("2", "IW"), ("3", "IWE"), ("debug", "")]:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
        assert quiet_tensorflow.hidden_levels() == hidden
    # Level 0 shows everything, as TensorFlow would.
    assert "".join(shown_lines(START_UP + KEPT, hidden="")) == START_UP + KEPT
    # Level 1 hides INFO only: the WARNING line stays (absl's notice before
    # it goes: it says nothing about the line).
    shown = "".join(shown_lines(START_UP + KEPT, hidden="I"))
    assert "gpu_device.cc" in shown and "port.cc" not in shown and "cpu_feature_guard" not in shown


def test_a_demos_first_import_prints_nothing_of_tensorflows_start_up():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("import sys; import demo_models.quiet_tensorflow; import tensorflow as tf; "
            "print('after the import', file=sys.stderr); print(tf.constant(2) + 1)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=os.path.join(os.path.dirname(__file__), ".."), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after the import\n"  # what the program itself writes still comes
    assert done.stdout == "tf.Tensor(3, shape=(), dtype=int32)\n"


def test_a_process_started_without_stderr_still_imports_tensorflow():
    # A daemon or service may start Python with file descriptor 2 closed
    # (sys.stderr is None then): there is nothing to filter, and no failure.
    done = subprocess.run([sys.executable, "-c", "import demo_models.quiet_tensorflow, tensorflow as tf; print(int(tf.constant(2) + 1))"],
                          stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(2),
                          cwd=os.path.join(os.path.dirname(__file__), ".."), timeout=300)
    assert (done.returncode, done.stdout) == (0, "3\n")
