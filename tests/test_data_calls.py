"""DataCalls against the real RustBoard data server: same answers as calling
the provider directly, errors unchanged, and nudges sent while a call waits."""

import subprocess
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorboard import context, errors
from tensorboard.backend.event_processing import data_provider as python_reader
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.data import grpc_provider

import tensorboard_data_server
from tb_attention_plugin.serving import data_calls
from tb_attention_plugin.format import metadata
from tb_attention_plugin.writing import summary

STEPS = 6


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data-calls")
    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(str(root / "run"))
    with writer.as_default():
        for step in range(STEPS):
            scores = rng.random((2, 4, 32, 32)).astype(np.float32)
            summary.attention("layer", scores / scores.sum(-1, keepdims=True), step=step)
    writer.close()
    return root


@pytest.fixture(scope="module")
def rustboard(logdir, tmp_path_factory):
    """A GrpcDataProvider on the real data server binary, once it has the data."""
    port_file = tmp_path_factory.mktemp("port") / "port"
    server = subprocess.Popen(
        [tensorboard_data_server.server_binary(), "--logdir", str(logdir), "--port", "0",
         "--port-file", str(port_file), "--die-after-stdin"],
        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        address = "localhost:%s" % port_file.read_text().strip()
        channel = grpc.insecure_channel(address)
        provider = grpc_provider.GrpcDataProvider(address, grpc_provider.make_stub(channel))
        ctx = context.RequestContext()
        while time.time() < deadline:
            if len(_blob_keys(provider, ctx)) == STEPS * 2:
                break
            time.sleep(0.2)
        yield provider
    finally:
        server.kill()
        server.wait()


def _blob_keys(call, ctx):
    if isinstance(call, data_calls.DataCalls):
        data = call("read_blob_sequences", ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME,
                    downsample=1000)
    else:
        data = call.read_blob_sequences(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME,
                                        downsample=1000)
    return [ref.blob_key for tag in data.get("run", {}).values() for datum in tag for ref in datum.values]


def test_rustboard_provider_is_recognised_and_the_python_reader_is_not(rustboard, logdir):
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    assert data_calls.is_rustboard(rustboard)
    assert not data_calls.is_rustboard(python_reader.MultiplexerDataProvider(multiplexer, str(logdir)))


def test_nudged_calls_return_what_direct_calls_return(rustboard):
    ctx = context.RequestContext()
    calls = data_calls.DataCalls(rustboard, nudge=True)
    keys = _blob_keys(calls, ctx)
    assert sorted(keys) == sorted(_blob_keys(rustboard, ctx))
    for key in keys:
        assert calls("read_blob", ctx, blob_key=key) == rustboard.read_blob(ctx, blob_key=key)
    direct = rustboard.list_tensors(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    nudged = calls("list_tensors", ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    assert {tag: s.max_step for tag, s in nudged["run"].items()} == {
        tag: s.max_step for tag, s in direct["run"].items()
    } == {tag: STEPS - 1 for tag in direct["run"]}
    # Each reply waits for an ACK unless nudged (44 ms without, measured in
    # docs/PERFORMANCE.md), so waiting calls must have sent nudges.
    assert calls.nudges_sent > 0


def test_errors_of_the_provider_come_through_unchanged(rustboard):
    ctx = context.RequestContext()
    calls = data_calls.DataCalls(rustboard, nudge=True)
    with pytest.raises(errors.InvalidArgumentError) as direct:
        rustboard.read_blob(ctx, blob_key="no-such-blob")
    with pytest.raises(errors.InvalidArgumentError) as nudged:
        calls("read_blob", ctx, blob_key="no-such-blob")
    assert str(nudged.value) == str(direct.value)
