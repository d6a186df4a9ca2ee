"""Which directory (TensorBoard run) a callback writes to, and from which step.

A log_dir is one TensorBoard run. Training the same model on the same probe
again (another `fit`, `initial_epoch`, a restored checkpoint, a re-run cell)
appends to it. A run holding attention of other layers, head counts or probe
tokens is never mixed with a new training: TensorBoard keeps one metadata per
tag, so mixed shapes would be read with the wrong facts. The new training
goes to a numbered sub-directory, `LOG_DIR/rerun_2`, `rerun_3`, ...: a run of
its own, inside every `--logdir` that shows LOG_DIR. The first candidate that
is empty or holds the same facts is taken, so re-running a changed script
twice appends to the same `rerun_N`.

Everything goes through TensorBoard's `tf.io.gfile` (TensorFlow's where it is
installed, so log dirs on GCS, S3 or HDFS work; else TensorBoard's stub:
local paths, and `s3://` with boto3).
"""

import dataclasses
import hashlib
import posixpath

import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat import tf as tf_or_stub
from tensorboard.compat.proto import event_pb2

from tb_attention_plugin.format import metadata
from tb_attention_plugin.format import reader
from tb_attention_plugin.writing import summary

PluginData = metadata.PluginData

RERUN_PREFIX = "rerun_"
# A run directory has at most this many numbered reruns looked at; a log_dir
# re-used with 1000 different models is a mistake to report, not to scan.
MAX_RERUNS = 1000


@dataclasses.dataclass
class RunState:
    """The attention already in one run directory."""

    facts: dict  # layer -> facts (AttentionPluginData) of its newest step; empty: no attention
    last_step: int  # newest step of any attention tag; -1 when none


