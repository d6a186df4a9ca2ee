"""One capture on each Keras backend, same models, side by side (issue 31).

    python -m bench.backend_capture

Each backend runs in a process of its own (KERAS_BACKEND is read when Keras
is imported), on the keras_hub models and sizes of bench.zoo_capture (2
layers, 4 heads, width 64, 64 tokens, a probe of 8, batches of 16). Medians
of 10 after a fit that traced everything: one training step
(`train_on_batch`), the backend's own `predict_on_batch` on the probe, the
capture's forward pass alone (`ProbeFunction()`, numpy out), one whole capture
(forward pass, crop, statistics, encode, write, flush) and the overhead at
the default cadence, one capture every 100 steps: 1 + capture / (100 x step).
The target: the forward pass costs at most 2x the backend's own predict.

Then the measured fit overhead at the default cadence (update_freq=100) on
BERT: a fit of FIT_STEPS optimizer steps with the callback (its trace and its
captures at steps 0, 100, 200, ... and the end included) against the same fit
without, both after a warm-up fit that traced Keras's own train step,
interleaved, median ratio of FIT_REPS pairs with its spread.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("BERT", "GPT-2", "Llama (GQA 4/2)")
FIT_STEPS, FIT_REPS = 300, 3


def _median_time(fn, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _child(reps=10):
    import numpy as np

    from bench import zoo_capture as zoo
    from tb_attention_plugin import AttentionCallback

    out = {}
    for name, (build, inputs) in zoo._architectures().items():
        if name not in MODELS:
            continue
        x = inputs(np.random.default_rng(0))
        y = np.zeros((zoo.BATCH, 1), "float32")
        model = zoo._model(build())
        probe = {k: v[:zoo.PROBE] for k, v in x.items()}
        callback = AttentionCallback(tempfile.mkdtemp(prefix="tba-backend-"), probe, update_freq=10**9)
        model.fit(x, y, batch_size=zoo.BATCH, epochs=1, verbose=0, callbacks=[callback])
        model.predict_on_batch(probe)  # traced once
        step = _median_time(lambda: model.train_on_batch(x, y), reps)
        predict = _median_time(lambda: model.predict_on_batch(probe), reps)
        forward = _median_time(callback._probe_fn, reps)
        count = iter(range(10**6, 10**7))
        capture = _median_time(
            lambda: callback._write(callback._serialize(callback._probe_fn()), next(count)), reps)
        out[name] = dict(step=step, predict=predict, forward=forward, capture=capture)
    out["fit"] = _fit_overhead(zoo)
    print("RESULT " + json.dumps(out))


def _fit_overhead(zoo):
    """[(seconds without, seconds with the callback)] of FIT_REPS interleaved
    fits of FIT_STEPS steps on BERT, each on a fresh model and log dir."""
    import numpy as np

    from tb_attention_plugin import AttentionCallback

    build, inputs = zoo._architectures()["BERT"]
    x = inputs(np.random.default_rng(0))
    x = {k: np.concatenate([v] * FIT_STEPS) for k, v in x.items()}  # FIT_STEPS batches
    y = np.zeros((len(x["token_ids"]), 1), "float32")
    probe = {k: v[:zoo.PROBE] for k, v in x.items()}

    def fit(with_callback):
        model = zoo._model(build())
        model.fit({k: v[:zoo.BATCH] for k, v in x.items()}, y[:zoo.BATCH], batch_size=zoo.BATCH,
                  verbose=0)  # Keras's own step traced before the clock starts
        callbacks = [AttentionCallback(tempfile.mkdtemp(prefix="tba-fit-"), probe)] if with_callback else []
        start = time.perf_counter()
        model.fit(x, y, batch_size=zoo.BATCH, epochs=1, verbose=0, callbacks=callbacks)
        if callbacks:
            callbacks[0].flush()
        return time.perf_counter() - start

    return [(fit(False), fit(True)) for _ in range(FIT_REPS)]


def run():
    """{backend: {model: {step, predict, forward, capture}}} in seconds."""
    results = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run([sys.executable, "-m", "bench.backend_capture", "--child"],
                              capture_output=True, text=True, env=env)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError("%s failed:\n%s" % (backend, done.stderr[-3000:]))
        results[backend] = json.loads(line[len("RESULT "):])
    return results


def report(results=None):
    results = results if results is not None else run()
    lines = [
        "| model | backend | train step | predict on the probe | capture's forward pass | "
        "forward / predict (target <= 2x) | one whole capture | overhead at update_freq=100 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        for backend in BACKENDS:
            r = results[backend][model]
            lines.append("| %s | %s | %.1f ms | %.1f ms | %.1f ms | %.2fx | %.1f ms | %.4fx |" % (
                model, backend, r["step"] * 1e3, r["predict"] * 1e3, r["forward"] * 1e3,
                r["forward"] / r["predict"], r["capture"] * 1e3, 1 + r["capture"] / (100 * r["step"])))
    lines += ["", "Fit overhead measured on BERT, %d steps, update_freq=100 (default), %d interleaved pairs:" % (
        FIT_STEPS, FIT_REPS), "",
        "| backend | fit without | fit with the callback | median ratio (spread) |", "|---|---|---|---|"]
    for backend in BACKENDS:
        pairs = results[backend]["fit"]
        ratios = sorted(w / wo for wo, w in pairs)
        lines.append("| %s | %.1f s | %.1f s | %.3fx (%.3f-%.3f) |" % (
            backend, statistics.median(wo for wo, _ in pairs), statistics.median(w for _, w in pairs),
            statistics.median(ratios), ratios[0], ratios[-1]))
    return "\n".join(lines)


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        print(report())
