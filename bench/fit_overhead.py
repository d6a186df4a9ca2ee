"""Training overhead of AttentionCallback and the size/error of what it stores.

    python -m bench.fit_overhead [--reps 3] [--steps 1000]

On the IMDB demo model (default preset, generated corpus), fits of at least
`--steps` optimizer steps (whole epochs of 94 steps) are run interleaved
(none, default cadence, every step, none, ...) on fresh copies of the same
initial weights; the figure is the ratio of median fit times to the
no-callback fit, with the spread (min and max ratio of the repetitions,
each callback fit against the no-callback fit of its own round). The
probe's one-time trace is timed inside each fit; the steady-state ratio
leaves it out ((fit - trace) / no-callback fit). Separately: the cost of
one capture, and the stored bytes per attention cell with the max abs
error of the uint8 maps against a float32 capture of the same steps.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from demo_models import imdb  # noqa: E402
from bench.image_workaround import ImageAttentionCallback  # noqa: E402
from tb_attention_plugin import AttentionCallback, read_attention  # noqa: E402


def _data():
    preset = imdb.PRESETS["default"]
    (x, y), (xt, _), word_index, _ = imdb.load_imdb(preset["num_words"], offline=True)
    pad = lambda xs: keras.utils.pad_sequences(xs, maxlen=preset["maxlen"])
    return preset, pad(x[: preset["train"]]), np.asarray(y[: preset["train"]]), pad(xt[:8]), imdb.id_to_word(word_index)


def _timed(callback):
    """The callback with its hooks timed: {"training thread": seconds inside
    the hooks Keras calls on the training thread (on_train_begin traces
    the probe), "writer": seconds of the background
    writer's work}, accumulated over the fits it runs in."""
    spent = {"training thread": 0.0, "writer": 0.0, "trace": 0.0}

    def wrap(name, bucket):
        method = getattr(callback, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[bucket] += time.perf_counter() - start

        setattr(callback, name, timed)

    for name in ("set_model", "on_train_begin", "on_train_batch_begin", "on_epoch_end", "on_train_end"):
        wrap(name, "training thread")
    wrap("_write_capture", "writer")
    wrap("_build_probe_fn", "trace")  # inside on_train_begin: also in "training thread"
    callback.spent = spent
    return callback


def _fit_seconds(preset, weights, x, y, epochs, callbacks):
    model = imdb.build_model(preset["num_words"], preset["maxlen"])
    model.set_weights(weights)
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=callbacks)
    return time.perf_counter() - start, model


def run(reps=3, min_steps=1000):
    preset, x, y, probe, vocab = _data()
    keras.utils.set_random_seed(0)
    weights = imdb.build_model(preset["num_words"], preset["maxlen"]).get_weights()
    per_epoch = int(np.ceil(len(x) / 32))
    epochs = int(np.ceil(min_steps / per_epoch))
    steps = epochs * per_epoch
    tmp = tempfile.mkdtemp()
    spent = {}  # configuration -> [callback.spent of each repetition]

    def attention(name, log_dir, **kwargs):
        callback = _timed(AttentionCallback(os.path.join(tmp, log_dir), probe, tokens=vocab, **kwargs))
        spent.setdefault(name, []).append(callback.spent)
        return [callback]

    default, every = "AttentionCallback, default cadence (update_freq=100)", "AttentionCallback, every step"
    configs = {
        "no callback": lambda i: [],
        default: lambda i: attention(default, "d%d" % i),
        every: lambda i: attention(every, "e%d" % i, update_freq=1),
        "matplotlib heatmaps to tf.summary.image every 100 steps (today's workaround)": lambda i: [
            ImageAttentionCallback(os.path.join(tmp, "img%d" % i), probe, every=100)],
    }
    _fit_seconds(preset, weights, x, y, 1, [])  # warm-up: TF start-up costs
    times = {name: [] for name in configs}
    cpu = {name: [] for name in configs}  # CPU seconds of the whole process (every thread) per fit
    names = list(configs)
    for i in range(reps):
        # Each round starts with another configuration, so none is always
        # the one after the image workaround's (or any other's) leftovers.
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.process_time()
            times[name].append(_fit_seconds(preset, weights, x, y, epochs, configs[name](i))[0])
            cpu[name].append(time.process_time() - start)
    base = statistics.median(times["no callback"])
    base_cpu = statistics.median(cpu["no callback"])
    rows = []
    for name, t in times.items():
        # Each repetition's fit against the no-callback fit of its round.
        ratios = [fit / none for fit, none in zip(t, times["no callback"])]
        traces = [s["trace"] for s in spent.get(name, [])]
        steady = statistics.median((fit - trace) / none for fit, trace, none in zip(t, traces, times["no callback"])) \
            if traces else None
        rows.append(dict(name=name, median=statistics.median(t), ratio=statistics.median(t) / base,
                         low=min(ratios), high=max(ratios), steady=steady,
                         trace=statistics.median(traces) if traces else None,
                         cpu=statistics.median(cpu[name]) / base_cpu))
    # Where the callback's time goes, per fit: on the training thread (what
    # training waits for) and on the background writer (overlapping training).
    hooks = {
        name: {bucket: statistics.median(s[bucket] for s in runs) for bucket in ("training thread", "writer")}
        for name, runs in spent.items()
    }

    # One capture and the one-time trace, timed inside a fit.
    cb = AttentionCallback(os.path.join(tmp, "timing"), probe, tokens=vocab, update_freq=10**9)
    model = imdb.build_model(preset["num_words"], preset["maxlen"])
    model.fit(x[:32], y[:32], verbose=0, epochs=1, callbacks=[cb])
    t0 = time.perf_counter()
    cb._build_probe_fn()
    trace = time.perf_counter() - t0
    capture_times, forward_times = [], []
    for step in range(1, 21):
        t0 = time.perf_counter()  # what one scheduled capture does: run, serialize, write
        results = cb._probe_fn()
        forward_times.append(time.perf_counter() - t0)  # the part left on the training thread
        cb._write(cb._serialize(results), 10**6 + step)
        capture_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(20):
        model.predict_on_batch(probe)
    predict = (time.perf_counter() - t0) / 20
    step_time = base / steps

    # Storage: uint8 and float32 captures of the same fit.
    store = os.path.join(tmp, "store")
    _fit_seconds(preset, weights, x, y, 2, [
        AttentionCallback(os.path.join(store, "uint8"), probe, tokens=vocab, update_freq=50),
        AttentionCallback(os.path.join(store, "float32"), probe, tokens=vocab, update_freq=50, encoding="float32"),
    ])
    runs = read_attention(store)
    u8, f32 = runs["uint8"]["attention"], runs["float32"]["attention"]
    error = max(float(np.abs(a - b).max()) for a, b in zip(u8.maps, f32.maps))
    cells = sum(m.size for m in u8.maps)
    size = lambda run: sum(os.path.getsize(os.path.join(store, run, f)) for f in os.listdir(os.path.join(store, run)))
    storage = {
        "cells": cells, "steps": len(u8.steps), "error": error,
        "uint8_bytes": size("uint8"), "float32_bytes": size("float32"),
    }
    image_dir = os.path.join(tmp, "img0")
    storage["image_bytes"] = sum(os.path.getsize(os.path.join(image_dir, f)) for f in os.listdir(image_dir))
    storage["image_steps"] = 1 + steps // 100  # step 0 and every 100
    shutil.rmtree(tmp, ignore_errors=True)
    return dict(rows=rows, steps=steps, reps=reps, trace=trace, capture=statistics.median(capture_times),
                forward=statistics.median(forward_times), predict=predict, step_time=step_time,
                storage=storage, hooks=hooks, base=base)


def report(result):
    lines = ["| configuration | median fit (s) | ratio to no callback (median) | spread of the ratio (min-max) "
             "| steady state, trace left out | the probe's trace (ms) | CPU of the process, ratio |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append("| %s | %.2f | %.3f | %.3f-%.3f | %s | %s | %.3f |" % (
            row["name"], row["median"], row["ratio"], row["low"], row["high"],
            "" if row["steady"] is None else "%.3f" % row["steady"],
            "" if row["trace"] is None else "%.0f" % (1000 * row["trace"]), row["cpu"]))
    s = result["storage"]
    capture_ms = 1000 * result["capture"]
    steady = 1 + result["forward"] / (100 * result["step_time"])
    lines += [
        "",
        "| configuration | time in the callback on the training thread, per fit (s) | as a share of the "
        "no-callback fit | background writer, per fit (s) |",
        "|---|---|---|---|",
    ]
    for name, spent in result["hooks"].items():
        lines.append("| %s | %.3f | %.2f%% | %.3f |" % (
            name, spent["training thread"], 100 * spent["training thread"] / result["base"], spent["writer"]))
    lines += [
        "",
        "Fits of %d steps, %d interleaved repetitions each (each round starting with another "
        "configuration). The wall-clock ratio mixes the callback's cost with the machine's noise (see "
        "the spread); the CPU ratio counts every thread of the process (training's, the writer's, "
        "TensorFlow's pools); the time the training thread spends inside "
        "the callback's hooks (the probe's trace at set_model and on_train_begin, each capture's forward "
        "pass, the wait for the writer at the end of the fit) is measured directly. One-time probe trace: "
        "%.0f ms. One capture: %.1f ms in all (probe forward pass with scores %.1f ms on the training "
        "thread; importance, rollout, head metrics, encoding, writing and flush on the background writer), "
        "against %.1f ms for a bare predict of the same probe; one training step: %.1f ms. Steady-state "
        "overhead on the training thread at update_freq=100 (forward pass / (100 x step)): %.4f."
        % (result["steps"], result["reps"], 1000 * result["trace"], capture_ms, 1000 * result["forward"],
           1000 * result["predict"], 1000 * result["step_time"], steady),
        "",
        "Storage (%d steps x 8 probe reviews, 4 heads): %d map cells; event files %d bytes with uint8 "
        "(%.3f bytes per cell, including importance, head statistics and rollout), %d bytes with float32 "
        "(%.3f bytes per cell). Max abs error of the uint8 maps against float32: %.5f (bound 1/510 = %.5f)."
        % (s["steps"], s["cells"], s["uint8_bytes"], s["uint8_bytes"] / s["cells"], s["float32_bytes"],
           s["float32_bytes"] / s["cells"], s["error"], 1 / 510),
        "",
        "The image workaround stored %d bytes for %d captures of the same 8 reviews x 4 heads: %.0f bytes "
        "per capture against %.0f for AttentionCallback (uint8), and its weights cannot be read back: the "
        "colours are a rendering, with no tokens, no importance and an error that has no bound."
        % (s["image_bytes"], s["image_steps"], s["image_bytes"] / s["image_steps"],
           s["uint8_bytes"] / s["steps"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="at least this many optimizer steps per fit")
    args = parser.parse_args()
    print(report(run(args.reps, args.steps)))
