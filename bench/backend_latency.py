"""Latency of the plugin's routes and TensorBoard's memory on a generated log.

    python -m bench.backend_latency [--steps 1000] [--layers 4] [--examples 8]
                                    [--heads 8] [--tokens 256] [--requests 200]
    python -m bench.backend_latency --steps-scaling 100,1000,5000 --tokens 64
    python -m bench.backend_latency --bert-base     (100 captures of 12 layers x
        12 heads x 512 tokens, one example: the memory target of issue 33)

Writes a log of softmax maps of random logits (peaked like trained attention:
logits ~ N(0, 3^2)). Encoding 17 G weights with the summary op would take
about 10 minutes here (30 ns per weight), so each layer gets `VARIANTS`
captures written once with the summary op, and the steps reuse their
serialized summaries (`tf.summary.experimental.write_raw_pb`): the events,
sizes and compression are those of real captures; only the data repeats every
few steps. Then starts the real `tensorboard` (RustBoard) on it, waits until
every step is loaded, times each route over random steps/examples/layers
(first request of each key included, so cache misses count) and reads the
resident memory of TensorBoard's Python process and its data server. The
same TensorBoard started on an empty log directory first gives its own
baseline, so what the log costs is read apart from what TensorBoard costs.
"""

import argparse
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

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from tensorboard_server import TensorBoard  # noqa: E402

from tb_attention_plugin.writing import summary  # noqa: E402

VARIANTS = 4
# (steps, layers, examples, heads, tokens) of issue 33 item 4's memory target:
# 100 captures of a BERT-base-shaped model with one probe example (what the
# default max_cells keeps of a 512-token probe).
BERT_BASE = (100, 12, 1, 12, 512)
# Requests per route, as a share of --requests: the all-heads JSON is large
# (steps x heads x tokens floats), so it gets fewer.
ROUTE_SHARE = {"maps": 1.0, "importance_head": 0.5, "importance_all": 0.05, "head_stats": 0.5}


def _serialized_captures(layer, examples, heads, tokens, rng):
    """VARIANTS lists of serialized Summary protos, one list per capture."""
    scratch = tempfile.mkdtemp(prefix="tba-capture-")
    try:
        writer = tf.summary.create_file_writer(scratch)
        words = [["tok%d" % j for j in range(tokens)]] * examples
        with writer.as_default():
            for variant in range(VARIANTS):
                logits = rng.normal(scale=3.0, size=(examples, heads, tokens, tokens)).astype(np.float32)
                scores = np.exp(logits - logits.max(-1, keepdims=True))
                scores /= scores.sum(-1, keepdims=True)
                summary.attention(layer, scores, step=variant, query_tokens=words, kind="self")
        writer.close()
        captures = [[] for _ in range(VARIANTS)]
        for name in os.listdir(scratch):
            for record in tf.data.TFRecordDataset(os.path.join(scratch, name)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.HasField("summary"):
                    captures[event.step].append(event.summary.SerializeToString())
        return captures
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_log(logdir, steps, layers, examples, heads, tokens, seed=0):
    rng = np.random.default_rng(seed)
    captures = [_serialized_captures("layer%d" % l, examples, heads, tokens, rng) for l in range(layers)]
    writer = tf.summary.create_file_writer(os.path.join(logdir, "run"), max_queue=1000)
    with writer.as_default():
        for step in range(steps):
            for layer in range(layers):
                protos = captures[layer][(step + layer) % VARIANTS]
                tf.summary.experimental.write_raw_pb(tf.constant(protos), step=step)
    writer.close()
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(logdir) for f in fs)


