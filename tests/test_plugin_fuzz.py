"""Property: whatever damage an event file carries, the real `tensorboard`
(both readers) answers every Attention route with 200 or a 4xx JSON error,
keeps its peak memory bounded, and still serves the healthy run next.

Hypothesis draws, per example, a dozen runs, each a real two-step capture
damaged by one to three mutations: truncated files, flipped bytes (with and
without a valid record checksum, so damage reaches the reader's decoder and
the plugin; for the Python reader only flips that leave a decodable Event,
see below), wrong metadata fields, derived tensors of other shapes and
dtypes, NaN/Inf values, blobs that do not hold their shape, dropped tags.
"""

import json
import time
import urllib.parse
import zlib

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from crafted_events import events, frame, layer_step, plugin_data, with_plugin_data, write_run
from tb_attention_plugin.format import metadata
from tensorboard_server import TensorBoard

PluginData = metadata.PluginData
ROLES = [PluginData.MAPS, PluginData.IMPORTANCE, PluginData.HEAD_STATS, PluginData.ROLLOUT]
METADATA_FIELDS = ["num_heads", "encoding", "kind", "version", "role", "query_length", "key_length",
                   "query_offset", "drop_tokens", "clear_examples"]
INT32 = st.one_of(st.integers(-3, 70), st.sampled_from([-(2**31), 2**31 - 1, 1 << 20, 4096, 4097]))

mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("raw_flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("payload_flip"), st.integers(0, 20),
              st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=4)),
    st.tuples(st.just("metadata"), st.sampled_from(METADATA_FIELDS), INT32),
    st.tuples(st.just("tensor"), st.sampled_from(ROLES[1:]), st.integers(0, 1),
              st.lists(st.integers(0, 6), max_size=5), st.sampled_from(["float32", "float64", "int32", "string"])),
    st.tuples(st.just("values"), st.sampled_from(ROLES[1:]), st.floats(0, 1),
              st.sampled_from([np.nan, np.inf, -np.inf, 1e30])),
    st.tuples(st.just("blob"), st.integers(0, 1), st.integers(0, 1),
              st.sampled_from(["truncate", "random", "zlib_short", "zlib_long", "empty", "longer"]),
              st.integers(0, 200)),
    st.tuples(st.just("drop"), st.sampled_from(ROLES)),
)


def _base():
    """{step: triples} of a healthy two-step, two-example, two-head layer."""
    return {0: layer_step(heads=2, tokens=4, examples=2), 1: layer_step(heads=2, tokens=4, examples=2, seed=1)}


def _role(meta):
    return plugin_data(meta).role


def _change_metadata(steps, field, value):
    def change(data):
        if field == "drop_tokens":
            del data.examples[0].query_tokens[:]
        elif field == "clear_examples":
            data.ClearField("examples")
        elif field in ("query_length", "key_length", "query_offset"):
            setattr(data.examples[value % 2], field, value)
        elif field in ("encoding", "kind", "role"):
            setattr(data, field, value % 8 if value < 0 else value % 2**15)  # enums take non-negative values
        else:
            setattr(data, field, value)

    for triples in steps.values():
        for i, (tag, array, meta) in enumerate(triples):
            if _role(meta) == PluginData.MAPS:
                data = plugin_data(meta)
                change(data)
                triples[i] = (tag, array, with_plugin_data(meta, data))


def _apply(steps, mutation):
    """Applies a semantic mutation to {step: triples} in place."""
    kind = mutation[0]
    if kind == "metadata":
        _change_metadata(steps, *mutation[1:])
    elif kind == "tensor":
        role, step, shape, dtype = mutation[1:]
        array = np.zeros(shape, np.float32).astype(dtype) if dtype != "string" else np.full(shape, b"x", object)
        steps[step] = [(t, array if _role(m) == role else a, m) for t, a, m in steps[step]]
    elif kind == "values":
        role, where, value = mutation[1:]
        for step, triples in steps.items():
            for i, (tag, array, meta) in enumerate(triples):
                if _role(meta) == role and array.size and array.dtype.kind == "f":
                    array = array.copy()
                    array.flat[int(where * (array.size - 1))] = value
                    triples[i] = (tag, array, meta)
    elif kind == "blob":
        step, example, how, n = mutation[1:]
        # The maps tag (role 1) may have been dropped by an earlier mutation.
        where = next((i for i, (_, _, m) in enumerate(steps[step]) if _role(m) == 1), None)
        if where is None:
            return
        tag, blobs, meta = steps[step][where]
        blob = blobs[example]
        try:  # the stored blob is compressed unless it is exactly 32 bytes or an earlier mutation made it odd
            raw = zlib.decompress(blob)
        except zlib.error:
            raw = bytes(blob) or bytes(32)
        blobs = blobs.copy()
        blobs[example] = {
            "truncate": blob[: n % max(len(blob), 1)],
            "random": np.random.default_rng(n).bytes(n),
            "zlib_short": zlib.compress(raw[: n % len(raw)]),
            "zlib_long": zlib.compress(raw + bytes(n + 1)),
            "empty": b"",
            "longer": raw + bytes(n + 1),
        }[how]
        steps[step][where] = (tag, blobs, meta)
    elif kind == "drop":
        for step in steps:
            steps[step] = [(t, a, m) for t, a, m in steps[step] if _role(m) != mutation[1]]


