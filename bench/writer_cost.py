"""CPU per capture of writing: one tf.summary.write op per tag (the writer
before, still the op for custom loops) against one Event per capture through
TensorBoard's EventFileWriter (what AttentionCallback writes with now).

    python -m bench.writer_cost [--captures 40] [--layers 12]

The same serialized captures (summary.serialize of `--layers` layers of
4 heads x 8 examples x ~100 tokens, the IMDB demo's shape, each layer giving
its maps, 8 importance tags, head statistics, rollout and head metrics) are
written by both, interleaved; the figure is the process CPU time per capture
(write and flush), median over rounds. Serializing (summary.prepare and
summary.serialize of every layer, from scores made beforehand, with the
previous capture's maps for the change metric) is timed apart: it is the
same for both.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tb_attention_plugin.writing import event_writer, summary  # noqa: E402


def _scores(layers, seed):
    """One capture's float32 probabilities, per layer (8, 4, 100, 100)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(layers):
        logits = rng.normal(size=(8, 4, 100, 100)).astype(np.float32)
        out.append(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    return out


def _capture(scores, previous=None):
    """What the background writer computes for one capture before writing:
    each layer prepared (checked, cropped) and serialized, the change since
    `previous` (the last capture's scores) included."""
    items = []
    for layer, layer_scores in enumerate(scores):
        record = summary.prepare("layer%02d" % layer, layer_scores, kind="self", layer_index=layer)
        record.rollout = [np.full(100, 0.01, np.float32)] * 8
        record.rollout_stack = "layer00"
        if previous is not None:
            record.previous_maps = list(previous[layer])
        items.extend(summary.serialize(record))
    return items


def _cpu(fn):
    start = time.process_time()
    fn()
    return time.process_time() - start


def run(captures=40, layers=12, rounds=5):
    """{"tags", "serialize", "per_op", "per_event"}: CPU seconds per capture
    (lists over rounds for the two writers)."""
    first, second = _scores(layers, 0), _scores(layers, 1)
    serialize = [_cpu(lambda: _capture(second, first)) for _ in range(5)]
    written = [_capture(_scores(layers, i)) for i in range(captures)]
    per_op, per_event = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(rounds):
            tf_writer = tf.summary.create_file_writer(os.path.join(scratch, "ops%d" % r))

            def by_ops():
                for step, items in enumerate(written):
                    with tf_writer.as_default():
                        summary.write(items, step)
                    tf_writer.flush()

            writer = event_writer.EventWriter(os.path.join(scratch, "event%d" % r))

            def by_event():
                for step, items in enumerate(written):
                    writer.write(items, step)
                    writer.flush()

            per_op.append(_cpu(by_ops) / captures)
            per_event.append(_cpu(by_event) / captures)
            writer.close()
            tf_writer.close()
    return {"layers": layers, "tags": len(written[0]), "rounds": rounds,
            "serialize": statistics.median(serialize), "per_op": per_op, "per_event": per_event}


def report(r):
    ms = lambda values: "%.1f ms (min %.1f, max %.1f)" % tuple(
        1000 * f(values) for f in (statistics.median, min, max))
    return "\n".join([
        "| CPU per capture (%d layers, %d tags, %d rounds) | median |" % (r["layers"], r["tags"], r["rounds"]),
        "|---|---|",
        "| serialize (encoding, importance, statistics, metrics; same for both) | %.1f ms |" % (1000 * r["serialize"]),
        "| write + flush, one `tf.summary.write` per tag (before; still the op for custom loops) | %s |" % ms(r["per_op"]),
        "| write + flush, one Event per capture (`event_writer`, the callback) | %s |" % ms(r["per_event"]),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--captures", type=int, default=40)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(report(run(args.captures, args.layers, args.rounds)))


if __name__ == "__main__":
    main()
