"""The plugin's store on crafted data, through a fake data provider (no
TensorBoard process): every check names the run, the layer, the step and
what is wrong, and nothing is inflated beyond the size the shape promises."""

import tracemalloc
import zlib

import numpy as np
import pytest
from tensorboard import errors
from tensorboard.data import provider

from crafted_events import (array_of, layer_step, plugin_data, replace, with_combined_importance, with_facts,
                            without_facts, write_run)
from tb_attention_plugin.format import encoding, metadata
from tb_attention_plugin.serving import store, tensor_reads

PluginData = metadata.PluginData
CTX = object()


class FakeProvider:
    """A data provider over {run: {step: [(tag, array, SummaryMetadata)]}}."""

    def __init__(self, runs, reject_blob_keys=False):
        self.runs = runs
        self.reject_blob_keys = reject_blob_keys  # as RustBoard does for '"' in names

    def _series(self, kind):
        """Time series as TensorBoard lists them: the first step's metadata, the last step."""
        out = {}
        for run, steps in self.runs.items():
            for step, triples in sorted(steps.items()):
                for tag, array, meta in triples:
                    blob = meta.data_class == 3  # DATA_CLASS_BLOB_SEQUENCE
                    if blob != (kind == "blob"):
                        continue
                    cls = provider.BlobSequenceTimeSeries if blob else provider.TensorTimeSeries
                    first = out.get(run, {}).get(tag)
                    extra = {"max_length": max(len(array), first.max_length if first else 0)} if blob else {}
                    out.setdefault(run, {})[tag] = cls(
                        max_step=step, max_wall_time=float(step),
                        plugin_content=first.plugin_content if first else meta.plugin_data.content,
                        description="", display_name="", **extra)
        return out

    def list_blob_sequences(self, ctx, experiment_id, plugin_name):
        return self._series("blob")

    def list_tensors(self, ctx, experiment_id, plugin_name):
        return self._series("tensor")

    def _points(self, run_tag_filter, make):
        (run,), (tag,) = run_tag_filter.runs, run_tag_filter.tags
        points = [make(run, tag, step, array) for step, triples in sorted(self.runs.get(run, {}).items())
                  for t, array, _ in triples if t == tag]
        return {run: {tag: points}}

    def read_blob_sequences(self, ctx, experiment_id, plugin_name, downsample, run_tag_filter):
        return self._points(run_tag_filter, lambda run, tag, step, blobs: provider.BlobSequenceDatum(
            step, float(step), tuple(provider.BlobReference((run, tag, step, i)) for i in range(len(blobs)))))

    def read_tensors(self, ctx, experiment_id, plugin_name, downsample, run_tag_filter):
        return self._points(run_tag_filter,
                            lambda run, tag, step, array: provider.TensorDatum(step, float(step), array))

    def read_tensors_checked(self, ctx, **kwargs):  # what DataCalls does with this name
        return tensor_reads.read_tensors(self, ctx, **kwargs)

    def read_blob_sequences_checked(self, ctx, **kwargs):
        return tensor_reads.read_blob_sequences(self, ctx, **kwargs)

    def read_blob_keys_checked(self, ctx, **kwargs):
        return tensor_reads.read_blob_keys(self, ctx, **kwargs)

    def read_blob(self, ctx, blob_key):
        if self.reject_blob_keys:
            raise errors.InvalidArgumentError("failed to parse blob key: BadJson")
        run, tag, step, i = blob_key
        (array,) = [a for t, a, meta in self.runs[run][step] if t == tag]
        return array[i]


def make_store(runs, rustboard=False, reject_blob_keys=False):
    fake = FakeProvider(runs, reject_blob_keys)
    return store.Store(lambda method, ctx, **kw: getattr(fake, method)(ctx, **kw), rustboard=rustboard)


def maps_metadata(triples):
    return plugin_data(triples[0][2])


def stored_error(call, kind):
    with pytest.raises(store.StoredDataError) as raised:
        call()
    assert raised.value.http_code == 422 and raised.value.kind == kind
    return str(raised.value)


def test_a_healthy_layer_serves_its_maps_and_series():
    triples = layer_step(heads=2, tokens=4, examples=2)
    s = make_store({"run": {0: triples, 5: triples}})
    data, shape, enc, facts, other, compressed, max_error = s.maps(CTX, "", "run", "layer", 5, 1)
    assert shape == (2, 4, 4) and enc == encoding.UINT8 and not other and facts.num_heads == 2 and not compressed
    assert max_error is None  # full maps: exact within the encoding
    assert data == encoding.raw_bytes(triples[0][1][1], enc, 32)
    head1, shape1, *_ = s.maps(CTX, "", "run", "layer", 5, 1, head=1)
    assert shape1 == (1, 4, 4) and head1 == data[16:]
    importance = array_of(triples, PluginData.IMPORTANCE, example=1)  # (2 modes, heads + 1, 4)
    layer, steps, values, total = s.series(CTX, "", "run", "layer", PluginData.IMPORTANCE, 1, "given")
    assert steps == [0, 5] and values.shape == (2, 3, 4) and total == 2
    np.testing.assert_array_equal(values[1], importance[1])
    _, _, stats, _ = s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0)
    np.testing.assert_array_equal(stats[0], array_of(triples, PluginData.HEAD_STATS)[0])


