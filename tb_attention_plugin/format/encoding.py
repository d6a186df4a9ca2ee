"""Byte encodings of attention maps, for storage and for the wire.

UINT8 stores round(w * 255) for weights in [0, 1]: one byte per cell, and the
decoded value is within 1/510 of the float32 weight. FLOAT32 stores the weights
exactly (little-endian), four bytes per cell.

A stored blob is additionally zlib-compressed (level 1) when that makes it
smaller, which is the common case: trained attention is mostly near-zero
cells, and the IMDB demo's maps shrink to about 0.14 of their size. A blob
shorter than `cells * bytes_per_cell` is therefore compressed; one of exactly
that length is raw. The maps route sends the raw bytes, or to a client that
asks for `compression=zlib` (the tab) a compressed blob as it is stored, once
`raw_bytes` has checked it.
"""

import zlib

import numpy as np

from tb_attention_plugin.format import metadata
from tb_attention_plugin.format import reduction

UINT8 = metadata.PluginData.UINT8
FLOAT32 = metadata.PluginData.FLOAT32

_BY_NAME = {name: value for value, name in metadata.ENCODING_NAMES.items()}

# Largest error of a decoded UINT8 weight: half of one step of 1/255.
UINT8_MAX_ERROR = 1.0 / 510.0


def parse_encoding(name):
    """'uint8' or 'float32' -> the proto enum value; ValueError otherwise."""
    try:
        return _BY_NAME[str(name).lower()]
    except KeyError:
        raise ValueError(
            "encoding \"%s\" is not known: pass encoding=\"uint8\" (1 byte per "
            "weight, error <= 1/510) or encoding=\"float32\" (exact, 4 bytes)" % (name,)
        ) from None


def encode_raw(maps, encoding):
    """An array of weights -> uncompressed bytes (C order, shape kept elsewhere)."""
    if encoding == UINT8:
        # In float64, where w * 255 is exact for a float32 w, so rounding
        # keeps the 1/510 bound; one copy, then in place.
        scaled = np.array(maps, dtype=np.float64)
        np.clip(scaled, 0.0, 1.0, out=scaled)
        scaled *= 255.0
        np.rint(scaled, out=scaled)
        return scaled.astype(np.uint8).tobytes()
    if encoding == FLOAT32:
        return np.asarray(maps, dtype="<f4").tobytes()
    raise ValueError("unknown encoding %r" % (encoding,))


def encode(maps, encoding):
    """An array of weights -> the stored blob: compressed when that is smaller."""
    return _packed(encode_raw(maps, encoding))


def _packed(raw):
    """Raw bytes -> the stored blob: zlib level 1 when that is smaller."""
    packed = zlib.compress(raw, 1)
    return packed if len(packed) < len(raw) else raw


def is_compressed(blob, encoding, cells):
    """Whether a stored blob of `cells` weights is compressed (any length
    but the raw one); whether it inflates correctly is `raw_bytes`'s check."""
    return len(blob) != cells * bytes_per_cell(encoding)


def raw_bytes(blob, encoding, cells):
    """A stored blob -> its uncompressed bytes (`cells` weights).

    Decompression stops at the size the shape promises, so a small blob that
    would inflate to more (a "zlib bomb") costs at most `cells` cells of
    memory. Raises ValueError for a blob that is neither the raw bytes of
    `cells` weights nor a zlib stream of exactly that many, and nothing after it.
    """
    if cells < 0:
        raise ValueError("negative cell count %d" % cells)
    return inflate_exact(blob, cells * bytes_per_cell(encoding))


def inflate_exact(blob, expected):
    """A stored blob of `expected` uncompressed bytes -> those bytes; what
    `raw_bytes` checks, for any layout (a reduced maps blob too)."""
    if len(blob) == expected:
        return bytes(blob)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(blob, expected)
    except zlib.error as e:
        raise _refused(blob, "is neither %d raw bytes nor zlib data (%s)" % (expected, e)) from None
    if len(raw) < expected or inflate.unconsumed_tail:
        what = "less" if len(raw) < expected else "more"
        raise _refused(blob, "inflates to %s than the %d bytes its shape promises" % (what, expected))
    if not inflate.eof:
        raise _refused(blob, "is a truncated zlib stream")
    if inflate.unused_data or inflate.unconsumed_tail:
        raise _refused(blob, "has %d more bytes after its zlib stream"
                       % len(inflate.unused_data or inflate.unconsumed_tail))
    return raw


# How much of a blob `check` inflates at a time.
CHECK_CHUNK_BYTES = 256 * 1024


def check(blob, encoding, cells):
    """Raises ValueError for a blob `raw_bytes` would refuse, the same way,
    without holding its inflated bytes: a blob is inflated CHECK_CHUNK_BYTES
    at a time and each chunk dropped. For a server that sends stored blobs
    as they are (compression=zlib): a 3 MB map checked at once left 3 MB
    buffers behind in every request thread's malloc arena."""
    if cells < 0:
        raise ValueError("negative cell count %d" % cells)
    check_exact(blob, cells * bytes_per_cell(encoding))