def probe_digest(probe):
    """sha256 (hex) of a probe: one array, or a nest of them (keys, dtypes,
    shapes and bytes), so the same examples give the same digest in any
    process."""
    digest = hashlib.sha256()
    for path, array in _flatten_with_paths(probe):
        array = np.ascontiguousarray(array)
        digest.update(repr((path, array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _flatten_with_paths(nest, path=()):
    if isinstance(nest, dict):
        for key in sorted(nest, key=str):
            yield from _flatten_with_paths(nest[key], path + (str(key),))
    elif isinstance(nest, (list, tuple)):
        for i, item in enumerate(nest):
            yield from _flatten_with_paths(item, path + (i,))
    else:
        yield path, np.asarray(nest)


def facts_of_serialized(serialized):
    """{layer: facts (AttentionPluginData)} of one capture as
    `summary.serialize` made it."""
    return {info.layer: info for info, _ in summary.items_of_role(serialized, PluginData.MAPS)
            if not info.relevance_of}  # a layer's relevance is no layer: asking for it starts no new run


def same_facts(stored, new):
    """Whether two {layer: facts} decode and display alike, layer by layer
    (metadata.shape_key: every fact but the version and rows_normalized)."""
    return set(stored) == set(new) and all(
        metadata.shape_key(stored[layer]) == metadata.shape_key(new[layer]) for layer in new
    )


def read_run(run_dir):
    """RunState of the event files directly in `run_dir` (not its
    sub-directories, which are other runs). A damaged or truncated file is
    read up to the damage."""
    newest = {}  # layer -> (step, LayerFacts)
    last_step = -1
    infos = {}  # tag -> AttentionPluginData of its metadata
    gfile = tf_or_stub.io.gfile
    for path in sorted(gfile.glob(posixpath.join(_glob_escape(run_dir), "*tfevents*"))):
        if gfile.isdir(path):
            continue
        for event in _events(path):
            for value in event.summary.value:
                info = _info_of(value, infos)
                if info is None:
                    continue
                last_step = max(last_step, event.step)
                if info.role != PluginData.MAPS or info.relevance_of:
                    continue
                facts = _step_facts(info, value)
                if facts is not None and event.step >= newest.get(info.layer, (-1, None))[0]:
                    newest[info.layer] = (event.step, facts)
    return RunState({layer: facts for layer, (_, facts) in newest.items()}, last_step)


def choose(log_dir, facts, known=None):
    """(run_dir, RunState, why) for a training whose layers have `facts`.

    `known`: {run_dir: RunState} of runs this process wrote itself, used
    instead of reading them again. `why` is None when log_dir itself is
    taken, else a sentence saying why another run was chosen.
    """
    known = known or {}
    why = None
    for number in range(1, MAX_RERUNS + 1):
        run_dir = log_dir if number == 1 else posixpath.join(log_dir, "%s%d" % (RERUN_PREFIX, number))
        state = known.get(run_dir) or read_run(run_dir)
        if not state.facts or same_facts(state.facts, facts):
            return run_dir, state, why
        if why is None:
            why = difference(state.facts, facts)
    raise ValueError(
        "%s already holds %d runs of other models or probes; pass a new log_dir"
        % (log_dir, MAX_RERUNS)
    )


def difference(stored, new):
    """One phrase saying how `stored` facts differ from `new` ones."""
    if set(stored) != set(new):
        only_there = sorted(set(stored) - set(new))
        only_here = sorted(set(new) - set(stored))
        parts = []
        if only_there:
            parts.append("layers %s only there" % ", ".join(only_there))
        if only_here:
            parts.append("layers %s only here" % ", ".join(only_here))
        return "it holds other layers (%s)" % "; ".join(parts)
    for layer in sorted(new):
        there, here = stored[layer], new[layer]
        if metadata.shape_key(there) == metadata.shape_key(here):
            continue
        if there.num_heads != here.num_heads:
            return "layer %s has %d heads there and %d here" % (layer, there.num_heads, here.num_heads)
        if len(there.examples) != len(here.examples):
            return "its probe has %d examples and this one %d" % (len(there.examples), len(here.examples))
        for i, (a, b) in enumerate(zip(there.examples, here.examples)):
            if a != b:
                return "example %d of layer %s has other tokens or lengths (%d x %d there, %d x %d here)" % (
                    i, layer, a.query_length, a.key_length, b.query_length, b.key_length)
        if there.probe_digest != here.probe_digest:
            return "its probe holds other inputs"
        return "layer %s has another kind, encoding, class or place in the model" % layer
    return "its facts differ"


def _events(path):
    """Events of one file, stopping quietly at a damaged or truncated record
    (a file being written, or one a full disk cut short): TensorBoard's own
    loader, which reads what TensorBoard will show."""
    try:
        for record in event_file_loader.RawEventFileLoader(path).Load():
            event = _parse_event(record)
            if event is not None and event.HasField("summary"):
                yield event
    except (tf_or_stub.errors.OpError, OSError):  # gone, or unreadable
        return


def _parse_event(data):
    try:
        return event_pb2.Event.FromString(data)
    except Exception:  # a damaged record whose checksum happened to pass
        return None


def _info_of(value, infos):
    """The AttentionPluginData of a summary value's tag, or None for tags of
    other plugins and unreadable metadata. Metadata may come only with a
    tag's first value."""
    plugin = value.metadata.plugin_data
    if plugin.plugin_name == metadata.PLUGIN_NAME and plugin.content:
        try:
            infos[value.tag] = metadata.parse_plugin_metadata(plugin.content)
        except Exception:  # newer or damaged: treat as unknown
            infos[value.tag] = None
    return infos.get(value.tag)


def _step_facts(info, value):
    """The facts of one MAPS value, by the reader's rule (reader.step_facts:
    its own facts blob, else the tag's metadata); None when damaged."""
    try:
        return reader.step_facts(info, value.tensor.string_val)[0]
    except Exception:
        return None


def _glob_escape(path):
    """`path` with glob characters escaped, for gfile.glob."""
    return "".join("[%s]" % c if c in "*?[" else c for c in path)
