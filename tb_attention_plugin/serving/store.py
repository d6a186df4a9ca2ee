"""What the routes serve: attention data read through TensorBoard's data
provider, checked against its metadata, decoded and cached.

Nothing from an event file is used before it is checked: metadata is parsed
and refused when it is from a newer format version or inconsistent (negative
or absurd lengths, token counts that differ from the lengths, unknown
encodings); every blob is inflated at most to the size its shape promises;
every derived tensor must have the shape and dtype the facts of its step
declare.

A step's facts (shapes, tokens, encoding) are its own facts blob (format
version 2) or the tag's metadata (version 1). One tag may hold steps of
several facts (another probe, another writer); a layer is served as the
steps that share its newest step's facts (`Timeline`), and maps of any step
decode with that step's facts.

What fails a check raises `StoredDataError` (HTTP 422) naming the run, the
layer, the step and what is wrong; unknown runs, layers, steps, examples and
heads raise `errors.NotFoundError` (404). The store has no HTTP in it: tests
drive it with a fake provider (tests/test_store.py).

Format facts (tag suffixes, roles, stat names, versions, the shapes of the
derived tensors) come from `format.metadata`.
"""

import collections
import concurrent.futures
import contextlib
import math
import threading
import time

import numpy as np
from tensorboard import errors
from tensorboard.data import provider

from tb_attention_plugin.format import encoding as encoding_lib
from tb_attention_plugin.format import metadata
from tb_attention_plugin.format import reduction
from tb_attention_plugin.serving.lru_cache import LruCache

PluginData = metadata.PluginData

# Downsample value meaning "every step" (a hint of 0 reads nothing).
ALL_STEPS = 2**31 - 1
# Bound of the cache: decoded maps, blob indexes and derived series. Four
# 256-token layers' received-importance series over 1000 steps (74 MB each)
# fit, with room for maps.
CACHE_BYTES = 512 * 1024 * 1024
# Largest decoded maps of one example at one step. 64 MiB is 12 heads x
# 2048 x 2048 uint8 cells (or a quarter as many float32 ones); the tab keeps
# at most 64 M cells of maps (frontend/index.js), so a larger step could not
# be shown anyway.
MAX_MAP_BYTES = 64 * 1024 * 1024
# Bytes being inflated at once over all requests: parallel requests for big
# maps wait for each other rather than add up.
DECODE_BUDGET_BYTES = 4 * MAX_MAP_BYTES
# Largest head count and sequence length metadata may declare; larger is
# damage (a flipped bit), not a model.
MAX_HEADS = 4096
MAX_TOKENS = 1 << 20
# Largest facts blob of one step: the tokens of its examples. 16 MiB is
# 64 examples of 2 x 2048 tokens of 64 bytes each.
MAX_FACTS_BYTES = 16 * 1024 * 1024
# Most head metrics a layer's metadata may name (12 today: math/head_metrics.METRIC_NAMES).
MAX_METRICS = 256
# Blobs one step may declare beyond the tag's metadata's examples: a step
# written with other facts may hold another number of examples (plus its
# facts blob). The Python reader makes a blob key per declared blob before
# the facts can say how many there are, so this bounds that work.
MAX_STEP_EXAMPLES = 1024
# Facts blobs read at once when a layer's steps are first grouped: under
# RustBoard one read takes about 3 ms; the first /index of 4 layers x 1000
# steps took 14.6 s reading one at a time, 3.5 s with 8 (2 CPU cores; the
# Python reader: 0.7 s either way). Later requests use the cache.
FACTS_READERS = 8
# Steps whose facts blobs a layer's timeline reads at least (evenly spaced,
# the first and the newest included); every step when it has no more. Facts
# change in runs of steps (another probe, another writer), so the timeline
# reads these, both steps around every change of the blob count, and bisects
# between two read steps whose facts differ: about FACTS_SAMPLES + 10 reads
# per change instead of one per step (docs/PERFORMANCE.md, change 9).
FACTS_SAMPLES = 32
# Points an over-steps series (importance, head statistics, rollout) holds by
# default: the tab's steps x tokens heatmap is at most 400 px high and its
# charts 380 px wide. Reading 1000 points of a 128-token layer's importance
# through RustBoard took 0.3-0.5 s (74 MB); 10,000 would not fit gRPC's
# 256 MiB reply limit at all.
MAX_POINTS = 500
# Largest reply asked of RustBoard for one derived series: its client refuses
# replies over 256 MiB.
MAX_READ_BYTES = 128 * 1024 * 1024
# How long a listing of the plugin's tags is reused: new data arrives at most
# every reload interval (5 s by default), and a listing call costs a few ms
# plus parsing, so a route answers from memory when it can.
LISTING_TTL_S = 2.0

_KNOWN_ENCODINGS = tuple(metadata.ENCODING_NAMES)
# Largest probe image served: a 2048 x 2048 RGBA PNG is at most 16 MiB.
MAX_IMAGE_BYTES = 16 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# tensorboard-data-server 0.7.2 (RustBoard) decodes a blob key into borrowed
# strings, which fails for run or tag names that JSON must escape
# ("expected a borrowed string"): quotes, backslashes, control characters.
_JSON_ESCAPED = frozenset('"\\') | frozenset(chr(c) for c in range(0x20))


# What tensorboard.util.tensor_util.make_ndarray raises on a damaged tensor
# proto (content that does not fill its shape, an unknown dtype, a declared
# shape too large to allocate).
_READER_ERRORS = (ValueError, TypeError, IndexError, MemoryError)