@pytest.mark.parametrize("blob, message", [
    (b"\x01" * 31, "blob of 31 bytes is neither 32 raw bytes nor zlib data"),
    (zlib.compress(b"\x01" * 31), "inflates to less than the 32 bytes"),
    (zlib.compress(b"\x01" * 32)[:-2], "truncated zlib stream"),
    (b"", "inflates to less than the 32 bytes"),
])
@pytest.mark.parametrize("compressed", [False, True])
def test_a_blob_that_does_not_hold_its_shape_is_422_naming_run_layer_and_step(blob, message, compressed):
    triples = layer_step(heads=2, tokens=4, examples=2)
    triples = with_facts(triples, maps_metadata(triples), [blob, triples[0][1][1]])
    s = make_store({"run": {3: triples}})
    # asked for as stored (what the maps route does for browsers) or raw, and asked twice:
    # a damaged blob is never cached, so it is never sent as it is
    for _ in range(2):
        text = stored_error(lambda: s.maps(CTX, "", "run", "layer", 3, 0, compressed=compressed), "damaged_data")
    assert "run 'run' layer 'layer' at step 3" in text and message in text and "(2, 4, 4)" in text
    assert s.maps(CTX, "", "run", "layer", 3, 1)[1] == (2, 4, 4)  # the healthy example still answers


@pytest.mark.parametrize("compressed", [False, True])
def test_a_zlib_bomb_is_refused_after_inflating_only_the_promised_bytes(compressed):
    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 KB that inflate to 64 MiB
    triples = layer_step(heads=2, tokens=4, examples=1)
    triples = with_facts(triples, maps_metadata(triples), [bomb])
    s = make_store({"run": {0: triples}})
    tracemalloc.start()
    try:
        text = stored_error(lambda: s.maps(CTX, "", "run", "layer", 0, 0, compressed=compressed), "damaged_data")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "inflates to more than the 32 bytes its shape promises" in text
    # The maps promise 32 bytes; everything the call allocated (messages,
    # protobuf copies) stays far below the 64 MiB the blob would inflate to.
    assert peak < 1 << 20, peak


def test_a_compressed_blob_is_answered_as_stored_only_when_asked_and_every_head_is_wanted():
    raw = encoding.encode_raw(np.full((2, 8, 8), 1 / 8, np.float32), encoding.UINT8)
    packed = zlib.compress(raw, 1)
    assert len(packed) < len(raw)
    triples = layer_step(heads=2, tokens=8, examples=1)
    triples = with_facts(triples, maps_metadata(triples), [packed])
    s = make_store({"run": {0: triples}})
    for _ in range(2):  # read and checked, then from the cache
        reply = s.maps(CTX, "", "run", "layer", 0, 0, compressed=True)
        assert reply.compressed and reply.data == packed and reply.shape == (2, 8, 8)
        reply = s.maps(CTX, "", "run", "layer", 0, 0)
        assert not reply.compressed and reply.data == raw
        reply = s.maps(CTX, "", "run", "layer", 0, 0, head=1, compressed=True)
        assert not reply.compressed and reply.data == raw[64:] and reply.shape == (1, 8, 8)
    # a raw stored blob stays raw whatever is asked
    triples = with_facts(triples, maps_metadata(triples), [raw])
    s = make_store({"run": {0: triples}})
    reply = s.maps(CTX, "", "run", "layer", 0, 0, compressed=True)
    assert not reply.compressed and reply.data == raw


@pytest.mark.parametrize("change, message", [
    (lambda d: setattr(d.examples[0], "query_length", -3), "declares query_length -3"),
    (lambda d: setattr(d.examples[1], "key_length", 5), "has 4 query and 4 key tokens for lengths 4 and 5"),
    (lambda d: setattr(d, "num_heads", 0), "declares 0 heads"),
    (lambda d: setattr(d, "num_heads", 1 << 30), "declares 1073741824 heads"),
    (lambda d: setattr(d, "encoding", 7), "unknown encoding (7)"),
    (lambda d: d.ClearField("examples"), "declares no probe example"),
])
def test_inconsistent_metadata_is_422_on_every_route_and_listed_as_skipped(change, message):
    triples = layer_step()
    data = maps_metadata(triples)
    change(data)
    s = make_store({"run": {0: replace(triples, PluginData.MAPS, data=data)}})
    text = stored_error(lambda: s.maps(CTX, "", "run", "layer", 0, 0), "damaged_data")
    assert text.startswith("run 'run' layer 'layer': metadata ") and message in text
    stored_error(lambda: s.series(CTX, "", "run", "layer", PluginData.IMPORTANCE, 0, "received"), "damaged_data")
    layers, skipped = s.layers(CTX, "")
    assert layers == [] and skipped == [("run", "layer", "metadata " + text.split(": metadata ", 1)[1])]


