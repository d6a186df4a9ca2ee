"""Share of one capture spent on head metrics (issue 21).

    python -m bench.head_metrics_cost

One layer's capture serialized (`summary.serialize`: encoding, importance,
head statistics, head metrics) for 8 examples of random softmax attention,
with and without the head metrics (`head_metrics.all_metrics`, timed on its
own), at 4 heads x 64, 8 x 128 and 12 x 256 tokens; median of 5.
"""

import statistics
import time

import numpy as np

from tb_attention_plugin.math import head_metrics
from tb_attention_plugin.writing import summary

SHAPES = [(4, 64), (8, 128), (12, 256)]
EXAMPLES = 8


def _record(heads, tokens, rng):
    logits = rng.normal(size=(EXAMPLES, heads, tokens, tokens)) * 3
    scores = np.exp(logits - logits.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return summary.prepare("layer", scores.astype(np.float32), kind="causal")


def _median_seconds(fn, reps=5):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure():
    rng = np.random.default_rng(0)
    rows = []
    for heads, tokens in SHAPES:
        record = _record(heads, tokens, rng)
        record.previous_maps = [m.copy() for m in record.maps]
        whole = _median_seconds(lambda: summary.serialize(record))
        metrics = _median_seconds(lambda: [
            head_metrics.all_metrics(m, k, record.kind, p)
            for m, k, p in zip(record.maps, record.key_tokens, record.previous_maps)])
        rows.append((heads, tokens, whole, metrics))
    return rows


def report(rows=None):
    rows = rows or measure()
    lines = ["| heads x tokens (8 examples) | serialize one layer | of which head metrics | share |", "|---|---|---|---|"]
    for heads, tokens, whole, metrics in rows:
        lines.append("| %d x %d | %.1f ms | %.1f ms | %.0f%% |" % (heads, tokens, whole * 1e3, metrics * 1e3, 100 * metrics / whole))
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
