"""One tag, several shapes: a run whose event files hold steps of one layer
written with other facts (another probe, another writer) is read and served
with each step's own facts; and probe examples that are all padding (empty
maps) are written, read and served.

The data is written with `summary.attention` and a real file writer, then
read with `read_attention` and served by the real `tensorboard` under both
readers."""

import json
import urllib.parse

import numpy as np
import pytest
import tensorflow as tf

from crafted_events import layer_step, without_facts, write_run
from tb_attention_plugin import read_attention
from tb_attention_plugin.format import encoding
from tb_attention_plugin.writing import summary
from tensorboard_server import TensorBoard

# Empty maps, NaN statistics: nothing may warn (numpy's "Mean of empty slice").
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

OLD_TOKENS = ["the", "cat", "sat", "on", "mats"]
NEW_TOKENS = ["a", "dog", "ran", "to", "the", "big", "park"]
OLD_STEPS, NEW_STEPS = (0, 1, 2), (3, 4)


def _softmax(shape, seed):
    logits = np.random.default_rng(seed).normal(size=shape)
    return (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)


def _written():
    """{step: (scores, tokens)}: 2 heads x 5 tokens at steps 0-2, then
    3 heads x 7 other tokens at steps 3-4; two examples each."""
    out = {s: (_softmax((2, 2, 5, 5), s), OLD_TOKENS) for s in OLD_STEPS}
    out.update({s: (_softmax((2, 3, 7, 7), s), NEW_TOKENS) for s in NEW_STEPS})
    return out


EMPTY_MASK = np.array([[True, True, True, False], [False, False, False, False]])  # example 1: all padding
NO_TOKENS = np.zeros((2, 4), bool)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed") / "logs"
    for run, encoding in (("mixed", "float32"), ("mixed_uint8", "uint8")):
        writer = tf.summary.create_file_writer(str(root / run))
        with writer.as_default():
            for step, (scores, tokens) in sorted(_written().items()):
                rollout = [np.full(len(tokens), 1.0 / len(tokens), np.float32)] * 2
                assert summary.attention("enc/mha", scores, step=step, query_tokens=[tokens] * 2,
                                         encoding=encoding, rollout=rollout)
        writer.close()
    writer = tf.summary.create_file_writer(str(root / "empty"))
    with writer.as_default():
        words = [["w0", "w1", "w2", "<pad>"]] * 2
        for step in (0, 1):
            assert summary.attention("one_empty", _softmax((2, 2, 4, 4), step), step=step, query_tokens=words,
                                     query_mask=EMPTY_MASK, key_mask=EMPTY_MASK,
                                     rollout=[np.full(3, 1 / 3, np.float32), np.zeros(0, np.float32)])
            assert summary.attention("all_empty", _softmax((2, 2, 4, 4), step), step=step, query_tokens=words,
                                     query_mask=NO_TOKENS, key_mask=NO_TOKENS, rollout=[[], []])
    writer.close()
    return root


# -- the notebook reader ---------------------------------------------------------


@pytest.mark.parametrize("run, atol", [("mixed", 0.0), ("mixed_uint8", 1 / 510)])
def test_read_attention_gives_the_newest_facts_and_the_earlier_ones_apart(logdir, run, atol):
    layer = read_attention(str(logdir))[run]["enc/mha"]
    written = _written()
    assert list(layer.steps) == [3, 4] and layer.num_heads == 3
    assert layer.query_tokens == [NEW_TOKENS] * 2 and layer.key_tokens == [NEW_TOKENS] * 2
    (earlier,) = layer.earlier
    assert list(earlier.steps) == [0, 1, 2] and earlier.num_heads == 2 and earlier.earlier == []
    assert earlier.key_tokens == [OLD_TOKENS] * 2
    for group in (layer, earlier):
        for i, step in enumerate(group.steps):
            for example in (0, 1):
                np.testing.assert_allclose(group.maps[example][i], written[step][0][example], atol=atol, rtol=0)
        assert group.received[0].shape == (len(group.steps), group.num_heads + 1, len(group.key_tokens[0]))
        assert group.head_stats.shape == (len(group.steps), 2, group.num_heads, 3)
    # received attention of key j at step 4, head 0: the sum of column j (computed from float32 scores)
    np.testing.assert_allclose(layer.received[1][1, 0], written[4][0][1, 0].sum(axis=0), atol=1e-5)


