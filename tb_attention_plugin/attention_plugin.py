"""The Attention tab's backend: HTTP routes over TensorBoard's data provider.

Every route is documented in http_api.md. Handlers only parse the request and
respond; the `*_impl` methods return plain data and are what tests call.
Reads go through `context.data_provider` only (RustBoard or the Python
reader), called through `data_calls` (which avoids RustBoard's 40 ms
transport stall), and repeated reads are served from a bounded LRU cache
whose keys include the tag's newest step and wall time, so new captures are
seen at once.
"""

import json
import logging
import mimetypes
import os
import threading
import time

import numpy as np
from tensorboard import errors
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_attention_plugin import data_calls
from tb_attention_plugin import encoding as encoding_lib
from tb_attention_plugin import metadata
from tb_attention_plugin.lru_cache import LruCache

logger = logging.getLogger(__name__)

PluginData = metadata.PluginData

# Downsample value meaning "every step" (a hint of 0 reads nothing).
_ALL_STEPS = 2**31 - 1
# Largest integer a query parameter may hold; larger is a 400, not a crash.
_MAX_INT = 2**62
# Bound of the plugin's cache: decoded maps, blob indexes and derived series.
# Four 256-token layers' received-importance series over 1000 steps (74 MB
# each) fit, with room for maps.
_CACHE_BYTES = 512 * 1024 * 1024
_IMPORTANCE_MODES = {"received": 0, "given": 1}
# How long a listing of the plugin's tags is reused: new data arrives at most
# every reload interval (5 s by default), and a listing call costs a few ms
# plus parsing, so a route answers from memory when it can.
_LISTING_TTL_S = 2.0