class StoredDataError(errors.PublicError):
    """The stored data cannot be served: damaged, from a newer format version,
    over the plugin's limits, or named so that TensorBoard's reader cannot
    serve it. `kind` says which: damaged_data, newer_format, too_large,
    reader_limitation."""

    http_code = 422

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class Layer:
    """A MAPS tag whose metadata passed `check_metadata`; `info` is that
    metadata, or the facts of the steps a Timeline or a maps reply is about."""

    def __init__(self, run, tag, info, series):
        self.run, self.tag, self.info, self.series = run, tag, info, series

    def with_facts(self, info):
        return Layer(self.run, self.tag, info, self.series)

    def example(self, example):
        """The example's metadata; NotFoundError when out of range."""
        count = len(self.info.examples)
        if not 0 <= example < count:
            raise errors.NotFoundError(
                "example %d out of range: the probe of layer %r has %d examples (0..%d)"
                % (example, self.tag, count, count - 1)
            )
        return self.info.examples[example]

    def where(self, step=None):
        at = "" if step is None else " at step %d" % step
        return "run %r layer %r%s" % (self.run, self.tag, at)


class Timeline:
    """A layer's captured steps grouped by their facts.

    `layer`: the Layer with the newest step's facts (`rows_normalized` false
    when it is false at any of `steps` whose facts were read); `steps`: the
    sorted steps with those facts; `other_steps`: the sorted steps with other
    facts; `facts`: {step: facts} of every step; `read`: the steps whose own
    facts blob was read (the others have the facts of the read steps around
    them, see `Store.timeline`).
    """

    def __init__(self, layer, facts, read=None):
        self.facts = facts
        self.read = frozenset(facts) if read is None else frozenset(read)
        self.tag_layer = layer  # the Layer of the tag's metadata
        steps = sorted(facts)
        if not steps:
            self.layer, self.steps, self.other_steps, self.steps_set = layer, [], [], frozenset()
            return
        keys = {}  # steps with equal facts mostly share one message: one key each
        for f in facts.values():
            if id(f) not in keys:
                keys[id(f)] = metadata.shape_key(f)
        newest = keys[id(facts[steps[-1]])]
        self.steps = [s for s in steps if keys[id(facts[s])] == newest]
        self.other_steps = [s for s in steps if keys[id(facts[s])] != newest]
        self.steps_set = frozenset(self.steps)
        info = PluginData()
        info.CopyFrom(facts[steps[-1]])
        info.rows_normalized = all(facts[s].rows_normalized for s in self.steps if s in self.read)
        self.layer = layer.with_facts(info)


# What `Store.maps` answers: bytes of (heads, q, k) cells in `encoding`, the
# step's `facts`, whether they differ from the layer's newest step's, and
# whether `data` is the stored zlib stream (RFC 1950, checked to inflate to
# exactly those cells) rather than the raw bytes.
# For maps stored reduced, `data` is the dense map rebuilt from what was kept
# and `max_error` the most any of its cells can be off (None: exact within
# the encoding).
MapsReply = collections.namedtuple("MapsReply", "data shape encoding facts other_facts compressed max_error")
# What `Store.series` answers: the layer (newest facts), the steps served,
# their values, and how many steps the layer has with its newest facts
# (more than `steps` when the series was downsampled to `max_points`).
Series = collections.namedtuple("Series", "layer steps values total_steps")


def pick_steps(steps, max_points):
    """At most `max_points` of the sorted `steps`, evenly spaced by position,
    the first and the last included; all of them when they are no more."""
    n = len(steps)
    if n <= max_points:
        return list(steps)
    if max_points == 1:
        return [steps[-1]]
    return [steps[round(i * (n - 1) / (max_points - 1))] for i in range(max_points)]


def parse_metadata(content):
    """Plugin content bytes -> AttentionPluginData, or StoredDataError."""
    try:
        return metadata.parse_plugin_metadata(content)
    except metadata.UnknownVersionError as e:
        raise StoredDataError("newer_format", str(e)) from None
    except Exception as e:  # damaged protobuf bytes
        raise StoredDataError("damaged_data", "unreadable metadata (%s)" % e) from None


def check_metadata(info):
    """Raises StoredDataError unless a MAPS tag's metadata is consistent."""

    def damaged(message):
        raise StoredDataError("damaged_data", "metadata " + message)

    if info.encoding not in _KNOWN_ENCODINGS:
        damaged("names an unknown encoding (%d)" % info.encoding)
    if info.kind not in metadata.KIND_NAMES:
        damaged("names an unknown layer kind (%d)" % info.kind)
    if not 1 <= info.num_heads <= MAX_HEADS:
        damaged("declares %d heads (1..%d expected)" % (info.num_heads, MAX_HEADS))
    if not info.examples:
        damaged("declares no probe example")
    for i, ex in enumerate(info.examples):
        for what, value in (
            ("query_length", ex.query_length),
            ("key_length", ex.key_length),
            ("query_offset", ex.query_offset),
            ("key_offset", ex.key_offset),
        ):
            if not 0 <= value <= MAX_TOKENS:
                damaged("of example %d declares %s %d (0..%d expected)" % (i, what, value, MAX_TOKENS))
        if len(ex.query_tokens) != ex.query_length or len(ex.key_tokens) != ex.key_length:
            damaged(
                "of example %d has %d query and %d key tokens for lengths %d and %d"
                % (i, len(ex.query_tokens), len(ex.key_tokens), ex.query_length, ex.key_length)
            )
    if info.storage not in metadata.STORAGE_NAMES:
        damaged("names an unknown storage (%d)" % info.storage)
    if info.storage == PluginData.REDUCED and not (1 <= info.top_k <= MAX_TOKENS and 1 <= info.block_size <= MAX_TOKENS):
        damaged("of reduced maps declares top_k %d and blocks of %d (1..%d expected)"
                % (info.top_k, info.block_size, MAX_TOKENS))
    if info.probe_examples < 0:
        damaged("declares %d probe examples" % info.probe_examples)
    if not 0 <= info.sliding_window <= MAX_TOKENS:
        damaged("declares a sliding window of %d (0..%d expected)" % (info.sliding_window, MAX_TOKENS))
    if info.grid_rows or info.grid_cols or info.grid_prefix:
        # An image model's tokens: `prefix` class tokens, then rows x cols patches.
        rows, cols, prefix = info.grid_rows, info.grid_cols, info.grid_prefix
        if not (rows > 0 and cols > 0 and 0 <= prefix and prefix + rows * cols <= MAX_TOKENS):
            damaged("declares a patch grid of %d x %d after %d tokens" % (rows, cols, prefix))
        for i, ex in enumerate(info.examples):
            if ex.key_length not in (0, prefix + rows * cols):
                damaged("of example %d has %d keys; its %d x %d grid after %d tokens needs %d"
                        % (i, ex.key_length, rows, cols, prefix, prefix + rows * cols))