def check_exact(blob, expected):
    """`check` for a blob of `expected` uncompressed bytes, any layout."""
    if len(blob) == expected:
        return
    inflate = zlib.decompressobj()
    inflated, pending = 0, blob
    try:
        while True:
            out = inflate.decompress(pending, CHECK_CHUNK_BYTES)
            inflated += len(out)
            if inflated > expected:
                break
            pending = inflate.unconsumed_tail
            # At the stream's end, bytes after it stay pending: without the
            # eof test a blob with a tail after its stream looped forever.
            if inflate.eof or (not out and not pending):
                break
    except zlib.error as e:
        raise _refused(blob, "is neither %d raw bytes nor zlib data (%s)" % (expected, e)) from None
    if inflated != expected:
        what = "less" if inflated < expected else "more"
        raise _refused(blob, "inflates to %s than the %d bytes its shape promises" % (what, expected))
    if not inflate.eof:
        raise _refused(blob, "is a truncated zlib stream")
    if inflate.unused_data or inflate.unconsumed_tail:
        raise _refused(blob, "has %d more bytes after its zlib stream"
                       % len(inflate.unused_data or inflate.unconsumed_tail))


def _refused(blob, why):
    """The ValueError of a stored blob that does not hold its shape (one
    wording for raw_bytes and check)."""
    return ValueError("blob of %d bytes %s" % (len(blob), why))


def decode(data, encoding, shape):
    """A stored blob (raw or compressed) -> float32 array of `shape`."""
    return _weights(raw_bytes(data, encoding, int(np.prod(shape))), encoding, shape)


def _weights(data, encoding, shape):
    """Raw bytes of weights in `encoding` -> float32 array of `shape`."""
    if encoding == UINT8:
        values = np.frombuffer(data, dtype=np.uint8).astype(np.float32) / 255.0
    elif encoding == FLOAT32:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    else:
        raise ValueError("unknown encoding %r" % (encoding,))
    return values.reshape(shape)


def bytes_per_cell(encoding):
    return 1 if encoding == UINT8 else 4


def cell_error(encoding):
    """The most a decoded weight differs from the weight that was stored."""
    return UINT8_MAX_ERROR if encoding == UINT8 else 0.0


# -- reduced maps (facts.storage REDUCED, docs/FORMAT.md "Reduced maps") ------


def reduced_sections(heads, q, k, top_k, block, encoding):
    """The layout of one example's reduced blob, uncompressed: its sections
    in order, as (name, numpy dtype, shape). Weights are in `encoding`; key
    positions are stored as steps from the previous kept position of the
    row (the first from 0), which zlib packs well where a head looks at a
    band, as uint16 up to 65536 keys, else uint32."""
    kept, overview = min(top_k, k), (heads, reduction.blocks(q, block), reduction.blocks(k, block))
    weight = np.dtype("u1") if encoding == UINT8 else np.dtype("<f4")
    step = np.dtype("<u2") if k <= 1 << 16 else np.dtype("<u4")
    return [("values", weight, (heads, q, kept)), ("position_steps", step, (heads, q, kept)),
            ("block_max", weight, overview), ("block_mean", weight, overview)]


def _section_bytes(sections):
    return [dtype.itemsize * int(np.prod(shape)) for _, dtype, shape in sections]


def encode_reduced(reduced, encoding, top_k):
    """A reduction.Reduced -> its stored blob (compressed when smaller)."""
    heads, q, k = reduced.shape
    sections = reduced_sections(heads, q, k, top_k, reduced.block, encoding)
    steps = np.diff(reduced.positions, axis=-1, prepend=0)
    parts = {"values": encode_raw(reduced.values, encoding),
             "position_steps": steps.astype(sections[1][1]).tobytes(),
             "block_max": encode_raw(reduced.block_max, encoding),
             "block_mean": encode_raw(reduced.block_mean, encoding)}
    return _packed(b"".join(parts[name] for name, _, _ in sections))


def decode_reduced(blob, encoding, shape, top_k, block):
    """A stored reduced blob of maps of `shape` (heads, q, k) ->
    reduction.Reduced; ValueError if it does not hold that layout or a
    position falls outside the keys."""
    heads, q, k = shape
    sections = reduced_sections(heads, q, k, top_k, block, encoding)
    sizes = _section_bytes(sections)
    data = inflate_exact(blob, sum(sizes))
    parts, start = {}, 0
    for (name, dtype, part_shape), size in zip(sections, sizes):
        chunk = data[start : start + size]
        start += size
        parts[name] = (np.frombuffer(chunk, dtype=dtype).reshape(part_shape) if name == "position_steps"
                       else _weights(chunk, encoding, part_shape))
    positions = np.cumsum(parts["position_steps"], axis=-1, dtype=np.int64)
    if positions.size and positions[..., -1].max() >= k:
        raise _refused(blob, "holds key positions beyond its %d keys" % k)
    return reduction.Reduced(parts["values"], positions, parts["block_max"], parts["block_mean"], block, shape)


def stored_bytes(facts, example):
    """Uncompressed bytes of example `example`'s maps blob at a step with
    `facts`: (heads, q, k) weights, or the sections of a reduced blob."""
    ex = facts.examples[example]
    shape = (facts.num_heads, ex.query_length, ex.key_length)
    if facts.storage == metadata.PluginData.REDUCED:
        return sum(_section_bytes(reduced_sections(*shape, facts.top_k, facts.block_size, facts.encoding)))
    return int(np.prod(shape)) * bytes_per_cell(facts.encoding)