def frontend_dir():
    """The frontend files: installed inside the package, or in a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "frontend"), os.path.join(os.path.dirname(here), "frontend")):
        if os.path.isfile(os.path.join(candidate, "index.js")):
            return candidate
    return None


def _load_frontend():
    """{file name: (bytes, content type)} of the frontend's own files."""
    directory = frontend_dir()
    files = {}
    if directory is None:
        logger.error("tb-attention: frontend files not found; the tab will be empty")
        return files
    for name in sorted(os.listdir(directory)):
        if name.rsplit(".", 1)[-1] not in ("js", "css", "html"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            content_type = "text/javascript" if name.endswith(".js") else mimetypes.guess_type(name)[0]
            files[name] = (f.read(), content_type)
    return files


class AttentionPlugin(base_plugin.TBPlugin):
    """Serves captured attention maps, importance and head statistics."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        data_provider = context.data_provider
        self._call = data_calls.DataCalls(data_provider, data_calls.is_rustboard(data_provider))
        hints = getattr(context.flags, "samples_per_plugin", None) or {}
        hint = hints.get(metadata.PLUGIN_NAME, 0) if isinstance(hints, dict) else 0
        self._downsample = hint if hint > 0 else _ALL_STEPS
        self._cache = LruCache(_CACHE_BYTES)
        self._listings = {}  # (kind, experiment_id) -> (time, listing)
        self._listings_lock = threading.Lock()
        self._frontend = _load_frontend()

    # -- TBPlugin ------------------------------------------------------------

    def get_plugin_apps(self):
        apps = {
            "/index": self._serve_index,
            "/maps": self._serve_maps,
            "/importance": self._serve_importance,
            "/head_stats": self._serve_head_stats,
            "/rollout": self._serve_rollout,
        }
        # Each frontend file gets its own route: nothing else can be served.
        for name in self._frontend:
            apps["/" + name] = self._serve_static
        return apps

    def is_active(self):
        return False  # TensorBoard decides from data_plugin_names and the data

    def data_plugin_names(self):
        return (metadata.PLUGIN_NAME,)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Attention")

    # -- handlers ------------------------------------------------------------

    @wrappers.Request.application
    def _serve_static(self, request):
        name = request.path.rsplit("/", 1)[-1]
        if name not in self._frontend:
            raise errors.NotFoundError("no such file: %s" % name)
        content, content_type = self._frontend[name]
        return http_util.Respond(request, content, content_type)

    @wrappers.Request.application
    def _serve_index(self, request):
        ctx, eid = _context(request)
        return _json(request, self.index_impl(ctx, eid))

    @wrappers.Request.application
    def _serve_maps(self, request):
        ctx, eid = _context(request)
        run, tag = _str_param(request, "run"), _str_param(request, "tag")
        step, example = _int_param(request, "step"), _int_param(request, "example")
        head = _int_param(request, "head", required=False)
        data, shape, encoding = self.maps_impl(ctx, eid, run, tag, step, example, head)
        response = http_util.Respond(request, data, "application/octet-stream")
        response.headers["X-Attention-Shape"] = ",".join(str(n) for n in shape)
        response.headers["X-Attention-Encoding"] = metadata.ENCODING_NAMES[encoding]
        return response

    @wrappers.Request.application
    def _serve_importance(self, request):
        ctx, eid = _context(request)
        mode = request.args.get("mode", "received")
        if mode not in _IMPORTANCE_MODES:
            raise errors.InvalidArgumentError("mode must be 'received' or 'given', got %r" % mode)
        args = (
            ctx, eid, _str_param(request, "run"), _str_param(request, "tag"),
            _int_param(request, "example"), mode, _int_param(request, "head", required=False),
        )
        output = request.args.get("format", "json")
        if output == "json":
            return _json(request, self.importance_impl(*args))
        if output != "binary":
            raise errors.InvalidArgumentError("format must be 'json' or 'binary', got %r" % output)
        if args[-1] is None:
            raise errors.InvalidArgumentError("format=binary needs head= (0..H, H = head mean)")
        steps, values, num_heads = self.importance_binary_impl(*args)
        body = np.asarray(steps, dtype="<f8").tobytes() + values.astype("<f4").tobytes()
        response = http_util.Respond(request, body, "application/octet-stream")
        response.headers["X-Attention-Shape"] = "%d,%d" % values.shape
        response.headers["X-Attention-Heads"] = str(num_heads)
        return response

    @wrappers.Request.application
    def _serve_head_stats(self, request):
        return self._serve_example_series(request, self.head_stats_impl)

    @wrappers.Request.application
    def _serve_rollout(self, request):
        return self._serve_example_series(request, self.rollout_impl)

    def _serve_example_series(self, request, impl):
        """JSON of impl(ctx, eid, run, tag, example): a series over steps."""
        ctx, eid = _context(request)
        result = impl(
            ctx, eid, _str_param(request, "run"), _str_param(request, "tag"),
            _int_param(request, "example"),
        )
        return _json(request, result)

    # -- implementations -----------------------------------------------------

    def index_impl(self, ctx, experiment_id):
        """{"runs": [{"run", "layers": [layer description...]}]}, see http_api.md."""
        listing = self._listing(ctx, experiment_id, "blob_sequences")
        tensors = self._listing(ctx, experiment_id, "tensors")
        runs = []
        for run in sorted(listing):
            layers = []
            for tag, series in listing[run].items():
                info = _parse(series.plugin_content, run, tag)
                if info is None or info.role != PluginData.MAPS:
                    continue
                steps = sorted(self._blob_index(ctx, experiment_id, run, tag, series))
                rollout_tag = metadata.tag_for(tag, PluginData.ROLLOUT)
                layers.append(_describe_layer(tag, info, steps, rollout_tag in tensors.get(run, {})))
            if layers:
                layers.sort(key=lambda layer: (layer["layer_index"], layer["tag"]))
                runs.append({"run": run, "layers": layers})
        return {"runs": runs}

    def maps_impl(self, ctx, experiment_id, run, tag, step, example, head=None):
        """(bytes, (heads, q, k), encoding) of one step, one example."""
        info, series = self._maps_series(ctx, experiment_id, run, tag)
        index = self._blob_index(ctx, experiment_id, run, tag, series)
        if step not in index:
            raise errors.NotFoundError("run %r layer %r has no capture at step %d" % (run, tag, step))
        _check_example(info, example)
        keys = index[step]
        if example >= len(keys):
            raise errors.NotFoundError("step %d holds %d examples" % (step, len(keys)))
        blob_key = keys[example]
        ex = info.examples[example]
        shape = (info.num_heads, ex.query_length, ex.key_length)
        data = self._cache.get(("blob", blob_key))
        if data is None:
            stored = self._call("read_blob", ctx, blob_key=blob_key)
            data = encoding_lib.raw_bytes(stored, info.encoding, shape[0] * shape[1] * shape[2])
            self._cache.put(("blob", blob_key), data, len(data))
        if head is not None:
            if not 0 <= head < info.num_heads:
                raise errors.NotFoundError("head %d out of range 0..%d" % (head, info.num_heads - 1))
            cell_bytes = shape[1] * shape[2] * encoding_lib.bytes_per_cell(info.encoding)
            data = data[head * cell_bytes : (head + 1) * cell_bytes]
            shape = (1,) + shape[1:]
        return data, shape, info.encoding

    def importance_impl(self, ctx, experiment_id, run, tag, example, mode="received", head=None):
        """Token importance over steps: per head and head-mean (index H), or
        only `head` (0..H, H = head mean), which keeps long logs' replies small."""
        info, steps, series = self._importance(ctx, experiment_id, run, tag, example, mode, head)
        ex = info.examples[example]
        result = {
            "mode": mode,
            "axis": "sum over queries" if mode == "received" else "sum over keys",
            "num_heads": info.num_heads,
            "tokens": list(ex.key_tokens if mode == "received" else ex.query_tokens),
            "steps": steps,
        }
        if head is not None:
            result["head"] = head
        result["values"] = _rounded(series)
        return result

    def importance_binary_impl(self, ctx, experiment_id, run, tag, example, mode, head):
        """(steps, float32 array (steps, tokens), num_heads) of one head: what
        `format=binary` sends, without JSON's cost on long logs."""
        info, steps, series = self._importance(ctx, experiment_id, run, tag, example, mode, head)
        return steps, series, info.num_heads

    def _importance(self, ctx, experiment_id, run, tag, example, mode, head):
        """(info, steps, values): values (steps, H+1, L) cropped to the
        example's tokens, or (steps, L) of `head`."""
        info, _ = self._maps_series(ctx, experiment_id, run, tag)
        _check_example(info, example)
        if head is not None and not 0 <= head <= info.num_heads:
            raise errors.NotFoundError(
                "head %d out of range 0..%d (%d = head mean)" % (head, info.num_heads, info.num_heads)
            )
        steps, values = self._tensor_series(
            ctx, experiment_id, run, tag, PluginData.IMPORTANCE, _IMPORTANCE_MODES[mode]
        )
        ex = info.examples[example]
        length = ex.key_length if mode == "received" else ex.query_length
        series = values[:, example, :, :length]
        return info, steps, series if head is None else series[:, head]

    def head_stats_impl(self, ctx, experiment_id, run, tag, example):
        info, _ = self._maps_series(ctx, experiment_id, run, tag)
        _check_example(info, example)
        steps, values = self._tensor_series(ctx, experiment_id, run, tag, PluginData.HEAD_STATS)
        result = {"num_heads": info.num_heads, "steps": steps}
        for i, name in enumerate(metadata.HEAD_STAT_NAMES):
            result[name] = _rounded(values[:, example, :, i])
        return result

    def rollout_impl(self, ctx, experiment_id, run, tag, example):
        info, _ = self._maps_series(ctx, experiment_id, run, tag)
        _check_example(info, example)
        steps, values = self._tensor_series(ctx, experiment_id, run, tag, PluginData.ROLLOUT)
        ex = info.examples[example]
        return {
            "stack": info.rollout_stack,
            "tokens": list(ex.key_tokens),
            "steps": steps,
            "values": _rounded(values[:, example, : ex.key_length]),
        }

    # -- data access -----------------------------------------------------------

    def _listing(self, ctx, experiment_id, kind):
        """{run: {tag: time series}} of the plugin's blob sequences or tensors,
        reused for _LISTING_TTL_S seconds."""
        key = (kind, experiment_id)
        now = time.monotonic()
        with self._listings_lock:
            cached = self._listings.get(key)
        if cached is not None and now - cached[0] < _LISTING_TTL_S:
            return cached[1]
        method = "list_blob_sequences" if kind == "blob_sequences" else "list_tensors"
        listing = self._call(method, ctx, experiment_id=experiment_id, plugin_name=metadata.PLUGIN_NAME)
        with self._listings_lock:
            self._listings[key] = (now, listing)
        return listing

    def _maps_series(self, ctx, experiment_id, run, tag):
        listing = self._listing(ctx, experiment_id, "blob_sequences")
        series = listing.get(run, {}).get(tag)
        if series is None:
            raise errors.NotFoundError("no attention layer %r in run %r" % (tag, run))
        info = _parse(series.plugin_content, run, tag)
        if info is None or info.role != PluginData.MAPS:
            raise errors.NotFoundError("tag %r of run %r is not an attention layer" % (tag, run))
        return info, series

    def _read_points(self, read, ctx, experiment_id, run, tag):
        """Every kept point of one run/tag, through a data provider `read_*`."""
        data = self._call(
            read,
            ctx,
            experiment_id=experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        return data.get(run, {}).get(tag, [])

    def _blob_index(self, ctx, experiment_id, run, tag, series):
        """{step: (blob key per example)} of a MAPS tag, cached per version."""
        key = ("blob_index", experiment_id, run, tag, series.max_step, series.max_wall_time)
        index = self._cache.get(key)
        if index is None:
            datums = self._read_points("read_blob_sequences", ctx, experiment_id, run, tag)
            index = {datum.step: tuple(ref.blob_key for ref in datum.values) for datum in datums}
            self._cache.put(key, index, 100 * (len(index) + 1))
        return index

    def _tensor_series(self, ctx, experiment_id, run, tag, role, index=None):
        """(steps list, stacked float32 array) of a derived tag, cached.

        With `index`, only `array[:, :, index]` is kept (the importance tag's
        mode axis): the tab asks for one mode, and at 256 tokens x 1000 steps
        a layer's whole importance series is 147 MB.
        """
        derived = metadata.tag_for(tag, role)
        series = self._listing(ctx, experiment_id, "tensors").get(run, {}).get(derived)
        if series is None:
            raise errors.NotFoundError(
                "layer %r of run %r has no %s data" % (tag, run, metadata.ROLE_NAMES[role])
            )
        key = ("tensors", experiment_id, run, derived, index, series.max_step, series.max_wall_time)
        cached = self._cache.get(key)
        if cached is None:
            datums = sorted(
                self._read_points("read_tensors", ctx, experiment_id, run, derived),
                key=lambda d: d.step,
            )
            steps = [d.step for d in datums]
            arrays = [d.numpy if index is None else d.numpy[:, index] for d in datums]
            values = _stack(arrays)
            cached = (steps, values)
            self._cache.put(key, cached, values.nbytes + 8 * len(steps))
        return cached


def _stack(arrays):
    """Stacks per-step arrays, zero-padding the last axis to the longest."""
    if not arrays:
        return np.zeros((0, 0), dtype=np.float32)
    length = max(a.shape[-1] for a in arrays)
    out = np.zeros((len(arrays),) + arrays[0].shape[:-1] + (length,), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return out


def _parse(content, run, tag):
    try:
        return metadata.parse_plugin_metadata(content)
    except Exception as e:  # a newer or damaged tag must not hide the others
        logger.warning("tb-attention: skipping run %r tag %r: %s", run, tag, e)
        return None


def _describe_layer(tag, info, steps, has_rollout):
    return {
        "tag": tag,
        "layer": info.layer,
        "layer_class": info.layer_class,
        "layer_index": info.layer_index,
        "kind": metadata.KIND_NAMES.get(info.kind, "self"),
        "num_heads": info.num_heads,
        "has_head_axis": info.has_head_axis,
        "encoding": metadata.ENCODING_NAMES.get(info.encoding, "unknown"),
        "rows_normalized": info.rows_normalized,
        "rollout_stack": info.rollout_stack,
        "has_rollout": has_rollout,
        "steps": steps,
        "examples": [
            {
                "query_tokens": list(ex.query_tokens),
                "key_tokens": list(ex.key_tokens),
                "query_offset": ex.query_offset,
                "key_offset": ex.key_offset,
                "query_length": ex.query_length,
                "key_length": ex.key_length,
            }
            for ex in info.examples
        ],
    }


def _check_example(info, example):
    if not 0 <= example < len(info.examples):
        raise errors.NotFoundError(
            "example %d out of range: the probe has %d examples" % (example, len(info.examples))
        )


def _context(request):
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


def _str_param(request, name):
    value = request.args.get(name)
    if value is None:
        raise errors.InvalidArgumentError("missing parameter %r" % name)
    return value


def _int_param(request, name, required=True):
    value = request.args.get(name)
    if value is None:
        if required:
            raise errors.InvalidArgumentError("missing parameter %r" % name)
        return None
    value = value.strip()
    if not (value.isascii() and value.lstrip("-").isdigit()) or len(value) > 20:
        raise errors.InvalidArgumentError("parameter %r must be an integer, got %r" % (name, value[:40]))
    number = int(value)
    if not -_MAX_INT <= number <= _MAX_INT:
        raise errors.InvalidArgumentError("parameter %r out of range: %s" % (name, value))
    return number


def _rounded(array):
    """Nested lists of floats with 6 decimals (JSON has no float32)."""
    return np.round(np.asarray(array, dtype=np.float64), 6).tolist()


def _json(request, obj):
    return http_util.Respond(request, json.dumps(obj, separators=(",", ":")), "application/json")
