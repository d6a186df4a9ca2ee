"""The real `tensorboard` process, both readers, on hand-written event files:
crafted or foreign data answers 200 or a 4xx JSON error naming the problem,
never 500; a zlib bomb costs no memory; odd run and tag names work (or say
exactly why not and what to do)."""

import json
import threading
import urllib.parse
import zlib

import numpy as np
import pytest

from crafted_events import (array_of, layer_step, plugin_data, repeated_value_tensor, replace, with_facts,
                            with_combined_importance, without_facts, write_run)
from tb_attention_plugin.format import metadata
from tensorboard_server import TensorBoard

PluginData = metadata.PluginData
ODD_NAMES = ['q"uote', "back\\slash", "ctl\x01x", "\u00fcn\u00efcode \u2713"]
NEEDS_JSON_ESCAPE = ODD_NAMES[:3]  # what RustBoard's blob keys cannot carry


def _with_blob(triples, example, blob):  # the facts blob stays last
    tag, blobs, meta = triples[0]
    blobs = blobs.copy()
    blobs[example] = blob
    return [(tag, blobs, meta)] + triples[1:]


def _maps_metadata(triples, change):
    data = plugin_data(triples[0][2])
    change(data)
    return replace(triples, PluginData.MAPS, data=data)


def _zlib_bomb(size=512 << 20):
    """About 510 KB that inflate to `size` zero bytes, made 1 MiB at a time."""
    packer = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    return b"".join(packer.compress(chunk) for _ in range(size >> 20)) + packer.flush()


def _nonfinite(triples):
    stats = array_of(triples, PluginData.HEAD_STATS).copy()
    stats[0, 1, 0] = np.nan
    stats[0, 0, 1] = np.inf
    importance = array_of(triples, PluginData.IMPORTANCE, example=0).copy()
    importance[0, 0, 2] = -np.inf
    return replace(replace(triples, PluginData.HEAD_STATS, stats), PluginData.IMPORTANCE, importance, example=0)


def _probe_images(pngs):
    """The `_probe_images` item as the callback writes it, holding `pngs`."""
    from tb_attention_plugin.writing import summary

    tag, _, meta = summary.probe_images([np.zeros((2, 2, 3), np.uint8)])
    return tag, np.array(pngs, dtype=object), meta


def _png(seed):
    from tb_attention_plugin.writing import summary

    image = np.random.default_rng(seed).integers(0, 255, (6, 4, 3), dtype=np.uint8)
    return bytes(summary.probe_images([image])[1][0])


def _crafted_runs():
    """{run: {step: triples}}: one healthy layer per run, then one damage."""
    base = layer_step(heads=2, tokens=4, examples=2)
    newer = plugin_data(base[0][2])
    newer.version = metadata.PROTO_VERSION + 1
    no_heads = plugin_data(base[0][2])
    no_heads.num_heads = 0
    return {
        "healthy": {0: base, 1: layer_step(heads=2, tokens=4, examples=2, seed=1)},
        "short_blob": {0: _with_blob(base, 0, b"\x01" * 31)},
        "zlib_bomb": {0: _with_blob(base, 0, _zlib_bomb())},
        "negative_length": {0: _maps_metadata(base, lambda d: setattr(d.examples[0], "query_length", -3))},
        # as writers before per-example importance tags wrote it, for fewer examples than the facts
        "few_examples": {0: replace(with_combined_importance(base), PluginData.IMPORTANCE,
                                    np.zeros((1, 2, 3, 4), np.float32))},
        "bad_example_importance": {0: replace(base, PluginData.IMPORTANCE, np.zeros((2, 3, 3), np.float32),
                                              example=1)},
        "bad_head_stats": {0: replace(base, PluginData.HEAD_STATS, np.zeros((2, 5), np.float32))},
        "bad_rollout": {0: replace(base, PluginData.ROLLOUT, np.zeros((2, 2), np.float32))},
        "bad_head_metrics": {0: replace(base, PluginData.HEAD_METRICS, repeated_value_tensor((2, 2, 90_000_000)))},
        "images": {0: base + [_probe_images([_png(0), _png(1)])]},
        "not_png": {0: base + [_probe_images([b"GIF89a", _png(1)])]},
        "newer": {0: replace(base, PluginData.MAPS, data=newer)},
        "nonfinite": {0: _nonfinite(base)},
        # 30 bytes that a reader would expand to 480 MB of float32
        "shape_bomb": {0: replace(base, PluginData.HEAD_STATS, repeated_value_tensor((2, 2, 120_000_000)))},
        # one stored blob declaring a million: the Python reader makes a key per declared blob
        "blob_count_bomb": {0: replace(base, PluginData.MAPS, repeated_value_tensor((1_000_000,), base[0][1][0]))},
        "tags": {0: [t for name in ODD_NAMES for t in layer_step(name=name, heads=2, tokens=4, examples=2)]},
        # format version 1: no facts blob, the metadata's facts for every step
        "version_1": {0: without_facts(base), 1: without_facts(layer_step(heads=2, tokens=4, examples=2, seed=1))},
        # a version-1 tag that a version-2 writer continued with another shape
        # (recognised by its step holding more blobs than the metadata's examples)
        "v1_then_v2": {0: without_facts(base), 1: layer_step(heads=3, tokens=5, examples=2)},
        "damaged_facts": {0: base, 1: with_facts(base, no_heads)},
        **{name: {0: base} for name in ODD_NAMES},
    }


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted") / "logs"
    for run, steps in _crafted_runs().items():
        write_run(root / run, steps)
    return root