def _flip(data, flips):
    data = bytearray(data)
    for where, xor in flips:
        if data:
            data[int(where * (len(data) - 1))] ^= xor
    return bytes(data)


def _decodes(payload):
    try:
        event_pb2.Event.FromString(payload)
        return True
    except Exception:
        return False


def _event_file(run_mutations, decodable_only=False):
    """The bytes of one damaged event file. With decodable_only, a payload
    flip that leaves a record whose Event cannot be decoded is not made."""
    steps = _base()
    for m in run_mutations:
        if m[0] not in ("truncate", "raw_flip", "payload_flip"):
            _apply(steps, m)
    event_list = events(steps)
    payloads = [e.SerializeToString() for e in event_list]
    for m in run_mutations:
        if m[0] == "payload_flip":
            i = m[1] % len(payloads)
            flipped = _flip(payloads[i], m[2])
            if not decodable_only or _decodes(flipped):
                payloads[i] = flipped
    data = b"".join(frame(p) for p in payloads)
    for m in run_mutations:
        if m[0] == "truncate":
            data = data[: int(m[1] * len(data))]
        elif m[0] == "raw_flip":
            data = _flip(data, m[1])
    return data


def _requests(tags):
    for tag in tags:
        for step in (0, 1):
            for example in (0, 1):
                yield "maps", dict(tag=tag, step=step, example=example)
        yield "maps", dict(tag=tag, step=1, example=1, head=1)
        yield "importance", dict(tag=tag, example=0)
        yield "importance", dict(tag=tag, example=1, mode="given", head=2)
        yield "importance", dict(tag=tag, example=1, head=0, format="binary")
        yield "head_stats", dict(tag=tag, example=1)
        yield "rollout", dict(tag=tag, example=0)
        yield "head_metrics", dict(tag=tag, example=1, metric="entropy")


def _peak_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _strict(body):
    def refuse(constant):
        raise ValueError("not strict JSON: %s" % constant)
    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize("reader", ["rustboard", "python_reader"])
# No shrinking: each step of it starts TensorBoard again, and the failing
# assert already names the one run's mutations, the route and the reply.
@settings(max_examples=3, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(runs=st.lists(st.lists(mutations, min_size=1, max_size=3), min_size=12, max_size=12))
def test_damaged_event_files_never_answer_5xx_and_memory_stays_bounded(tmp_path_factory, reader, runs):
    logdir = tmp_path_factory.mktemp("fuzz") / "logs"
    write_run(logdir / "healthy", _base())
    for i, run_mutations in enumerate(runs):
        # TensorBoard's Python reader stops loading every run when a record
        # has a valid checksum but an Event it cannot decode (the DecodeError
        # ends its Reloader thread; TensorBoard 2.21), so that damage goes to
        # RustBoard only, which skips such a record.
        write_run(logdir / ("m%02d" % i), data=_event_file(run_mutations, decodable_only=reader != "rustboard"))
    tb = TensorBoard(logdir, "--load_fast=%s" % ("true" if reader == "rustboard" else "false"))
    try:
        tb.wait_for_index(lambda index: "healthy" in {r["run"] for r in index["runs"]})
        time.sleep(2)  # two reload intervals: the damaged runs are read by now
        start_mb = _peak_mb(tb.process.pid)
        listed = {r["run"]: [layer["tag"] for layer in r["layers"]] for r in tb.get_json(
            "/data/plugin/attention/index")["runs"]}
        for i, run_mutations in enumerate(runs):
            run = "m%02d" % i
            for route, params in _requests(sorted(set(listed.get(run, [])) | {"layer"})):
                status, headers, body = tb.get(
                    "/data/plugin/attention/%s?%s" % (route, urllib.parse.urlencode(dict(run=run, **params))))
                assert status < 500, (run_mutations, route, params, body[:300])
                if status >= 400:
                    assert _strict(body)["error"]["message"], (run_mutations, route, body)
                elif headers["Content-Type"] == "application/json":
                    _strict(body)
            status, _, _ = tb.get("/data/plugin/attention/maps?run=healthy&tag=layer&step=1&example=1")
            assert status == 200, run_mutations
        index_status, _, body = tb.get("/data/plugin/attention/index")
        assert index_status == 200
        _strict(body)
        # Every damaged blob is refused after inflating at most the bytes its
        # shape promises (under 64 MiB by the plugin's limit), and nothing
        # here is cached beyond a few KB: the peak may not grow by more than
        # one such map plus TensorBoard's own reload work.
        assert _peak_mb(tb.process.pid) - start_mb < 128
    finally:
        tb.stop()
