"""What value-weighted attention costs a capture (issue 35).

    python -m bench.value_weighted [--rounds 15] [--layers 4] [--tokens 100]

One capture of `--layers` layers of 4 heads x 8 examples x `--tokens`
tokens (the IMDB demo's shape at 100), serialized by the background
writer's own code (summary.prepare and summary.serialize, the previous
capture's maps given for `change`) with and without the value norms a
MultiHeadAttention layer gives (AttentionCallback(value_weighted=True), the
default). Interleaved rounds; the figure is the process CPU per capture
(median) and the bytes the capture stores (maps blobs after compression,
and the tensors' contents). The norms themselves are computed in the
probe's forward pass (a Gram matrix per head and one product with the
values: value_vectors.norms), timed apart on a Keras MultiHeadAttention
(an upper bound: the bench projects the value a second time, where the
capture reuses the layer's own).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tb_attention_plugin.writing import summary  # noqa: E402


def _scores(layers, tokens, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(layers):
        logits = rng.normal(size=(8, 4, tokens, tokens)).astype(np.float32) * 2
        out.append(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    return out


def _capture(scores, norms, previous):
    items = []
    for layer, layer_scores in enumerate(scores):
        record = summary.prepare("layer%02d" % layer, layer_scores, kind="self", layer_index=layer,
                                 value_norms=None if norms is None else norms[layer])
        record.previous_maps = list(previous[layer])
        items.extend(summary.serialize(record))
    return items


def _stored_bytes(items):
    return sum(sum(len(b) for b in array) if array.dtype == object else array.nbytes for _, array, _ in items)


def _probe_pass(tokens, rounds):
    """ms per call of a MultiHeadAttention on (8, tokens, 64) in a
    tf.function, with and without value_vectors.norms of its value."""
    import keras
    import tensorflow as tf

    from tb_attention_plugin.writing import value_vectors

    layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)
    x = tf.random.normal((8, tokens, 64))
    layer(x, x)

    @tf.function
    def plain(x):
        return layer(x, x, return_attention_scores=True)

    @tf.function
    def with_norms(x):
        value = layer._value_dense(x)
        return layer(x, x, return_attention_scores=True), value_vectors.norms(layer, value)[0]

    times = {"without": [], "with": []}
    for fn in (plain, with_norms):
        fn(x)
    for _ in range(rounds):
        for name, fn in (("without", plain), ("with", with_norms)):
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def run(rounds=15, layers=4, tokens=100):
    scores = [_scores(layers, tokens, seed) for seed in range(2)]
    rng = np.random.default_rng(9)
    norms = [rng.uniform(0.1, 2.0, (8, 4, tokens)).astype(np.float32) for _ in range(layers)]
    cpu = {"without": [], "with": []}
    stored = {}
    for _ in range(rounds):
        for name, given in (("without", None), ("with", norms)):
            start = time.process_time()
            items = _capture(scores[1], given, scores[0])
            cpu[name].append(time.process_time() - start)
            stored[name] = _stored_bytes(items)
    return {"cpu_ms": {k: 1000 * statistics.median(v) for k, v in cpu.items()}, "bytes": stored,
            "probe_ms": _probe_pass(tokens, rounds), "layers": layers, "tokens": tokens, "rounds": rounds}


def report(result):
    cpu, stored, probe = result["cpu_ms"], result["bytes"], result["probe_ms"]
    lines = [
        "One capture of %d layers x 4 heads x 8 examples x %d tokens, medians of %d interleaved rounds:"
        % (result["layers"], result["tokens"], result["rounds"]),
        "",
        "| | background CPU per capture (ms) | stored bytes per capture | probe pass of one MultiHeadAttention (ms) |",
        "|---|---|---|---|",
    ]
    for name, label in (("without", "value_weighted=False"), ("with", "value_weighted=True (default)")):
        lines.append("| %s | %.1f | %d | %.2f |" % (label, cpu[name], stored[name], probe[name]))
    lines.append("| ratio | %.2fx | %.2fx | %.2fx |" % (
        cpu["with"] / cpu["without"], stored["with"] / stored["without"], probe["with"] / probe["without"]))
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
