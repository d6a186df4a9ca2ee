"""Reading captured attention back as numpy arrays, e.g. in a notebook.

    from tb_attention_plugin import read_attention
    runs = read_attention("logs")
    layer = runs["run1"]["mha"]
    layer.steps                 # (steps,) int
    layer.maps[0][-1]           # example 0 at the last step: (heads, q, k)
    layer.received[0][:, -1]    # example 0, head-mean received attention per step: (steps, k)
    layer.key_tokens[0]         # example 0's key tokens (cropped)
    layer.earlier               # steps written with other shapes or tokens, oldest first

This reads event files directly (no TensorBoard server) and decodes the
stored encoding, so it sees exactly what the plugin serves.
"""

import dataclasses
import posixpath

import numpy as np
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

from tb_attention_plugin.format import encoding as encoding_lib
from tb_attention_plugin.format import metadata
from tb_attention_plugin.format import png
from tb_attention_plugin.format import reduction

PluginData = metadata.PluginData


@dataclasses.dataclass
class LayerAttention:
    """Everything captured for one attention layer of one run, at the steps
    that share one set of facts (shapes, tokens, encoding).

    Per-example lists are indexed by probe example; `H` is the number of heads
    and index H of a heads axis holds the head mean.
    """

    layer: str
    kind: str  # 'self', 'causal' or 'cross'
    layer_class: str
    num_heads: int
    has_head_axis: bool  # False: the layer's scores were (batch, q, k), one head
    encoding: str
    steps: np.ndarray  # (S,)
    query_tokens: list  # per example, list of str (cropped)
    key_tokens: list
    # per example, (S, H, q, k) float32, decoded; for maps stored reduced
    # (storage "reduced"), a ReducedMaps of S steps, rebuilt when indexed
    maps: list
    received: list  # per example, (S, H + 1, k): sum over queries
    given: list  # per example, (S, H + 1, q): sum over keys
    head_stats: np.ndarray  # (S, examples, H, 3): entropy, max weight, distance (NaN: empty example)
    rollout: list | None  # per example, (S, k), or None when not stored
    rows_normalized: bool  # False when some row of some of these steps did not sum to 1
    layer_index: int  # order in which the model runs the layer
    rollout_stack: str  # first layer of this layer's rollout stack ("" if none)
    # Steps of the same tag written with other facts (another probe, another
    # writer), one LayerAttention per distinct facts, oldest first; empty
    # when every step shares these facts.
    earlier: list = dataclasses.field(default_factory=list)
    # (S, examples, H, M) per-head metrics (docs/HEAD_METRICS.md), named by
    # `metric_names`; None when not stored (written before they existed).
    head_metrics: np.ndarray = None
    metric_names: tuple = ()
    # (rows, cols, prefix) when the tokens are image patches: `prefix` class
    # or register tokens, then the patch grid row by row; None otherwise.
    grid: tuple = None
    # A local layer's sliding window: the query at position i saw only the
    # keys |i - j| < sliding_window (positions in the padded input); 0: none.
    sliding_window: int = 0
    # "full", or "reduced": each query row's top_k largest weights are exact
    # and the rest is rebuilt from a block overview within a stated bound
    # (ReducedMaps; docs/FORMAT.md, "Reduced maps").
    storage: str = "full"
    # Per example, (S, H, k) float32: per head and key, the norm of what the
    # key sends through the head (writing/value_vectors.py), NaN at steps
    # written without them; None when no step has them (a layer whose value
    # is not known, value_weighted=False, older logs). `value_vector` says
    # which vector: "value_output" ((x W_V + b_V) W_O, per head) or
    # "value_only" (x W_V + b_V).
    value_norms: list = None
    value_vector: str = ""
    # (S, examples, H, M) head metrics of the value-weighted maps (rows
    # normalised), named by `value_metric_names`; `change` is NaN there.
    value_metrics: np.ndarray = None
    value_metric_names: tuple = ()
    # The layer's gradient-weighted relevance (Chefer et al., ICCV 2021;
    # tag NAME/_relevance, docs/FORMAT.md "Relevance"), None when not stored:
    # a LayerAttention over its own steps whose maps are, per head, each
    # query row's shares of its positive relevance (d target / d a_hij *
    # a_hij)^+, whose rollout is relevance rollout, and whose importance,
    # statistics and metrics are those of the shares; `relevance_maps`
    # gives the relevance itself. On that object: `relevance_rows` per
    # example (S, H, q) each row's positive relevance, and `relevance_target`
    # what it explains ("loss ...", "predicted class", "class 3", ...).
    relevance: "LayerAttention" = None
    relevance_rows: list = None
    relevance_target: str = ""

    def value_weighted(self, example, step_index):
        """(H, q, k) float32 value-weighted attention of one example at
        steps[step_index]: weight x norm, ||a_hij f_h(x_j)|| (Kobayashi et
        al., EMNLP 2020), not normalised; None without value norms. Its error
        is the maps' own (uint8: 1/510 of a weight) times the norm."""
        if self.value_norms is None:
            return None
        # Maps stored reduced are rebuilt (ReducedMaps[s]): their bound times
        # the norm bounds the product's error.
        return self.maps[example][step_index] * self.value_norms[example][step_index][:, None, :]


    def relevance_maps(self, example, step_index):
        """(H, q, k) float32 positive relevance (d target / d a_hij * a_hij)^+
        of one example at relevance.steps[step_index] (share x row sum);
        None when no relevance is stored. Its error is the shares' (uint8:
        1/510) times the row's sum. The head mean is Chefer et al.'s
        per-layer map."""
        if self.relevance is None:
            return None
        rows = self.relevance.relevance_rows[example][step_index]
        return self.relevance.maps[example][step_index] * rows[:, :, None]


