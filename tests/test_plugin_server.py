"""The real `tensorboard` process serves the Attention tab from a logdir
written by a real model.fit, with both readers (RustBoard and the Python one)."""

import gzip
import os
import re
import time
import urllib.parse
import urllib.request
import zlib

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import tiny_data, tiny_mha_classifier
from tb_attention_plugin import AttentionCallback, read_attention
from tb_attention_plugin.serving import attention_plugin
from tb_attention_plugin.writing import summary
from tensorboard_server import TensorBoard

MANY = 250
REPO = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("served") / "logs"
    model = tiny_mha_classifier(heads=2)
    x, y = tiny_data(24)
    words = ["<pad>"] + ["w%d" % i for i in range(1, 30)]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[AttentionCallback(root / "fit", x[:3], tokens=words, update_freq=2)])
    writer = tf.summary.create_file_writer(str(root / "many"))
    with writer.as_default():
        for step in range(MANY):
            scores = np.full((1, 1, 2, 2), 0.5, np.float32)
            scores[0, 0, 0] = [step / MANY, 1 - step / MANY]
            summary.attention("layer", scores, step=step)
    writer.close()
    writer = tf.summary.create_file_writer(str(root / "wide"))  # maps stored compressed
    rng = np.random.default_rng(0)
    with writer.as_default():
        for step in range(2):
            scores = np.exp(rng.normal(scale=3.0, size=(2, 3, 64, 64)))
            summary.attention("layer", (scores / scores.sum(-1, keepdims=True)).astype(np.float32), step=step)
    writer.close()
    return root


def _start(logdir, *flags):
    server = TensorBoard(logdir, *flags)
    server.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
    # wait until both runs are loaded
    for _ in range(120):
        index = server.get_json("/data/plugin/attention/index")
        runs = {r["run"]: r for r in index["runs"]}
        if "fit" in runs and "wide" in runs and "many" in runs and len(runs["many"]["layers"][0]["steps"]) == MANY:
            return server
        time.sleep(0.5)
    server.stop()
    raise TimeoutError("runs not loaded")


@pytest.fixture(scope="module", params=["rustboard", "python_reader"])
def server(request, logdir):
    flags = ("--load_fast=true",) if request.param == "rustboard" else ("--load_fast=false",)
    tb = _start(logdir, *flags)
    yield tb
    tb.stop()


def _q(**params):
    return urllib.parse.urlencode(params)


def test_plugins_listing_shows_the_tab_active(server):
    listing = server.get_json("/data/plugins_listing")["attention"]
    assert listing["enabled"] is True
    assert listing["tab_name"] == "Attention"
    assert listing["loading_mechanism"]["type"] == "IFRAME"
    assert re.fullmatch(r"/data/plugin/attention/static/[0-9a-f]{16}/index\.js", listing["loading_mechanism"]["module_path"])


def test_the_tab_loads_from_versioned_urls_the_browser_may_keep_and_plain_ones_it_may_not(server):
    module_path = server.get_json("/data/plugins_listing")["attention"]["loading_mechanism"]["module_path"]
    versioned = module_path.rsplit("/", 1)[0] + "/"
    for name in ("index.js", "view_grid.js", "style.css"):
        with open(os.path.join(REPO, "frontend", name), "rb") as f:
            source = f.read()
        status, headers, body = server.get(versioned + name)
        assert status == 200 and body == source  # the same bytes as the source: no build step
        assert headers["Cache-Control"] == "private, max-age=31536000"
        status, headers, body = server.get("/data/plugin/attention/" + name)
        assert status == 200 and body == source and headers["Cache-Control"] == "no-cache, must-revalidate"
    # another version (an older install's URL) is not served from this one's files
    other = re.sub(r"/static/[0-9a-f]{16}/", "/static/0123456789abcdef/", versioned)
    assert server.get(other + "index.js")[0] == 404