def test_maps_stored_reduced_are_served_rebuilt_within_the_error_they_state_and_damage_is_422():
    triples = layer_step(heads=2, tokens=300, examples=2, storage="reduced")
    rng = np.random.default_rng(0)  # layer_step's scores, recomputed
    logits = rng.normal(size=(2, 2, 300, 300)).astype(np.float32)
    truth = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    s = make_store({"run": {0: triples}})
    reply = s.maps(CTX, "", "run", "layer", 0, 1)
    assert reply.shape == (2, 300, 300) and reply.encoding == encoding.UINT8 and not reply.compressed
    served = np.frombuffer(reply.data, np.uint8).reshape(reply.shape) / 255.0
    assert 0 < np.abs(served - truth[1]).max() <= reply.max_error + 1e-6
    head1 = s.maps(CTX, "", "run", "layer", 0, 1, head=1)
    assert head1.shape == (1, 300, 300) and head1.data == reply.data[300 * 300:]
    facts = maps_metadata(triples)
    assert (facts.storage, facts.top_k, facts.block_size) == (PluginData.REDUCED, 8, 3)
    # A reduced blob cut short, or facts that cannot describe one: 422, never 500.
    blobs = array_of(triples, PluginData.MAPS).copy()
    blobs[1] = blobs[1][:100]
    cut = make_store({"run": {0: replace(triples, PluginData.MAPS, array=blobs)}})
    assert "maps blob of" in stored_error(lambda: cut.maps(CTX, "", "run", "layer", 0, 1), "damaged_data")
    facts.top_k = 0
    blobs = array_of(triples, PluginData.MAPS).copy()
    blobs[-1] = facts.SerializeToString()
    bad = make_store({"run": {0: replace(triples, PluginData.MAPS, array=blobs, data=facts)}})
    text = stored_error(lambda: bad.maps(CTX, "", "run", "layer", 0, 0), "damaged_data")
    assert "of reduced maps declares top_k 0 and blocks of 3" in text


def test_a_newer_format_version_is_422_saying_upgrade():
    triples = layer_step()
    data = maps_metadata(triples)
    data.version = metadata.PROTO_VERSION + 1
    s = make_store({"run": {0: replace(triples, PluginData.MAPS, data=data)}})
    text = stored_error(lambda: s.maps(CTX, "", "run", "layer", 0, 0), "newer_format")
    assert "version 4 is newer than this reader (3): upgrade tb-attention" in text
    assert len(s.layers(CTX, "")[1]) == 1


def test_a_derived_tag_of_a_newer_version_is_422_too():
    triples = layer_step()
    s = make_store({"run": {0: replace(triples, PluginData.HEAD_STATS,
                                       data=PluginData(role=PluginData.HEAD_STATS, layer="layer", version=9))}})
    text = stored_error(lambda: s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0), "newer_format")
    assert text == ("tag 'layer/_head_stats' of run 'run': attention summary format version 9 is newer "
                    "than this reader (3): upgrade tb-attention")


@pytest.mark.parametrize("role, array, message", [
    (PluginData.IMPORTANCE, np.zeros((1, 2, 3, 4), np.float32),
     "importance of example 0 of run 'run' layer 'layer' at step 2 has shape (1, 2, 3, 4); "
     "its metadata declares (2, 3, >=4)"),
    (PluginData.IMPORTANCE, np.zeros((2, 3, 3), np.float32), "declares (2, 3, >=4)"),
    (PluginData.IMPORTANCE, np.zeros((2, 3), np.float32), "has shape (2, 3);"),
    (PluginData.HEAD_STATS, np.zeros((2, 1, 3), np.float32),
     "head_stats of run 'run' layer 'layer' at step 2 has shape (2, 1, 3); its metadata declares (2, 2, 3)"),
    (PluginData.HEAD_STATS, np.zeros((2, 2, 4), np.float32), "declares (2, 2, 3)"),
    (PluginData.ROLLOUT, np.zeros((2, 3), np.float32), "declares (2, >=4)"),
    (PluginData.ROLLOUT, np.array([[b"a"] * 4] * 2, dtype=object), "holds object values, not floats"),
    (PluginData.HEAD_STATS, np.zeros((2, 2, 3), np.int32), "holds int32 values, not floats"),
    (PluginData.HEAD_METRICS, np.zeros((2, 2, 3), np.float32),
     "head_metrics of run 'run' layer 'layer' at step 2 has shape (2, 2, 3); its metadata declares (2, 2, 12)"),  # len(METRIC_NAMES)
    (PluginData.HEAD_METRICS, np.zeros((2, 2), np.float32), "has shape (2, 2);"),
    (PluginData.VALUE_NORMS, np.zeros((2, 2, 3), np.float32),
     "value_norms of run 'run' layer 'layer' at step 2 has shape (2, 2, 3); its metadata declares (2, 2, >=4)"),
    (PluginData.VALUE_NORMS, np.zeros((2, 4), np.float32), "has shape (2, 4);"),
    (PluginData.VALUE_METRICS, np.zeros((2, 3, 12), np.float32), "declares (2, 2, 12)"),
])
def test_a_derived_tensor_of_the_wrong_shape_or_dtype_is_422_naming_both_shapes(role, array, message):
    triples = layer_step(heads=2, tokens=4, examples=2, value_norms=True)
    s = make_store({"run": {1: triples, 2: replace(triples, role, array)}})
    mode = "received" if role == PluginData.IMPORTANCE else None
    text = stored_error(lambda: s.series(CTX, "", "run", "layer", role, 0, mode), "damaged_data")
    assert message in text


def test_non_finite_statistics_are_kept_for_the_routes_to_send_as_null():
    triples = layer_step(heads=2, tokens=4, examples=2)
    stats = array_of(triples, PluginData.HEAD_STATS).copy()
    stats[0, 1, 0] = np.nan
    stats[0, 0, 1] = np.inf
    s = make_store({"run": {0: replace(triples, PluginData.HEAD_STATS, stats)}})
    _, _, values, _ = s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0)
    assert np.isnan(values[0, 1, 0]) and np.isinf(values[0, 0, 1])


