"""The attention summary op: writes one layer's attention for one step.

Usable without Keras, e.g. in a custom training loop:

    writer = tf.summary.create_file_writer("logs/run1")
    with writer.as_default():
        _, scores = mha(x, x, return_attention_scores=True)
        tb_attention_plugin.summary.attention("encoder/mha", scores, step=step,
                                              query_tokens=words, key_tokens=words)

What is written (format page: docs/FORMAT.md): for a layer path NAME,
  NAME              blob sequence, one blob per example: its maps, cropped to
                    the real tokens, in the chosen encoding; then one blob
                    with the step's facts (shapes, tokens, encoding)
  NAME/_importance/<example>  float32 (2, heads + 1, len), one tag per
                    example: received attention (sum over queries) and given
                    attention (sum over keys), per head and head-mean (last)
  NAME/_head_stats  float32 (examples, heads, 3): row entropy, max weight,
                    mean attention distance
  NAME/_rollout     float32 (examples, max_key_len), only when `rollout` is given
  NAME/_head_metrics float32 (examples, heads, metrics): head_metrics.METRIC_NAMES
  NAME/_value_norms float32 (examples, heads, max_key_len), only when value
                    norms are given: what each key sends through each head
  NAME/_value_metrics float32 (examples, heads, metrics): the head metrics of
                    the value-weighted maps (numerics.value_weighted)
  NAME/_relevance   only when relevance is given: the layer's gradient-weighted
                    relevance written as a layer's maps are (relevance_step),
                    with its own derived tags and NAME/_relevance/_relevance_rows
All derived numbers are computed here from the full-precision scores.

The write path runs one way: `prepare` checks and crops a layer's scores once
into a `LayerStep`; `serialize` computes every tensor and metadata from it;
`write` only writes. The callback serializes every layer of a capture before
writing any, so a failure leaves no partial step.
"""

import dataclasses
import functools

import numpy as np
from tensorboard.compat.proto import summary_pb2

from tb_attention_plugin.format import encoding as encoding_lib
from tb_attention_plugin.math import head_metrics
from tb_attention_plugin.format import metadata
from tb_attention_plugin.math import numerics
from tb_attention_plugin.format import reduction

PluginData = metadata.PluginData

_KINDS = {name: value for value, name in metadata.KIND_NAMES.items()}
_STORAGES = {name: value for value, name in metadata.STORAGE_NAMES.items()}
_VALUE_VECTORS = {name: value for value, name in metadata.VALUE_VECTOR_NAMES.items()}


def as_head_first(scores):
    """(batch, heads, q, k) or (batch, q, k) -> float32 (batch, heads, q, k)."""
    array = np.asarray(scores, dtype=np.float32)
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        return array
    raise ValueError(
        "attention scores must have shape (batch, heads, q, k) or (batch, q, k); "
        "got shape %s" % (array.shape,)
    )


def crop_examples(scores, query_mask=None, key_mask=None):
    """Crops each example's maps to its real query rows and key columns.

    Args:
      scores: (batch, heads, q, k).
      query_mask, key_mask: (batch, q) / (batch, k) booleans, True for real
        tokens; None means every position is real.

    Returns:
      maps: list of (heads, q_len_i, k_len_i) arrays (views of `scores`).
      spans: list of ((q_offset, q_len), (k_offset, k_len)).
    """
    batch, _, q, k = scores.shape
    query_mask = _mask_or_all(query_mask, batch, q, "query_mask")
    key_mask = _mask_or_all(key_mask, batch, k, "key_mask")
    maps, spans = [], []
    for i in range(batch):
        (qo, ql), (ko, kl) = numerics.real_span(query_mask[i]), numerics.real_span(key_mask[i])
        maps.append(scores[i, :, qo : qo + ql, ko : ko + kl])
        spans.append(((qo, ql), (ko, kl)))
    return maps, spans


def infer_kind(maps, same_sequence):
    """'cross' unless queries and keys are one sequence; then 'causal' when
    every example's maps are lower-triangular, else 'self'."""
    if not same_sequence:
        return "cross"
    if all(m.shape[-1] == m.shape[-2] and m.shape[-1] > 1 for m in maps) and all(
        numerics.is_lower_triangular(m) for m in maps
    ):
        return "causal"
    return "self"