class ReducedMaps:
    """One example's maps stored reduced, over the S steps of a layer:
    `maps[s]` is the dense (H, q, k) map rebuilt at step index s (the
    largest weights of each row exact, the rest estimated from the block
    overview), `bound(s)` how far each cell can be from the truth, and
    `form(s)` what was stored (format.reduction.Reduced). Rebuilt when asked
    for, one step at a time: 100 steps of 8 heads x 2048 x 2048 would be
    13 GB dense."""

    def __init__(self, info, blobs, example):
        self._info, self._blobs, self._example = info, blobs, example
        ex = info.examples[example]
        self.shape = (len(blobs), info.num_heads, ex.query_length, ex.key_length)

    def __len__(self):
        return len(self._blobs)

    def form(self, step_index):
        return decode_reduced(self._info, self._blobs[step_index], self._example)

    def rebuilt(self, step_index):
        """(estimate, bound) at step index `step_index` (reduction.rebuild)."""
        return reduction.rebuild(self.form(step_index), encoding_lib.cell_error(self._info.encoding))

    def __getitem__(self, step_index):
        return self.rebuilt(step_index)[0]

    def bound(self, step_index):
        return self.rebuilt(step_index)[1]


def event_files(logdir):
    """{run name: [event file paths]} with run names as TensorBoard gives
    them. Walks with TensorBoard's gfile (TensorFlow's when installed), so
    gs://, s3:// and ram:// log dirs are read like local ones."""
    from tensorboard.compat import tf  # TensorFlow, or TensorBoard's stub without it

    runs = {}
    logdir = str(logdir).rstrip("/") or "/"
    for directory, _, files in tf.io.gfile.walk(logdir):
        paths = sorted(posixpath.join(directory, f) for f in files if "tfevents" in f)
        if paths:
            run = posixpath.relpath(directory, logdir) if "://" not in logdir else (
                directory[len(logdir):].strip("/") or ".")
            runs[run] = paths
    return runs


def _read_run(paths):
    """{tag: (plugin_data, {step: ndarray})}; a later write of a step wins."""
    tags = {}
    for path in paths:
        for event in event_file_loader.EventFileLoader(path).Load():
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                entry = tags.get(value.tag)
                if entry is None:
                    if value.metadata.plugin_data.plugin_name != metadata.PLUGIN_NAME:
                        continue
                    info = metadata.parse_plugin_metadata(value.metadata.plugin_data.content)
                    entry = tags[value.tag] = (info, {})
                entry[1][event.step] = tensor_util.make_ndarray(value.tensor)
    return tags