def test_fewer_blobs_than_examples_is_422():
    triples = layer_step(examples=2)
    blobs = triples[0][1]
    triples[0] = (triples[0][0], blobs[[0, 2]], triples[0][2])  # example 0, then the facts
    s = make_store({"run": {0: triples}})
    assert "run 'run' layer 'layer' at step 0 holds 1 maps blobs; its facts declare 2 examples" in stored_error(
        lambda: s.maps(CTX, "", "run", "layer", 0, 0), "damaged_data")
    triples[0] = (triples[0][0], blobs[:1], triples[0][2])  # no facts blob: its last blob is a map
    s = make_store({"run": {0: triples}})
    assert "facts blob of run 'run' layer 'layer' at step 0: " in stored_error(
        lambda: s.maps(CTX, "", "run", "layer", 0, 0), "damaged_data")


def test_unknown_run_layer_step_example_and_head_are_404():
    s = make_store({"run": {0: layer_step(heads=2, examples=2)}})
    for args, message in [
        (("nope", "layer", 0, 0), "no attention layer 'layer' in run 'nope'"),
        (("run", "nope", 0, 0), "no attention layer 'nope' in run 'run'"),
        (("run", "layer/_importance", 0, 0), "no attention layer 'layer/_importance'"),
        (("run", "layer", 1, 0), "has no capture at step 1"),
        (("run", "layer", 0, 2), "example 2 out of range: the probe of layer 'layer' has 2 examples (0..1)"),
        (("run", "layer", 0, 0, 2), "head 2 out of range 0..1"),
    ]:
        with pytest.raises(errors.NotFoundError, match=message.replace("(", r"\(").replace(")", r"\)")):
            s.maps(CTX, "", *args)


def test_maps_larger_than_the_plugins_limit_are_refused_before_reading():
    triples = layer_step(heads=2, tokens=4, examples=1)
    data = maps_metadata(triples)
    data.num_heads = 4096
    tokens = ["t"] * 200
    del data.examples[:]
    data.examples.add(query_tokens=tokens, key_tokens=tokens, query_length=200, key_length=200)
    s = make_store({"run": {0: with_facts(triples, data)}})
    text = stored_error(lambda: s.maps(CTX, "", "run", "layer", 0, 0), "too_large")
    assert "4096x200x200 = 156 MiB, over the plugin's limit of 64 MiB" in text


def test_rustboards_blob_key_limitation_names_the_run_and_the_flag():
    s = make_store({'say "hi"': {0: layer_step()}}, rustboard=True, reject_blob_keys=True)
    text = stored_error(lambda: s.maps(CTX, "", 'say "hi"', "layer", 0, 0), "reader_limitation")
    assert "in 'say \"hi\"'" in text and "--load_fast=false" in text
    # the same failure on a plain name is TensorBoard's own 400, passed on
    s = make_store({"plain": {0: layer_step()}}, rustboard=True, reject_blob_keys=True)
    with pytest.raises(errors.InvalidArgumentError):
        s.maps(CTX, "", "plain", "layer", 0, 0)


def test_a_tensor_the_reader_cannot_decode_is_422_naming_the_tag():
    fake = FakeProvider({"run": {0: layer_step()}})

    def damaged(*args, **kwargs):  # what make_ndarray raises on content shorter than its shape
        raise ValueError("cannot reshape array of size 3 into shape (2,2,3)")

    fake.read_tensors = damaged
    s = store.Store(lambda method, ctx, **kw: getattr(fake, method)(ctx, **kw))
    text = stored_error(lambda: s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0), "damaged_data")
    assert text == ("TensorBoard's reader could not decode tag 'layer/_head_stats' of run 'run': "
                    "ValueError: cannot reshape array of size 3 into shape (2,2,3)")


def test_the_index_lists_a_layer_whose_blobs_the_reader_cannot_decode_as_skipped():
    from tensorboard.plugins import base_plugin

    from tb_attention_plugin.serving.attention_plugin import AttentionPlugin

    fake = FakeProvider({"good": {0: layer_step()}, "bad": {0: layer_step()}})
    read = fake.read_blob_sequences

    def damaged(ctx, **kwargs):
        if "bad" in kwargs["run_tag_filter"].runs:  # as the in-process reader's make_ndarray may
            raise ValueError("cannot reshape array")
        return read(ctx, **kwargs)

    fake.read_blob_sequences = damaged
    plugin = AttentionPlugin(base_plugin.TBContext(data_provider=fake, flags=None))
    index = plugin.index_impl(CTX, "")
    assert [r["run"] for r in index["runs"]] == ["good"]
    assert index["skipped"] == [{"run": "bad", "tag": "layer", "reason":
                                 "TensorBoard's reader could not decode tag 'layer' of run 'bad': "
                                 "ValueError: cannot reshape array"}]


def test_json_values_are_rounded_and_non_finite_ones_are_null():
    from tb_attention_plugin.serving.attention_plugin import finite_lists

    values = np.array([[0.1234567, np.nan], [np.inf, -np.inf]], np.float32)
    assert finite_lists(values) == [[0.123457, None], [None, None]]
    assert finite_lists(np.zeros((0, 3), np.float32)) == []


# -- steps of several facts, format version 1, empty examples ------------------