def test_the_static_version_changes_with_any_frontend_file(tmp_path, monkeypatch):
    monkeypatch.setattr(attention_plugin, "frontend_dir", lambda: str(tmp_path))
    (tmp_path / "index.js").write_text("import './a.js';\n")
    (tmp_path / "a.js").write_text("export const a = 1;\n")
    (tmp_path / "notes.txt").write_text("not served")
    version, files = attention_plugin._load_frontend()
    assert sorted(files) == ["a.js", "index.js"] and gzip.decompress(files["a.js"].gzipped) == b"export const a = 1;\n"
    (tmp_path / "a.js").write_text("export const a = 2;\n")  # a module index.js imports, not index.js itself
    assert attention_plugin._load_frontend()[0] != version
    (tmp_path / "a.js").write_text("export const a = 1;\n")
    assert attention_plugin._load_frontend()[0] == version


def test_every_route_answers_the_captured_values(server, logdir):
    captured = read_attention(str(logdir))["fit"]["mha"]
    index = server.get_json("/data/plugin/attention/index")
    (layer,) = [r for r in index["runs"] if r["run"] == "fit"][0]["layers"]
    assert layer["tag"] == "mha" and layer["kind"] == "self" and layer["num_heads"] == 2
    assert layer["steps"] == list(captured.steps)
    assert [e["key_tokens"] for e in layer["examples"]] == captured.key_tokens

    for example in range(3):
        for i, step in enumerate(captured.steps):
            status, headers, body = server.get(
                "/data/plugin/attention/maps?" + _q(run="fit", tag="mha", step=step, example=example))
            assert status == 200
            shape = tuple(int(n) for n in headers["X-Attention-Shape"].split(","))
            assert headers["X-Attention-Encoding"] == "uint8"
            maps = np.frombuffer(body, np.uint8).reshape(shape) / 255.0
            np.testing.assert_allclose(maps, captured.maps[example][i], atol=1e-6)
        status, headers, body = server.get(
            "/data/plugin/attention/maps?" + _q(run="fit", tag="mha", step=captured.steps[-1], example=example, head=1))
        assert headers["X-Attention-Shape"].startswith("1,")
        np.testing.assert_allclose(
            np.frombuffer(body, np.uint8) / 255.0, captured.maps[example][-1][1].ravel(), atol=1e-6)

        importance = server.get_json("/data/plugin/attention/importance?" + _q(run="fit", tag="mha", example=example))
        assert importance["mode"] == "received" and importance["steps"] == list(captured.steps)
        np.testing.assert_allclose(importance["values"], captured.received[example], atol=1e-5)
        given_ = server.get_json("/data/plugin/attention/importance?" + _q(run="fit", tag="mha", example=example, mode="given"))
        np.testing.assert_allclose(given_["values"], captured.given[example], atol=1e-5)
        stats = server.get_json("/data/plugin/attention/head_stats?" + _q(run="fit", tag="mha", example=example))
        np.testing.assert_allclose(stats["entropy"], captured.head_stats[:, example, :, 0], atol=1e-5)
        np.testing.assert_allclose(stats["max_weight"], captured.head_stats[:, example, :, 1], atol=1e-5)
        rollout = server.get_json("/data/plugin/attention/rollout?" + _q(run="fit", tag="mha", example=example))
        np.testing.assert_allclose(rollout["values"], captured.rollout[example], atol=1e-5)
        assert layer["metric_names"] == list(captured.metric_names)
        for m, metric in enumerate(captured.metric_names):
            reply = server.get_json("/data/plugin/attention/head_metrics?" + _q(
                run="fit", tag="mha", example=example, metric=metric))
            assert reply["steps"] == list(captured.steps) and reply["metric"] == metric
            stored = captured.head_metrics[:, example, :, m]  # (steps, heads); NaN is sent as null
            values = np.array([[np.nan if v is None else v for v in row] for row in reply["values"]])
            np.testing.assert_allclose(values, stored, atol=1e-5, equal_nan=True)
        # Value-weighted attention (issue 35): the norms of each step, and the
        # head metrics of the value-weighted maps.
        assert layer["value_vector"] == captured.value_vector == "value_output"
        for i, step in enumerate(captured.steps):
            norms = server.get_json("/data/plugin/attention/value_norms?" + _q(
                run="fit", tag="mha", example=example, step=step))
            assert norms["step"] == step and norms["vector"] == "value_output" and norms["num_heads"] == 2
            assert norms["tokens"] == captured.key_tokens[example]
            # JSON rounds to 6 decimals (half of 1e-6 off at most)
            np.testing.assert_allclose(norms["values"], captured.value_norms[example][i], atol=1e-6)
        # Received value-weighted attention: sum_i a_ij n_j = n_j x received_j, per head, and their mean.
        reply = server.get_json("/data/plugin/attention/importance?" + _q(
            run="fit", tag="mha", example=example, of="value_weighted"))
        by_hand = np.asarray(captured.received[example])[:, :2] * np.asarray(captured.value_norms[example])
        np.testing.assert_allclose(np.asarray(reply["values"])[:, :2], by_hand, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(reply["values"])[:, 2], by_hand.mean(axis=1), rtol=1e-5, atol=1e-6)
        assert reply["of"] == "value_weighted" and reply["axis"] == "sum over queries of weight x value norm"
        status, headers, body = server.get("/data/plugin/attention/importance?" + _q(
            run="fit", tag="mha", example=example, of="value_weighted", head=2, format="binary"))
        assert status == 200 and headers["X-Attention-Shape"] == "%d,%d" % (len(captured.steps), by_hand.shape[-1])
        values = np.frombuffer(body[8 * len(captured.steps):], "<f4").reshape(len(captured.steps), -1)
        np.testing.assert_allclose(values, by_hand.mean(axis=1), rtol=1e-5, atol=1e-6)
        entropy = captured.value_metric_names.index("entropy")
        reply = server.get_json("/data/plugin/attention/head_metrics?" + _q(
            run="fit", tag="mha", example=example, metric="entropy", of="value_weighted"))
        assert reply["of"] == "value_weighted"
        np.testing.assert_allclose(reply["values"], captured.value_metrics[:, example, :, entropy], atol=1e-5)
    # A layer written without value norms says so: no vector, and 404 with why.
    many = [r for r in index["runs"] if r["run"] == "many"][0]["layers"][0]
    assert many["value_vector"] is None
    code, _, body = server.get("/data/plugin/attention/value_norms?" + _q(run="many", tag="layer", example=0, step=0))
    assert code == 404 and b"no value norms" in body


