"""Latency of the plugin's routes and TensorBoard's memory on a generated log.

    python -m bench.backend_latency [--steps 1000] [--layers 4] [--examples 8]
                                    [--heads 8] [--tokens 64] [--requests 200]

Writes a log of softmax maps of random logits (peaked like trained attention:
logits ~ N(0, 3^2)) with the summary op, starts the real `tensorboard`
(RustBoard) on it, waits until every step is loaded, then times each route
over random steps/examples/layers (first request of each key included, so
cache misses count) and reads the resident memory of TensorBoard and its data
server against the bytes on disk.
"""

import argparse
import os
import random
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

from tb_attention_plugin import summary  # noqa: E402


def write_log(logdir, steps, layers, examples, heads, tokens, seed=0):
    rng = np.random.default_rng(seed)
    writer = tf.summary.create_file_writer(os.path.join(logdir, "run"))
    words = [["tok%d" % j for j in range(tokens)]] * examples
    with writer.as_default():
        for step in range(steps):
            for layer in range(layers):
                logits = rng.normal(scale=3.0, size=(examples, heads, tokens, tokens)).astype(np.float32)
                scores = np.exp(logits - logits.max(-1, keepdims=True))
                scores /= scores.sum(-1, keepdims=True)
                summary.attention("layer%d" % layer, scores, step=step, query_tokens=words, kind="self")
    writer.close()
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(logdir) for f in fs)


def rss_bytes(pid):
    """Resident memory of pid and its children (the Rust data server)."""
    total = 0
    pids = [pid]
    try:
        children = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in open("/proc/%d/status" % p):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def percentiles(times):
    times = sorted(times)
    return 1000 * statistics.median(times), 1000 * times[int(0.95 * (len(times) - 1))]


def run(steps, layers, examples, heads, tokens, requests):
    logdir = tempfile.mkdtemp(prefix="tba-bench-")
    t0 = time.perf_counter()
    disk = write_log(logdir, steps, layers, examples, heads, tokens)
    write_s = time.perf_counter() - t0
    tb = TensorBoard(logdir)
    try:
        tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"), timeout=600)
        t0 = time.perf_counter()
        while True:
            index = tb.get_json("/data/plugin/attention/index")
            loaded = [len(l["steps"]) for r in index["runs"] for l in r["layers"]]
            if len(loaded) == layers and min(loaded) == steps:
                break
            time.sleep(1)
        load_s = time.perf_counter() - t0
        rng = random.Random(0)
        routes = {}

        def timed(name, path):
            start = time.perf_counter()
            status, _, body = tb.get(path)
            routes.setdefault(name, []).append(time.perf_counter() - start)
            assert status == 200, (path, status, body[:200])

        for _ in range(requests):
            q = dict(run="run", tag="layer%d" % rng.randrange(layers), example=rng.randrange(examples))
            timed("maps", "/data/plugin/attention/maps?" + urllib.parse.urlencode(dict(q, step=rng.randrange(steps))))
            timed("importance over steps, one head (what the tab asks)", "/data/plugin/attention/importance?"
                  + urllib.parse.urlencode(dict(q, head=rng.randrange(heads + 1))))
            timed("importance over steps, all heads (CSV export)",
                  "/data/plugin/attention/importance?" + urllib.parse.urlencode(q))
            timed("head_stats over steps", "/data/plugin/attention/head_stats?" + urllib.parse.urlencode(q))
        for _ in range(20):
            timed("index", "/data/plugin/attention/index")
        memory = rss_bytes(tb.process.pid)
    finally:
        tb.stop()
    return dict(disk=disk, memory=memory, write_s=write_s, load_s=load_s,
                routes={name: percentiles(t) for name, t in routes.items()},
                shape=(steps, layers, examples, heads, tokens), requests=requests)


def report(r):
    steps, layers, examples, heads, tokens = r["shape"]
    lines = [
        "Log: %d steps x %d layers x %d examples x %d heads x %d tokens = %.0f M map cells; "
        "%.1f MB on disk (written in %.0f s); all steps served %.0f s after TensorBoard answered."
        % (steps, layers, examples, heads, tokens, steps * layers * examples * heads * tokens ** 2 / 1e6,
           r["disk"] / 1e6, r["write_s"], r["load_s"]),
        "",
        "| route | p50 (ms) | p95 (ms) |", "|---|---|---|",
    ]
    for name, (p50, p95) in r["routes"].items():
        lines.append("| %s | %.1f | %.1f |" % (name, p50, p95))
    lines += ["", "TensorBoard + data server resident memory: %.0f MB, %.2fx the bytes on disk "
              "(%d random requests per route, cache misses included)."
              % (r["memory"] / 1e6, r["memory"] / r["disk"], r["requests"])]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name, default in [("steps", 1000), ("layers", 4), ("examples", 8), ("heads", 8), ("tokens", 64), ("requests", 200)]:
        parser.add_argument("--" + name, type=int, default=default)
    a = parser.parse_args()
    print(report(run(a.steps, a.layers, a.examples, a.heads, a.tokens, a.requests)))