def test_read_attention_gives_empty_examples_empty_maps_and_nan_statistics(logdir):
    layers = read_attention(str(logdir))["empty"]
    one = layers["one_empty"]
    assert one.maps[0].shape == (2, 2, 3, 3) and one.maps[1].shape == (2, 2, 0, 0)
    assert one.query_tokens == [["w0", "w1", "w2"], []]
    assert np.isnan(one.head_stats[:, 1]).all() and np.isfinite(one.head_stats[:, 0]).all()
    assert one.received[1].shape == (2, 3, 0) and one.rollout[1].shape == (2, 0)
    everything = layers["all_empty"]
    assert list(everything.steps) == [0, 1] and everything.kind == "self"
    assert [m.shape for m in everything.maps] == [(2, 2, 0, 0)] * 2
    assert np.isnan(everything.head_stats).all() and everything.rows_normalized


def test_read_attention_reads_format_version_1_and_a_version_1_tag_continued_by_version_2(tmp_path):
    v1 = {s: without_facts(layer_step(heads=2, tokens=4, seed=s)) for s in (0, 1)}
    write_run(tmp_path / "v1", v1)
    write_run(tmp_path / "continued", {0: v1[0], 1: layer_step(heads=3, tokens=5, seed=1, word="w")})
    runs = read_attention(str(tmp_path))
    layer = runs["v1"]["layer"]
    assert list(layer.steps) == [0, 1] and layer.num_heads == 2 and layer.earlier == []
    assert layer.key_tokens[1] == ["t0", "t1", "t2", "t3"]
    for step in (0, 1):
        stored = encoding.decode(v1[step][0][1][1], encoding.UINT8, (2, 4, 4))
        np.testing.assert_array_equal(layer.maps[1][step], stored)
    continued = runs["continued"]["layer"]
    assert list(continued.steps) == [1] and continued.num_heads == 3 and continued.key_tokens[0][0] == "w0"
    assert continued.maps[0].shape == (1, 3, 5, 5) and continued.head_stats.shape == (1, 2, 3, 3)
    (earlier,) = continued.earlier
    assert list(earlier.steps) == [0] and earlier.maps[0].shape == (1, 2, 4, 4)


# -- the real tensorboard, both readers ------------------------------------------------


@pytest.fixture(scope="module", params=["rustboard", "python_reader"])
def server(request, logdir):
    tb = TensorBoard(logdir, "--load_fast=%s" % ("true" if request.param == "rustboard" else "false"))
    try:
        def ready(index):
            runs = {r["run"]: r for r in index["runs"]}
            return (len(runs) == 3 and runs["mixed"]["layers"][0]["steps"] == [3, 4]
                    and runs["mixed_uint8"]["layers"][0]["steps"] == [3, 4]
                    and all(len(l["steps"]) == 2 for l in runs["empty"]["layers"]))

        tb.wait_for_index(ready)
        yield tb
    finally:
        tb.stop()


def _get(tb, route, **params):
    status, headers, body = tb.get("/data/plugin/attention/%s?%s" % (route, urllib.parse.urlencode(params)))
    assert status < 500, (route, params, body)
    return status, headers, body


def _json(tb, route, **params):
    status, _, body = _get(tb, route, **params)
    assert status == 200, (route, params, body)
    return json.loads(body)


def _maps(tb, run, tag, step, example, **params):
    status, headers, body = _get(tb, "maps", run=run, tag=tag, step=step, example=example, **params)
    assert status == 200, body
    shape = tuple(int(n) for n in headers["X-Attention-Shape"].split(","))
    dtype = np.uint8 if headers["X-Attention-Encoding"] == "uint8" else "<f4"
    values = np.frombuffer(body, dtype).reshape(shape).astype(np.float32)
    if dtype == np.uint8:
        values /= 255
    facts = headers.get("X-Attention-Facts")
    return values, None if facts is None else json.loads(facts)


def test_the_index_lists_the_newest_facts_and_counts_the_steps_left_out(server):
    runs = {r["run"]: r for r in _json(server, "index")["runs"]}
    for run in ("mixed", "mixed_uint8"):
        (layer,) = runs[run]["layers"]
        assert layer["steps"] == [3, 4] and layer["num_heads"] == 3
        assert [e["key_tokens"] for e in layer["examples"]] == [NEW_TOKENS] * 2
        assert layer["other_shapes"] == {"steps": 3, "first": 0, "last": 2}
    assert all(l["other_shapes"] is None for l in runs["empty"]["layers"])