def _plugin(runs):
    from tensorboard.plugins import base_plugin

    from tb_attention_plugin.serving.attention_plugin import AttentionPlugin

    fake = FakeProvider(runs)
    return AttentionPlugin(base_plugin.TBContext(data_provider=fake, flags=None))


def test_steps_with_other_facts_are_left_out_of_the_layer_and_their_maps_decode_with_their_own():
    old = {s: layer_step(heads=2, tokens=4, seed=s) for s in (0, 1, 2)}
    new = {s: layer_step(heads=3, tokens=6, seed=s, word="w") for s in (3, 4)}
    plugin = _plugin({"run": {**old, **new}})
    (layer,) = plugin.index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["steps"] == [3, 4] and layer["num_heads"] == 3
    assert layer["examples"][0]["key_tokens"] == ["w%d" % i for i in range(6)]
    assert layer["other_shapes"] == {"steps": 3, "first": 0, "last": 2}
    s = plugin.store
    reply = s.maps(CTX, "", "run", "layer", 1, 1)
    assert reply.shape == (2, 4, 4) and reply.other_facts and list(reply.facts.examples[1].key_tokens)[0] == "t0"
    assert reply.data == encoding.raw_bytes(old[1][0][1][1], encoding.UINT8, 32)
    reply = s.maps(CTX, "", "run", "layer", 4, 1, head=2)
    assert reply.shape == (1, 6, 6) and not reply.other_facts
    assert reply.data == encoding.raw_bytes(new[4][0][1][1], encoding.UINT8, 108)[72:]
    with pytest.raises(errors.NotFoundError, match="head 2 out of range 0..1"):
        s.maps(CTX, "", "run", "layer", 1, 0, head=2)
    for role, mode, shape in ((PluginData.IMPORTANCE, "received", (2, 4, 6)), (PluginData.HEAD_STATS, None, (2, 3, 3)),
                              (PluginData.ROLLOUT, None, (2, 6))):
        _, steps, values, _ = s.series(CTX, "", "run", "layer", role, 0, mode)
        assert steps == [3, 4] and values.shape == shape, (role, values.shape)
    np.testing.assert_array_equal(s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 1)[2][1],
                                  array_of(new[4], PluginData.HEAD_STATS)[1])


def test_the_newest_steps_facts_win_even_when_older_facts_come_back():
    runs = {"run": {0: layer_step(heads=2), 1: layer_step(heads=3), 2: layer_step(heads=2, seed=2)}}
    (layer,) = _plugin(runs).index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["steps"] == [0, 2] and layer["num_heads"] == 2
    assert layer["other_shapes"] == {"steps": 1, "first": 1, "last": 1}


def test_format_version_1_without_facts_blobs_is_served_with_the_metadatas_facts():
    steps = {0: without_facts(layer_step(heads=2, tokens=4)), 5: without_facts(layer_step(heads=2, tokens=4, seed=5))}
    plugin = _plugin({"run": steps})
    (layer,) = plugin.index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["steps"] == [0, 5] and layer["other_shapes"] is None and layer["num_heads"] == 2
    reply = plugin.store.maps(CTX, "", "run", "layer", 5, 1)
    assert reply.shape == (2, 4, 4) and not reply.other_facts
    assert reply.data == encoding.raw_bytes(steps[5][0][1][1], encoding.UINT8, 32)
    _, series_steps, values, _ = plugin.store.series(CTX, "", "run", "layer", PluginData.IMPORTANCE, 0, "received")
    assert series_steps == [0, 5] and values.shape == (2, 3, 4)


def test_a_version_1_tag_continued_by_a_version_2_writer_of_another_shape():
    runs = {"run": {0: without_facts(layer_step(heads=2, tokens=4)), 1: layer_step(heads=1, tokens=3)}}
    plugin = _plugin(runs)
    (layer,) = plugin.index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["steps"] == [1] and layer["num_heads"] == 1
    assert layer["other_shapes"] == {"steps": 1, "first": 0, "last": 0}
    assert plugin.store.maps(CTX, "", "run", "layer", 0, 0).shape == (2, 4, 4)
    assert plugin.store.maps(CTX, "", "run", "layer", 1, 0).shape == (1, 3, 3)


@pytest.mark.parametrize("facts_blob, message", [
    (b"\xff\xff", "facts blob of run 'run' layer 'layer' at step 1: unreadable metadata"),
    (PluginData(role=PluginData.IMPORTANCE, layer="layer").SerializeToString(),
     "facts blob of run 'run' layer 'layer' at step 1: declares role 2 of layer 'layer', not the maps of 'layer'"),
    (PluginData(role=PluginData.MAPS, layer="layer", version=7).SerializeToString(), "upgrade tb-attention"),
    (b"x" * (store.MAX_FACTS_BYTES + 1), "facts blob of run 'run' layer 'layer' at step 1 is 16777217 bytes, over 16 MiB"),
])
def test_a_damaged_facts_blob_is_422_and_the_layer_is_listed_as_skipped(facts_blob, message):
    damaged = layer_step(seed=1)
    blobs = damaged[0][1].copy()
    blobs[-1] = facts_blob
    damaged[0] = (damaged[0][0], blobs, damaged[0][2])
    plugin = _plugin({"run": {0: layer_step(), 1: damaged}})
    kind = "newer_format" if "upgrade" in message else "damaged_data"
    assert message in stored_error(lambda: plugin.store.maps(CTX, "", "run", "layer", 1, 0), kind)
    assert message in stored_error(
        lambda: plugin.store.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0), kind)
    index = plugin.index_impl(CTX, "")
    assert index["runs"] == [] and message in index["skipped"][0]["reason"]
    # the healthy step's maps still decode: its facts and the newest step's are read apart
    assert plugin.store.maps(CTX, "", "run", "layer", 0, 0).other_facts


