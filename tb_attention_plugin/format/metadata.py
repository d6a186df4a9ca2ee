"""The format's facts, stated once: plugin name, tag names, roles, kinds and
encodings, the versioned metadata, and the shapes of the derived tensors
(docs/FORMAT.md). The writer (writing/summary.py), the reader
(format/reader.py) and the server (serving/store.py) all take them from here."""

import collections

from tensorboard.compat.proto import summary_pb2

from tb_attention_plugin.format import plugin_data_pb2

PLUGIN_NAME = "attention"

# Version of AttentionPluginData written by this package. Readers accept any
# version up to their own and refuse newer ones (fields may have changed
# meaning), so an old plugin never shows misread numbers.
# 1: a step's maps blob sequence holds one blob per example; the MAPS tag's
#    metadata holds the facts (shapes, tokens, encoding) of every step.
# 2: after the example blobs, one more blob holds the step's own facts
#    (docs/FORMAT.md, "Facts of each step").
# 3: a maps step may be stored reduced (`storage` REDUCED: each row's
#    largest weights and a block overview, docs/FORMAT.md "Reduced maps").
#    Only such steps are written as version 3 (`version_of`): a log of full
#    maps stays readable by version-2 readers.
PROTO_VERSION = 3
# First version whose maps steps end with a facts blob.
FACTS_BLOB_VERSION = 2
# First version whose maps steps may be stored reduced.
REDUCED_VERSION = 3

PluginData = plugin_data_pb2.AttentionPluginData
Role = PluginData  # enum values live on the message: Role.MAPS, Role.IMPORTANCE

# Tag suffix per role. The MAPS tag is the layer path itself.
_SUFFIX = {
    PluginData.MAPS: "",
    PluginData.IMPORTANCE: "/_importance",
    PluginData.HEAD_STATS: "/_head_stats",
    PluginData.ROLLOUT: "/_rollout",
    PluginData.HEAD_METRICS: "/_head_metrics",
    PluginData.VALUE_NORMS: "/_value_norms",
    PluginData.VALUE_METRICS: "/_value_metrics",
    PluginData.RELEVANCE_ROWS: "/_relevance_rows",
}

# The MAPS tag holding layer NAME's gradient-weighted relevance is
# NAME + RELEVANCE_SUFFIX (its metadata's `relevance_of` is NAME); its own
# derived tags follow `tag_for` as any layer's do.
RELEVANCE_SUFFIX = "/_relevance"

# The tag of the probe's images (role PROBE_IMAGES), written once per run
# by the callback for image models. Not a layer path: it starts with "_".
PROBE_IMAGES_TAG = "_probe_images"

KIND_NAMES = {PluginData.SELF: "self", PluginData.CAUSAL: "causal", PluginData.CROSS: "cross"}
ENCODING_NAMES = {PluginData.UINT8: "uint8", PluginData.FLOAT32: "float32"}
STORAGE_NAMES = {PluginData.FULL: "full", PluginData.REDUCED: "reduced"}
ROLE_NAMES = {
    PluginData.MAPS: "maps",
    PluginData.IMPORTANCE: "importance",
    PluginData.HEAD_STATS: "head_stats",
    PluginData.ROLLOUT: "rollout",
    PluginData.HEAD_METRICS: "head_metrics",
    PluginData.PROBE_IMAGES: "probe_images",
    PluginData.VALUE_NORMS: "value_norms",
    PluginData.VALUE_METRICS: "value_metrics",
    PluginData.RELEVANCE_ROWS: "relevance_rows",
}
# What a VALUE_NORMS tag's norms measure (its own metadata's value_vector).
VALUE_VECTOR_NAMES = {PluginData.VALUE_OUTPUT: "value_output", PluginData.VALUE_ONLY: "value_only"}

# Rows of the HEAD_STATS tensor's last axis.
HEAD_STAT_NAMES = ("entropy", "max_weight", "mean_distance")

# Rows of an IMPORTANCE tensor's mode axis: received attention (sum over
# queries, over the keys) and given attention (sum over keys, over the
# queries). The axis after it is the heads, then their mean.
IMPORTANCE_MODES = ("received", "given")

# Importance is written one tag per probe example (`tag_for(layer,
# IMPORTANCE, example)`): the tab reads one example's series, and a tag of
# every example made its first read 8x larger than what it shows at 8
# examples (docs/PERFORMANCE.md). Logs written before hold one tag of all
# examples (`tag_for(layer, IMPORTANCE)`), which readers still read, and
# merge with the per-example tags where a newer writer continued the run.


# The shape of a derived tensor: its fixed leading dims and its last dim,
# which is exactly `last` when `exact`, else at least `last` (padded to the
# longest example; a writer may pad more).
DerivedShape = collections.namedtuple("DerivedShape", "leading last exact")