@dataclasses.dataclass
class LayerStep:
    """One layer's attention at one step, cropped to the real tokens once;
    everything `write` needs, nothing it must re-derive from shapes."""

    name: str
    maps: list  # per example: float32 (heads, q_len, k_len), cropped
    spans: list  # per example: ((q_offset, q_len), (k_offset, k_len))
    query_tokens: list  # per example: the q_len kept query tokens
    key_tokens: list  # per example: the k_len kept key tokens
    kind: str  # "self", "causal" or "cross"
    has_head_axis: bool  # False: the layer's scores were (batch, q, k)
    encoding: str = "uint8"
    layer_class: str = ""
    layer_index: int = 0
    rollout: list = None  # per example: rollout importance over the kept keys
    rollout_stack: str = ""
    description: str = None
    probe_digest: str = ""  # set by the callback: which probe this is (run_dirs)
    query_ids: list = None  # per example, the kept queries' token ids (induction), if known
    previous_maps: list = None  # per example, the maps of the previous capture (change)
    grid: object = None  # image_grid.Grid when the tokens are image patches
    probe_examples: int = 0  # the probe's size as given, when fewer examples are stored
    # How far from 1 a row may sum and still be a softmax row: more for a
    # layer computed in bfloat16 or float16 (numerics.row_sum_tolerance).
    row_tolerance: float = numerics.ROW_SUM_TOLERANCE
    # Self-attention within a sliding window: |i - j| < sliding_window
    # (masks.sliding_window); 0: none.
    sliding_window: int = 0
    # "full" (every weight) or "reduced" (each row's top_k largest weights
    # and a block overview: format/reduction.py); the numbers are computed
    # from the full float32 maps either way.
    storage: str = "full"
    top_k: int = reduction.TOP_K
    # Per example, float32 (heads, k_len): the norm of what each kept key
    # sends through each head (writing/value_vectors.py), and which vector
    # that is ("value_output" or "value_only"); None: not known.
    value_norms: list = None
    value_vector: str = ""
    # Per example, float32 (heads, q_len, k_len): d target / d a_hij * a_hij,
    # the gradient-weighted relevance of each weight (writing/relevance.py),
    # and what it explains; None: not asked or not known.
    relevance: list = None
    relevance_target: str = ""
    relevance_rollout: list = None  # per example: relevance rollout over the kept keys
    # Set on the record of a layer's relevance (relevance_step): whose it is,
    # and per example (heads, q_len) each row's positive relevance.
    relevance_of: str = ""
    relevance_rows: list = None

    # The scores as given, (batch, heads, q, k) float32, when no example was
    # cropped: `examples` then uses them without a copy.
    uncropped: np.ndarray = None

    @functools.cached_property
    def examples(self):
        """The maps as one numerics.Examples (zero-padded, row facts
        computed), made once and shared by rollout and `serialize`."""
        return numerics.Examples(self.maps, stacked=self.uncropped)


