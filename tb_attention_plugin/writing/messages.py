"""How the callback speaks to a user: every message a sentence that says
what happened and what to do, with names in double quotes (as Keras writes
them), shapes as "2 x 4 x 9", and no Python repr (tests/test_messages.py)."""

import contextlib


def quoted(value):
    """A name or value for a message: strings in double quotes (as Keras
    writes names), anything else as str."""
    return '"%s"' % value if isinstance(value, str) else str(value)


def shape(dims):
    """(2, 4, 9) -> '2 x 4 x 9'."""
    return " x ".join(str(int(d)) for d in dims)


def sentence(text):
    """`text` ending in one full stop."""
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def error_text(error):
    """What an exception says, for a user. Our own errors (ValueError) and
    the file system's (OSError, TensorFlow's OpError, without its op-name
    preamble) say what happened; anything else is a bug of ours, said so."""
    from tensorboard.compat import tf  # TensorFlow's errors where installed, else TensorBoard's stub

    if isinstance(error, tf.errors.OpError):
        text = error.message.strip().splitlines()[0] if error.message else ""
    else:
        text = str(error).strip()
    if isinstance(error, (ValueError, OSError, tf.errors.OpError)) and text:
        return text
    return "an unexpected error in tb-attention, please report it with this line: %s %s" % (
        type(error).__name__, text or "(no message)")


@contextlib.contextmanager
def setup_errors():
    """ValueErrors of the helper modules, said as the callback's own."""
    try:
        yield
    except ValueError as e:
        text = str(e)
        if text.startswith("AttentionCallback"):
            raise
        raise ValueError("AttentionCallback: %s" % sentence(text)) from None