def test_all_250_captured_steps_are_served_without_flags(server):
    importance = server.get_json("/data/plugin/attention/importance?" + _q(run="many", tag="layer", example=0))
    assert importance["steps"] == list(range(MANY))
    # key 0 receives step/250 + 0.5 at each step
    np.testing.assert_allclose([v[0][0] for v in importance["values"]],
                               [s / MANY + 0.5 for s in range(MANY)], atol=1e-5)
    status, _, body = server.get("/data/plugin/attention/maps?" + _q(run="many", tag="layer", step=249, example=0))
    assert status == 200 and body[0] == round(249 / MANY * 255)


def test_maps_asked_for_as_stored_come_zlib_compressed_and_inflate_to_the_captured_values(server, logdir):
    captured = read_attention(str(logdir))["wide"]["layer"]  # 2 examples x 3 heads x 64 tokens
    for example in range(2):
        for i, step in enumerate(captured.steps):
            path = "/data/plugin/attention/maps?" + _q(run="wide", tag="layer", step=step, example=example)
            status, headers, body = server.get(path + "&compression=zlib")
            assert status == 200 and headers["X-Attention-Compression"] == "zlib"
            assert "Content-Encoding" not in headers and len(body) < 3 * 64 * 64  # the stored zlib stream
            raw = zlib.decompress(body)
            shape = tuple(int(n) for n in headers["X-Attention-Shape"].split(","))
            np.testing.assert_allclose(np.frombuffer(raw, np.uint8).reshape(shape) / 255.0,
                                       captured.maps[example][i], atol=1 / 510 + 1e-6)
            for plain in (path, path + "&compression=none"):  # raw unless asked, Accept-Encoding or not
                request = urllib.request.Request(server.url + plain, headers={"Accept-Encoding": "gzip, deflate"})
                with urllib.request.urlopen(request, timeout=30) as reply:
                    assert reply.read() == raw and "X-Attention-Compression" not in reply.headers
                    assert "Content-Encoding" not in reply.headers
        # one head is a slice of the raw bytes, asked for compressed or not
        status, headers, body = server.get(path + "&head=1&compression=zlib")
        assert "X-Attention-Compression" not in headers and body == raw[64 * 64:2 * 64 * 64]
    # a blob stored raw (too small to compress) stays raw
    status, headers, body = server.get("/data/plugin/attention/maps?" + _q(
        run="many", tag="layer", step=3, example=0, compression="zlib"))
    assert "X-Attention-Compression" not in headers and len(body) == 4