def prepare(
    name,
    scores,
    *,
    query_tokens=None,
    key_tokens=None,
    query_mask=None,
    key_mask=None,
    kind=None,
    encoding="uint8",
    layer_class="",
    layer_index=0,
    description=None,
    value_norms=None,
    value_vector="value_output",
    relevance=None,
    relevance_target="",
):
    """Checks and crops one layer's scores into a LayerStep (arguments as
    for `attention`).

    Raises:
      ValueError: bad shapes, token counts, kind or encoding, or NaN/Inf.
    """
    encoding_lib.parse_encoding(encoding)
    has_head_axis = np.ndim(scores) == 4
    scores = as_head_first(scores)
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            "the attention scores of layer \"%s\" contain NaN or Inf (the training "
            "diverged, or the layer overflowed)" % (name,)
        )
    batch, _, q, k = scores.shape
    if batch == 0:
        raise ValueError("attention scores of %r hold no example (batch of 0)" % name)
    maps, spans = crop_examples(scores, query_mask, key_mask)
    if kind is None:
        kind = infer_kind(maps, same_sequence=(q == k))
    if kind not in _KINDS:
        raise ValueError("kind must be one of %s, got %r" % (sorted(_KINDS), kind))
    if key_tokens is None and q == k:
        key_tokens = query_tokens
    query_tokens = _tokens_or_positions(query_tokens, batch, q, "query_tokens")
    key_tokens = _tokens_or_positions(key_tokens, batch, k, "key_tokens")
    uncropped = scores if all(span == ((0, q), (0, k)) for span in spans) else None
    if value_norms is not None:
        value_norms = np.asarray(value_norms, dtype=np.float32)
        if value_norms.shape != (batch, scores.shape[1], k):
            raise ValueError("value_norms of %r must have shape (batch, heads, k) = %s, got %s"
                             % (name, (batch, scores.shape[1], k), value_norms.shape))
        if not np.all(np.isfinite(value_norms)) or np.any(value_norms < 0):
            raise ValueError("the value norms of layer \"%s\" are negative, NaN or Inf" % (name,))
        if value_vector not in _VALUE_VECTORS:
            raise ValueError("value_vector must be one of %s, got %r" % (sorted(_VALUE_VECTORS), value_vector))
        value_norms = [value_norms[i, :, ko : ko + kl] for i, (_, (ko, kl)) in enumerate(spans)]
    if relevance is not None:
        relevance = as_head_first(relevance)
        if relevance.shape != scores.shape:
            raise ValueError("relevance of %r must have the scores' shape %s, got %s"
                             % (name, scores.shape, relevance.shape))
        if not np.all(np.isfinite(relevance)):
            raise ValueError("the relevance of layer \"%s\" contains NaN or Inf (the explained "
                             "output or its gradient overflowed)" % (name,))
        relevance = [relevance[i, :, qo : qo + ql, ko : ko + kl] for i, ((qo, ql), (ko, kl)) in enumerate(spans)]
    return LayerStep(
        relevance=relevance,
        relevance_target=str(relevance_target) if relevance is not None else "",
        value_norms=value_norms,
        value_vector=value_vector if value_norms is not None else "",
        uncropped=uncropped,
        name=name,
        maps=maps,
        spans=spans,
        query_tokens=[t[qo : qo + ql] for t, ((qo, ql), _) in zip(query_tokens, spans)],
        key_tokens=[t[ko : ko + kl] for t, (_, (ko, kl)) in zip(key_tokens, spans)],
        kind=kind,
        has_head_axis=has_head_axis,
        encoding=encoding,
        layer_class=layer_class,
        layer_index=layer_index,
        description=description,
    )


def maps_facts(record):
    """The facts of one LayerStep's maps (an AttentionPluginData, role MAPS,
    current version): what a reader needs to decode and show them. The MAPS
    tag's metadata and the step's facts blob are both this, so they cannot
    differ."""
    maps = record.maps
    examples = record.examples
    facts = PluginData(
        role=PluginData.MAPS,
        layer=record.name,
        kind=_KINDS[record.kind],
        num_heads=maps[0].shape[0],
        has_head_axis=record.has_head_axis,
        layer_class=record.layer_class,
        encoding=encoding_lib.parse_encoding(record.encoding),
        rows_normalized=all(numerics.rows_sum_to_one(m, record.row_tolerance, examples.rows.sums[i, :, : m.shape[1]])
                            for i, m in enumerate(maps) if m.size),
        layer_index=record.layer_index,
        rollout_stack=record.rollout_stack,
        probe_digest=record.probe_digest,
        probe_examples=record.probe_examples,
        sliding_window=record.sliding_window,
        relevance_of=record.relevance_of,
        relevance_target=record.relevance_target if record.relevance_of else "",
    )
    if record.storage not in _STORAGES:
        raise ValueError("storage must be one of %s, got %r" % (sorted(_STORAGES), record.storage))
    if record.storage == "reduced":
        facts.storage, facts.top_k = PluginData.REDUCED, record.top_k
        facts.block_size = reduction.block_of_step((m.shape[1], m.shape[2]) for m in maps)
    facts.version = metadata.version_of(facts)
    if record.grid is not None:
        facts.grid_rows, facts.grid_cols, facts.grid_prefix = (
            record.grid.rows, record.grid.cols, record.grid.prefix)
    for i, ((qo, ql), (ko, kl)) in enumerate(record.spans):
        facts.examples.add(
            query_tokens=record.query_tokens[i],
            key_tokens=record.key_tokens[i],
            query_offset=qo,
            key_offset=ko,
            query_length=ql,
            key_length=kl,
        )
    return facts