def check_shape(layer, role, step, shape, derived_info=None, example=None):
    """StoredDataError unless a derived tensor's shape is the one the
    metadata declares (metadata.derived_shape; a last axis that is not
    exact may be longer, up to MAX_TOKENS). `example`: that of a
    per-example importance tag."""
    wanted = metadata.derived_shape(layer.info, role, derived_info, example)
    shape = tuple(shape)
    if wanted.exact:
        fits = shape == wanted.leading + (wanted.last,)
    else:
        fits = (len(shape) == len(wanted.leading) + 1 and shape[:-1] == wanted.leading
                and wanted.last <= shape[-1] <= MAX_TOKENS)
    if not fits:
        last = ("%d" if wanted.exact else ">=%d") % wanted.last
        raise StoredDataError(
            "damaged_data",
            "%s%s of %s has shape %s; its metadata declares (%s)"
            % (metadata.ROLE_NAMES[role], "" if example is None else " of example %d" % example,
               layer.where(step), shape,
               ", ".join([str(d) for d in wanted.leading] + [last])),
        )


def check_tensor(layer, role, step, array, derived_info=None, example=None):
    """A derived tensor of one step -> float32, cropped to the length the
    metadata needs; StoredDataError unless its shape and dtype match."""
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise StoredDataError(
            "damaged_data",
            "%s of %s holds %s values, not floats" % (metadata.ROLE_NAMES[role], layer.where(step), array.dtype),
        )
    check_shape(layer, role, step, array.shape, derived_info, example)
    last = metadata.derived_shape(layer.info, role, derived_info, example).last
    return np.asarray(array[..., :last], dtype=np.float32)


def check_png(content, where):
    """The bytes of a stored probe image, if they are a PNG of at most
    MAX_IMAGE_BYTES; else StoredDataError. The browser decodes it: the
    server only makes sure it sends an image, not whatever a tag holds."""
    content = bytes(content)
    if len(content) > MAX_IMAGE_BYTES:
        raise StoredDataError("too_large", "%s is %d bytes, over %d MiB" % (where, len(content), MAX_IMAGE_BYTES >> 20))
    if not content.startswith(_PNG_SIGNATURE):
        raise StoredDataError("damaged_data", "%s is not a PNG image" % where)
    return content


class _ByteBudget:
    """Bytes held by work in progress; `hold(n)` waits until n more fit."""

    def __init__(self, limit):
        self._limit = limit
        self._used = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, size):
        with self._changed:
            self._changed.wait_for(lambda: self._used + size <= self._limit)
            self._used += size
        try:
            yield
        finally:
            with self._changed:
                self._used -= size
                self._changed.notify_all()