@pytest.fixture(scope="module", params=["rustboard", "python_reader"])
def server(request, logdir):
    tb = TensorBoard(logdir, "--load_fast=%s" % ("true" if request.param == "rustboard" else "false"))
    tb.reader = request.param
    try:
        expected = {"healthy", "tags", "version_1", "v1_then_v2"} | set(ODD_NAMES)
        tb.wait_for_index(lambda index: {r["run"] for r in index["runs"]} >= expected
                          and {"newer", "damaged_facts"} <= {s["run"] for s in index["skipped"]})
        yield tb
    finally:
        tb.stop()


def _get(tb, route, **params):
    return tb.get("/data/plugin/attention/%s?%s" % (route, urllib.parse.urlencode(params)))


def _strict(body):
    def refuse(constant):
        raise ValueError("not strict JSON: %s" % constant)
    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize("run, route, params, message", [
    ("short_blob", "maps", dict(step=0, example=0),
     "maps blob of run 'short_blob' layer 'layer' at step 0, shape (2, 4, 4): blob of 31 bytes is neither 32 raw bytes"),
    ("zlib_bomb", "maps", dict(step=0, example=0),
     "inflates to more than the 32 bytes its shape promises"),
    ("negative_length", "maps", dict(step=0, example=1),
     "run 'negative_length' layer 'layer': metadata of example 0 declares query_length -3"),
    ("negative_length", "importance", dict(example=1), "declares query_length -3"),
    ("few_examples", "importance", dict(example=0),
     "importance of run 'few_examples' layer 'layer' at step 0 has shape (1, 2, 3, 4); "
     "its metadata declares (2, 2, 3, >=4)"),
    ("bad_example_importance", "importance", dict(example=1),
     "importance of example 1 of run 'bad_example_importance' layer 'layer' at step 0 has shape (2, 3, 3); "
     "its metadata declares (2, 3, >=4)"),
    ("bad_head_stats", "head_stats", dict(example=0), "has shape (2, 5); its metadata declares (2, 2, 3)"),
    ("bad_rollout", "rollout", dict(example=0), "has shape (2, 2); its metadata declares (2, >=4)"),
    ("shape_bomb", "head_stats", dict(example=0),
     "head_stats of run 'shape_bomb' layer 'layer' at step 0 has shape (2, 2, 120000000); "
     "its metadata declares (2, 2, 3)"),
    ("newer", "maps", dict(step=0, example=0), "version 4 is newer than this reader (3): upgrade tb-attention"),
    ("newer", "head_stats", dict(example=0), "upgrade tb-attention"),
    ("bad_head_metrics", "head_metrics", dict(example=0, metric="entropy"),
     "head_metrics of run 'bad_head_metrics' layer 'layer' at step 0 has shape (2, 2, 90000000); "
     "its metadata declares (2, 2, 12)"),  # len(METRIC_NAMES)
    ("not_png", "probe_image", dict(example=0), "probe image 0 of run 'not_png' is not a PNG image"),
])
def test_crafted_data_answers_422_naming_the_problem_and_the_next_request_is_served(
        server, run, route, params, message):
    status, headers, body = _get(server, route, run=run, tag="layer", **params)
    assert status == 422, body
    assert headers["Content-Type"] == "application/json"
    error = _strict(body)["error"]
    assert error["status"] == 422 and message in error["message"], error
    status, _, _ = _get(server, "maps", run="healthy", tag="layer", step=1, example=1)
    assert status == 200


