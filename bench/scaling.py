"""How writing one layer's attention scales with sequence length and heads.

    python -m bench.scaling

For one probe example of random peaked attention (softmax of N(0, 3^2)
logits), times `summary.attention` (importance, head statistics, encoding,
compression, writing; median of 5) and reads the stored bytes, for lengths
64-1024 at 8 heads and for 4-16 heads at 256 tokens. The frontend side of
the same sizes is in bench/frontend_paint.py (8 x 256 and 12 x 512).
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tb_attention_plugin.writing import summary  # noqa: E402

CASES = [(8, n) for n in (64, 128, 256, 512, 1024)] + [(h, 256) for h in (4, 16)]


def measure(heads, tokens, reps=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(1, heads, tokens, tokens)).astype(np.float32)
    scores = np.exp(logits - logits.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    logdir = tempfile.mkdtemp(prefix="tba-scale-")
    writer = tf.summary.create_file_writer(logdir)
    times = []
    with writer.as_default():
        for step in range(reps):
            start = time.perf_counter()
            summary.attention("layer", scores, step=step, kind="self")
            writer.flush()
            times.append(time.perf_counter() - start)
    writer.close()
    size = sum(os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir)) / reps
    return statistics.median(times), size


def report():
    lines = ["| heads x tokens | cells | write one capture (ms) | stored bytes per capture | bytes per cell |",
             "|---|---|---|---|---|"]
    for heads, tokens in CASES:
        seconds, size = measure(heads, tokens)
        cells = heads * tokens * tokens
        lines.append("| %d x %d | %d | %.1f | %d | %.3f |" % (heads, tokens, cells, 1000 * seconds, size, size / cells))
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
