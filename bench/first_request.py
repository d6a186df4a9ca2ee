"""First-request latency of each route on a long log, under both readers.

    python -m bench.first_request [--logs 1000x4,10000x1]

Writes each log (STEPSxLAYERS, 8 examples x 8 heads x 128 tokens) with
`backend_latency.write_log` (not timed), loads it with TensorBoard's reader
(RustBoard: the data server binary TensorBoard starts; the Python reader: an
EventMultiplexer loaded in this process), then times each route's first
request on a fresh plugin (empty cache) over the same loaded reader: /index,
importance of one head as binary (what the tab asks), head statistics, one
step's maps, and importance after /index (the tab's order). The plugin runs
in this process as it does in TensorBoard's, so the memory reported is this
process's peak (VmHWM; one process per reader and log) plus the data
server's, against the bytes on disk.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tensorboard import context as tb_context  # noqa: E402
from tensorboard.backend.event_processing import data_provider as in_process  # noqa: E402
from tensorboard.backend.event_processing import plugin_event_multiplexer  # noqa: E402
from tensorboard.data import server_ingester  # noqa: E402
from tensorboard.plugins import base_plugin  # noqa: E402
from tensorboard.util import grpc_util  # noqa: E402

from tb_attention_plugin.serving import attention_plugin  # noqa: E402

CTX = tb_context.RequestContext()
EXAMPLES, HEADS, TOKENS = 8, 8, 128


def peak_bytes(pid):
    """VmHWM (peak resident memory) of a process."""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Flags:
    samples_per_plugin = {"attention": 0}  # what the plugin's loader sets


def _provider(logdir, reader, steps, layers):
    """(data provider, data server pid or None), once every step is loaded."""
    if reader == "rustboard":
        ingester = server_ingester.SubprocessServerDataIngester(
            server_ingester.get_server_binary(), logdir, reload_interval=5,
            channel_creds_type=grpc_util.ChannelCredsType.LOCAL, samples_per_plugin={"attention": 0})
        ingester.start()
        provider, server = ingester.data_provider, None
        children = open("/proc/%d/task/%d/children" % (os.getpid(), os.getpid())).read().split()
        server = int(children[-1]) if children else None
    else:
        multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"attention": 0})
        multiplexer.AddRunsFromDirectory(logdir)
        multiplexer.Reload()
        provider, server = in_process.MultiplexerDataProvider(multiplexer, logdir), None
    last = "layer%d" % (layers - 1)
    while True:
        try:
            listing = provider.list_blob_sequences(CTX, experiment_id="", plugin_name="attention")
            if listing["run"][last].max_step == steps - 1:
                return provider, server
        except Exception:  # not loaded yet
            pass
        time.sleep(1)


def _first(provider, request):
    """ms of request(plugin) on a fresh plugin (nothing cached)."""
    plugin = attention_plugin.AttentionPlugin(base_plugin.TBContext(data_provider=provider, flags=_Flags()))
    start = time.perf_counter()
    try:
        request(plugin)
    except Exception as e:  # e.g. a reply over gRPC's limit: reported, not timed
        return "failed (%s)" % type(e).__name__
    return 1000 * (time.perf_counter() - start)


def _after_index(plugin, request):
    plugin.index_impl(CTX, "")
    start = time.perf_counter()
    try:
        request(plugin)
    except Exception as e:
        return "failed (%s)" % type(e).__name__
    return 1000 * (time.perf_counter() - start)


ROUTES = {
    "index": lambda p: p.index_impl(CTX, ""),
    "importance, one head, binary": lambda p: p.importance_binary_impl(CTX, "", "run", "layer0", 3, "received", 8),
    "head_stats": lambda p: p.head_stats_impl(CTX, "", "run", "layer0", 3),
    "maps": lambda p: p.maps_impl(CTX, "", "run", "layer0", 500, 3),
}


def serve(logdir, reader, steps, layers):
    """({route: ms}, peak memory bytes) of one reader on a written log; run
    in a process of its own so that its peak memory is its own."""
    provider, server = _provider(logdir, reader, steps, layers)
    times = {name: _first(provider, request) for name, request in ROUTES.items()}
    plugin = attention_plugin.AttentionPlugin(base_plugin.TBContext(data_provider=provider, flags=_Flags()))
    times["importance after /index"] = _after_index(plugin, ROUTES["importance, one head, binary"])
    return times, peak_bytes(os.getpid()) + (peak_bytes(server) if server else 0)


def run(logs, readers=("rustboard", "python")):
    """[(steps, layers, reader, {route: ms}, disk bytes, peak memory bytes)]."""
    from bench import backend_latency  # imports TensorFlow: only where the log is written

    results = []
    for steps, layers in logs:
        logdir = tempfile.mkdtemp(prefix="tba-first-")
        try:
            disk = backend_latency.write_log(logdir, steps, layers, EXAMPLES, HEADS, TOKENS)
            for reader in readers:
                out = subprocess.run(
                    [sys.executable, "-m", "bench.first_request", "--serve", logdir, reader, str(steps), str(layers)],
                    check=True, capture_output=True, text=True).stdout
                times, memory = json.loads(out.strip().splitlines()[-1])
                results.append((steps, layers, reader, times, disk, memory))
        finally:
            shutil.rmtree(logdir, ignore_errors=True)
    return results


def report(results):
    names = list(ROUTES) + ["importance after /index"]
    lines = [
        "| log (steps x layers) | reader | disk (MB) | %s | peak memory / disk |" % " | ".join(
            "%s (ms)" % n for n in names),
        "|---|---|---|%s---|" % ("---|" * len(names)),
    ]
    for steps, layers, reader, times, disk, memory in results:
        lines.append("| %d x %d | %s | %.0f | %s | %.2fx |" % (
            steps, layers, reader, disk / 1e6, " | ".join(_ms(times[n]) for n in names), memory / disk))
    return "\n".join(lines)


def _ms(value):
    return value if isinstance(value, str) else "%.0f" % value


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--logs", default="1000x4,10000x1", help="STEPSxLAYERS, comma-separated")
    parser.add_argument("--readers", default="rustboard,python")
    parser.add_argument("--serve", nargs=4, metavar=("LOGDIR", "READER", "STEPS", "LAYERS"),
                        help="(internal) time one reader on a written log, print JSON")
    a = parser.parse_args()
    if a.serve:
        logdir, reader, steps, layers = a.serve
        print(json.dumps(serve(logdir, reader, int(steps), int(layers))))
        sys.exit(0)
    logs = [tuple(int(n) for n in log.split("x")) for log in a.logs.split(",")]
    print(report(run(logs, a.readers.split(","))))
    sys.stdout.flush()