def serialize(record):
    """Everything one LayerStep writes, computed before anything is written:
    a list of (tag, numpy array, SummaryMetadata): float32 arrays, and
    object arrays of bytes for blob sequences (DT_STRING once written). Encoding, importance and head
    statistics happen here, from the float32 maps. The maps tag's blobs are
    one per example, then the step's facts (docs/FORMAT.md).

    The examples' per-row facts (sums, entropies, maxima, distances) are
    computed once, for all examples together (numerics.Examples), and
    shared by everything made of them."""
    maps = record.maps
    examples = record.examples
    facts = maps_facts(record)
    if facts.storage == PluginData.REDUCED:
        blobs = [encoding_lib.encode_reduced(reduction.reduce(m, facts.top_k, facts.block_size), facts.encoding,
                                             facts.top_k) for m in maps]
    else:
        blobs = [encoding_lib.encode(m, facts.encoding) for m in maps]
    blobs.append(facts.SerializeToString())
    out = [(
        metadata.tag_for(record.name, PluginData.MAPS),
        np.array(blobs, dtype=object),  # a rank-1 string tensor: the blob sequence
        metadata.create_summary_metadata(facts, record.description),
    )]
    # (role, example of a per-example tag or None, float32 array)
    received = numerics.received_attention(examples.maps)  # (examples, heads, K)
    derived = [(PluginData.IMPORTANCE, i, _importance_tensor(received[i, :, : m.shape[2]], examples.rows.sums[i, :, : m.shape[1]]))
               for i, m in enumerate(maps)]
    derived.append((PluginData.HEAD_STATS, None, numerics.head_statistics_of(examples)))
    if record.rollout is not None:
        derived.append((PluginData.ROLLOUT, None, _pad_rows(record.rollout, record.spans)))
    derived.append((PluginData.HEAD_METRICS, None, _head_metrics_tensor(record, examples)))
    if record.value_norms is not None:
        derived.append((PluginData.VALUE_NORMS, None, _pad_rows(record.value_norms, record.spans)))
        derived.append((PluginData.VALUE_METRICS, None, _head_metrics_tensor(
            record, _value_weighted_examples(record), previous=False)))
    if record.relevance_rows is not None:
        # each row's sum, over the kept queries: the swapped spans pad by query length
        derived.append((PluginData.RELEVANCE_ROWS, None, _pad_rows(
            record.relevance_rows, [(k, q) for q, k in record.spans])))
    for role, example, array in derived:
        info = PluginData(role=role, layer=record.name)
        if role in (PluginData.HEAD_METRICS, PluginData.VALUE_METRICS):
            info.metric_names.extend(head_metrics.METRIC_NAMES)
        if role == PluginData.VALUE_NORMS:
            info.value_vector = _VALUE_VECTORS[record.value_vector]
        out.append((
            metadata.tag_for(record.name, role, example),
            np.asarray(array, dtype=np.float32),
            metadata.create_summary_metadata(info),
        ))
    if record.relevance is not None:
        out.extend(serialize(relevance_step(record)))
    return out


def relevance_step(record):
    """The LayerStep of a layer's relevance (tag NAME/_relevance): per head,
    each query row's shares of its positive relevance, (d target / d a_hij *
    a_hij)^+ / sum_j (...)^+, as maps of 0..1 in the layer's encoding (a row
    with none stays 0), the rows' sums beside them (RELEVANCE_ROWS), and the
    relevance rollout as its rollout; its importance, statistics and metrics
    are those of the shares, computed by `serialize` as for any layer."""
    shares, rows = zip(*(numerics.relevance_shares(products) for products in record.relevance))
    return dataclasses.replace(
        record,
        name=metadata.relevance_tag(record.name),
        maps=list(shares),
        uncropped=None,
        rollout=record.relevance_rollout,
        rollout_stack=metadata.relevance_tag(record.rollout_stack) if record.relevance_rollout is not None else "",
        previous_maps=None,
        query_ids=None,
        value_norms=None,
        value_vector="",
        relevance=None,
        relevance_rollout=None,
        relevance_of=record.name,
        relevance_rows=list(rows),
        description=None,
    )


def probe_images(images):
    """The probe's images as one serialized item (tag `_probe_images`): a
    blob sequence of one PNG per example, each stretched to 0..255 from its
    own range unless already uint8 (image_grid.to_uint8)."""
    from tb_attention_plugin.writing import image_grid

    pngs = [image_grid.encode_png(image_grid.to_uint8(image)) for image in images]
    return (
        metadata.PROBE_IMAGES_TAG,
        np.array(pngs, dtype=object),
        metadata.create_summary_metadata(PluginData(role=PluginData.PROBE_IMAGES)),
    )


