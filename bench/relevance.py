"""What gradient-weighted relevance costs a capture (issue 35 item 2).

    python -m bench.relevance [--rounds 15] [--layers 4] [--tokens 100]

A classifier of `--layers` MultiHeadAttention layers (4 heads, width 64)
over `--tokens` tokens, probe of 8 examples (the IMDB demo's shape at 100),
captured by the callback's own code: the probe's pass (capture.ProbeFunction,
traced once, as a fit runs it) without and with `relevance="predicted"` (one
backward pass by a gate of ones on each probability map), then the
background writer's work on its results (summary.prepare, the relevance
rollout through the stack, summary.serialize). Interleaved rounds; the
figures are medians of the probe's wall time per capture, the writer's
process CPU per capture and the bytes a capture stores (maps blobs after
compression, and the tensors' contents). Backend: whichever Keras runs on
(KERAS_BACKEND).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tb_attention_plugin.writing import callback as callback_lib  # noqa: E402
from tb_attention_plugin.writing import capture  # noqa: E402
from tb_attention_plugin.writing import relevance as relevance_lib  # noqa: E402
from tb_attention_plugin.writing import summary  # noqa: E402

EXAMPLES, HEADS, WIDTH = 8, 4, 64


def _model(layers, tokens):
    ids = keras.Input((tokens,), dtype="int32")
    x = keras.layers.Embedding(1000, WIDTH)(ids)
    for i in range(layers):
        x = x + keras.layers.MultiHeadAttention(HEADS, WIDTH // HEADS, name="mha%d" % i)(x, x)
    return keras.Model(ids, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))


def _written(results):
    """The writer's work on one capture's results: (serialized items)."""
    records = [summary.prepare(c.name, c.scores, kind="self", layer_index=i, relevance=c.relevance,
                               relevance_target="predicted class" if c.relevance is not None else "")
               for i, c in enumerate(results)]
    callback_lib.AttentionCallback._add_relevance_rollout(records)
    return [item for record in records for item in summary.serialize(record)]


def _stored_bytes(items):
    return sum(sum(len(b) for b in array) if array.dtype == object else array.nbytes for _, array, _ in items)


def run(rounds=15, layers=4, tokens=100):
    keras.utils.set_random_seed(0)
    model = _model(layers, tokens)
    probe = np.random.default_rng(0).integers(1, 1000, (EXAMPLES, tokens))
    chosen, required = capture.select_layers(model, None)
    probes = {
        "without": capture.ProbeFunction(model, chosen, required, probe, value_norms=False),
        "with": capture.ProbeFunction(model, chosen, required, probe, value_norms=False,
                                      explain=relevance_lib.explainer("predicted", model, None)),
    }
    probe_s, cpu_s, stored = {"without": [], "with": []}, {"without": [], "with": []}, {}
    for name, fn in probes.items():
        fn()  # compiled (JAX) or warmed once, as a fit's first capture is
    for _ in range(rounds):
        for name, fn in probes.items():
            start = time.perf_counter()
            results = fn()
            probe_s[name].append(time.perf_counter() - start)
            start = time.process_time()
            items = _written(results)
            cpu_s[name].append(time.process_time() - start)
            stored[name] = _stored_bytes(items)
    return {"probe_ms": {k: 1000 * statistics.median(v) for k, v in probe_s.items()},
            "cpu_ms": {k: 1000 * statistics.median(v) for k, v in cpu_s.items()},
            "bytes": stored, "layers": layers, "tokens": tokens, "rounds": rounds,
            "backend": keras.config.backend()}


def report(result):
    probe, cpu, stored = result["probe_ms"], result["cpu_ms"], result["bytes"]
    lines = [
        "One capture of %d MultiHeadAttention layers x %d heads x %d examples x %d tokens on %s, medians of "
        "%d interleaved rounds:" % (result["layers"], HEADS, EXAMPLES, result["tokens"], result["backend"],
                                   result["rounds"]),
        "",
        "| | probe pass per capture (ms, wall) | background CPU per capture (ms) | stored bytes per capture |",
        "|---|---|---|---|",
    ]
    for name, label in (("without", "relevance=None (default)"), ("with", "relevance=\"predicted\"")):
        lines.append("| %s | %.1f | %.1f | %d |" % (label, probe[name], cpu[name], stored[name]))
    lines.append("| ratio | %.2fx | %.2fx | %.2fx |" % (
        probe["with"] / probe["without"], cpu["with"] / cpu["without"], stored["with"] / stored["without"]))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    print(report(run(args.rounds, args.layers, args.tokens)))


if __name__ == "__main__":
    main()
