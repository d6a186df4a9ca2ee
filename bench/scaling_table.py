"""How capturing, writing and serving grow with layers, heads, tokens and steps.

    python -m bench.scaling_table [--axes tokens,heads,layers,bert,steps]
                                  [--captures 100] [--steps 1000,10000]
                                  [--json FIGURES.json]
    python -m bench.scaling_table --report FIGURES.json

One axis at a time from a base shape of 4 layers x 8 heads x 128 tokens x 1
probe example: tokens 128-2048, heads 4-16, layers 2-12, a BERT-base-shaped
row (12 x 12 x 512, width 768) and captured steps (100, 1000, 10,000).

Each shape is a real Keras model: `layers` transformer encoder blocks
(keras.layers.MultiHeadAttention, residual, LayerNormalization, a feed-forward
Dense of 4 x width with gelu; width 512, BERT row 768) over random embeddings,
random weights. An AttentionCallback (defaults, but max_cells=None so that
the 2048-token row is not refused) is set on it and driven the way a fit
drives it, without training:

- trace: `_setup_capture` (the probe function's trace and its first run),
  once per model;
- capture, on the training thread: the probe function (`_probe_fn()`: the
  forward pass with the scores returned, copied to numpy), against a bare
  forward pass of the same model on the same probe;
- write, on the background writer: `_write_capture`, what the writer thread
  runs (crop, importance, head statistics and metrics, rollout, encoding,
  zlib, writing, flush); the first, which also opens the run, is not timed;
- bytes per capture: the event file's growth from the last capture written.
Every shape is built first, then 3 rounds each take 1 capture per shape (3
up to 5 M weights) in turn, so that load from other work slows all alike;
wall and CPU time (the process's, both cores) are medians.

Serving: each shape's written captures are repeated (`tf.summary.experimental.
write_raw_pb`, as bench.backend_latency does) into a log of `--captures`
steps (the base shape also of each of `--steps`), the real `tensorboard`
(RustBoard) is started on it, and once every step is listed: /index (median
of 5), the first importance request of each layer (one head, binary: what the
tab asks after /index; it reads the series), 20 maps requests at random steps
and layers (one example, compression=zlib as the tab asks), then the resident
memory of TensorBoard's Python process and of its data server.

Growth laws: the log-log slope of each column between the ends of each axis
(tokens 128-512 and 512-2048, steps 100-1000 and 1000-10,000); capture and
write CPU fitted as two terms over the width-512 rows (checked on the BERT
row); memory fitted as a x disk + b over every log.
"""

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from tensorboard_server import TensorBoard  # noqa: E402

from bench import backend_latency  # noqa: E402
from tb_attention_plugin import AttentionCallback  # noqa: E402

BASE = dict(layers=4, heads=8, tokens=128, width=512)
BERT = dict(layers=12, heads=12, tokens=512, width=768)
AXES = {
    "tokens": [dict(BASE, tokens=t) for t in (128, 256, 512, 1024, 2048)],
    "heads": [dict(BASE, heads=h) for h in (4, 8, 16)],
    "layers": [dict(BASE, layers=n) for n in (2, 4, 12)],
    "bert": [BERT],
}
DEFAULT_MAX_CELLS = 50_000_000  # AttentionCallback's default
MAPS_REQUESTS = 20


def cells(shape):
    return shape["layers"] * shape["heads"] * shape["tokens"] ** 2


def build_model(layers, heads, tokens, width):
    """`layers` encoder blocks over (tokens, width) embeddings."""
    x = inputs = keras.Input((tokens, width))
    for i in range(layers):
        attended = keras.layers.MultiHeadAttention(heads, width // heads, name="mha_%d" % i)(x, x)
        x = keras.layers.LayerNormalization()(x + attended)
        hidden = keras.layers.Dense(4 * width, activation="gelu")(x)
        x = keras.layers.LayerNormalization()(x + keras.layers.Dense(width)(hidden))
    return keras.Model(inputs, x)


def _event_bytes(log_dir):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(log_dir) for f in fs if "tfevents" in f)


