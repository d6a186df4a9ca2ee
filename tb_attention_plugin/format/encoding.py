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
    raw = encode_raw(maps, encoding)
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
    `cells` weights nor a zlib stream of exactly that many.
    """
    if cells < 0:
        raise ValueError("negative cell count %d" % cells)
    expected = cells * bytes_per_cell(encoding)
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
    expected = cells * bytes_per_cell(encoding)
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
            if not out and not pending:
                break
    except zlib.error as e:
        raise _refused(blob, "is neither %d raw bytes nor zlib data (%s)" % (expected, e)) from None
    if inflated != expected:
        what = "less" if inflated < expected else "more"
        raise _refused(blob, "inflates to %s than the %d bytes its shape promises" % (what, expected))
    if not inflate.eof:
        raise _refused(blob, "is a truncated zlib stream")


def _refused(blob, why):
    """The ValueError of a stored blob that does not hold its shape (one
    wording for raw_bytes and check)."""
    return ValueError("blob of %d bytes %s" % (len(blob), why))


def decode(data, encoding, shape):
    """A stored blob (raw or compressed) -> float32 array of `shape`."""
    data = raw_bytes(data, encoding, int(np.prod(shape)))
    if encoding == UINT8:
        values = np.frombuffer(data, dtype=np.uint8).astype(np.float32) / 255.0
    elif encoding == FLOAT32:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    else:
        raise ValueError("unknown encoding %r" % (encoding,))
    return values.reshape(shape)


def bytes_per_cell(encoding):
    return 1 if encoding == UINT8 else 4