def rss_bytes(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory(tb):
    """(TensorBoard's Python process, its data server) resident bytes."""
    pid = tb.process.pid
    try:
        children = [int(c) for c in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    except OSError:
        children = []
    return rss_bytes(pid), sum(rss_bytes(c) for c in children)


def baseline_memory():
    """memory() of TensorBoard with nothing to load: an empty log directory,
    the Attention plugin installed, the page's first requests answered."""
    logdir = tempfile.mkdtemp(prefix="tba-empty-")
    tb = TensorBoard(logdir)
    try:
        tb.wait_for(lambda listing: "attention" in listing)
        tb.get("/data/plugin/attention/index")
        time.sleep(5)  # the data server's first scan of the (empty) directory
        return memory(tb)
    finally:
        tb.stop()
        shutil.rmtree(logdir, ignore_errors=True)


def percentiles(times):
    times = sorted(times)
    nearest_rank = math.ceil(0.95 * len(times)) - 1
    return 1000 * statistics.median(times), 1000 * times[nearest_rank], 1000 * times[-1]


def run(steps, layers, examples, heads, tokens, requests):
    logdir = tempfile.mkdtemp(prefix="tba-bench-")
    try:
        t0 = time.perf_counter()
        disk = write_log(logdir, steps, layers, examples, heads, tokens)
        write_s = time.perf_counter() - t0
        return dict(_serve(logdir, steps, layers, examples, heads, requests), disk=disk, write_s=write_s,
                    shape=(steps, layers, examples, heads, tokens), requests=requests,
                    baseline=baseline_memory())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def _serve(logdir, steps, layers, examples, heads, requests):
    tb = TensorBoard(logdir)
    try:
        tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"), timeout=900)
        t0 = time.perf_counter()

        def loaded(index):
            counts = [len(l["steps"]) for r in index["runs"] for l in r["layers"]]
            return len(counts) == layers and min(counts) == steps

        if not loaded(tb.wait_for_index(loaded, tries=1800)):
            raise TimeoutError("TensorBoard did not list all %d steps in 15 minutes" % steps)
        load_s = time.perf_counter() - t0
        loaded_memory = memory(tb)
        rng = random.Random(0)
        routes = {}

        def timed(name, path):
            start = time.perf_counter()
            status, _, body = tb.get(path)
            routes.setdefault(name, []).append(time.perf_counter() - start)
            assert status == 200, (path, status, body[:200])

        def query(**extra):
            q = dict(run="run", tag="layer%d" % rng.randrange(layers), example=rng.randrange(examples))
            return urllib.parse.urlencode(dict(q, **extra))

        for i in range(requests):
            timed("maps", "/data/plugin/attention/maps?" + query(step=rng.randrange(steps)))
            if i % round(1 / ROUTE_SHARE["importance_head"]) == 0:
                timed("importance over steps, one head, binary (what the tab asks)",
                      "/data/plugin/attention/importance?" + query(head=rng.randrange(heads + 1), format="binary"))
                timed("importance over steps, one head, JSON",
                      "/data/plugin/attention/importance?" + query(head=rng.randrange(heads + 1)))
                timed("head_stats over steps", "/data/plugin/attention/head_stats?" + query())
            if i % round(1 / ROUTE_SHARE["importance_all"]) == 0:
                timed("importance over steps, all heads (CSV export)",
                      "/data/plugin/attention/importance?" + query())
        for _ in range(20):
            timed("index", "/data/plugin/attention/index")
        served_memory = memory(tb)
    finally:
        tb.stop()
    return dict(load_s=load_s, loaded_memory=loaded_memory, served_memory=served_memory,
                routes={name: (len(t),) + percentiles(t) for name, t in routes.items()})


def report(r):
    steps, layers, examples, heads, tokens = r["shape"]
    python_loaded, server_loaded = r["loaded_memory"]
    python_served, server_served = r["served_memory"]
    total = python_served + server_served
    beyond = total - sum(r["baseline"])
    lines = [
        "Log: %d steps x %d layers x %d examples x %d heads x %d tokens = %.0f M map cells; "
        "%.0f MB on disk (written in %.0f s); all steps served %.0f s after TensorBoard answered."
        % (steps, layers, examples, heads, tokens, steps * layers * examples * heads * tokens ** 2 / 1e6,
           r["disk"] / 1e6, r["write_s"], r["load_s"]),
        "",
        "| route | requests | p50 (ms) | p95 (ms) | max (ms) |", "|---|---|---|---|---|",
    ]
    for name, (count, p50, p95, slowest) in r["routes"].items():
        lines.append("| %s | %d | %.1f | %.1f | %.0f |" % (name, count, p50, p95, slowest))
    lines += [
        "",
        "Resident memory: data server %.0f MB (%.2fx disk) once loaded, %.0f MB after the requests; "
        "TensorBoard's Python process %.0f MB once loaded, %.0f MB after the requests (plugin cache "
        "bounded at 512 MB). Total %.0f MB = %.2fx the bytes on disk."
        % (server_loaded / 1e6, server_loaded / r["disk"], server_served / 1e6, python_loaded / 1e6,
           python_served / 1e6, total / 1e6, total / r["disk"]),
        "",
        "TensorBoard with nothing loaded (an empty log directory, the same plugins): Python process %.0f MB, "
        "data server %.0f MB. Beyond that baseline, after the requests: %.0f MB = **%.2fx the %.0f MB the log "
        "holds** (everything TensorBoard read; issue 33 item 4's target for 100 BERT-base-shaped captures: "
        "<= 1.1x), of which the data server %.0f MB and TensorBoard's Python process, where the plugin runs, "
        "%.0f MB." % (r["baseline"][0] / 1e6, r["baseline"][1] / 1e6, beyond / 1e6, beyond / r["disk"],
                      r["disk"] / 1e6, (server_served - r["baseline"][1]) / 1e6,
                      (python_served - r["baseline"][0]) / 1e6),
    ]
    return "\n".join(lines)


def scaling_report(results):
    lines = [
        "| captured steps | disk (MB) | load (s) | maps p50 / p95 (ms) | importance, one head (binary) "
        "p50 / p95 / max (ms) | all heads JSON p50 (ms) | memory / disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        routes = r["routes"]
        maps, one, every = (routes["maps"], routes["importance over steps, one head, binary (what the tab asks)"],
                            routes["importance over steps, all heads (CSV export)"])
        total = sum(r["served_memory"])
        lines.append("| %d | %.0f | %.0f | %.1f / %.1f | %.1f / %.1f / %.0f | %.0f | %.2fx |" % (
            r["shape"][0], r["disk"] / 1e6, r["load_s"], maps[1], maps[2], one[1], one[2], one[3], every[1],
            total / r["disk"]))
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name, default in [("steps", 1000), ("layers", 4), ("examples", 8), ("heads", 8), ("tokens", 256),
                          ("requests", 200)]:
        parser.add_argument("--" + name, type=int, default=default)
    parser.add_argument("--steps-scaling", help="comma-separated step counts, e.g. 100,1000,5000")
    parser.add_argument("--bert-base", action="store_true",
                        help="100 steps x 12 layers x 1 example x 12 heads x 512 tokens (overrides the shape)")
    a = parser.parse_args()
    if a.bert_base:
        a.steps, a.layers, a.examples, a.heads, a.tokens = BERT_BASE
    if a.steps_scaling:
        results = [run(int(s), a.layers, a.examples, a.heads, a.tokens, a.requests)
                   for s in a.steps_scaling.split(",")]
        print(scaling_report(results))
    else:
        print(report(run(a.steps, a.layers, a.examples, a.heads, a.tokens, a.requests)))