class Subject:
    """One shape's model, probe and AttentionCallback, driven the way a fit
    drives the callback; records wall and CPU (whole process) seconds."""

    def __init__(self, shape, log_dir, seed=0):
        self.shape, self.log_dir = shape, log_dir
        keras.utils.set_random_seed(seed)
        self.model = build_model(**shape)
        probe = np.random.default_rng(seed).normal(size=(1, shape["tokens"], shape["width"])).astype(np.float32)
        self.probe = tf.constant(probe)
        self.callback = AttentionCallback(log_dir, probe, max_cells=None)
        self.callback.set_model(self.model)
        self.callback._claim_log_dir()
        start = time.perf_counter()
        results = self.callback._setup_capture()
        self.trace = time.perf_counter() - start
        model = self.model
        self._bare = tf.function(lambda x: model(x, training=False)).get_concrete_function(self.probe)
        self._bare(self.probe).numpy()
        self.callback._write_capture(0, results, None)  # also opens the run and its event file
        self.times = {"capture": [], "bare": [], "write": []}
        self.bytes = None

    def _timed(self, name, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        return out

    def round(self, reps):
        for _ in range(reps):
            self._timed("bare", lambda: self._bare(self.probe).numpy())
            results = self._timed("capture", self.callback._probe_fn)
            step = len(self.callback.captured_steps)
            before = _event_bytes(self.log_dir)
            self._timed("write", lambda: self.callback._write_capture(step, results, None))
            self.bytes = _event_bytes(self.log_dir) - before
            assert self.callback.captured_steps[-1] == step, "the capture at step %d was not written" % step

    def close(self):
        self.callback._end_fit()
        figures = dict(shape=self.shape, trace=self.trace, bytes=self.bytes, reps=len(self.times["write"]))
        for name, pairs in self.times.items():
            figures[name] = statistics.median(wall for wall, _ in pairs)
            figures[name + "_cpu"] = statistics.median(cpu for _, cpu in pairs)
        self.model = self.callback = self._bare = None
        return figures


def _reps(shape):
    """Captures per round, so that small shapes get more samples."""
    return 3 if cells(shape) <= 5e6 else 1


def measure_captures(shapes, work, rounds=3):
    """{key: figures} of every shape, their captures interleaved in rounds
    (load from other work slows every shape alike); each shape's captures
    stay in its log_dir under work."""
    load = [os.getloadavg()[0]]
    warmup = Subject(dict(BASE, layers=1, tokens=32), os.path.join(work, "warmup"))  # first-use costs
    warmup.round(1)
    warmup.close()
    subjects = [Subject(shape, os.path.join(work, "callback%d" % i)) for i, shape in enumerate(shapes)]
    for _ in range(rounds):
        for subject in subjects:
            subject.round(_reps(subject.shape))
        load.append(os.getloadavg()[0])
        print("scaling_table: round %d of %d done" % (len(load) - 1, rounds), file=sys.stderr)
    out = {}
    for subject in subjects:
        out[_key(subject.shape)] = dict(subject.close(), log_dir=subject.log_dir,
                                        capture_load=(min(load), max(load)))
    keras.backend.clear_session()
    return out


def _captures_in(log_dir):
    """{step: [serialized Summary]} of the event files under log_dir."""
    steps = {}
    for d, _, files in os.walk(log_dir):
        for name in sorted(f for f in files if "tfevents" in f):
            for record in tf.data.TFRecordDataset(os.path.join(d, name)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.HasField("summary"):
                    steps.setdefault(event.step, []).append(event.summary.SerializeToString())
    return [steps[s] for s in sorted(steps)]


def write_log(captures, logdir, steps):
    """A run of `steps` steps repeating the written captures; its bytes."""
    writer = tf.summary.create_file_writer(os.path.join(logdir, "run"), max_queue=1000)
    with writer.as_default():
        for step in range(steps):
            tf.summary.experimental.write_raw_pb(tf.constant(captures[step % len(captures)]), step=step)
    writer.close()
    return _event_bytes(logdir)


def serve(logdir, steps, seed=0):
    """Route latencies (ms) and memory (bytes) of RustBoard on a written log."""
    tb = TensorBoard(logdir)
    try:
        tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"), timeout=900)
        start = time.perf_counter()

        def loaded(index):
            layers = [l for r in index["runs"] for l in r["layers"]]
            return layers and min(len(l["steps"]) for l in layers) == steps

        index = tb.wait_for_index(loaded, tries=1800)
        if not loaded(index):
            raise TimeoutError("TensorBoard did not list all %d steps in 15 minutes" % steps)
        load_s = time.perf_counter() - start
        layers = [l for r in index["runs"] for l in r["layers"]]
        tags = [l["tag"] for l in layers]
        heads = layers[0]["num_heads"]

        def timed(path):
            start = time.perf_counter()
            status, _, body = tb.get(path)
            assert status == 200, (path, status, body[:200])
            return 1000 * (time.perf_counter() - start)

        def query(**args):
            return urllib.parse.urlencode(dict(dict(run="run", example=0), **args))

        index_ms = statistics.median(timed("/data/plugin/attention/index") for _ in range(5))
        # The first request of each layer's series reads it (what the tab asks after /index).
        importance_ms = statistics.median(
            timed("/data/plugin/attention/importance?" + query(tag=tag, head=heads, format="binary"))
            for tag in tags)
        rng = random.Random(seed)
        maps = [timed("/data/plugin/attention/maps?" + query(
            tag=rng.choice(tags), step=rng.randrange(steps), compression="zlib")) for _ in range(MAPS_REQUESTS)]
        python_rss, server_rss = backend_latency.memory(tb)
    finally:
        tb.stop()
    return dict(load_s=load_s, index_ms=index_ms, importance_ms=importance_ms,
                maps_ms=statistics.median(maps), python_rss=python_rss, server_rss=server_rss)


def serve_shape(row, captures_in_log, work):
    """Adds row["served"]: one log per step count of `captures_in_log`,
    repeating the shape's written captures, served by a fresh TensorBoard."""
    captures = _captures_in(row["log_dir"])[1:]  # the first capture's head metrics saw no previous one
    row["served"] = []
    for steps in captures_in_log:
        load = os.getloadavg()[0]
        logdir = tempfile.mkdtemp(prefix="log%d-" % steps, dir=work)
        start = time.perf_counter()
        disk = write_log(captures, logdir, steps)
        log_s = time.perf_counter() - start
        row["served"].append(dict(serve(logdir, steps), steps=steps, disk=disk, log_s=log_s,
                                  load=(load, os.getloadavg()[0])))
        shutil.rmtree(logdir, ignore_errors=True)
        print("scaling_table: served %s x %d steps" % (_shape_name(row["shape"]), steps), file=sys.stderr)


def run(axes=("tokens", "heads", "layers", "bert", "steps"), captures=100, steps=(1000, 10000), rounds=3):
    """{axis: [row]}; a shape on several axes (the base) is measured once,
    and the steps axis is the base shape's logs of `captures` and `steps`."""
    axes = list(axes)
    shapes = {}
    for axis in axes:
        for shape in AXES.get(axis, [BASE]):
            shapes.setdefault(_key(shape), shape)
    work = tempfile.mkdtemp(prefix="tba-table-")
    try:
        rows = measure_captures(list(shapes.values()), work, rounds)
        for key, row in rows.items():
            extra = tuple(steps) if "steps" in axes and key == _key(BASE) else ()
            serve_shape(row, (captures,) + extra, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {axis: [rows[_key(shape)] for shape in AXES.get(axis, [BASE])] for axis in axes}


def _key(shape):
    return tuple(sorted(shape.items()))


def _shape_name(shape):
    return "%d x %d x %d" % (shape["layers"], shape["heads"], shape["tokens"])


def _memory(served):
    return served["python_rss"] + served["server_rss"]


def capture_table(results):
    lines = [
        "| axis | layers x heads x tokens | weights per capture (M) | trace + first capture, once (s) "
        "| capture on the training thread, wall / CPU (ms) | bare forward pass, wall / CPU (ms) | "
        "write, off the thread, wall / CPU (ms) | bytes per capture | bytes per weight |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for axis, rows in results.items():
        if axis == "steps":
            continue
        for r in rows:
            shape = r["shape"]
            note = " (over the default max_cells)" if cells(shape) > DEFAULT_MAX_CELLS else ""
            lines.append("| %s | %s%s | %.1f | %.1f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %d | %.3f |" % (
                axis, _shape_name(shape), note, cells(shape) / 1e6, r["trace"],
                1000 * r["capture"], 1000 * r["capture_cpu"], 1000 * r["bare"], 1000 * r["bare_cpu"],
                1000 * r["write"], 1000 * r["write_cpu"], r["bytes"], r["bytes"] / cells(shape)))
    return "\n".join(lines)


def serving_table(results):
    lines = [
        "| axis | layers x heads x tokens | captured steps | disk (MB) | log written (s) | all steps listed "
        "after (s) | /index (ms) | importance, first request of a layer (ms) | maps p50 (ms) | data server (MB) | "
        "TensorBoard process (MB) | memory / disk |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for axis, rows in results.items():
        for r in rows:
            for s in r["served"] if axis == "steps" else r["served"][:1]:
                lines.append("| %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2fx |" % (
                    axis, _shape_name(r["shape"]), s["steps"], s["disk"] / 1e6, s["log_s"], s["load_s"],
                    s["index_ms"], s["importance_ms"], s["maps_ms"], s["server_rss"] / 1e6,
                    s["python_rss"] / 1e6, _memory(s) / s["disk"]))
    return "\n".join(lines)


def slope(x0, y0, x1, y1):
    """Log-log slope: the exponent k of y ~ x^k between two points."""
    return math.log(y1 / y0) / math.log(x1 / x0)


COLUMNS = {
    "capture, CPU": lambda r, s: r["capture_cpu"],
    "capture, wall": lambda r, s: r["capture"],
    "bare forward, CPU": lambda r, s: r["bare_cpu"],
    "write, CPU": lambda r, s: r["write_cpu"],
    "write, wall": lambda r, s: r["write"],
    "bytes per capture": lambda r, s: r["bytes"],
    "importance, first request": lambda r, s: s["importance_ms"],
    "maps p50": lambda r, s: s["maps_ms"],
    "/index": lambda r, s: s["index_ms"],
    "data server memory": lambda r, s: s["server_rss"],
}
SERVING_COLUMNS = ("importance, first request", "maps p50", "/index", "data server memory")


def exponents(results):
    """({(column, span): exponent}, spans): log-log slopes between the ends
    of each axis (tokens: 128-512 and 512-2048; steps: each next count)."""
    spans = []
    for axis in ("tokens", "heads", "layers"):
        rows = results.get(axis)
        if rows and len(rows) > 1:
            pairs = [(rows[0], rows[2]), (rows[2], rows[-1])] if len(rows) >= 5 else [(rows[0], rows[-1])]
            for a, b in pairs:
                x0, x1 = a["shape"][axis], b["shape"][axis]
                spans.append(("%s %d-%d" % (axis, x0, x1), x0, a, a["served"][0], x1, b, b["served"][0]))
    for r in results.get("steps", []):
        for s0, s1 in zip(r["served"], r["served"][1:]):
            spans.append(("steps %d-%d" % (s0["steps"], s1["steps"]), s0["steps"], r, s0, s1["steps"], r, s1))
    table = {}
    for name, x0, r0, s0, x1, r1, s1 in spans:
        for column, value in COLUMNS.items():
            if name.startswith("steps") and column not in SERVING_COLUMNS:
                continue  # the same captures: only the log grows
            table[(column, name)] = slope(x0, value(r0, s0), x1, value(r1, s1))
    return table, [s[0] for s in spans]


def _rows(results):
    """Every distinct shape measured, once."""
    return list({_key(r["shape"]): r for rows in results.values() for r in rows}.values())


def two_term_fit(rows, column, terms):
    """Coefficients c of column ~ sum(c_i x term_i(shape)), least squares on
    the relative error, over `rows`."""
    x = np.array([[term(r["shape"]) for term in terms] for r in rows], dtype=float)
    y = np.array([r[column] for r in rows], dtype=float)
    coef, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
    return coef


def _predict(coef, terms, shape):
    return sum(c * term(shape) for c, term in zip(coef, terms))


def memory_fit(results, memory=_memory):
    """(a, b bytes, n) of memory(served) ~ a x disk + b, least squares over
    every log served."""
    points = list({(s["disk"], memory(s)) for r in _rows(results) for s in r["served"]})
    disk, resident = np.array(points, dtype=float).T
    a, b = np.polyfit(disk, resident, 1)
    return a, b, len(points)


def growth_table(results):
    table, spans = exponents(results)
    lines = ["| column | %s |" % " | ".join(spans), "|---|%s" % ("---|" * len(spans))]
    for column in COLUMNS:
        cells_ = [table.get((column, span)) for span in spans]
        lines.append("| %s | %s |" % (column, " | ".join("" if c is None else "%.2f" % c for c in cells_)))
    return "\n".join(lines)


WEIGHTS = lambda shape: cells(shape)  # noqa: E731
LAYERS = lambda shape: shape["layers"]  # noqa: E731
LAYER_TOKENS_WIDTH2 = lambda shape: shape["layers"] * shape["tokens"] * shape["width"] ** 2  # noqa: E731


def laws(results):
    """The growth law of each column, as sentences with the fitted numbers."""
    rows = _rows(results)
    base_width = [r for r in rows if r["shape"]["width"] == BASE["width"]]
    others = [r for r in rows if r["shape"]["width"] != BASE["width"]]
    table, _ = exponents(results)
    out = []

    def check(column, coef, terms):
        return "".join("; it predicts %s's %.0f ms as %.0f ms (x%.2f)" % (
            _shape_name(r["shape"]), 1000 * r[column], 1000 * _predict(coef, terms, r["shape"]),
            _predict(coef, terms, r["shape"]) / r[column]) for r in others)

    if len(base_width) >= 3:
        terms = (LAYER_TOKENS_WIDTH2, WEIGHTS)
        a, b = two_term_fit(base_width, "capture_cpu", terms)
        out.append(
            "- Capture on the training thread (the probe's forward pass with the scores returned): CPU ~ "
            "%.2f ns x layers x tokens x width^2 + %.0f ns x weights (weights = layers x heads x tokens^2), "
            "fitted over the width-%d rows: linear in tokens while the projections and the feed-forward "
            "dominate, towards quadratic once the scores do (exponent %s from 512 to 2048 tokens); heads "
            "only add their scores (exponent %s from 4 to 16 heads at 128 tokens); linear in layers%s. "
            "It is %.2f-%.2fx a bare forward pass of the same model (below 1 where the graph ends at the "
            "last softmax, above where copying the scores out costs more)."
            % (1e9 * a, 1e9 * b, BASE["width"], _k(table, "capture, CPU", "tokens 512-2048"),
               _k(table, "capture, CPU", "heads 4-16"), check("capture_cpu", (a, b), terms),
               *_range(r["capture_cpu"] / r["bare_cpu"] for r in rows)))
        terms = (LAYERS, WEIGHTS)
        a, b = two_term_fit(base_width, "write_cpu", terms)
        out.append(
            "- Write on the background thread (crop, importance, statistics, head metrics, rollout, "
            "encoding, zlib, write, flush): CPU ~ %.0f ms x layers + %.0f ns x weights%s: per layer at "
            "128 tokens (exponent %s over heads 4-16), per weight from 512 tokens on (exponent %s over "
            "tokens 512-2048). It takes %.1f-%.1fx the capture's CPU time: off the training thread, "
            "but on the same cores."
            % (1000 * a, 1e9 * b, check("write_cpu", (a, b), terms), _k(table, "write, CPU", "heads 4-16"),
               _k(table, "write, CPU", "tokens 512-2048"),
               *_range(r["write_cpu"] / r["capture_cpu"] for r in rows)))
    tokens = results.get("tokens", [])
    if len(tokens) >= 2:
        first, last = tokens[0], tokens[-1]
        per_weight = slope(first["shape"]["tokens"], first["bytes"] / cells(first["shape"]),
                           last["shape"]["tokens"], last["bytes"] / cells(last["shape"]))
        out.append(
            "- Bytes per capture ~ layers x heads x tokens^2 x bytes per weight, and bytes per weight falls "
            "with length (%.3f at %d tokens, %.3f at %d: ~tokens^%.2f) for this model's attention: "
            "random weights give near-uniform rows (weights near 1/tokens), and weights under 1/510 are "
            "stored as 0 (uint8) and compress away. Peaked (trained) attention keeps more non-zero cells "
            "(bench.scaling: 0.135 at 8 x 1024)."
            % (first["bytes"] / cells(first["shape"]), first["shape"]["tokens"],
               last["bytes"] / cells(last["shape"]), last["shape"]["tokens"], per_weight))
    a, b, n = memory_fit(results)
    server_a, server_b, _ = memory_fit(results, lambda s: s["server_rss"])
    python = [s["python_rss"] for r in _rows(results) for s in r["served"]]
    out.append(
        "- TensorBoard's memory (data server + Python process) ~ %.2f x disk + %.0f MB over the %d logs: "
        "the data server ~ %.2f x disk + %.0f MB holds the log, the Python process %.2f-%.2f GB (its own "
        "~0.6 GB with TensorFlow imported, plus the plugin's cache, bounded at 512 MB). Memory / disk "
        "comes near %.2f only for logs of several GB."
        % (a, b / 1e6, n, server_a, server_b / 1e6, min(python) / 1e9, max(python) / 1e9, a))
    served = [s for r in _rows(results) for s in r["served"]]
    out.append(
        "- Routes: one step's maps (one layer, one example) grow with that layer's cells once the reply is "
        "large (exponent %s over tokens 512-2048) and not with steps (%s over 1000-10,000). The first "
        "importance request of a layer reads at most max_points (500) steps: exponent %s over 100-1000 "
        "steps, %s over 1000-10,000, %s over tokens 512-2048; %.0f-%.0f ms on every log here. /index "
        "after the load: %.0f-%.0f ms."
        % (_k(table, "maps p50", "tokens 512-2048"), _k(table, "maps p50", "steps 1000-10000"),
           _k(table, "importance, first request", "steps 100-1000"),
           _k(table, "importance, first request", "steps 1000-10000"),
           _k(table, "importance, first request", "tokens 512-2048"),
           min(s["importance_ms"] for s in served), max(s["importance_ms"] for s in served),
           min(s["index_ms"] for s in served), max(s["index_ms"] for s in served)))
    return "\n".join(out)


def _range(values):
    values = list(values)
    return min(values), max(values)


def _k(table, column, span):
    value = table.get((column, span))
    return "n/a" if value is None else "%.2f" % value


def report(results):
    loads = [x for r in _rows(results) for x in r["capture_load"]]
    loads += [x for r in _rows(results) for s in r["served"] for x in s["load"]]
    return "\n".join([
        "Per capture (one probe example; medians of 3 rounds interleaved over the shapes, 3 captures per "
        "round up to 5 M weights; CPU: the process's CPU time on both cores):",
        "",
        capture_table(results),
        "",
        "Serving (RustBoard; a fresh TensorBoard per log; maps as the tab asks, compression=zlib):",
        "",
        serving_table(results),
        "",
        "Exponent k of each column ~ axis^k (log-log slope between the figures above):",
        "",
        growth_table(results),
        "",
        "Growth laws, from these figures:",
        "",
        laws(results),
        "",
        "Load average (1 min) during the run: %.1f-%.1f on %d cores." % (min(loads), max(loads), os.cpu_count()),
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--axes", default="tokens,heads,layers,bert,steps")
    parser.add_argument("--captures", type=int, default=100, help="captured steps in each shape's log")
    parser.add_argument("--steps", default="1000,10000", help="captured steps of the base shape's logs")
    parser.add_argument("--json", help="also save the figures to this file")
    parser.add_argument("--report", metavar="JSON", help="print the report of figures saved with --json")
    a = parser.parse_args()
    if a.report:
        with open(a.report) as f:
            figures = json.load(f)
    else:
        figures = run(a.axes.split(","), a.captures, [int(s) for s in a.steps.split(",")])
        if a.json:
            with open(a.json, "w") as f:
                json.dump(figures, f)
    print(report(figures))
