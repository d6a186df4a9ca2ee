"""The Attention tab's backend: thin HTTP routes over the store.

Every route is documented in http_api.md. A handler parses its parameters
(`params`), asks the store (`store`: reading through TensorBoard's data
provider, checking against the metadata, decoding, caching) and responds.
Every error a route can answer is a `tensorboard.errors.PublicError` and is
sent as a JSON `{"error": {...}}` with its 4xx status; every JSON reply is
strict (non-finite numbers are `null`).
"""

import collections
import gzip
import hashlib
import json
import logging
import mimetypes
import os

import numpy as np
from tensorboard import errors
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_attention_plugin.serving import data_calls
from tb_attention_plugin.format import metadata
from tb_attention_plugin.serving import params
from tb_attention_plugin.serving import store as store_lib

logger = logging.getLogger(__name__)

PluginData = metadata.PluginData


def frontend_dir():
    """The frontend files: installed inside the package
    (tb_attention_plugin/frontend/), or in a checkout (frontend/ beside it)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (os.path.join(package, "frontend"), os.path.join(os.path.dirname(package), "frontend")):
        if os.path.isfile(os.path.join(candidate, "index.js")):
            return candidate
    return None


# A static file: its bytes gzipped once (TensorBoard's Respond would gzip
# them at every request) and its content type.
StaticFile = collections.namedtuple("StaticFile", "gzipped content_type")

# How long a browser may keep a file fetched under /static/<version>/: its
# URL changes with any change to any frontend file, so a new install is never
# served from the cache.
STATIC_MAX_AGE = 365 * 24 * 3600


def _load_frontend():
    """(version, {file name: StaticFile}) of the frontend's own files; the
    version is a hash of every file's name and bytes."""
    directory = frontend_dir()
    files = {}
    if directory is None:
        logger.error("tb-attention: frontend files not found; the tab will be empty")
        return "none", files
    digest = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.rsplit(".", 1)[-1] not in ("js", "css", "html"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            content = f.read()
        digest.update(b"%d %s %d\n" % (len(name), name.encode(), len(content)) + content)
        content_type = "text/javascript" if name.endswith(".js") else mimetypes.guess_type(name)[0]
        files[name] = StaticFile(gzip.compress(content, 6, mtime=0), content_type)
    return digest.hexdigest()[:16], files


def _route(handler):
    """A werkzeug app from handler(self, request) that answers every
    PublicError (400, 404, 422) as a JSON error."""

    @wrappers.Request.application
    def serve(self, request):
        try:
            return handler(self, request)
        except errors.PublicError as e:
            return error_response(request, e)

    serve.__name__ = handler.__name__
    serve.__doc__ = handler.__doc__
    return serve


class AttentionPlugin(base_plugin.TBPlugin):
    """Serves captured attention maps, importance and head statistics."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        data_provider = context.data_provider
        rustboard = data_calls.is_rustboard(data_provider)
        hints = getattr(context.flags, "samples_per_plugin", None) or {}
        hint = hints.get(metadata.PLUGIN_NAME, 0) if isinstance(hints, dict) else 0
        self.store = store_lib.Store(
            data_calls.DataCalls(data_provider, rustboard),
            downsample=hint if hint > 0 else store_lib.ALL_STEPS,
            rustboard=rustboard,
        )
        self._version, self._frontend = _load_frontend()

    # -- TBPlugin ------------------------------------------------------------

    def get_plugin_apps(self):
        apps = {
            "/index": self._serve_index,
            "/maps": self._serve_maps,
            "/importance": self._serve_importance,
            "/head_stats": self._serve_head_stats,
            "/rollout": self._serve_rollout,
            "/head_metrics": self._serve_head_metrics,
            "/value_norms": self._serve_value_norms,
            "/relevance_rows": self._serve_relevance_rows,
            "/probe_image": self._serve_probe_image,
        }
        # Each frontend file gets its own routes: nothing else can be served.
        # TensorBoard loads the tab from /static/<version>/index.js, so every
        # module it imports (relative URLs) is versioned too and cacheable;
        # /<name> is the same file, never cached.
        for name in self._frontend:
            apps["/" + name] = self._serve_static
            apps["/static/%s/%s" % (self._version, name)] = self._serve_static
        return apps

    def is_active(self):
        return False  # TensorBoard decides from data_plugin_names and the data

    def data_plugin_names(self):
        return (metadata.PLUGIN_NAME,)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/static/%s/index.js" % self._version, tab_name="Attention")

    # -- routes ----------------------------------------------------------------

    @_route
    def _serve_static(self, request):
        name = request.path.rsplit("/", 1)[-1]
        if name not in self._frontend:
            raise errors.NotFoundError("no such file: %s" % name)
        static = self._frontend[name]
        # A versioned URL names these exact bytes (the version is their
        # hash): the browser keeps them; it asks again for an unversioned one.
        versioned = request.path.endswith("/static/%s/%s" % (self._version, name))
        return http_util.Respond(request, static.gzipped, static.content_type, content_encoding="gzip",
                                 expires=STATIC_MAX_AGE if versioned else 0)

    @_route
    def _serve_index(self, request):
        ctx, eid = _context(request)
        return json_response(request, self.index_impl(ctx, eid))

    @_route
    def _serve_maps(self, request):
        ctx, eid = _context(request)
        args = request.args
        example = params.integer(args, "example", minimum=0)
        compression = params.choice(args, "compression", ("none", "zlib"), "none")
        reply = self.maps_impl(
            ctx, eid, params.string(args, "run"), params.string(args, "tag"),
            params.integer(args, "step"), example, params.integer(args, "head", required=False, minimum=0),
            compressed=compression == "zlib",
        )
        response = http_util.Respond(request, reply.data, "application/octet-stream")
        response.headers["X-Attention-Shape"] = ",".join(str(n) for n in reply.shape)
        response.headers["X-Attention-Encoding"] = metadata.ENCODING_NAMES[reply.encoding]
        if reply.compressed:  # the stored zlib stream, checked; the tab inflates it (DecompressionStream)
            response.headers["X-Attention-Compression"] = "zlib"
        if reply.max_error is not None:  # stored reduced: a rebuilt map, each cell within this of the truth
            response.headers["X-Attention-Storage"] = "reduced"
            response.headers["X-Attention-Max-Error"] = "%.6g" % reply.max_error
        if reply.other_facts:  # the step's facts are not those /index lists for the layer
            response.headers["X-Attention-Facts"] = facts_header(reply.facts, example)
        return response

    @_route
    def _serve_importance(self, request):
        ctx, eid = _context(request)
        args = request.args
        mode = params.choice(args, "mode", metadata.IMPORTANCE_MODES, "received")
        output = params.choice(args, "format", ("json", "binary"), "json")
        head = params.integer(args, "head", required=False, minimum=0)
        of = params.choice(args, "of", ("weights", "value_weighted"), "weights")
        if of == "value_weighted" and mode != "received":
            raise errors.InvalidArgumentError(
                "of=value_weighted is received attention only (sum over queries of weight x value norm)")
        call = (
            ctx, eid, params.string(args, "run"), params.string(args, "tag"),
            params.integer(args, "example", minimum=0), mode, head, _max_points(args), of,
        )
        if output == "json":
            return json_response(request, self.importance_impl(*call))
        if head is None:
            raise errors.InvalidArgumentError("format=binary needs head= (0..H, H = head mean)")
        steps, values, num_heads, total = self.importance_binary_impl(*call)
        body = np.asarray(steps, dtype="<f8").tobytes() + values.astype("<f4").tobytes()
        response = http_util.Respond(request, body, "application/octet-stream")
        response.headers["X-Attention-Shape"] = "%d,%d" % values.shape
        response.headers["X-Attention-Heads"] = str(num_heads)
        response.headers["X-Attention-Steps-Total"] = str(total)
        return response

    @_route
    def _serve_head_stats(self, request):
        return self._serve_example_series(request, self.head_stats_impl)

    @_route
    def _serve_rollout(self, request):
        return self._serve_example_series(request, self.rollout_impl)

    @_route
    def _serve_head_metrics(self, request):
        ctx, eid = _context(request)
        args = request.args
        return json_response(request, self.head_metrics_impl(
            ctx, eid, params.string(args, "run"), params.string(args, "tag"),
            params.integer(args, "example", minimum=0), params.string(args, "metric"), _max_points(args),
            of=params.choice(args, "of", tuple(_METRICS_OF), "weights"),
        ))

    @_route
    def _serve_value_norms(self, request):
        return self._serve_example_step(request, self.value_norms_impl)

    @_route
    def _serve_relevance_rows(self, request):
        return self._serve_example_step(request, self.relevance_rows_impl)

    def _serve_example_step(self, request, impl):
        """JSON of impl(ctx, eid, run, tag, example, step): one example's values at one step."""
        ctx, eid = _context(request)
        args = request.args
        return json_response(request, impl(
            ctx, eid, params.string(args, "run"), params.string(args, "tag"),
            params.integer(args, "example", minimum=0), params.integer(args, "step"),
        ))

    @_route
    def _serve_probe_image(self, request):
        ctx, eid = _context(request)
        args = request.args
        content = self.store.probe_image(
            ctx, eid, params.string(args, "run"), params.integer(args, "example", minimum=0))
        return http_util.Respond(request, content, "image/png")

    def _serve_example_series(self, request, impl):
        """JSON of impl(ctx, eid, run, tag, example): a series over steps."""
        ctx, eid = _context(request)
        args = request.args
        return json_response(request, impl(
            ctx, eid, params.string(args, "run"), params.string(args, "tag"),
            params.integer(args, "example", minimum=0), _max_points(args),
        ))

    # -- implementations: plain data from the store ----------------------------

    def index_impl(self, ctx, experiment_id):
        """{"runs": [{"run", "layers": [...]}], "skipped": [...]}, see http_api.md."""
        layers, skipped = self.store.layers(ctx, experiment_id)
        runs = {}
        for layer in layers:
            try:
                timeline = self.store.timeline(ctx, experiment_id, layer)
            except store_lib.StoredDataError as e:  # blobs or facts the reader cannot decode
                skipped.append((layer.run, layer.tag, str(e)))
                continue
            has_rollout = self.store.has_tensor(ctx, experiment_id, layer, PluginData.ROLLOUT)
            try:
                metrics = self.store.derived_metadata(ctx, experiment_id, layer, PluginData.HEAD_METRICS)
            except store_lib.StoredDataError:
                metrics = None  # its route answers why; the maps are still served
            metric_names = list(metrics.metric_names) if metrics is not None else []
            try:
                norms = self.store.derived_metadata(ctx, experiment_id, layer, PluginData.VALUE_NORMS)
            except store_lib.StoredDataError:
                norms = None  # its route answers why
            value_vector = metadata.VALUE_VECTOR_NAMES.get(norms.value_vector) if norms is not None else None
            described = _describe_layer(timeline, has_rollout, metric_names, value_vector)
            described["relevance"] = self._describe_relevance(ctx, experiment_id, layer)
            runs.setdefault(layer.run, []).append(described)
        for run, tag, reason in skipped:
            logger.warning("tb-attention: skipping run %r tag %r: %s", run, tag, reason)
        return {
            "runs": [
                {
                    "run": run,
                    "layers": sorted(found, key=lambda d: (d["layer_index"], d["tag"])),
                    "probe_images": self.store.probe_image_count(ctx, experiment_id, run),
                }
                for run, found in sorted(runs.items())
            ],
            "skipped": [{"run": run, "tag": tag, "reason": reason} for run, tag, reason in skipped],
        }

    def _describe_relevance(self, ctx, experiment_id, layer):
        """/index's `relevance` of a layer: its relevance tag (read with the
        same routes as a layer's: maps, importance, head_metrics, rollout),
        what it explains and its steps; None when it stored none or it
        cannot be read (its routes answer why)."""
        try:
            relevance = self.store.relevance_layer(ctx, experiment_id, layer)
            if relevance is None:
                return None
            timeline = self.store.timeline(ctx, experiment_id, relevance)
        except store_lib.StoredDataError as e:
            logger.warning("tb-attention: the relevance of run %r layer %r is unreadable: %s", layer.run, layer.tag, e)
            return None
        return {
            "tag": relevance.tag,
            "target": relevance.info.relevance_target,
            "steps": timeline.steps,
            "has_rollout": self.store.has_tensor(ctx, experiment_id, relevance, PluginData.ROLLOUT),
        }

    def maps_impl(self, ctx, experiment_id, run, tag, step, example, head=None, compressed=False):
        """store.MapsReply of one step, one example: bytes, (heads, q, k),
        encoding, the step's facts and whether they differ from the newest;
        with `compressed`, the stored zlib stream when there is one."""
        return self.store.maps(ctx, experiment_id, run, tag, step, example, head, compressed)

    def importance_impl(self, ctx, experiment_id, run, tag, example, mode="received", head=None,
                        max_points=store_lib.MAX_POINTS, of="weights"):
        """Token importance over steps: per head and head-mean (index H), or
        only `head` (0..H, H = head mean), which keeps long logs' replies small.
        `of` "value_weighted": received value-weighted attention (_importance)."""
        series = self._importance(ctx, experiment_id, run, tag, example, mode, head, max_points, of)
        ex = series.layer.info.examples[example]
        result = {
            "mode": mode,
            "of": of,
            "axis": ("sum over queries" if mode == "received" else "sum over keys")
            + (" of weight x value norm" if of == "value_weighted" else ""),
            "num_heads": series.layer.info.num_heads,
            "tokens": list(ex.key_tokens if mode == "received" else ex.query_tokens),
            **_steps_of(series),
        }
        if head is not None:
            result["head"] = head
        result["values"] = finite_lists(series.values)
        return result

    def importance_binary_impl(self, ctx, experiment_id, run, tag, example, mode, head,
                               max_points=store_lib.MAX_POINTS, of="weights"):
        """(steps, float32 array (steps, tokens), num_heads, total steps) of
        one head: what `format=binary` sends, without JSON's cost on long logs."""
        series = self._importance(ctx, experiment_id, run, tag, example, mode, head, max_points, of)
        return series.steps, series.values, series.layer.info.num_heads, series.total_steps

    def _importance(self, ctx, experiment_id, run, tag, example, mode, head, max_points, of="weights"):
        """store.Series, values (steps, H+1, L) or (steps, L) of `head`. With
        `of` "value_weighted", received value-weighted attention, the size of
        what each key sends summed over the queries: sum_i a_hij n_hj =
        n_hj x received_hj, exact from the stored float32 importance and value
        norms (docs/FORMAT.md), at the steps that hold both; index H the mean
        over heads."""
        series = self.store.series(
            ctx, experiment_id, run, tag, PluginData.IMPORTANCE, example, mode, max_points
        )
        if of == "value_weighted":
            layer = series.layer
            if self.store.derived_metadata(ctx, experiment_id, layer, PluginData.VALUE_NORMS) is None:
                raise errors.NotFoundError("%s has no value norms: no value-weighted importance" % layer.where())
            norms = self.store.series(ctx, experiment_id, run, tag, PluginData.VALUE_NORMS, example,
                                      max_points=max_points)
            at = {step: i for i, step in enumerate(norms.steps)}
            keep = [i for i, step in enumerate(series.steps) if step in at]
            received = series.values[keep, : layer.info.num_heads] * norms.values[[at[series.steps[i]] for i in keep]]
            values = np.concatenate([received, received.mean(axis=1, keepdims=True)], axis=1).astype(np.float32)
            series = series._replace(steps=[series.steps[i] for i in keep], values=values)
        if head is None:
            return series
        num_heads = series.layer.info.num_heads
        if not 0 <= head <= num_heads:
            raise errors.NotFoundError(
                "head %d out of range 0..%d (%d = head mean)" % (head, num_heads, num_heads)
            )
        return series._replace(values=series.values[:, head])

    def head_stats_impl(self, ctx, experiment_id, run, tag, example, max_points=store_lib.MAX_POINTS):
        series = self.store.series(
            ctx, experiment_id, run, tag, PluginData.HEAD_STATS, example, max_points=max_points
        )
        result = {"num_heads": series.layer.info.num_heads, **_steps_of(series)}
        for i, name in enumerate(metadata.HEAD_STAT_NAMES):
            result[name] = finite_lists(series.values[..., i])
        return result

    def head_metrics_impl(self, ctx, experiment_id, run, tag, example, metric, max_points=store_lib.MAX_POINTS,
                          of="weights"):
        """One head metric (docs/HEAD_METRICS.md) of every head over steps:
        values[s][h]; NaN (a metric that does not apply) is null. `of`:
        "weights" (the maps) or "value_weighted" (the value-weighted maps,
        rows normalised; VALUE_METRICS)."""
        role, missing = _METRICS_OF[of]
        layer = self.store.layer(ctx, experiment_id, run, tag)
        info = self.store.derived_metadata(ctx, experiment_id, layer, role)
        if info is None:
            raise errors.NotFoundError("%s has no %s" % (layer.where(), missing))
        names = list(info.metric_names)
        if metric not in names:
            raise errors.InvalidArgumentError(
                "metric must be one of %s, got %r" % (", ".join(names), metric))
        series = self.store.series(ctx, experiment_id, run, tag, role, example, max_points=max_points)
        return {
            "of": of,
            "metric": metric,
            "metric_names": names,
            "num_heads": series.layer.info.num_heads,
            **_steps_of(series),
            "values": finite_lists(series.values[..., names.index(metric)]),
        }

    def value_norms_impl(self, ctx, experiment_id, run, tag, example, step):
        """Per head and key token of one example at one step, the norm of
        what the key sends through the head (docs/FORMAT.md, VALUE_NORMS):
        values[h][j]. The value-weighted map is weight x norm."""
        layer = self.store.layer(ctx, experiment_id, run, tag)
        info = self.store.derived_metadata(ctx, experiment_id, layer, PluginData.VALUE_NORMS)
        if info is None:
            raise errors.NotFoundError(
                "%s has no value norms (its value vectors are not known, or value_weighted=False)" % layer.where())
        series, values = self._at_step(ctx, experiment_id, layer, PluginData.VALUE_NORMS, example, step, "value norms")
        return {
            "step": step,
            "vector": metadata.VALUE_VECTOR_NAMES.get(info.value_vector, "unknown"),
            "num_heads": series.layer.info.num_heads,
            "tokens": list(series.layer.info.examples[example].key_tokens),
            "values": finite_lists(values),
        }

    def _at_step(self, ctx, experiment_id, layer, role, example, step, what):
        """(Series, values at `step`) of one example's derived tensor of
        `role`; NotFoundError naming `what` when that step has none. Every
        step is read, not MAX_POINTS of them: the tab asks for the step it
        shows, which an evenly spread subset of a long log may leave out.
        Read once per example and cached, as a series route's first request."""
        series = self.store.series(ctx, experiment_id, layer.run, layer.tag, role, example,
                                   max_points=store_lib.ALL_STEPS)
        if step not in series.steps:
            raise errors.NotFoundError("%s has no %s" % (layer.where(step), what))
        return series, series.values[list(series.steps).index(step)]

    def relevance_rows_impl(self, ctx, experiment_id, run, tag, example, step):
        """Of a relevance tag (NAME/_relevance), per head and query row of one
        example at one step, the row's positive relevance (docs/FORMAT.md,
        "Relevance"): values[h][i]. The relevance of a cell is its share (the
        maps) times its row's value."""
        layer = self.store.layer(ctx, experiment_id, run, tag)
        if not layer.info.relevance_of:
            raise errors.NotFoundError("%s is no relevance tag (NAME%s)" % (layer.where(), metadata.RELEVANCE_SUFFIX))
        if self.store.derived_metadata(ctx, experiment_id, layer, PluginData.RELEVANCE_ROWS) is None:
            raise errors.NotFoundError("%s has no relevance rows" % layer.where())
        series, values = self._at_step(ctx, experiment_id, layer, PluginData.RELEVANCE_ROWS, example, step,
                                       "relevance rows")
        return {
            "step": step,
            "target": layer.info.relevance_target,
            "num_heads": series.layer.info.num_heads,
            "tokens": list(series.layer.info.examples[example].query_tokens),
            "values": finite_lists(values),
        }

    def rollout_impl(self, ctx, experiment_id, run, tag, example, max_points=store_lib.MAX_POINTS):
        series = self.store.series(
            ctx, experiment_id, run, tag, PluginData.ROLLOUT, example, max_points=max_points
        )
        return {
            "stack": series.layer.info.rollout_stack,
            "tokens": list(series.layer.info.examples[example].key_tokens),
            **_steps_of(series),
            "values": finite_lists(series.values),
        }


def _max_points(args):
    """The `max_points` parameter of the over-steps routes (http_api.md)."""
    value = params.integer(args, "max_points", required=False, minimum=1)
    return store_lib.MAX_POINTS if value is None else value


def _steps_of(series):
    """The step fields of an over-steps reply: `steps` served, and whether
    they are all of the layer's (`downsampled`, `steps_total`)."""
    return {
        "steps": series.steps,
        "steps_total": series.total_steps,
        "downsampled": len(series.steps) < series.total_steps,
    }


# head_metrics?of=: which stored metrics, and what a layer without them lacks
_METRICS_OF = {
    "weights": (PluginData.HEAD_METRICS, "head metrics (written before they existed)"),
    "value_weighted": (PluginData.VALUE_METRICS, "value-weighted head metrics (no value norms were stored)"),
}


def _describe_layer(timeline, has_rollout, metric_names, value_vector=None):
    """A layer of /index: the facts of its newest step, the steps that share
    them, and which steps were left out for having other facts."""
    layer, other = timeline.layer, timeline.other_steps
    return {
        "tag": layer.tag,
        **_describe_facts(layer.info),
        "has_rollout": has_rollout,
        "metric_names": metric_names,
        "value_vector": value_vector,
        "steps": timeline.steps,
        "other_shapes": {"steps": len(other), "first": other[0], "last": other[-1]} if other else None,
        "examples": [_describe_example(ex) for ex in layer.info.examples],
    }


def _describe_facts(info):
    return {
        "layer": info.layer,
        "layer_class": info.layer_class,
        "layer_index": info.layer_index,
        "kind": metadata.KIND_NAMES[info.kind],
        "num_heads": info.num_heads,
        "has_head_axis": info.has_head_axis,
        "encoding": metadata.ENCODING_NAMES[info.encoding],
        "rows_normalized": info.rows_normalized,
        "rollout_stack": info.rollout_stack,
        "grid": {"rows": info.grid_rows, "cols": info.grid_cols, "prefix": info.grid_prefix}
        if info.grid_rows > 0 else None,
        "probe_examples": info.probe_examples,
        "sliding_window": info.sliding_window,
        "storage": metadata.STORAGE_NAMES[info.storage],
        "top_k": info.top_k,
        "block_size": info.block_size,
    }


def _describe_example(ex):
    return {
        "query_tokens": list(ex.query_tokens),
        "key_tokens": list(ex.key_tokens),
        "query_offset": ex.query_offset,
        "key_offset": ex.key_offset,
        "query_length": ex.query_length,
        "key_length": ex.key_length,
    }


# Largest X-Attention-Facts header; browsers refuse replies whose headers
# pass 256 KB in all.
MAX_FACTS_HEADER = 64 * 1024


def facts_header(info, example):
    """The X-Attention-Facts value of maps decoded with facts other than the
    layer's newest: JSON (ASCII) of the facts as /index gives a layer's, with
    the number of examples and the requested one; its tokens are null when
    they would make the header longer than MAX_FACTS_HEADER."""
    facts = _describe_facts(info)
    facts["num_examples"] = len(info.examples)
    facts["example"] = _describe_example(info.examples[example])
    text = json.dumps(facts, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_FACTS_HEADER:
        facts["example"]["query_tokens"] = facts["example"]["key_tokens"] = None
        text = json.dumps(facts, separators=(",", ":"), ensure_ascii=True)
    return text


def _context(request):
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


def finite_lists(array):
    """Nested lists of floats with 6 decimals (JSON has no float32); NaN and
    Infinity become None (JSON `null`): strict JSON has no such numbers."""
    array = np.round(np.asarray(array, dtype=np.float64), 6)
    finite = np.isfinite(array)
    if finite.all():
        return array.tolist()
    return np.where(finite, array, None).tolist()


def json_response(request, obj):
    """Strict JSON (a non-finite float left in obj raises, never sends NaN)."""
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return http_util.Respond(request, body, "application/json")


_ERROR_KINDS = {400: "bad_parameter", 404: "not_found"}


def error_response(request, error):
    """{"error": {"status", "kind", "message"}} with the error's 4xx status."""
    status = error.http_code
    kind = getattr(error, "kind", None) or _ERROR_KINDS.get(status, "error")
    body = {"error": {"status": status, "kind": kind, "message": str(error)}}
    return http_util.Respond(
        request, json.dumps(body), "application/json", code=status, headers=error.headers
    )