@pytest.mark.parametrize("run, atol", [("mixed", 0.0), ("mixed_uint8", 1 / 510)])
def test_maps_of_every_step_decode_with_that_steps_own_facts(server, run, atol):
    written = _written()
    for step, (scores, tokens) in written.items():
        for example in (0, 1):
            values, facts = _maps(server, run, "enc/mha", step, example)
            np.testing.assert_allclose(values, scores[example], atol=atol, rtol=0)
            if step in NEW_STEPS:
                assert facts is None  # the facts /index lists
            else:
                assert facts["num_heads"] == 2 and facts["num_examples"] == 2 and facts["kind"] == "self"
                assert facts["example"]["key_tokens"] == OLD_TOKENS and facts["example"]["query_length"] == 5
        one_head, _ = _maps(server, run, "enc/mha", step, 1, head=1)
        np.testing.assert_allclose(one_head[0], scores[1, 1], atol=atol, rtol=0)
    status, _, _ = _get(server, "maps", run=run, tag="enc/mha", step=1, example=0, head=2)  # 2 heads then
    assert status == 404


def test_series_cover_only_the_steps_with_the_newest_facts(server):
    written = _written()
    for example in (0, 1):
        importance = _json(server, "importance", run="mixed", tag="enc/mha", example=example)
        assert importance["steps"] == [3, 4] and importance["num_heads"] == 3 and importance["tokens"] == NEW_TOKENS
        for i, step in enumerate(NEW_STEPS):
            received = written[step][0][example].sum(axis=1)  # (heads, keys)
            np.testing.assert_allclose(importance["values"][i][:3], received, atol=1e-5)
            np.testing.assert_allclose(importance["values"][i][3], received.mean(axis=0), atol=1e-5)
        stats = _json(server, "head_stats", run="mixed", tag="enc/mha", example=example)
        assert stats["steps"] == [3, 4] and np.shape(stats["entropy"]) == (2, 3)
        np.testing.assert_allclose(stats["max_weight"][1], written[4][0][example].max(axis=(1, 2)), atol=1e-6)
        rollout = _json(server, "rollout", run="mixed", tag="enc/mha", example=example)
        assert rollout["steps"] == [3, 4] and np.allclose(rollout["values"], 1 / 7)
        status, headers, body = _get(server, "importance", run="mixed", tag="enc/mha", example=example,
                                     head=3, format="binary")
        assert headers["X-Attention-Shape"] == "2,7" and list(np.frombuffer(body[:16], "<f8")) == [3, 4]


def test_empty_examples_are_served_by_every_route(server):
    _, facts = _maps(server, "empty", "one_empty", 1, 0)
    for tag in ("one_empty", "all_empty"):
        values, facts = _maps(server, "empty", tag, 1, 1)
        assert values.shape == (2, 0, 0) and facts is None
        assert _maps(server, "empty", tag, 0, 1, head=1)[0].shape == (1, 0, 0)
        stats = _json(server, "head_stats", run="empty", tag=tag, example=1)
        assert stats["steps"] == [0, 1] and stats["entropy"] == [[None, None]] * 2
        assert stats["max_weight"] == [[None, None]] * 2 and stats["mean_distance"] == [[None, None]] * 2
        for mode in ("received", "given"):
            importance = _json(server, "importance", run="empty", tag=tag, example=1, mode=mode)
            assert importance["tokens"] == [] and importance["values"] == [[[], [], []]] * 2
        rollout = _json(server, "rollout", run="empty", tag=tag, example=1)
        assert rollout["tokens"] == [] and rollout["values"] == [[], []]
        status, headers, body = _get(server, "importance", run="empty", tag=tag, example=1, head=2, format="binary")
        assert status == 200 and headers["X-Attention-Shape"] == "2,0" and len(body) == 16
    stats = _json(server, "head_stats", run="empty", tag="one_empty", example=0)
    assert all(v is not None for row in stats["entropy"] for v in row)


def test_no_route_answers_a_server_error_on_any_step_example_or_head(server):
    for run, tag in (("mixed", "enc/mha"), ("mixed_uint8", "enc/mha"), ("empty", "one_empty"),
                     ("empty", "all_empty")):
        for example in (0, 1, 2):
            for step in (-1, 0, 1, 2, 3, 4, 5):
                for head in (None, 0, 2, 3):
                    extra = {} if head is None else {"head": head}
                    _get(server, "maps", run=run, tag=tag, step=step, example=example, **extra)
            for route in ("importance", "head_stats", "rollout"):
                _get(server, route, run=run, tag=tag, example=example)