def read_attention(logdir):
    """All captured attention under `logdir`: {run: {layer path: LayerAttention}}.

    Each layer is given at the steps that share its newest step's facts;
    steps written with other facts are in its `earlier` list.
    """
    result = {}
    for run, paths in event_files(logdir).items():
        tags = _read_run(paths)
        layers, relevance = {}, {}
        for tag, (info, values) in tags.items():
            if info.role != PluginData.MAPS:
                continue
            groups = _facts_groups(info, values)
            newest = groups.pop(-1)
            layer = _assemble(*newest, tags)
            layer.earlier = [_assemble(*group, tags) for group in groups]
            (relevance if info.relevance_of else layers)[info.relevance_of or info.layer] = layer
        for name, of in relevance.items():  # listed with their layer, not as layers
            if name in layers:
                layers[name].relevance = of
        if layers:
            result[run] = dict(sorted(layers.items(), key=lambda kv: kv[1].layer_index))
    return result


def step_facts(info, blobs):
    """(facts, example blobs) of one maps step: its own facts blob
    (format version 2) or the tag's metadata (version 1)."""
    blobs = list(blobs)
    if metadata.has_facts_blob(info.version, len(blobs), len(info.examples)):
        return metadata.parse_plugin_metadata(bytes(blobs[-1])), blobs[:-1]
    return info, blobs


def _facts_groups(info, map_values):
    """[(facts of each step, {step: example blobs})] per distinct facts, the
    group of the newest step last, the others by their first step."""
    groups = {}
    for step in sorted(map_values):
        facts, blobs = step_facts(info, map_values[step])
        key = newest = metadata.shape_key(facts)  # steps ascend: the last is the newest
        facts_by_step, blobs_by_step = groups.setdefault(key, ({}, {}))
        facts_by_step[step], blobs_by_step[step] = facts, blobs
    order = sorted(groups, key=lambda key: (key == newest, min(groups[key][0])))
    return [groups[key] for key in order]


def decode_maps(info, blob, example):
    """One stored full-maps blob -> (heads, q, k) float32 for example `example`."""
    ex = info.examples[example]
    shape = (info.num_heads, ex.query_length, ex.key_length)
    return encoding_lib.decode(blob, info.encoding, shape)


def decode_reduced(info, blob, example):
    """One stored reduced-maps blob -> format.reduction.Reduced of example `example`."""
    ex = info.examples[example]
    shape = (info.num_heads, ex.query_length, ex.key_length)
    return encoding_lib.decode_reduced(blob, info.encoding, shape, info.top_k, info.block_size)


def _assemble(facts_by_step, map_values, tags):
    """The LayerAttention of steps that share their facts."""
    steps = np.array(sorted(map_values), dtype=np.int64)
    info = facts_by_step[int(steps[-1])]
    examples = list(info.examples)
    heads = info.num_heads

    def series(role):
        entry = tags.get(metadata.tag_for(info.layer, role))
        if entry is None:
            return None
        values = [entry[1][s] for s in steps if s in entry[1]]
        return np.stack(values) if values else None

    if info.storage == PluginData.REDUCED:
        maps = [ReducedMaps(info, [map_values[s][i] for s in steps], i) for i in range(len(examples))]
    else:
        maps = [np.stack([decode_maps(info, map_values[s][i], i) for s in steps]) for i in range(len(examples))]
    importance = [_importance(tags, info, i, steps) for i in range(len(examples))]
    if any(v is None for v in importance):
        importance = None  # as when nothing was stored: every example or none
    received_row, given_row = (metadata.IMPORTANCE_MODES.index(m) for m in ("received", "given"))
    rollout = series(PluginData.ROLLOUT)  # (S, E, K)
    metrics_entry = tags.get(metadata.tag_for(info.layer, PluginData.HEAD_METRICS))
    norms_entry = tags.get(metadata.tag_for(info.layer, PluginData.VALUE_NORMS))
    norms = _with_nan_where_missing(norms_entry, steps)  # (S, E, H, K)
    value_metrics_entry = tags.get(metadata.tag_for(info.layer, PluginData.VALUE_METRICS))
    rows = _with_nan_where_missing(tags.get(metadata.tag_for(info.layer, PluginData.RELEVANCE_ROWS)), steps)
    return LayerAttention(
        relevance_rows=None if rows is None else [rows[:, i, :, : e.query_length] for i, e in enumerate(examples)],
        relevance_target=info.relevance_target,
        layer=info.layer,
        kind=metadata.KIND_NAMES.get(info.kind, "self"),
        layer_class=info.layer_class,
        num_heads=heads,
        has_head_axis=info.has_head_axis,
        encoding=metadata.ENCODING_NAMES.get(info.encoding, "?"),
        steps=steps,
        query_tokens=[list(e.query_tokens) for e in examples],
        key_tokens=[list(e.key_tokens) for e in examples],
        maps=maps,
        received=None
        if importance is None
        else [importance[i][:, received_row, :, : e.key_length] for i, e in enumerate(examples)],
        given=None
        if importance is None
        else [importance[i][:, given_row, :, : e.query_length] for i, e in enumerate(examples)],
        head_stats=series(PluginData.HEAD_STATS),
        rollout=None
        if rollout is None
        else [rollout[:, i, : e.key_length] for i, e in enumerate(examples)],
        rows_normalized=all(f.rows_normalized for f in facts_by_step.values()),
        layer_index=info.layer_index,
        rollout_stack=info.rollout_stack,
        head_metrics=series(PluginData.HEAD_METRICS),
        metric_names=tuple(metrics_entry[0].metric_names) if metrics_entry else (),
        grid=(info.grid_rows, info.grid_cols, info.grid_prefix) if info.grid_rows else None,
        sliding_window=info.sliding_window,
        storage=metadata.STORAGE_NAMES.get(info.storage, "?"),
        value_norms=None if norms is None else [norms[:, i, :, : e.key_length] for i, e in enumerate(examples)],
        value_vector=metadata.VALUE_VECTOR_NAMES.get(norms_entry[0].value_vector, "") if norms is not None else "",
        value_metrics=_with_nan_where_missing(value_metrics_entry, steps),
        value_metric_names=tuple(value_metrics_entry[0].metric_names) if value_metrics_entry else (),
    )


