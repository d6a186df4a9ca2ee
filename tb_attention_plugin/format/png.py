"""Reading the probe images stored as PNG, without TensorFlow.

The callback writes them unfiltered (writing/image_grid.encode_png); logs
written by earlier versions used `tf.io.encode_png` (libpng, which filters
each row). Both are 8-bit, non-interlaced PNGs (PNG spec, ISO/IEC 15948),
the only kind read here.
"""

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # colour type -> channels (grey, grey + alpha, RGB, RGBA)


def decode_png(data):
    """PNG bytes -> (H, W, C) uint8 array.

    Raises:
      ValueError: not an 8-bit non-interlaced grey/RGB(A) PNG, or damaged.
    """
    data = bytes(data)
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    position, header, idat = len(_SIGNATURE), None, []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without a header")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError("PNG of %d-bit colour type %d%s: only 8-bit, non-interlaced grey or RGB(A) "
                         "is read" % (depth, colour, ", interlaced" if interlace else ""))
    channels = _CHANNELS[colour]
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    if raw.size != height * (stride + 1):
        raise ValueError("PNG data of %d bytes for %d x %d x %d" % (raw.size, height, width, channels))
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    for r in range(height):
        out[r] = _unfilter(rows[r, 0], rows[r, 1:], out[r - 1] if r else np.zeros(stride, np.uint8),
                           channels)
    return out.reshape(height, width, channels)


def _unfilter(kind, line, above, bpp):
    """One row with its filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth) undone."""
    if kind == 0:
        return line
    if kind == 2:
        return (line.astype(np.int32) + above) & 0xFF
    line, above = line.astype(np.int32), above.astype(np.int32)
    out = np.zeros_like(line)
    for i in range(len(line)):  # sub, average and Paeth depend on the row's own left bytes
        left = out[i - bpp] if i >= bpp else 0
        up_left = above[i - bpp] if i >= bpp else 0
        if kind == 1:
            predictor = left
        elif kind == 3:
            predictor = (left + above[i]) // 2
        elif kind == 4:
            p = left + above[i] - up_left
            pa, pb, pc = abs(p - left), abs(p - above[i]), abs(p - up_left)
            predictor = left if pa <= pb and pa <= pc else above[i] if pb <= pc else up_left
        else:
            raise ValueError("PNG row filter %d" % kind)
        out[i] = (line[i] + predictor) & 0xFF
    return out