def test_bad_parameters_answer_a_json_error_naming_the_parameter(server):
    status, headers, body = _get(server, "maps", run="healthy", tag="layer", step="--5", example=0)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert _strict(body)["error"] == {
        "status": 400, "kind": "bad_parameter",
        "message": "Invalid argument: parameter 'step' must be a decimal integer, got '--5'"}
    status, _, body = _get(server, "maps", run="healthy", tag="layer", step=7, example=0)
    assert status == 404 and _strict(body)["error"]["kind"] == "not_found"


def test_probe_images_are_served_as_stored_pngs(server):
    for example in (0, 1):
        status, headers, body = _get(server, "probe_image", run="images", example=example)
        assert status == 200 and headers["Content-Type"] == "image/png" and body == _png(example)
    status, _, body = _get(server, "probe_image", run="images", example=2)
    assert status == 404 and "run 'images' stored 2 probe images" in _strict(body)["error"]["message"]
    runs = {r["run"]: r for r in _strict(server.get("/data/plugin/attention/index")[2])["runs"]}
    assert runs["images"]["probe_images"] == 2 and runs["healthy"]["probe_images"] == 0


def test_index_lists_the_layers_it_skipped_and_why(server):
    index = _strict(server.get("/data/plugin/attention/index")[2])
    skipped = {s["run"]: s["reason"] for s in index["skipped"]}
    assert "upgrade tb-attention" in skipped["newer"]
    assert "declares query_length -3" in skipped["negative_length"]
    assert "newer" not in {r["run"] for r in index["runs"]}


def test_non_finite_statistics_are_sent_as_null(server):
    _, _, body = _get(server, "head_stats", run="nonfinite", tag="layer", example=0)
    stats = _strict(body)
    assert stats["entropy"][0][1] is None and stats["max_weight"][0][0] is None
    assert isinstance(stats["entropy"][0][0], float)
    _, _, body = _get(server, "importance", run="nonfinite", tag="layer", example=0)
    values = _strict(body)["values"]
    assert values[0][0][2] is None and isinstance(values[0][0][1], float)
    # binary importance carries IEEE floats: -Infinity stays what it is
    status, headers, body = _get(server, "importance", run="nonfinite", tag="layer", example=0, head=0,
                                 format="binary")
    assert status == 200 and np.frombuffer(body[8:], "<f4")[2] == -np.inf


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_run_and_tag_names_are_served_or_say_which_name_and_what_to_do(server, name):
    for run, tag in ((name, "layer"), ("tags", name)):
        for route, params in (("importance", {}), ("head_stats", {}), ("rollout", {})):
            status, _, body = _get(server, route, run=run, tag=tag, example=1, **params)
            assert status == 200, (route, body)
        status, headers, body = _get(server, "maps", run=run, tag=tag, step=0, example=1)
        if server.reader == "rustboard" and name in NEEDS_JSON_ESCAPE:
            error = _strict(body)["error"]
            assert status == 422 and error["kind"] == "reader_limitation"
            assert repr(name) in error["message"] and "--load_fast=false" in error["message"]
        else:
            assert status == 200 and headers["X-Attention-Shape"] == "2,4,4"