def _with_nan_where_missing(entry, steps):
    """(S, ...) of a derived tag at `steps`, NaN at the steps it lacks (a
    kind some captures did not store); None when it holds none of them."""
    if entry is None or not any(s in entry[1] for s in steps):
        return None
    shape = next(entry[1][s].shape for s in steps if s in entry[1])
    return np.stack([entry[1][s] if s in entry[1] and entry[1][s].shape == shape
                     else np.full(shape, np.nan, np.float32) for s in steps])


def _importance(tags, info, example, steps):
    """(S, 2, H + 1, L) importance of one example at `steps`, from its own
    tag, or at steps it lacks from the tag of all examples that older
    writers wrote (metadata.tag_for); None when neither holds a step."""
    own = tags.get(metadata.tag_for(info.layer, PluginData.IMPORTANCE, example), (None, {}))[1]
    combined = tags.get(metadata.tag_for(info.layer, PluginData.IMPORTANCE), (None, {}))[1]
    ex = info.examples[example]
    length = max(ex.query_length, ex.key_length)
    values = [own[s] if s in own else combined[s][example] for s in steps if s in own or s in combined]
    return np.stack([v[..., :length] for v in values]) if values else None


def read_probe_images(logdir):
    """{run: [uint8 (H, W, C) image per probe example]} of the runs whose
    probe was images (the first stored copy)."""
    images = {}
    for run, paths in event_files(logdir).items():
        entry = _read_run(paths).get(metadata.PROBE_IMAGES_TAG)
        if entry is not None and entry[1]:
            first = entry[1][min(entry[1])]
            images[run] = [png.decode_png(data) for data in first]
    return images


def read_head_metrics(logdir):
    """Every stored head metric under `logdir` as a tidy table: a dict of
    equal-length columns run, layer, head, step, example, metric, value, so
    `pandas.DataFrame(read_head_metrics("logs"))` is one line. NaN values
    (a metric that does not apply) are left out."""
    columns = {name: [] for name in ("run", "layer", "head", "step", "example", "metric", "value")}
    for run, layers in read_attention(logdir).items():
        for name, layer in layers.items():
            for group in layer.earlier + [layer]:
                if group.head_metrics is None:
                    continue
                s, e, h, m = np.nonzero(~np.isnan(group.head_metrics))
                columns["run"].extend([run] * len(s))
                columns["layer"].extend([name] * len(s))
                columns["head"].extend(h.tolist())
                columns["step"].extend(group.steps[s].tolist())
                columns["example"].extend(e.tolist())
                columns["metric"].extend(group.metric_names[i] for i in m)
                columns["value"].extend(group.head_metrics[s, e, h, m].tolist())
    return columns