def test_series_over_more_steps_than_max_points_are_a_subset_that_says_so(server):
    full = server.get_json("/data/plugin/attention/importance?" + _q(run="many", tag="layer", example=0))
    assert full["steps_total"] == MANY and not full["downsampled"]
    few = server.get_json("/data/plugin/attention/importance?" + _q(run="many", tag="layer", example=0, max_points=40))
    assert few["steps_total"] == MANY and few["downsampled"] and 10 <= len(few["steps"]) <= 40
    assert few["steps"][-1] == MANY - 1 and few["steps"] == sorted(set(few["steps"]))
    # values at the steps served are those stored: key 0 receives step/250 + 0.5
    np.testing.assert_allclose([v[0][0] for v in few["values"]], [s / MANY + 0.5 for s in few["steps"]], atol=1e-5)
    status, headers, body = server.get("/data/plugin/attention/importance?" + _q(
        run="many", tag="layer", example=0, head=0, format="binary", max_points=40))
    assert status == 200 and headers["X-Attention-Steps-Total"] == str(MANY)
    assert headers["X-Attention-Shape"] == "%d,2" % len(few["steps"])
    stats = server.get_json("/data/plugin/attention/head_stats?" + _q(run="many", tag="layer", example=0, max_points=40))
    assert stats["steps"] == few["steps"] and stats["downsampled"]


def test_users_samples_per_plugin_flag_still_wins(logdir):
    tb = TensorBoard(logdir, "--samples_per_plugin", "attention=20")
    try:
        tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
        for _ in range(60):
            runs = {r["run"]: r for r in tb.get_json("/data/plugin/attention/index")["runs"]}
            if "many" in runs:
                break
            time.sleep(0.5)
        steps = runs["many"]["layers"][0]["steps"]
        assert len(steps) == 20 and steps[-1] == MANY - 1
    finally:
        tb.stop()


def test_tab_is_inactive_not_an_error_without_attention_data(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "logs" / "scalars"))
    with writer.as_default():
        tf.summary.scalar("loss", 1.0, step=0)
    writer.close()
    tb = TensorBoard(tmp_path / "logs")
    try:
        tb.wait_for(lambda listing: "attention" in listing and "scalars" in listing
                    and listing["scalars"]["enabled"])
        assert tb.get_json("/data/plugins_listing")["attention"]["enabled"] is False
        assert tb.get_json("/data/plugin/attention/index") == {"runs": [], "skipped": []}
    finally:
        tb.stop()


