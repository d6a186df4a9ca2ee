"""Writes whole captures into a run's event file, without TensorFlow.

One capture (every tag of every layer, the probe images once, head scalars
on request) is one `Event` holding one `Summary`, written as one record: a
capture is written whole or not at all (a record cut short by a full disk is
dropped whole by every reader), and it is serialized once instead of once
per tag (`python -m bench.writer_cost`: BENCHMARKS.md). The file is the
TFRecord event file `tf.summary` writes (a first event with
`file_version: "brain.Event:2"`, then one record per event: length,
masked CRC-32C of the length, data, masked CRC-32C of the data), read by
RustBoard, TensorBoard's Python reader and `read_attention` alike
(docs/FORMAT.md).

Paths go through TensorBoard's `tf.io.gfile`: TensorFlow's where it is
installed (`gs://`, `s3://`, `ram://`), else TensorBoard's stub (local paths,
`s3://` with boto3). CRC-32C comes from `google_crc32c` (C, installed with
this package); TensorBoard's own pure-Python one, which costs about 0.4 s per
MB, only where that is missing.

A tag's metadata is written with its first value in each event file, as
TensorFlow's writers do: readers keep a tag's first metadata (DESIGN.md),
and the maps' facts of every step are in their own blob anyway.
"""

import itertools
import os
import posixpath
import socket
import struct
import time

import numpy as np
from tensorboard.compat import tf as tf_or_stub
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.util import tensor_util

try:
    import google_crc32c

    def _crc32c(data):
        return google_crc32c.value(data)
except ImportError:  # pragma: no cover - installed with the package
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as _crc32c

_FILES = itertools.count()  # tells apart files opened in one second by one process


def _masked_crc(data):
    """TFRecord's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h)."""
    crc = _crc32c(data) & 0xFFFFFFFF
    return struct.pack("<I", ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF)


class EventWriter:
    """An event file in `run_dir`, opened on construction, that takes one
    capture at a time. Writes synchronously: the callback already writes
    on a background thread of its own, one capture at a time."""

    def __init__(self, run_dir):
        gfile = tf_or_stub.io.gfile
        gfile.makedirs(run_dir)
        name = "events.out.tfevents.%010d.%s.%d.%d.tb-attention" % (
            time.time(), socket.gethostname(), os.getpid(), next(_FILES))
        self.path = posixpath.join(run_dir, name) if "://" in run_dir else os.path.join(run_dir, name)
        self._file = gfile.GFile(self.path, "wb")
        self._described = set()  # tags whose metadata this file holds
        self._write_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def write(self, items, step, scalars=()):
        """Writes one capture as one Event at `step` (call `flush` to have it
        on disk).

        Args:
          items: (tag, numpy array, SummaryMetadata) of every tensor of the
            capture (summary.serialize, summary.probe_images).
          scalars: (tag, float) plain scalars for TensorBoard's Scalars tab.
        """
        summary = summary_pb2.Summary()
        for tag, array, summary_metadata in items:
            value = summary.value.add(tag=tag)
            value.tensor.CopyFrom(tensor_util.make_tensor_proto(np.asarray(array)))
            if tag not in self._described:
                value.metadata.CopyFrom(summary_metadata)
        for tag, number in scalars:
            summary.value.extend(scalar_summary.scalar_pb(tag, float(number)).value)
        self._write_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
        self._described.update(tag for tag, _, _ in items)

    def _write_event(self, event):
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + _masked_crc(header) + data + _masked_crc(data))

    def flush(self):
        """Puts every capture written so far on disk; raises what writing
        it raised (a full disk, a lost permission)."""
        self._file.flush()

    def close(self):
        self._file.close()