def _peak_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def test_a_zlib_bomb_in_four_parallel_requests_costs_no_memory(server):
    before = _peak_mb(server.process.pid)
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(
        _get(server, "maps", run="zlib_bomb", tag="layer", step=0, example=0)[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grown = _peak_mb(server.process.pid) - before
    assert statuses == [422] * 4
    # The blob inflates to 512 MiB; before the cap four requests raised the
    # peak by 2.6 GB. Capped at the 32 bytes the shape promises, the peak
    # stays where it was (64 MB leaves room for TensorBoard's own reloads).
    assert grown < 64, grown


def test_a_tensor_proto_declaring_a_huge_shape_is_refused_before_it_is_expanded(server):
    before = _peak_mb(server.process.pid)
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(
        _get(server, "head_stats", run="shape_bomb", tag="layer", example=0)[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grown = _peak_mb(server.process.pid) - before
    assert statuses == [422] * 4
    # Expanded, the proto is 480 MB of float32 per request (its shape is
    # checked first now; before, one request raised the peak by 1.9 GB).
    assert grown < 64, grown


def test_a_blob_sequence_declaring_a_million_blobs_costs_no_memory(server):
    before = _peak_mb(server.process.pid)
    index = _strict(server.get("/data/plugin/attention/index")[2])
    status, _, body = _get(server, "maps", run="blob_count_bomb", tag="layer", step=0, example=1)
    grown = _peak_mb(server.process.pid) - before
    assert status == 422, body
    if server.reader == "python_reader":  # refused from its declared shape, before the keys are made
        assert "maps of run 'blob_count_bomb' layer 'layer' at step 0 declare shape (1000000,); " \
               "a step holds at most 1025 blobs (the metadata declares 2 examples)" in _strict(body)["error"]["message"]
        assert "blob_count_bomb" in {s["run"] for s in index["skipped"]}
    else:  # RustBoard stores the one blob it was given, a map where the step's facts should be
        assert "facts blob of run 'blob_count_bomb' layer 'layer' at step 0: " in _strict(body)["error"]["message"]
    # before the check, the Python reader's peak grew by 169 MB per million declared blobs
    assert grown < 64, grown


def test_version_1_data_and_a_version_1_tag_continued_by_version_2_are_served(server):
    index = _strict(server.get("/data/plugin/attention/index")[2])
    layers = {r["run"]: r["layers"][0] for r in index["runs"]}
    assert layers["version_1"]["steps"] == [0, 1] and layers["version_1"]["other_shapes"] is None
    status, headers, body = _get(server, "maps", run="version_1", tag="layer", step=1, example=1)
    assert status == 200 and headers["X-Attention-Shape"] == "2,4,4" and "X-Attention-Facts" not in headers
    for route in ("importance", "head_stats", "rollout"):
        status, _, body = _get(server, route, run="version_1", tag="layer", example=1)
        assert status == 200 and _strict(body)["steps"] == [0, 1]
    mixed = layers["v1_then_v2"]
    assert (mixed["steps"], mixed["num_heads"], mixed["other_shapes"]) == ([1], 3, {"steps": 1, "first": 0, "last": 0})
    status, headers, _ = _get(server, "maps", run="v1_then_v2", tag="layer", step=0, example=1)
    assert status == 200 and headers["X-Attention-Shape"] == "2,4,4"
    assert json.loads(headers["X-Attention-Facts"])["num_heads"] == 2
    status, headers, _ = _get(server, "maps", run="v1_then_v2", tag="layer", step=1, example=0)
    assert status == 200 and headers["X-Attention-Shape"] == "3,5,5"


def test_a_damaged_facts_blob_skips_the_layer_and_its_routes_answer_422(server):
    index = _strict(server.get("/data/plugin/attention/index")[2])
    skipped = {s["run"]: s["reason"] for s in index["skipped"]}
    assert "facts blob of run 'damaged_facts' layer 'layer' at step 1: metadata declares 0 heads" in skipped["damaged_facts"]
    for route, params in (("maps", dict(step=1, example=0)), ("importance", dict(example=0)),
                          ("head_stats", dict(example=0)), ("rollout", dict(example=0))):
        status, _, body = _get(server, route, run="damaged_facts", tag="layer", **params)
        assert status == 422 and _strict(body)["error"]["kind"] == "damaged_data", (route, body)
    status, headers, _ = _get(server, "maps", run="damaged_facts", tag="layer", step=0, example=0)
    assert status == 200 and headers["X-Attention-Shape"] == "2,4,4"