@pytest.mark.parametrize(
    "query, status",
    [
        ("maps?run=fit&tag=mha&step=0", 400),
        ("maps?run=fit&tag=mha&step=x&example=0", 400),
        ("maps?run=fit&tag=mha&step=99999999999999999999999&example=0", 400),
        ("maps?run=nope&tag=mha&step=0&example=0", 404),
        ("maps?run=fit&tag=nope&step=0&example=0", 404),
        ("maps?run=fit&tag=mha&step=1&example=0", 404),
        ("maps?run=fit&tag=mha&step=0&example=3", 404),
        ("maps?run=fit&tag=mha&step=0&example=-1", 400),
        ("maps?run=fit&tag=mha&step=--5&example=0", 400),
        ("maps?run=fit&tag=mha&step=0&example=0&head=2", 404),
        ("maps?run=fit&tag=mha&step=0&example=0&compression=gzip", 400),
        ("importance?run=fit&tag=mha&example=0&mode=sideways", 400),
        ("importance?run=fit&tag=mha/_importance&example=0", 404),
        ("importance?run=fit&tag=mha&example=0&format=xml", 400),
        ("importance?run=fit&tag=mha&example=0&format=binary", 400),  # needs head=
        ("importance?run=fit&tag=mha&example=0&format=binary&head=3", 404),
        ("rollout?run=many&tag=layer&example=0", 404),  # written without rollout
        ("head_stats?run=fit&tag=mha", 400),
        ("head_metrics?run=fit&tag=mha&example=0", 400),  # needs metric=
        ("head_metrics?run=fit&tag=mha&example=0&metric=loss", 400),
        ("head_metrics?run=fit&tag=mha&example=3&metric=entropy", 404),
        ("probe_image?run=fit&example=0", 404),  # a text model stores no images
        ("probe_image?run=fit", 400),
        ("value_norms?run=fit&tag=mha&example=0", 400),  # needs step=
        ("value_norms?run=fit&tag=mha&example=0&step=1", 404),  # not a captured step
        ("value_norms?run=fit&tag=mha&example=3&step=0", 404),
        ("head_metrics?run=fit&tag=mha&example=0&metric=entropy&of=relevance", 400),
        ("head_metrics?run=many&tag=layer&example=0&metric=entropy&of=value_weighted", 404),
        ("importance?run=fit&tag=mha&example=0&of=value_weighted&mode=given", 400),
        ("importance?run=fit&tag=mha&example=0&of=relevance", 400),
        ("importance?run=many&tag=layer&example=0&of=value_weighted", 404),
        ("head_stats?run=fit&tag=mha&example=0&max_points=0", 400),
        ("importance?run=fit&tag=mha&example=0&max_points=x", 400),
        ("..%2f..%2fsetup.py", 404),
        ("frontend/../attention_plugin.py", 404),
    ],
)
def test_bad_parameters_answer_4xx_with_a_message(server, query, status):
    code, _, body = server.get("/data/plugin/attention/" + query)
    assert code == status, body
    if status != 200:
        assert body  # a message, not an empty page


ROUTES = ["maps", "importance", "head_stats", "rollout", "head_metrics", "probe_image", "index", "value_norms"]
PARAMS = ["run", "tag", "step", "example", "head", "mode", "format", "max_points", "metric", "of"]
values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["fit", "mha", "many", "layer", "0", "1", "-0", " 2", "1e3", "NaN", "\x00", "%", "../",
                     "binary", "json", "given", "entropy", "induction", "value_weighted", "weights"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), params=st.dictionaries(st.sampled_from(PARAMS), values, max_size=6))
def test_random_parameters_never_cause_a_server_error(server, route, params):
    code, _, _ = server.get("/data/plugin/attention/%s?%s" % (route, urllib.parse.urlencode(params)))
    assert code < 500, (route, params)


def test_importance_of_one_head_is_that_slice_of_all_heads(server, logdir):
    captured = read_attention(str(logdir))["fit"]["mha"]
    for head in (0, 1, 2):  # 2 = head mean
        one = server.get_json("/data/plugin/attention/importance?" + _q(run="fit", tag="mha", example=1, head=head))
        assert one["head"] == head
        np.testing.assert_allclose(one["values"], captured.received[1][:, head], atol=1e-5)
    status, _, _ = server.get("/data/plugin/attention/importance?" + _q(run="fit", tag="mha", example=1, head=3))
    assert status == 404


def test_binary_importance_of_one_head_holds_the_steps_and_the_same_numbers(server, logdir):
    captured = read_attention(str(logdir))["fit"]["mha"]
    for mode, stored in (("received", captured.received), ("given", captured.given)):
        for head in (0, 2):  # 2 = head mean
            status, headers, body = server.get("/data/plugin/attention/importance?" + _q(
                run="fit", tag="mha", example=1, mode=mode, head=head, format="binary"))
            assert status == 200 and headers["Content-Type"] == "application/octet-stream"
            steps, tokens = (int(n) for n in headers["X-Attention-Shape"].split(","))
            assert headers["X-Attention-Heads"] == "2"
            assert steps == len(captured.steps)
            assert list(np.frombuffer(body[: 8 * steps], "<f8")) == list(captured.steps)
            values = np.frombuffer(body[8 * steps :], "<f4").reshape(steps, tokens)
            np.testing.assert_allclose(values, stored[1][:, head], atol=1e-6)