class Store:
    """Reads through `call(method, ctx, **kwargs)` (a data_calls.DataCalls)."""

    def __init__(self, call, downsample=ALL_STEPS, rustboard=False, cache_bytes=CACHE_BYTES):
        self._call = call
        self._downsample = downsample
        self._rustboard = rustboard
        self._cache = LruCache(cache_bytes)
        self._budget = _ByteBudget(DECODE_BUDGET_BYTES)
        self._listings = {}  # (kind, experiment_id) -> (time, listing)
        self._listings_lock = threading.Lock()
        self._facts_readers = concurrent.futures.ThreadPoolExecutor(FACTS_READERS, "tb-attention-facts")

    # -- layers ----------------------------------------------------------------

    def layers(self, ctx, experiment_id):
        """(layers, skipped): every checked MAPS tag as a Layer, and
        [(run, tag, reason)] of those whose metadata failed a check."""
        layers, skipped = [], []
        for run, tags in sorted(self._listing(ctx, experiment_id, "blob_sequences").items()):
            for tag, series in sorted(tags.items()):
                try:
                    layer = self._layer_of(run, tag, series)
                except StoredDataError as e:
                    skipped.append((run, tag, str(e)))
                    continue
                if layer is not None and not layer.info.relevance_of:  # a layer's relevance is listed with it
                    layers.append(layer)
        return layers, skipped

    def relevance_layer(self, ctx, experiment_id, layer):
        """The Layer of `layer`'s relevance (tag NAME/_relevance, read like
        any layer's maps), or None when it stored none; StoredDataError when
        its metadata is damaged or belongs to another layer."""
        tag = metadata.relevance_tag(layer.tag)
        series = self._listing(ctx, experiment_id, "blob_sequences").get(layer.run, {}).get(tag)
        if series is None:
            return None
        relevance = self._layer_of(layer.run, tag, series)
        if relevance is None or relevance.info.relevance_of != layer.info.layer:
            raise StoredDataError("damaged_data", "tag %r of run %r is not the relevance of layer %r"
                                  % (tag, layer.run, layer.info.layer))
        return relevance

    def layer(self, ctx, experiment_id, run, tag):
        """The checked Layer of run/tag; NotFoundError or StoredDataError."""
        series = self._listing(ctx, experiment_id, "blob_sequences").get(run, {}).get(tag)
        if series is None:
            raise errors.NotFoundError("no attention layer %r in run %r" % (tag, run))
        try:
            layer = self._layer_of(run, tag, series)
        except StoredDataError as e:
            raise StoredDataError(e.kind, "run %r layer %r: %s" % (run, tag, e)) from None
        if layer is None:
            raise errors.NotFoundError("tag %r of run %r is not an attention layer" % (tag, run))
        return layer

    def _layer_of(self, run, tag, series):
        """Layer, None for a tag of another role, or StoredDataError."""
        info = self._metadata(series.plugin_content)
        if info.role != PluginData.MAPS:
            return None
        return Layer(run, tag, info, series)

    def _metadata(self, content):
        """A tag's parsed metadata (checked when it is a MAPS tag's), cached
        by its bytes: /index parses every layer's and derived tag's."""
        key = ("metadata", content)
        info = self._cache.get(key)
        if info is None:
            info = parse_metadata(content)
            if info.role == PluginData.MAPS:
                check_metadata(info)
            self._cache.put(key, info, 2 * len(content) + 100)
        return info

    def steps(self, ctx, experiment_id, layer):
        """Sorted captured steps of a layer that share its newest step's facts."""
        return self.timeline(ctx, experiment_id, layer).steps

    def timeline(self, ctx, experiment_id, layer):
        """The layer's steps grouped by facts (a Timeline), cached per version
        of the tag. Reads the facts blobs of few steps (`_facts_by_step`)."""
        series = layer.series
        key = ("timeline", experiment_id, layer.run, layer.tag, series.plugin_content,
               series.max_step, series.max_wall_time)
        timeline = self._cache.get(key)
        if timeline is None:
            index = self._blob_index(ctx, experiment_id, layer)
            facts, read = self._facts_by_step(ctx, layer, index)
            timeline = Timeline(layer, facts, read)
            distinct = {id(f): f for f in facts.values()}  # ByteSize of each step took 0.2 s at 10,000
            size = 2 * sum(f.ByteSize() for f in distinct.values())
            self._cache.put(key, timeline, 100 * (len(facts) + 1) + size)
        return timeline

    def _facts_by_step(self, ctx, layer, index):
        """({step: facts} of every step of `index`, steps whose facts blob was
        read). Reads every step's facts when there are at most FACTS_SAMPLES
        steps; else FACTS_SAMPLES evenly spaced steps (the first and the
        newest included) and the steps on both sides of every change of the
        blob count, then bisects between neighbouring read steps whose facts
        differ until they are adjacent. A step between two read steps of equal
        facts is taken to have them: facts change in runs of steps. A run of
        other facts that starts and ends between two read steps of equal
        facts is missed; its maps still decode with their own facts, and a
        series checks every derived tensor's shape (see `_tensor_series`)."""
        steps = sorted(index)
        n = len(steps)
        if n <= FACTS_SAMPLES:
            probes = set(range(n))
        else:
            probes = {round(i * (n - 1) / (FACTS_SAMPLES - 1)) for i in range(FACTS_SAMPLES)}
            counts = [len(index[step]) for step in steps]
            for i in range(1, n):
                if counts[i] != counts[i - 1]:
                    probes.update((i - 1, i))
        known, keys = {}, {}  # position -> facts; id(facts) -> shape key

        def read(positions):
            positions = sorted(p for p in positions if p not in known)
            self._read_facts_at_once(ctx, layer, {steps[p]: index[steps[p]] for p in positions})
            for p in positions:
                facts = self._step(ctx, layer, steps[p], index[steps[p]])[0]
                known[p] = facts
                if id(facts) not in keys:
                    keys[id(facts)] = metadata.shape_key(facts)

        read(probes)
        while True:
            order = sorted(known)
            middles = [(a + b) // 2 for a, b in zip(order, order[1:])
                       if b - a > 1 and keys[id(known[a])] != keys[id(known[b])]]
            if not middles:
                break
            read(middles)
        facts, order = {}, sorted(known)
        for a, b in zip(order, order[1:] + [n]):
            for p in range(a, b):
                facts[steps[p]] = known[a]
        return facts, {steps[p] for p in known}

    def _read_facts_at_once(self, ctx, layer, index):
        """Reads the facts blobs of `index` that are not cached, FACTS_READERS
        at a time, into the cache; failures are left for `_step` to raise."""
        info = layer.info
        wanted = [
            (step, keys[-1]) for step, keys in sorted(index.items())
            if keys and metadata.has_facts_blob(info.version, len(keys), len(info.examples))
            and self._cache.get(("facts", keys[-1])) is None
        ]
        if len(wanted) < 2:
            return

        def read(item):
            try:
                self._facts(ctx, layer, *item)
            except (StoredDataError, errors.PublicError):
                pass

        list(self._facts_readers.map(read, wanted))

    def _step(self, ctx, layer, step, keys):
        """(facts, blob key per example) of one maps step."""
        info = layer.info
        if not metadata.has_facts_blob(info.version, len(keys), len(info.examples)):
            return info, keys
        if not keys:
            raise StoredDataError(
                "damaged_data", "%s holds no blob; format version %d ends each step with its facts"
                % (layer.where(step), info.version),
            )
        try:
            facts = self._facts(ctx, layer, step, keys[-1])
        except StoredDataError as e:
            if e.kind != "reader_limitation":
                raise
            # RustBoard reads no blob of this run or tag (its maps answer so):
            # the metadata's facts stand for every step, as in version 1, so
            # that /index and the series still serve it.
            return info, keys[:-1]
        if len(keys) - 1 != len(facts.examples):
            raise StoredDataError(
                "damaged_data", "%s holds %d maps blobs; its facts declare %d examples"
                % (layer.where(step), len(keys) - 1, len(facts.examples)),
            )
        return facts, keys[:-1]

    def _facts(self, ctx, layer, step, blob_key):
        """The checked facts blob of one step, cached by its blob key. Steps
        with equal facts share one parsed message (a probe's tokens may take
        tens of KB, times every step)."""
        key = ("facts", blob_key)
        facts = self._cache.get(key)
        if facts is not None:
            return facts
        where = "facts blob of " + layer.where(step)
        content = bytes(self._read_blob(ctx, layer, blob_key))
        if len(content) > MAX_FACTS_BYTES:
            raise StoredDataError(
                "damaged_data", "%s is %d bytes, over %d MiB" % (where, len(content), MAX_FACTS_BYTES >> 20)
            )
        try:
            facts = self._cache.get(("facts_content", content))
            if facts is None:
                facts = parse_metadata(content)
                if facts.role == PluginData.MAPS:
                    check_metadata(facts)
                self._cache.put(("facts_content", content), facts, 3 * len(content) + 100)
            if facts.role != PluginData.MAPS or facts.layer != layer.info.layer:
                raise StoredDataError(
                    "damaged_data", "declares role %d of layer %r, not the maps of %r"
                    % (facts.role, facts.layer, layer.info.layer),
                )
        except StoredDataError as e:
            raise StoredDataError(e.kind, "%s: %s" % (where, e)) from None
        self._cache.put(key, facts, 200)
        return facts

    def has_tensor(self, ctx, experiment_id, layer, role):
        derived = metadata.tag_for(layer.tag, role)
        return derived in self._listing(ctx, experiment_id, "tensors").get(layer.run, {})

    def derived_metadata(self, ctx, experiment_id, layer, role, example=None):
        """The checked metadata of the layer's derived tag of `role` (of
        `example`: metadata.tag_for), an AttentionPluginData, or None when the
        layer has none; StoredDataError when it is unreadable, newer or of
        another role."""
        derived = metadata.tag_for(layer.tag, role, example)
        series = self._listing(ctx, experiment_id, "tensors").get(layer.run, {}).get(derived)
        if series is None:
            return None
        try:
            info = self._metadata(series.plugin_content)
        except StoredDataError as e:
            raise StoredDataError(e.kind, "tag %r of run %r: %s" % (derived, layer.run, e)) from None
        if info.role != role:
            raise StoredDataError(
                "damaged_data", "tag %r of run %r declares role %d, not %s"
                % (derived, layer.run, info.role, metadata.ROLE_NAMES[role]),
            )
        if role in (PluginData.HEAD_METRICS, PluginData.VALUE_METRICS) and not 0 < len(info.metric_names) <= MAX_METRICS:
            raise StoredDataError(
                "damaged_data", "tag %r of run %r names %d metrics (1..%d expected)"
                % (derived, layer.run, len(info.metric_names), MAX_METRICS),
            )
        return info

    # -- probe images ----------------------------------------------------------

    def probe_image_count(self, ctx, experiment_id, run):
        """How many probe images the run stored (0: none, or unusable)."""
        try:
            return len(self._probe_images(ctx, experiment_id, run))
        except (StoredDataError, errors.NotFoundError):
            return 0

    def probe_image(self, ctx, experiment_id, run, example):
        """PNG bytes of one probe example's image (the first stored copy)."""
        images = self._probe_images(ctx, experiment_id, run)
        if not 0 <= example < len(images):
            raise errors.NotFoundError(
                "example %d out of range: run %r stored %d probe images" % (example, run, len(images)))
        return check_png(images[example], "probe image %d of run %r" % (example, run))

    def _probe_images(self, ctx, experiment_id, run):
        """The run's probe images at their first step: a 1-D string tensor
        (tag PROBE_IMAGES_TAG, one PNG per example), cached per version."""
        tag = metadata.PROBE_IMAGES_TAG
        series = self._listing(ctx, experiment_id, "tensors").get(run, {}).get(tag)
        if series is None:
            raise errors.NotFoundError("run %r has no probe images (only image models store them)" % run)
        key = ("probe_images", experiment_id, run, series.plugin_content, series.max_step, series.max_wall_time)
        images = self._cache.get(key)
        if images is not None:
            return images
        if parse_metadata(series.plugin_content).role != PluginData.PROBE_IMAGES:
            raise StoredDataError("damaged_data", "tag %r of run %r is not probe images" % (tag, run))

        def check(run_, tag_, step, shape):  # before TensorBoard expands the proto
            if not (len(shape) == 1 and 0 <= shape[0] <= MAX_STEP_EXAMPLES):
                raise StoredDataError("damaged_data", "probe images of run %r declare shape %s" % (run, shape))
            return True

        datums = self._read_points("read_tensors_checked", ctx, experiment_id, run, tag, check_shape=check)
        if not datums:
            raise errors.NotFoundError("run %r has no probe images" % run)
        array = np.asarray(min(datums, key=lambda d: d.step).numpy)
        if array.dtype != object:
            raise StoredDataError("damaged_data", "probe images of run %r hold %s values, not PNG bytes"
                                  % (run, array.dtype))
        if not all(isinstance(png, bytes) for png in array.flat):
            raise StoredDataError("damaged_data", "probe images of run %r hold text or numbers, not PNG bytes" % run)
        images = [bytes(png) for png in array]
        self._cache.put(key, images, sum(len(png) for png in images) + 100)
        return images

    # -- maps ------------------------------------------------------------------

    def maps(self, ctx, experiment_id, run, tag, step, example, head=None, compressed=False):
        """MapsReply of one example at one step, all heads or one (heads = 1),
        decoded with that step's facts. With `compressed`, every head asked
        for and the blob stored compressed, `data` is the stored zlib stream
        as it is (checked once, when read), for the client to inflate;
        otherwise the raw bytes."""
        layer = self.layer(ctx, experiment_id, run, tag)
        index = self._blob_index(ctx, experiment_id, layer)
        keys = index.get(step)
        if keys is None:
            raise errors.NotFoundError("%s has no capture at step %d" % (layer.where(), step))
        info, keys = self._step(ctx, layer, step, keys)
        other = self._differs_from_newest(ctx, layer, index, info)
        layer = layer.with_facts(info)
        ex = layer.example(example)
        if head is not None and not 0 <= head < info.num_heads:
            raise errors.NotFoundError("head %d out of range 0..%d" % (head, info.num_heads - 1))
        if example >= len(keys):
            raise StoredDataError(
                "damaged_data",
                "%s holds %d maps blobs; the metadata declares %d examples"
                % (layer.where(step), len(keys), len(info.examples)),
            )
        shape = (info.num_heads, ex.query_length, ex.key_length)
        cell_bytes = encoding_lib.bytes_per_cell(info.encoding)
        size = shape[0] * shape[1] * shape[2] * cell_bytes
        if size > MAX_MAP_BYTES:
            raise StoredDataError(
                "too_large",
                "maps of example %d of %s are %s = %d MiB, over the plugin's limit of %d MiB; "
                "capture shorter sequences or fewer heads (layers=)"
                % (example, layer.where(step), "x".join(map(str, shape)), size >> 20, MAX_MAP_BYTES >> 20),
            )
        if info.storage == PluginData.REDUCED:
            heads = range(info.num_heads) if head is None else [head]
            data, error = self._rebuilt(ctx, layer, step, keys[example], example, shape, heads)
            return MapsReply(data, (len(heads),) + shape[1:], info.encoding, info, other, False, error)
        as_stored = compressed and head is None  # a compressed blob would go out as it is
        stored, data = self._map_blob(ctx, layer, step, keys[example], shape, size, keep_raw=not as_stored)
        if encoding_lib.is_compressed(stored, info.encoding, shape[0] * shape[1] * shape[2]):
            if as_stored:
                return MapsReply(stored, shape, info.encoding, info, other, True, None)
            if data is None:  # a checked blob from the cache: inflate it again
                with self._budget.hold(size):
                    data = self._raw_bytes(layer, step, shape, stored, size)
        elif data is None:
            data = stored
        if head is not None:
            per_head = shape[1] * shape[2] * cell_bytes
            data = data[head * per_head : (head + 1) * per_head]
            shape = (1,) + shape[1:]
        return MapsReply(data, shape, info.encoding, info, other, False, None)

    def _rebuilt(self, ctx, layer, step, blob_key, example, shape, heads):
        """(raw bytes, largest error) of `heads` of one example's maps stored
        reduced: the dense map rebuilt from each row's kept weights and the
        block overview (format/reduction.py), in the step's encoding, and the
        most any of its cells, as encoded, can be off. Rebuilt one head at a time, which
        holds about five float32 copies of one head's map."""
        info = layer.info
        stored, _ = self._map_blob(ctx, layer, step, blob_key, shape, encoding_lib.stored_bytes(info, example),
                                   keep_raw=False)
        try:
            reduced = encoding_lib.decode_reduced(stored, info.encoding, shape, info.top_k, info.block_size)
        except ValueError as e:
            raise StoredDataError(
                "damaged_data", "maps blob of %s, shape %s: %s" % (layer.where(step), shape, e)
            ) from None
        parts, error = [], 0.0
        cell_error = encoding_lib.cell_error(info.encoding)
        with self._budget.hold(min(5 * 4 * shape[1] * shape[2], DECODE_BUDGET_BYTES)):
            for h in heads:
                estimate, bound = reduction.rebuild(reduction.one_head(reduced, h), cell_error)
                parts.append(encoding_lib.encode_raw(estimate, info.encoding))
                error = max(error, float(bound.max(initial=0.0)))
        # The reply encodes the estimate again: one more encoding step of error.
        return b"".join(parts), error + cell_error

    def _differs_from_newest(self, ctx, layer, index, facts):
        """Whether `facts` differ from those of the layer's newest step (also
        when the newest step's facts cannot be read: the caller then says
        which facts it used)."""
        newest = max(index)
        try:
            newest_facts = self._step(ctx, layer, newest, index[newest])[0]
        except StoredDataError:
            return True
        return metadata.shape_key(facts) != metadata.shape_key(newest_facts)

    def _map_blob(self, ctx, layer, step, blob_key, shape, size, keep_raw=True):
        """(stored blob, its raw bytes or None) of one example's maps.

        A blob is checked when read (`encoding.raw_bytes`: a damaged or
        "zlib bomb" blob is a StoredDataError, 422, and never leaves the
        store) and only a checked one is cached, as stored: compressed blobs
        are ~0.2 of their raw size, and the maps route sends them as they are
        to browsers. The raw bytes come back only when the check has just
        made them and `keep_raw`, None on a cache hit. Without `keep_raw`
        (the blob goes out as stored) it is checked in chunks
        (`encoding.check`), never inflated whole."""
        cache_key = ("blob", blob_key, shape, layer.info.encoding)
        stored = self._cache.get(cache_key)
        if stored is not None:
            return stored, None
        with self._budget.hold(size):
            stored = self._read_blob(ctx, layer, blob_key)
            data = self._raw_bytes(layer, step, shape, stored, size, keep=keep_raw)
        self._cache.put(cache_key, stored, len(stored))
        return stored, data

    def _raw_bytes(self, layer, step, shape, stored, size, keep=True):
        """The raw bytes (`size` of them) of a stored maps blob (None without
        `keep`: only checked); StoredDataError if damaged."""
        try:
            if not keep:
                return encoding_lib.check_exact(stored, size)
            return encoding_lib.inflate_exact(stored, size)
        except ValueError as e:
            raise StoredDataError(
                "damaged_data", "maps blob of %s, shape %s: %s" % (layer.where(step), shape, e)
            ) from None

    def _read_blob(self, ctx, layer, blob_key):
        try:
            return self._decoded("read_blob", "the maps blob of " + layer.where(), ctx, blob_key=blob_key)
        except errors.InvalidArgumentError:
            odd = [name for name in (layer.run, layer.tag) if _JSON_ESCAPED.intersection(name)]
            if not (self._rustboard and odd):
                raise
            raise StoredDataError(
                "reader_limitation",
                "TensorBoard's fast reader (RustBoard) cannot read maps of %s: its blob keys "
                "break on quotes, backslashes and control characters in %r. Start TensorBoard "
                "with --load_fast=false, or rename the run directory or the layer."
                % (layer.where(), odd[0]),
            ) from None

    def _blob_index(self, ctx, experiment_id, layer):
        """{step: (blob key of each blob)} of a MAPS tag, cached per version:
        one per example, then (format version 2) the step's facts blob. The
        keys are a sequence (`tensor_reads.read_blob_keys`), not always a
        tuple."""
        series = layer.series
        key = ("blob_index", experiment_id, layer.run, layer.tag, series.max_step, series.max_wall_time)
        index = self._cache.get(key)
        if index is None:
            examples = len(layer.info.examples)
            most = max(examples, MAX_STEP_EXAMPLES) + 1  # the examples of a step, then its facts

            def check(run, tag, step, shape):  # before a reader makes a key per declared blob
                if not (len(shape) == 1 and 0 <= shape[0] <= most):
                    raise StoredDataError(
                        "damaged_data", "maps of %s declare shape %s; a step holds at most %d blobs "
                        "(the metadata declares %d examples)" % (layer.where(step), shape, most, examples),
                    )

            index = dict(self._read_points(
                "read_blob_keys_checked", ctx, experiment_id, layer.run, layer.tag, check_shape=check
            ))
            # a key held is about 40-64 bytes of RustBoard's reply; the
            # in-process reader's are made when read
            self._cache.put(key, index, 100 + sum(100 + 64 * len(keys) for keys in index.values()))
        return index

    # -- derived series ----------------------------------------------------------

    def series(self, ctx, experiment_id, run, tag, role, example, mode=None, max_points=MAX_POINTS):
        """Series of one example's derived values, cropped to the example's
        tokens: importance (steps, H+1, L) of `mode` ('received': L =
        key_length, 'given': query_length), head stats (steps, H, 3), rollout
        (steps, key_length), head metrics and value metrics (steps, H, M),
        value norms (steps, H, key_length), relevance rows (steps, H,
        query_length); at the steps that share the layer's newest facts,
        at most `max_points` of them (`pick_steps`)."""
        timeline = self.timeline(ctx, experiment_id, self.layer(ctx, experiment_id, run, tag))
        layer = timeline.layer
        ex = layer.example(example)
        if role == PluginData.IMPORTANCE:
            steps, values = self._importance_series(ctx, experiment_id, timeline, example, mode, max_points)
        else:
            steps, values = self._tensor_series(ctx, experiment_id, timeline, role, None, max_points)
            values = values[:, example]
        if role in (PluginData.ROLLOUT, PluginData.VALUE_NORMS):
            values = values[..., : ex.key_length]
        if role == PluginData.RELEVANCE_ROWS:
            values = values[..., : ex.query_length]
        return Series(layer, steps, values, len(timeline.steps))

    def _importance_series(self, ctx, experiment_id, timeline, example, mode, max_points):
        """(steps, (steps, H + 1, L)) of one example's importance of `mode`,
        cropped to its length L of that mode, from the example's own tag,
        merged with the tag of all examples of older writers where a run has
        both (metadata.tag_for: a newer writer continued an older one's run)."""
        layer = timeline.layer
        ex = layer.info.examples[example]
        length = ex.key_length if mode == "received" else ex.query_length
        index = metadata.IMPORTANCE_MODES.index(mode)
        listed = self._listing(ctx, experiment_id, "tensors").get(layer.run, {})
        sources = [source for source in (None, example)  # the example's own tag last: it wins at a step both hold
                   if metadata.tag_for(layer.tag, PluginData.IMPORTANCE, source) in listed]
        if not sources:
            raise errors.NotFoundError("%s has no importance data" % layer.where())
        by_step = {}
        for source in sources:
            steps, values = self._tensor_series(ctx, experiment_id, timeline, PluginData.IMPORTANCE, index,
                                                max_points, source)
            if source is None:
                values = values[:, example]
            by_step.update(zip(steps, values[..., :length]))
        steps = pick_steps(sorted(by_step), max_points)
        if not steps:
            return [], np.zeros((0, layer.info.num_heads + 1, length), np.float32)
        return steps, np.stack([by_step[s] for s in steps])

    def _tensor_series(self, ctx, experiment_id, timeline, role, index, max_points, example=None):
        """(steps, stacked checked float32 array) of a derived tag (of
        `example`: metadata.tag_for) at the timeline's steps (those with the
        newest facts), at most `max_points` of them, cached. Points at other
        steps are left out before they are turned into arrays.

        With `index`, only that row of the importance tensor's mode axis is
        kept: the tab asks for one mode.
        """
        layer = timeline.layer
        derived = metadata.tag_for(layer.tag, role, example)
        series = self._listing(ctx, experiment_id, "tensors").get(layer.run, {}).get(derived)
        derived_info = self.derived_metadata(ctx, experiment_id, layer, role, example)
        if series is None or derived_info is None:
            raise errors.NotFoundError("%s has no %s data" % (layer.where(), metadata.ROLE_NAMES[role]))
        key = ("tensors", experiment_id, layer.run, derived, index, max_points, series.plugin_content,
               layer.series.plugin_content, series.max_step, series.max_wall_time,
               layer.series.max_step, layer.series.max_wall_time)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._read_series(ctx, experiment_id, timeline, role, index, max_points, derived, derived_info,
                                       example)
            self._cache.put(key, cached, cached[1].nbytes + 8 * len(cached[0]))
        return cached

    def _read_series(self, ctx, experiment_id, timeline, role, index, max_points, derived, derived_info, example):
        layer = timeline.layer
        leading, minimum, _ = metadata.derived_shape(layer.info, role, derived_info, example)
        wanted = frozenset(pick_steps(timeline.steps, max_points))
        downsample = self._downsample
        if self._rustboard:
            # RustBoard downsamples on its side (evenly over all of the tag's
            # points) and sends every point it picks: ask for about as many as
            # give `max_points` of the served steps, within its reply limit.
            everything = max(len(timeline.facts), 1)
            point_bytes = 4 * minimum * int(np.prod(leading))
            asked = everything if len(wanted) == len(timeline.steps) else math.ceil(
                max_points * everything / max(len(timeline.steps), 1))
            downsample = max(1, min(downsample, asked, MAX_READ_BYTES // max(point_bytes, 1)))
        other_shape = []

        def check(run, tag, step, shape):  # refused before TensorBoard turns the proto into an array
            if step not in timeline.steps_set:
                return False  # other facts, or no maps: left out, never expanded
            if not self._rustboard and step not in wanted:
                return False  # downsampled here (RustBoard did its own above)
            try:
                return check_shape(layer, role, step, shape, derived_info, example)
            except StoredDataError:
                if step in timeline.read:
                    raise
                other_shape.append((step, shape))  # facts not read: see below
                return False

        datums = sorted(
            (d for d in self._read_points(
                "read_tensors_checked", ctx, experiment_id, layer.run, derived, check_shape=check,
                downsample=downsample,
            ) if d.step in timeline.steps_set),
            key=lambda d: d.step,
        )
        for step, shape in other_shape:
            # A step taken to have the newest facts (its own facts blob was not
            # read) whose tensor has another shape: its own facts decide
            # whether it is damaged or was written with other facts.
            if self._facts_differ(ctx, experiment_id, timeline, step):
                continue
            check_shape(layer, role, step, shape, derived_info, example)
        if self._rustboard and len(datums) > max_points:
            keep = frozenset(pick_steps([d.step for d in datums], max_points))
            datums = [d for d in datums if d.step in keep]
        mode_axis = len(leading) - 2  # importance: (..., modes, heads + 1, L)
        arrays = []
        for datum in datums:
            array = check_tensor(layer, role, datum.step, datum.numpy, derived_info, example)
            arrays.append(array if index is None else np.take(array, index, axis=mode_axis))
        if index is not None:
            leading = leading[:mode_axis] + leading[mode_axis + 1:]
        values = np.stack(arrays) if arrays else np.zeros((0,) + leading + (minimum,), np.float32)
        return [d.step for d in datums], values

    def _facts_differ(self, ctx, experiment_id, timeline, step):
        """Whether the step's own facts differ from the layer's newest."""
        keys = self._blob_index(ctx, experiment_id, timeline.tag_layer).get(step)
        if keys is None:
            return False
        facts = self._step(ctx, timeline.tag_layer, step, keys)[0]
        return metadata.shape_key(facts) != metadata.shape_key(timeline.layer.info)

    # -- data provider -------------------------------------------------------------

    def _listing(self, ctx, experiment_id, kind):
        """{run: {tag: time series}} of the plugin's blob sequences or tensors,
        reused for LISTING_TTL_S seconds."""
        key = (kind, experiment_id)
        now = time.monotonic()
        with self._listings_lock:
            cached = self._listings.get(key)
        if cached is not None and now - cached[0] < LISTING_TTL_S:
            return cached[1]
        method = "list_blob_sequences" if kind == "blob_sequences" else "list_tensors"
        listing = self._call(method, ctx, experiment_id=experiment_id, plugin_name=metadata.PLUGIN_NAME)
        with self._listings_lock:
            self._listings[key] = (now, listing)
        return listing

    def _read_points(self, read, ctx, experiment_id, run, tag, downsample=None, **extra):
        """Every kept point of one run/tag, through a data provider `read_*`."""
        data = self._decoded(
            read,
            "tag %r of run %r" % (tag, run),
            ctx,
            experiment_id=experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample if downsample is None else downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
            **extra,
        )
        return data.get(run, {}).get(tag, [])

    def _decoded(self, method, what, ctx, **kwargs):
        """self._call(method, ...), where the reader's failure to decode stored
        data is a StoredDataError: the Python reader (and TensorBoard's client
        of RustBoard) turns tensor protos into arrays inside `read_*`, and a
        damaged proto raises there (e.g. content shorter than its shape)."""
        try:
            return self._call(method, ctx, **kwargs)
        except _READER_ERRORS as e:
            raise StoredDataError(
                "damaged_data",
                "TensorBoard's reader could not decode %s: %s: %s" % (what, type(e).__name__, e),
            ) from None