def _head_metrics_tensor(record, examples, previous=True):
    """(examples, heads, len(METRIC_NAMES)): head_metrics.all_metrics of
    each example, from the float32 maps (`examples`: numerics.Examples);
    without `previous`, `change` is NaN (not measured)."""
    count = len(record.maps)
    grid = None if record.grid is None else (record.grid.rows, record.grid.cols, record.grid.prefix)
    return head_metrics.metrics_of(
        examples, record.key_tokens, record.kind,
        (record.previous_maps if previous else None) or [None] * count,
        record.query_ids or [None] * count, grid, window=record.sliding_window,
        offsets=[qo - ko for (qo, _), (ko, _) in record.spans])


def _value_weighted_examples(record):
    """The value-weighted maps of a LayerStep, each row normalised
    (numerics.value_weighted), as one numerics.Examples. `change` is not
    measured on them: it would keep a second set of maps between captures."""
    if record.uncropped is not None:
        stacked = numerics.value_weighted(record.uncropped, np.stack(record.value_norms))
        return numerics.Examples(list(stacked), stacked=stacked)
    return numerics.Examples([numerics.value_weighted(m, n) for m, n in zip(record.maps, record.value_norms)])


def items_of_role(serialized, role):
    """(AttentionPluginData, tensor) of the items of `serialized` (what
    `serialize` made) whose role is `role`, e.g. PluginData.HEAD_METRICS."""
    for _, tensor, summary_metadata in serialized:
        info = metadata.parse_plugin_metadata(summary_metadata.plugin_data.content)
        if info.role == role:
            yield info, tensor


def write(serialized, step):
    """Writes what `serialize` made (of one layer or many) at `step` to the
    default `tf.summary` writer (the op for custom loops; the callback writes
    through event_writer.EventWriter, without TensorFlow). Returns True if
    it was written."""
    import tensorflow as tf  # this op writes through tf.summary; the callback does not

    written = True
    # Readers index a layer's steps by its maps tag: it goes last, so a write
    # that fails part-way leaves at most derived numbers without maps, which
    # every reader ignores, never maps without their importance.
    ordered = sorted(
        serialized,
        key=lambda item: item[2].data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
    )
    for tag, array, summary_metadata in ordered:
        tensor = tf.constant(array, dtype=tf.string if array.dtype == object else tf.float32)
        written &= bool(tf.summary.write(tag=tag, tensor=tensor, step=step, metadata=summary_metadata))
    return written


