"""Calls to TensorBoard's data provider without RustBoard's 40 ms stall.

RustBoard (tensorboard-data-server 0.7.2, TensorBoard's default reader) does
not set TCP_NODELAY on the connection it accepts from TensorBoard (strace of
the server: only the Python client sets it). A reply written in more than one
piece then waits for the client's ACK of the first piece, and Linux delays
that ACK by up to 40 ms while the client has nothing to send: on a quiet
server every `read_blob` and `list_tensors` took 44 ms (docs/PERFORMANCE.md).
Any request from the client carries the ACK, so while a call is pending we
send a tiny one (`list_plugins`) after 2 ms, then 4, 8, ... ms: the same calls
took 2.6-3.2 ms. With the in-process Python reader (`--load_fast=false`) there
is no connection and calls run directly.
"""

import concurrent.futures
import functools
import logging
import threading

from tb_attention_plugin.serving import tensor_reads

logger = logging.getLogger(__name__)

_FIRST_NUDGE_S = 0.002
_MAX_NUDGE_INTERVAL_S = 0.05
# Nudges in flight at once; more would add load, not speed.
_MAX_NUDGES = 2
# Provider calls running at once (TensorBoard serves each HTTP request on its
# own thread; those threads wait here).
_MAX_CALLS = 16


def is_rustboard(provider):
    """True when provider talks to the data server over gRPC."""
    try:
        from tensorboard.data import grpc_provider
    except ImportError:
        return False
    return isinstance(provider, grpc_provider.GrpcDataProvider)


class DataCalls:
    """Runs `provider.<method>(ctx, **kwargs)`; nudges pending calls when asked.

    `read_tensors_checked`, `read_blob_sequences_checked` and
    `read_blob_keys_checked` are the functions of `tensor_reads` on the
    provider.

    `nudges_sent` counts the nudges, for tests and benchmarks.
    """

    def __init__(self, provider, nudge):
        self._provider = provider
        self._nudge = nudge
        self.nudges_sent = 0
        if nudge:
            self._calls = concurrent.futures.ThreadPoolExecutor(_MAX_CALLS, "tb-attention-call")
            self._nudges = concurrent.futures.ThreadPoolExecutor(_MAX_NUDGES, "tb-attention-nudge")
            self._nudge_slots = threading.BoundedSemaphore(_MAX_NUDGES)

    def __call__(self, method, ctx, **kwargs):
        if method == "read_tensors_checked":  # see tensor_reads
            call = functools.partial(tensor_reads.read_tensors, self._provider)
        elif method == "read_blob_sequences_checked":
            call = functools.partial(tensor_reads.read_blob_sequences, self._provider)
        elif method == "read_blob_keys_checked":
            call = functools.partial(tensor_reads.read_blob_keys, self._provider)
        else:
            call = getattr(self._provider, method)
        if not self._nudge:
            return call(ctx, **kwargs)
        future = self._calls.submit(call, ctx, **kwargs)
        wait = _FIRST_NUDGE_S
        while not concurrent.futures.wait([future], timeout=wait).done:
            self._send_nudge(ctx)
            wait = min(2 * wait, _MAX_NUDGE_INTERVAL_S)
        return future.result()

    def _send_nudge(self, ctx):
        if self._nudge_slots.acquire(blocking=False):
            self.nudges_sent += 1
            self._nudges.submit(self._nudge_once, ctx)

    def _nudge_once(self, ctx):
        try:
            self._provider.list_plugins(ctx, experiment_id="")
        except Exception as e:  # a nudge only matters for its packets
            logger.debug("tb-attention: nudge failed: %s", e)
        finally:
            self._nudge_slots.release()