def test_an_example_that_is_all_padding_is_an_empty_map_with_null_statistics():
    mask = np.array([[True] * 4, [False] * 4])
    plugin = _plugin({"run": {0: layer_step(mask=mask), 1: layer_step(mask=mask, seed=1)}})
    (layer,) = plugin.index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["examples"][1] == {"query_tokens": [], "key_tokens": [], "query_offset": 0, "key_offset": 0,
                                    "query_length": 0, "key_length": 0}
    reply = plugin.store.maps(CTX, "", "run", "layer", 1, 1)
    assert (reply.data, reply.shape) == (b"", (2, 0, 0))
    assert plugin.store.maps(CTX, "", "run", "layer", 1, 1, head=1).shape == (1, 0, 0)
    stats = plugin.head_stats_impl(CTX, "", "run", "layer", 1)
    assert stats["entropy"] == [[None, None], [None, None]] and stats["steps"] == [0, 1]
    assert all(v is not None for v in np.ravel(plugin.head_stats_impl(CTX, "", "run", "layer", 0)["max_weight"]))
    assert plugin.importance_impl(CTX, "", "run", "layer", 1)["values"] == [[[], [], []], [[], [], []]]
    assert plugin.rollout_impl(CTX, "", "run", "layer", 1)["values"] == [[], []]


def test_a_layer_whose_every_example_is_empty_is_served():
    mask = np.zeros((2, 4), bool)
    plugin = _plugin({"run": {0: layer_step(mask=mask)}})
    (layer,) = plugin.index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["steps"] == [0] and [e["key_length"] for e in layer["examples"]] == [0, 0]
    assert plugin.store.maps(CTX, "", "run", "layer", 0, 0).shape == (2, 0, 0)
    assert plugin.head_stats_impl(CTX, "", "run", "layer", 0)["mean_distance"] == [[None, None]]
    assert plugin.importance_impl(CTX, "", "run", "layer", 0, "given")["values"] == [[[], [], []]]
    assert plugin.rollout_impl(CTX, "", "run", "layer", 0)["values"] == [[]]


# -- long layers: few facts blobs read, series downsampled -------------------------


def _counting_store(runs):
    """(store, reads): a store over FakeProvider whose read_blob calls are counted."""
    fake = FakeProvider(runs)
    reads = []

    def call(method, ctx, **kw):
        if method == "read_blob":
            reads.append(kw["blob_key"])
        return getattr(fake, method)(ctx, **kw)

    return store.Store(call), reads


def test_a_long_layer_reads_few_facts_blobs_and_finds_where_its_facts_change():
    old, new = layer_step(heads=2, tokens=4), layer_step(heads=3, tokens=4, word="w")
    s, reads = _counting_store({"run": {step: old if step < 137 else new for step in range(200)}})
    timeline = s.timeline(CTX, "", s.layer(CTX, "", "run", "layer"))
    assert timeline.steps == list(range(137, 200)) and timeline.other_steps == list(range(137))
    assert timeline.layer.info.num_heads == 3
    assert len(reads) <= store.FACTS_SAMPLES + 8  # the samples, then a bisection of one gap (log2 of 7 steps)
    assert s.maps(CTX, "", "run", "layer", 136, 0).other_facts and not s.maps(CTX, "", "run", "layer", 137, 0).other_facts


def test_a_run_of_other_shapes_between_the_read_steps_is_left_out_of_the_series():
    # steps 53-55 hold 3 heads; the timeline reads steps 51 and 58 (2 heads) and takes them for 2 heads too
    runs = {"run": {step: layer_step(heads=3 if 53 <= step <= 55 else 2, seed=step % 3) for step in range(200)}}
    s, _ = _counting_store(runs)
    _, steps, stats, total = s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0, max_points=1000)
    assert steps == [step for step in range(200) if not 53 <= step <= 55] and stats.shape == (197, 2, 3)
    assert total == 200  # the timeline's count, which still holds them
    assert s.maps(CTX, "", "run", "layer", 54, 0).shape == (3, 4, 4)  # its own facts decode its maps


def test_a_damaged_tensor_at_a_step_whose_facts_were_not_read_is_still_422():
    runs = {"run": {step: layer_step(seed=step % 3) for step in range(200)}}
    runs["run"][54] = replace(runs["run"][54], PluginData.HEAD_STATS, np.zeros((2, 5, 3), np.float32))
    s, _ = _counting_store(runs)
    text = stored_error(lambda: s.series(CTX, "", "run", "layer", PluginData.HEAD_STATS, 0), "damaged_data")
    assert "head_stats of run 'run' layer 'layer' at step 54 has shape (2, 5, 3)" in text


# Example 1 keeps 2 of its 4 tokens: its importance is shorter than the
# combined tag of older writers, which pads every example to the longest.
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)


