"""Reading tensors without letting a damaged proto allocate its shape.

TensorBoard's data providers turn every tensor proto into an array inside
`read_tensors` (`tensor_util.make_ndarray`). A proto of about 30 bytes may
declare any shape with a single repeated value, and make_ndarray then
allocates all of it: a (2, 2, 120000000) float proto raised TensorBoard's
peak memory by 1.9 GB before the plugin could look at the shape. Here the
protos are fetched first and `check_shape(run, tag, step, shape)` sees each
declared shape before anything is converted; it raises to refuse the read,
or returns False to leave that one point out (it is then never converted).

The in-process reader has the same trap for blob sequences: its
`read_blob_sequences` makes one blob key per element the proto *declares*
(a one-string proto declaring 10^8 blobs costs gigabytes), so
`read_blob_sequences` here checks the declared shapes first.

This reaches one level below the providers' public API, for the two
providers of TensorBoard 2.21: RustBoard's gRPC client (`_stub`, the request
built as `GrpcDataProvider.read_tensors` builds it) and the in-process
reader (`_multiplexer.Tensors`, downsampled as its `read_tensors` does). For
any other provider, or when those attributes are missing, it falls back to
the public `read_tensors` and checks the shapes after conversion.
"""

from tensorboard.data import provider as provider_lib
from tensorboard.util import tensor_util


def read_tensors(data_provider, ctx, *, experiment_id, plugin_name, downsample, run_tag_filter, check_shape):
    """{run: {tag: [TensorDatum]}} like `data_provider.read_tensors`; every
    point's declared shape passes `check_shape` before it becomes an array;
    points for which it returns False are left out."""
    args = dict(experiment_id=experiment_id, plugin_name=plugin_name, downsample=downsample,
                run_tag_filter=run_tag_filter)
    points = _proto_points(data_provider, ctx, args)
    result = {}
    if points is None:
        result = data_provider.read_tensors(ctx, **args)
        for run, tags in result.items():
            for tag, data in tags.items():
                tags[tag] = [d for d in data if check_shape(run, tag, d.step, d.numpy.shape) is not False]
        return result
    for run, tag, step, wall_time, proto in points:
        shape = _declared_shape(proto)
        if check_shape(run, tag, step, shape) is False:
            continue
        datum = provider_lib.TensorDatum(step=step, wall_time=wall_time, numpy=tensor_util.make_ndarray(proto))
        result.setdefault(run, {}).setdefault(tag, []).append(datum)
    return result


def _declared_shape(proto):
    """The shape a TensorProto declares, read without converting it."""
    return () if proto.tensor_shape.unknown_rank else tuple(d.size for d in proto.tensor_shape.dim)


def _reached(data_provider):
    """(kind, module) of a provider this module reads below its API:
    ("rustboard", tensorboard.data.grpc_provider) or ("in_process",
    tensorboard.backend.event_processing.data_provider); (None, None) for
    any other, or when the attributes used are missing."""
    try:
        from tensorboard.backend.event_processing import data_provider as in_process
        from tensorboard.data import grpc_provider
    except ImportError:
        return None, None
    if isinstance(data_provider, grpc_provider.GrpcDataProvider) and hasattr(data_provider, "_stub"):
        return "rustboard", grpc_provider
    if (isinstance(data_provider, in_process.MultiplexerDataProvider)
            and hasattr(data_provider, "_multiplexer") and hasattr(in_process, "_downsample")):
        return "in_process", in_process
    return None, None


def _proto_points(data_provider, ctx, args):
    """[(run, tag, step, wall_time, TensorProto)], or None for a provider
    this module does not know."""
    kind, module = _reached(data_provider)
    if kind == "rustboard":
        return _rustboard_points(data_provider, module, args)
    if kind == "in_process":
        return _in_process_points(data_provider, module, ctx, args)
    return None


def _rustboard_request(request, args):
    """`request` (a Read*Request) filled as GrpcDataProvider fills it."""
    request.experiment_id = args["experiment_id"]
    request.plugin_filter.plugin_name = args["plugin_name"]
    rtf = args["run_tag_filter"]
    if rtf is not None and rtf.runs is not None:
        request.run_tag_filter.runs.names[:] = sorted(rtf.runs)
    if rtf is not None and rtf.tags is not None:
        request.run_tag_filter.tags.names[:] = sorted(rtf.tags)
    request.downsample.num_points = args["downsample"]
    return request


def _rustboard_points(data_provider, grpc_provider, args):
    from tensorboard.data.proto import data_provider_pb2

    request = _rustboard_request(data_provider_pb2.ReadTensorsRequest(), args)
    with grpc_provider._translate_grpc_error():  # NOT_FOUND etc. as TensorBoard's errors
        reply = data_provider._stub.ReadTensors(request)
    return [
        (run_entry.run_name, tag_entry.tag_name, step, wall_time, value)
        for run_entry in reply.runs
        for tag_entry in run_entry.tags
        for step, wall_time, value in zip(tag_entry.data.step, tag_entry.data.wall_time, tag_entry.data.value)
    ]


