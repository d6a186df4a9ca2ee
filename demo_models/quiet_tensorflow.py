"""Imports TensorFlow without its C++ start-up lines; every demo imports this first.

TensorFlow prints, on import, absl's "All log messages before
absl::InitializeLog() is called are written to STDERR", an INFO line that
oneDNN is on and CPU feature hints: nothing a demo user can act on. Up to
TensorFlow 2.20, TF_CPP_MIN_LOG_LEVEL=2 hid them; 2.21 logs through absl
before its level is read, so the variable no longer does. The import's
stderr (file descriptor 2: C++ writes there, not to sys.stderr) is held in a
file, and what is not such a line (an error, a Python warning, a traceback)
is written out after it, so nothing that matters is lost.
"""

import os
import re
import sys
import tempfile

# Hide INFO and WARNING (TensorFlow's levels: 1 hides INFO, 2 WARNING too, 3 ERROR too).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# absl's prefix: level letter, MMDD, time (before absl is set up "00:00:" and
# seconds since 1970), thread, file:line]
_ABSL_LINE = re.compile(r"^([IWE])\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] ")
# Lines without that prefix that belong to hidden ones.
_COMPANION_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called",  # before absl's first line
    "To enable the following instructions:",  # the second line of cpu_feature_guard's INFO
)


def hidden_levels():
    """absl level letters TF_CPP_MIN_LOG_LEVEL hides ('' for 0 or a value that is not a number)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    return "IWE"[:int(level)] if level.isdigit() else ""


def shown_lines(text, hidden):
    """The lines of `text` to show: absl lines of a `hidden` level go, with the lines that come with them."""
    shown = []
    for line in text.splitlines(keepends=True):
        match = _ABSL_LINE.match(line)
        if match and match.group(1) in hidden:
            continue
        if hidden and line.startswith(_COMPANION_LINES):
            continue
        shown.append(line)
    return shown


def import_tensorflow():
    """`import tensorflow`, its stderr filtered by shown_lines."""
    hidden = hidden_levels()
    # Nothing to filter where TensorFlow is in already, shows everything, or
    # the process has no stderr (started with it closed: sys.stderr is None).
    if "tensorflow" in sys.modules or not hidden or sys.stderr is None:
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            sys.stderr.write("".join(shown_lines(held.read().decode("utf-8", "replace"), hidden)))
            sys.stderr.flush()


import_tensorflow()