def attention(
    name,
    scores,
    step=None,
    *,
    query_tokens=None,
    key_tokens=None,
    query_mask=None,
    key_mask=None,
    kind=None,
    encoding="uint8",
    rollout=None,
    layer_class="",
    layer_index=0,
    rollout_stack="",
    description=None,
    storage="full",
    value_norms=None,
    value_vector="value_output",
    relevance=None,
    relevance_target="",
):
    """Writes the attention of one layer at one step (eagerly).

    Args:
      name: the layer's name or path; the tags are derived from it.
      scores: (batch, heads, q, k) or (batch, q, k) attention weights (tensor
        or array); rows are normally softmax distributions over keys.
      step: int step; defaults to `tf.summary.experimental.get_step()`.
      query_tokens, key_tokens: per example, a list of q (k) strings for the
        full padded length; None means positions "0", "1", .... key_tokens
        defaults to query_tokens when q == k.
      query_mask, key_mask: (batch, q) / (batch, k) booleans, True for real
        tokens; maps are cropped to the span of real tokens. None: all real.
      kind: 'self', 'causal' or 'cross'; None infers it (cross when q != k,
        causal when every map is lower-triangular).
      encoding: 'uint8' (1 byte per weight, error <= 1/510) or 'float32'.
      rollout: optional (batch, k) or list of per-example vectors of rollout
        importance over the cropped keys (see numerics.attention_rollout).
      layer_class, layer_index, rollout_stack: stored for display and sorting.
      description: optional Markdown description of the tag.
      storage: 'full' (every weight) or 'reduced' (each query row's
        reduction.TOP_K largest weights, exact, and a block max / mean
        overview: for long sequences; docs/FORMAT.md, "Reduced maps").
        Importance, statistics and metrics are computed from the full
        scores either way.
      value_norms: optional (batch, heads, k): per head and key, the norm of
        what the key sends, ||(x_j W_V^h + b_V^h) W_O^h|| (value_vector
        "value_output"; "value_only" without W_O^h), so that weight x norm
        is value-weighted attention (Kobayashi et al. 2020). Stored with the
        head metrics of the value-weighted maps.
      relevance: optional, the scores' shape: d target / d a_hij * a_hij,
        the gradient-weighted relevance of each weight (Chefer et al. 2021)
        for an output named by `relevance_target` (e.g. "class 3"); stored
        as the tag NAME/_relevance (docs/FORMAT.md, "Relevance").

    Returns:
      True if written, False if no default summary writer is set.

    Raises:
      ValueError: bad shapes, token counts, or NaN/Inf in the scores.
      RuntimeError: called inside a tf.function (this op is eager only).
    """
    import tensorflow as tf

    if not tf.executing_eagerly():
        raise RuntimeError(
            "tb_attention_plugin.summary.attention runs eagerly: call it outside "
            "tf.function (return the scores from your step function)"
        )
    if step is None:
        step = tf.summary.experimental.get_step()
        if step is None:
            raise ValueError("no step: pass step= or call tf.summary.experimental.set_step")
    record = prepare(
        name,
        scores,
        query_tokens=query_tokens,
        key_tokens=key_tokens,
        query_mask=query_mask,
        key_mask=key_mask,
        kind=kind,
        encoding=encoding,
        layer_class=layer_class,
        layer_index=layer_index,
        description=description,
        value_norms=value_norms,
        value_vector=value_vector,
        relevance=relevance,
        relevance_target=relevance_target,
    )
    record.rollout = rollout
    record.rollout_stack = rollout_stack
    record.storage = storage
    return write(serialize(record), int(step))


def _importance_tensor(received, given):
    """One example's received (heads, k) and given (heads, q) attention
    (numerics.received_attention, given_attention) -> (2, heads + 1,
    max(q, k)): metadata.IMPORTANCE_MODES x [heads..., mean], zero beyond
    each mode's length (metadata.derived_shape)."""
    heads = received.shape[0]
    modes = {"received": received, "given": given}
    out = np.zeros((len(metadata.IMPORTANCE_MODES), heads + 1, max(received.shape[1], given.shape[1])),
                   dtype=np.float32)
    for row, values in enumerate(modes[mode] for mode in metadata.IMPORTANCE_MODES):
        out[row, :heads, : values.shape[1]] = values
        out[row, heads, : values.shape[1]] = values.mean(axis=0)
    return out


def _pad_rows(rows, spans):
    """Per-example arrays over the cropped keys, (k,) (rollout) or (heads, k)
    (value norms) -> zero-padded (examples, max_k) or (examples, heads, max_k)."""
    length = max(kl for _, (_, kl) in spans) if spans else 0
    rows = [np.asarray(row, dtype=np.float32) for row in rows]
    leading = rows[0].shape[:-1] if rows and rows[0].ndim > 1 else ()
    out = np.zeros((len(spans),) + leading + (length,), dtype=np.float32)
    for i, (_, (_, kl)) in enumerate(spans):
        row = rows[i].reshape(leading + (-1,))
        if row.shape[-1] != kl:
            raise ValueError(
                "rollout of example %d has %d values, expected %d (its real keys)"
                % (i, row.shape[-1], kl)
            )
        out[i, ..., :kl] = row
    return out


def _mask_or_all(mask, batch, length, what):
    if mask is None:
        return np.ones((batch, length), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (batch, length):
        raise ValueError(
            "%s must have shape (batch, length) = %s, got %s"
            % (what, (batch, length), mask.shape)
        )
    return mask


def _tokens_or_positions(tokens, batch, length, what):
    if tokens is None:
        positions = [str(i) for i in range(length)]
        return [positions] * batch
    if len(tokens) != batch:
        raise ValueError(
            "%s has %d examples but the scores have %d" % (what, len(tokens), batch)
        )
    out = []
    for i, example in enumerate(tokens):
        example = [str(t) for t in example]
        if len(example) != length:
            raise ValueError(
                "%s[%d] has %d tokens but the attention has %d positions on that "
                "axis; give one token per position (padding included)"
                % (what, i, len(example), length)
            )
        out.append(example)
    return out