def _in_process_points(data_provider, in_process, ctx, args):
    listing = data_provider.list_tensors(
        ctx, experiment_id=args["experiment_id"], plugin_name=args["plugin_name"],
        run_tag_filter=args["run_tag_filter"],
    )
    points = []
    for run, tags in listing.items():
        for tag in tags:
            events = in_process._downsample(data_provider._multiplexer.Tensors(run, tag), args["downsample"])
            points.extend((run, tag, e.step, e.wall_time, e.tensor_proto) for e in events)
    return points


def read_blob_sequences(data_provider, ctx, *, experiment_id, plugin_name, downsample, run_tag_filter,
                        check_shape):
    """`data_provider.read_blob_sequences`, after `check_shape(run, tag, step,
    shape)` has seen every declared shape where the provider would expand it
    (the in-process reader; RustBoard counts the blobs actually stored)."""
    args = dict(experiment_id=experiment_id, plugin_name=plugin_name, run_tag_filter=run_tag_filter)
    try:
        from tensorboard.backend.event_processing import data_provider as in_process
    except ImportError:
        in_process = None
    if (in_process is not None and isinstance(data_provider, in_process.MultiplexerDataProvider)
            and hasattr(data_provider, "_multiplexer")):
        for run, tags in data_provider.list_blob_sequences(ctx, **args).items():
            for tag in tags:
                for event in data_provider._multiplexer.Tensors(run, tag):
                    shape = _declared_shape(event.tensor_proto)
                    check_shape(run, tag, event.step, shape)
    return data_provider.read_blob_sequences(ctx, downsample=downsample, **args)


def read_blob_keys(data_provider, ctx, *, experiment_id, plugin_name, downsample, run_tag_filter, check_shape):
    """{run: {tag: [(step, blob keys)]}} of blob sequences, sorted by step:
    what `read_blob_sequences` gives, as the keys alone, after `check_shape`
    as there. For the in-process reader the keys are made when used
    (`_LazyKeys`): it encodes each key as JSON and base64, and a 10,000-step
    layer of 8 examples has 90,000 blobs, of which a request reads a few
    (2 s of the first request, docs/PERFORMANCE.md). From RustBoard the
    keys are read from its reply when used (`_ReplyKeys`): TensorBoard's
    client makes a BlobReference of each, 60% of the 0.5-1.1 s that
    reading a 10,000-step layer's keys took."""
    args = dict(experiment_id=experiment_id, plugin_name=plugin_name, downsample=downsample,
                run_tag_filter=run_tag_filter)
    kind, module = _reached(data_provider)
    if kind == "rustboard":
        return _rustboard_blob_keys(data_provider, module, args)
    if kind == "in_process" and hasattr(module, "_encode_blob_key"):
        result = {}
        listing = data_provider.list_blob_sequences(
            ctx, experiment_id=experiment_id, plugin_name=plugin_name, run_tag_filter=run_tag_filter)
        for run, tags in listing.items():
            for tag in tags:
                by_step = {}
                for event in data_provider._multiplexer.Tensors(run, tag):
                    shape = _declared_shape(event.tensor_proto)
                    check_shape(run, tag, event.step, shape)
                    if event.step not in by_step:  # as read_blob_sequences: the first event of a step
                        count = shape[0] if len(shape) == 1 else 0
                        by_step[event.step] = _LazyKeys(
                            module._encode_blob_key, (experiment_id, plugin_name, run, tag, event.step),
                            range(count))
                points = module._downsample(sorted(by_step.items()), downsample)
                result.setdefault(run, {})[tag] = points
        return result
    data = read_blob_sequences(data_provider, ctx, experiment_id=experiment_id, plugin_name=plugin_name,
                               downsample=downsample, run_tag_filter=run_tag_filter, check_shape=check_shape)
    return {
        run: {tag: [(d.step, tuple(ref.blob_key for ref in d.values)) for d in sorted(points, key=lambda d: d.step)]
              for tag, points in tags.items()}
        for run, tags in data.items()
    }


def _rustboard_blob_keys(data_provider, grpc_provider, args):
    from tensorboard.data.proto import data_provider_pb2

    request = _rustboard_request(data_provider_pb2.ReadBlobSequencesRequest(), args)
    with grpc_provider._translate_grpc_error():
        reply = data_provider._stub.ReadBlobSequences(request)
    return {
        run_entry.run_name: {
            tag_entry.tag_name: sorted(
                ((step, _ReplyKeys(sequence.blob_refs))
                 for step, sequence in zip(tag_entry.data.step, tag_entry.data.values)),
                key=lambda point: point[0])
            for tag_entry in run_entry.tags
        }
        for run_entry in reply.runs
    }


class _ReplyKeys:
    """A read-only sequence of the blob keys of one step of RustBoard's
    reply, each read from the reply's BlobReference protos when asked."""

    def __init__(self, refs):
        self._refs = refs

    def __len__(self):
        return len(self._refs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [ref.blob_key for ref in self._refs[i]]
        return self._refs[i].blob_key

    def __iter__(self):
        return (ref.blob_key for ref in self._refs)


class _LazyKeys:
    """A read-only sequence of blob keys `encode(*prefix, i)` for i in
    `indices` (a range), each made when read."""

    def __init__(self, encode, prefix, indices):
        self._encode, self._prefix, self._indices = encode, prefix, indices

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return _LazyKeys(self._encode, self._prefix, self._indices[i])
        return self._encode(*self._prefix, self._indices[i])

    def __iter__(self):
        return (self[i] for i in range(len(self)))