def _importance_logs():
    """{name: steps}: importance as older writers stored it (one tag of every
    example), as this writer does (one tag per example), and a run an older
    writer began and this one continued."""
    step = lambda s: layer_step(heads=2, tokens=4, examples=2, seed=s, mask=MASK)
    old = {s: with_combined_importance(step(s)) for s in (0, 5)}
    new = {s: step(s) for s in (10, 15)}
    return {"older writer": old, "per example": new, "continued": {**old, **new}}


@pytest.mark.parametrize("log", ["older writer", "per example", "continued"])
def test_importance_is_served_from_either_layout_and_from_a_run_that_mixes_them(log):
    steps = _importance_logs()[log]
    s = make_store({"run": steps})
    for example, length in ((0, 4), (1, 2)):
        for row, mode in enumerate(metadata.IMPORTANCE_MODES):
            _, served, values, total = s.series(CTX, "", "run", "layer", PluginData.IMPORTANCE, example, mode)
            assert served == sorted(steps) and total == len(steps) and values.shape == (len(steps), 3, length)
            for step, value in zip(served, values):
                expected = array_of(layer_step(heads=2, tokens=4, examples=2, seed=step, mask=MASK),
                                    PluginData.IMPORTANCE, example)
                np.testing.assert_array_equal(value, expected[row, :, :length])
            if example == 0:  # all 4 tokens kept, rows sum to 1: by hand, both modes hold 4 in all per head
                np.testing.assert_allclose(values.sum(-1), 4, rtol=1e-5)  # float32 rounding of 16 terms
    # downsampled across both layouts: the first and the newest step kept
    _, served, _, _ = s.series(CTX, "", "run", "layer", PluginData.IMPORTANCE, 1, "received", max_points=2)
    assert served == [min(steps), max(steps)]


@pytest.mark.parametrize("log", ["older writer", "per example", "continued"])
def test_read_attention_reads_importance_from_either_layout(tmp_path, log):
    from tb_attention_plugin import read_attention

    steps = _importance_logs()[log]
    write_run(tmp_path / "run", steps)
    layer = read_attention(tmp_path)["run"]["layer"]
    assert layer.steps.tolist() == sorted(steps)
    for example, length in ((0, 4), (1, 2)):
        assert layer.received[example].shape == layer.given[example].shape == (len(steps), 3, length)
        for i, step in enumerate(sorted(steps)):
            expected = array_of(layer_step(heads=2, tokens=4, examples=2, seed=step, mask=MASK),
                                PluginData.IMPORTANCE, example)
            np.testing.assert_array_equal(layer.received[example][i], expected[0, :, :length])
            np.testing.assert_array_equal(layer.given[example][i], expected[1, :, :length])


def test_series_are_downsampled_to_max_points_evenly_with_the_first_and_newest_step():
    runs = {"run": {step: layer_step(seed=step) for step in range(0, 300, 10)}}
    plugin = _plugin(runs)
    reply = plugin.importance_impl(CTX, "", "run", "layer", 1, "received", head=2, max_points=4)
    assert reply["steps"] == [0, 100, 190, 290] and reply["steps_total"] == 30 and reply["downsampled"]
    np.testing.assert_allclose(reply["values"][1], array_of(runs["run"][100], PluginData.IMPORTANCE, 1)[0, 2],
                               atol=1e-6)  # float32 read back as stored
    stats = plugin.head_stats_impl(CTX, "", "run", "layer", 0)
    assert stats["steps"] == list(range(0, 300, 10)) and not stats["downsampled"] and stats["steps_total"] == 30
    assert store.pick_steps([5, 6, 7], 1) == [7] and store.pick_steps([5, 6, 7], 3) == [5, 6, 7]


# -- head metrics and probe images (the heads view, the image view) ------------


def _stored(triples, role):
    (array,) = [a for _, a, meta in triples if plugin_data(meta).role == role]
    return array


def test_head_metrics_serve_one_metric_of_every_head_over_steps():
    from tb_attention_plugin.math import head_metrics

    steps = {0: layer_step(heads=2, tokens=4, seed=0), 5: layer_step(heads=2, tokens=4, seed=1)}
    plugin = _plugin({"run": steps})
    (layer,) = plugin.index_impl(CTX, "")["runs"][0]["layers"]
    assert layer["metric_names"] == list(head_metrics.METRIC_NAMES)
    column = head_metrics.METRIC_NAMES.index("confidence")
    reply = plugin.head_metrics_impl(CTX, "", "run", "layer", 1, "confidence")
    assert reply["steps"] == [0, 5] and reply["num_heads"] == 2 and not reply["downsampled"]
    for s, step in enumerate((0, 5)):
        # example 1's mean max weight per head, as the writer stored it; the
        # reply rounds to 6 decimals, hence 5e-7.
        np.testing.assert_allclose(reply["values"][s], _stored(steps[step], PluginData.HEAD_METRICS)[1, :, column],
                                   atol=5e-7)
        assert all(0.25 <= v <= 1 for v in reply["values"][s])  # max of a 4-key softmax row
    with pytest.raises(errors.InvalidArgumentError, match="metric must be one of entropy, "):
        plugin.head_metrics_impl(CTX, "", "run", "layer", 0, "loss")
    with pytest.raises(errors.NotFoundError, match="example 2 out of range"):
        plugin.head_metrics_impl(CTX, "", "run", "layer", 2, "entropy")