def derived_shape(info, role, derived_info=None, example=None):
    """The DerivedShape of a derived tensor at a step with the facts `info`;
    `derived_info` is the derived tag's own metadata (head metrics: their
    names); `example` the example of a per-example importance tag.

      IMPORTANCE    per example: (2, heads + 1, >= its query or key length)
                    all examples (older writers): (examples, 2, heads + 1,
                    >= longest query or key length)
      HEAD_STATS    (examples, heads, len(HEAD_STAT_NAMES))
      ROLLOUT       (examples, >= longest key length)
      HEAD_METRICS  (examples, heads, len(metric_names))
      VALUE_NORMS   (examples, heads, >= longest key length)
      VALUE_METRICS (examples, heads, len(metric_names))
      RELEVANCE_ROWS (examples, heads, >= longest query length)
    """
    examples = len(info.examples)
    if role == PluginData.IMPORTANCE and example is not None:
        ex = info.examples[example]
        return DerivedShape((len(IMPORTANCE_MODES), info.num_heads + 1), max(ex.query_length, ex.key_length), False)
    if role == PluginData.IMPORTANCE:
        longest = max((max(ex.query_length, ex.key_length) for ex in info.examples), default=0)
        return DerivedShape((examples, len(IMPORTANCE_MODES), info.num_heads + 1), longest, False)
    if role == PluginData.HEAD_STATS:
        return DerivedShape((examples, info.num_heads), len(HEAD_STAT_NAMES), True)
    if role == PluginData.ROLLOUT:
        return DerivedShape((examples,), max((ex.key_length for ex in info.examples), default=0), False)
    if role in (PluginData.HEAD_METRICS, PluginData.VALUE_METRICS):
        names = derived_info.metric_names if derived_info is not None else ()
        return DerivedShape((examples, info.num_heads), len(names), True)
    if role == PluginData.VALUE_NORMS:
        return DerivedShape((examples, info.num_heads), max((ex.key_length for ex in info.examples), default=0), False)
    if role == PluginData.RELEVANCE_ROWS:
        return DerivedShape((examples, info.num_heads), max((ex.query_length for ex in info.examples), default=0), False)
    raise ValueError("role %r has no tensor of a fixed shape" % role)


class UnknownVersionError(ValueError):
    """Metadata written by a newer tb-attention than the one reading it."""


def tag_for(layer, role, example=None):
    """The summary tag that holds `role` of `layer`; with `example`, the
    importance tag of that probe example (`NAME/_importance/<example>`)."""
    if example is not None:
        if role != PluginData.IMPORTANCE:
            raise ValueError("only importance is written per example")
        return "%s%s/%d" % (layer, _SUFFIX[role], example)
    return layer + _SUFFIX[role]


def relevance_tag(layer):
    """The MAPS tag of `layer`'s gradient-weighted relevance."""
    return layer + RELEVANCE_SUFFIX


def create_summary_metadata(plugin_data, description=None):
    """SummaryMetadata for one attention tag.

    Args:
      plugin_data: an AttentionPluginData; its `version` is set here.
      description: optional Markdown shown by TensorBoard.
    """
    plugin_data.version = version_of(plugin_data)
    data_class = (
        summary_pb2.DATA_CLASS_BLOB_SEQUENCE
        if plugin_data.role == PluginData.MAPS
        else summary_pb2.DATA_CLASS_TENSOR
    )
    return summary_pb2.SummaryMetadata(
        summary_description=description or "",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=plugin_data.SerializeToString()
        ),
        data_class=data_class,
    )


def version_of(plugin_data):
    """The format version a writer gives `plugin_data`: the oldest whose
    readers read it whole (a reduced maps step needs version 3)."""
    return REDUCED_VERSION if plugin_data.storage == PluginData.REDUCED else FACTS_BLOB_VERSION


def has_facts_blob(version, blob_count, example_count):
    """Whether a maps step ends with its facts blob: always from version 2
    on; under version-1 metadata, a step holding more blobs than the
    metadata's examples was written by a newer writer into a tag that an
    older one started (TensorBoard keeps the tag's first metadata)."""
    return version >= FACTS_BLOB_VERSION or blob_count > example_count


def shape_key(facts):
    """Bytes equal for two steps' facts exactly when their maps decode and
    display alike: every field but `version` and `rows_normalized` (a
    property of the numbers of one step, not of its shape)."""
    copy = PluginData()
    copy.CopyFrom(facts)
    copy.version = 0
    copy.rows_normalized = False
    return copy.SerializeToString(deterministic=True)


def parse_plugin_metadata(content):
    """Bytes of PluginData.content -> AttentionPluginData.

    Raises:
      UnknownVersionError: the content is from a newer format version.
      TypeError: content is not bytes.
    """
    if not isinstance(content, bytes):
        raise TypeError("content must be bytes, got %s" % type(content).__name__)
    result = PluginData.FromString(content)
    if result.version > PROTO_VERSION:
        raise UnknownVersionError(
            "attention summary format version %d is newer than this reader "
            "(%d): upgrade tb-attention" % (result.version, PROTO_VERSION)
        )
    return result
