"""Event files written by hand, for the plugin's tests of crafted or damaged data.

`layer_step` makes what `summary.attention` would write for one layer at one
step (the package's own prepare/serialize, so the content is real) as plain
(tag, numpy array, SummaryMetadata) triples that a test may then change;
`write_run` writes such steps as a TFRecord event file without TensorFlow's
writer, so a test can also damage the bytes (`records`, `frame`).
`with_facts` changes a step's facts (metadata and facts blob alike),
`without_facts` makes a step as format version 1 wrote it.
"""

import struct
import time

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.util import tensor_util

from tb_attention_plugin.format import metadata
from tb_attention_plugin.writing import summary

PluginData = metadata.PluginData


def layer_step(name="layer", heads=2, tokens=4, examples=2, seed=0, encoding="uint8", mask=None, word="t",
               storage="full", value_norms=False):
    """[(tag, array, SummaryMetadata)] of one step of a self-attention layer
    whose rows are softmax distributions (deterministic for a seed); `mask`
    (examples, tokens) marks the real tokens (default: all), tokens are
    `word` + position; `storage` "reduced" stores the maps reduced;
    `value_norms` adds value norms (and the value-weighted head metrics)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(examples, heads, tokens, tokens)).astype(np.float32)
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    words = [["%s%d" % (word, i) for i in range(tokens)]] * examples
    norms = rng.uniform(0.5, 2.0, (examples, heads, tokens)).astype(np.float32) if value_norms else None
    record = summary.prepare(name, scores, query_tokens=words, query_mask=mask, key_mask=mask,
                             encoding=encoding, layer_class="Crafted", value_norms=norms)
    record.rollout = [np.full(kl, 1.0 / max(kl, 1), np.float32) for _, (_, kl) in record.spans]
    record.rollout_stack = name
    record.storage = storage
    return [(tag, np.asarray(tensor), meta) for tag, tensor, meta in summary.serialize(record)]


def with_facts(triples, data, blobs=None):
    """triples whose maps tag carries `data` as both its metadata and its
    step's facts blob (the last blob), after the example blobs `blobs`
    (default: the ones it has)."""
    out = []
    for tag, array, meta in triples:
        if meta.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE:
            examples = list(array[:-1]) if blobs is None else list(blobs)
            array = np.array(examples + [data.SerializeToString()], dtype=object)
            meta = with_plugin_data(meta, data)
        out.append((tag, array, meta))
    return out


def without_facts(triples):
    """triples as format version 1 wrote them: no facts blob, metadata version 1."""
    out = []
    for tag, array, meta in triples:
        data = plugin_data(meta)
        data.version = 1
        if meta.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE:
            array = array[:-1]
        out.append((tag, array, with_plugin_data(meta, data)))
    return out


def repeated_value_tensor(shape, value=0.5):
    """A TensorProto (float, or string for a bytes value) that declares
    `shape` and holds one value (readers repeat it over the whole shape)."""
    if isinstance(value, bytes):
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[value])
    else:
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def plugin_data(summary_metadata):
    """The AttentionPluginData of a SummaryMetadata (a copy to change)."""
    return PluginData.FromString(summary_metadata.plugin_data.content)


def with_plugin_data(summary_metadata, data):
    """A copy of summary_metadata whose content is `data` (version kept as set)."""
    copy = summary_pb2.SummaryMetadata()
    copy.CopyFrom(summary_metadata)
    copy.plugin_data.content = data.SerializeToString()
    return copy


def replace(triples, role, array=None, data=None, example=None):
    """triples with the array (or the plugin data) of `role` replaced: of
    every tag of that role (importance has one per example), or with
    `example`, of that example's importance tag only."""
    out = []
    for tag, old, meta in triples:
        if plugin_data(meta).role == role and (example is None or tag.endswith("/%d" % example)):
            old = old if array is None else array
            meta = meta if data is None else with_plugin_data(meta, data)
        out.append((tag, old, meta))
    return out


def array_of(triples, role, example=None):
    """The array of the tag of `role` (importance: of `example`)."""
    (array,) = [a for tag, a, meta in triples if plugin_data(meta).role == role
                and (example is None or tag.endswith("/%d" % example))]
    return array


def with_combined_importance(triples):
    """triples as writers before per-example importance tags wrote them: one
    tag `NAME/_importance` of every example, (examples, 2, heads + 1, L)
    zero-padded to the longest example (metadata.tag_for)."""
    own = [(tag, a, meta) for tag, a, meta in triples if plugin_data(meta).role == PluginData.IMPORTANCE]
    rest = [t for t in triples if plugin_data(t[2]).role != PluginData.IMPORTANCE]
    arrays = [a for _, a, _ in sorted(own, key=lambda t: int(t[0].rsplit("/", 1)[1]))]
    combined = np.zeros((len(arrays),) + arrays[0].shape[:-1] + (max(a.shape[-1] for a in arrays),), np.float32)
    for i, a in enumerate(arrays):
        combined[i, ..., : a.shape[-1]] = a
    tag = own[0][0].rsplit("/", 1)[0]
    return rest[:1] + [(tag, combined, own[0][2])] + rest[1:]


def events(steps):
    """Event protos for {step: [(tag, array, SummaryMetadata)]}."""
    out = [event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")]
    for step, triples in sorted(steps.items()):
        for tag, array, meta in triples:
            tensor = array if isinstance(array, tensor_pb2.TensorProto) else tensor_util.make_tensor_proto(array)
            value = summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)
            out.append(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))
    return out


def frame(data):
    """One TFRecord: length, its masked CRC-32C, data, the data's CRC."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def records(event_list):
    """The bytes of an event file holding these events."""
    return b"".join(frame(e.SerializeToString()) for e in event_list)


def write_run(run_dir, steps=None, data=None):
    """Writes one event file into run_dir (created): the events of `steps`
    ({step: triples}) or the given bytes. Returns its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ("events.out.tfevents.%d.crafted" % int(time.time()))
    path.write_bytes(records(events(steps)) if data is None else data)
    return path