def test_a_metric_that_does_not_apply_is_null_and_a_layer_without_metrics_is_404():
    from tb_attention_plugin.math import head_metrics

    triples = layer_step(heads=2, tokens=4)
    # every token differs: no induction to measure (NaN, sent as null)
    reply = _plugin({"run": {0: triples}}).head_metrics_impl(CTX, "", "run", "layer", 0, "induction")
    assert reply["values"] == [[None, None]]
    older = [t for t in triples if plugin_data(t[2]).role != PluginData.HEAD_METRICS]
    plugin = _plugin({"run": {0: older}})
    assert plugin.index_impl(CTX, "")["runs"][0]["layers"][0]["metric_names"] == []
    with pytest.raises(errors.NotFoundError, match="has no head metrics"):
        plugin.head_metrics_impl(CTX, "", "run", "layer", 0, "entropy")
    data = plugin_data(next(meta for _, _, meta in triples if plugin_data(meta).role == PluginData.HEAD_METRICS))
    assert data.role == PluginData.HEAD_METRICS and list(data.metric_names) == list(head_metrics.METRIC_NAMES)
    del data.metric_names[:]
    plugin = _plugin({"run": {0: replace(triples, PluginData.HEAD_METRICS, data=data)}})
    assert plugin.index_impl(CTX, "")["runs"][0]["layers"][0]["metric_names"] == []  # index still answers
    text = stored_error(lambda: plugin.head_metrics_impl(CTX, "", "run", "layer", 0, "entropy"), "damaged_data")
    assert "tag 'layer/_head_metrics' of run 'run' names 0 metrics (1..256 expected)" in text


def _probe_images(count):
    from tb_attention_plugin.writing import summary

    rng = np.random.default_rng(0)
    tag, tensor, meta = summary.probe_images([rng.integers(0, 255, (6, 4, 3), dtype=np.uint8) for _ in range(count)])
    return tag, np.asarray(tensor, dtype=object), meta


def test_probe_images_are_listed_per_run_and_served_as_the_first_pngs_stored():
    import tensorflow as tf

    first, later = _probe_images(2), _probe_images(3)
    plugin = _plugin({"img": {0: layer_step() + [first], 4: layer_step() + [later]}, "text": {0: layer_step()}})
    runs = {r["run"]: r for r in plugin.index_impl(CTX, "")["runs"]}
    assert runs["img"]["probe_images"] == 2 and runs["text"]["probe_images"] == 0
    png = plugin.store.probe_image(CTX, "", "img", 1)
    assert png == bytes(first[1][1]) and tf.io.decode_png(png).shape == (6, 4, 3)
    with pytest.raises(errors.NotFoundError, match="example 2 out of range: run 'img' stored 2 probe images"):
        plugin.store.probe_image(CTX, "", "img", 2)
    with pytest.raises(errors.NotFoundError, match="run 'text' has no probe images"):
        plugin.store.probe_image(CTX, "", "text", 0)
    damaged = (first[0], np.array([b"GIF89a...", b"x"], dtype=object), first[2])
    s = make_store({"img": {0: layer_step() + [damaged]}})
    assert "probe image 0 of run 'img' is not a PNG image" in stored_error(
        lambda: s.probe_image(CTX, "", "img", 0), "damaged_data")


def test_a_patch_grid_is_listed_and_one_that_does_not_fit_the_tokens_is_damaged():
    triples = layer_step(heads=2, tokens=5)
    data = plugin_data(triples[0][2])
    data.grid_rows, data.grid_cols, data.grid_prefix = 2, 2, 1  # CLS + 2 x 2 patches = 5 tokens
    layer = _plugin({"run": {0: with_facts(triples, data)}}).index_impl(CTX, "")["runs"][0]["layers"][0]
    assert layer["grid"] == {"rows": 2, "cols": 2, "prefix": 1} and layer["probe_examples"] == 0
    for rows, cols, prefix, message in [
        (2, 3, 1, "of example 0 has 5 keys; its 2 x 3 grid after 1 tokens needs 7"),
        (0, 2, 1, "declares a patch grid of 0 x 2 after 1 tokens"),
        (2, 2, -1, "declares a patch grid of 2 x 2 after -1 tokens"),
    ]:
        data.grid_rows, data.grid_cols, data.grid_prefix = rows, cols, prefix
        index = _plugin({"run": {0: with_facts(triples, data)}}).index_impl(CTX, "")
        assert index["runs"] == [] and message in index["skipped"][0]["reason"]


def test_value_norms_are_served_at_every_step_of_a_log_longer_than_max_points():
    # The tab asks for the step it shows; an evenly spread subset of
    # MAX_POINTS steps (what the over-steps routes read) would leave most out.
    steps = store.MAX_POINTS + 7
    triples = [layer_step(heads=2, tokens=4, examples=1, seed=s, value_norms=True) for s in range(3)]
    plugin = _plugin({"run": {s: triples[s % 3] for s in range(steps)}})
    left_out = sorted(set(range(steps)) - set(store.pick_steps(list(range(steps)), store.MAX_POINTS)))
    assert left_out  # the case: steps the subset does not hold
    for step in left_out[:3] + [0, steps - 1]:
        reply = plugin.value_norms_impl(CTX, "", "run", "layer", 0, step)
        expected = array_of(triples[step % 3], PluginData.VALUE_NORMS)[0]
        assert reply["step"] == step
        np.testing.assert_allclose(reply["values"], expected, atol=1e-6)  # JSON rounds to 6 decimals
