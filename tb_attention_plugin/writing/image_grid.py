"""Image probes: which tokens of a Vision Transformer are which patches.

A ViT turns an (H, W, C) image into a grid of rows x cols patches, row by
row, usually after `prefix` class (and register) tokens. Attention over L
tokens is read on the image once the grid is known: from the model (a
layer's `patch_size`, as keras_hub's ViT has, or a patch-embedding Conv2D
whose kernel equals its strides, as keras.io's example has), from the
user (`image_grid=(rows, cols)`), or else from the sequence length alone
(the one patch size that divides the image and leaves 0 to 8 prefix
tokens).
"""

import dataclasses
import struct
import zlib

import numpy as np

# At most this many class/register tokens before the patches.
MAX_PREFIX = 8


@dataclasses.dataclass(frozen=True)
class Grid:
    rows: int
    cols: int
    prefix: int  # class / register tokens before the patches

    def tokens(self):
        """'CLS', 'REG1', ... then 'r,c' for each patch, row by row."""
        names = ["CLS" if i == 0 else "REG%d" % i for i in range(self.prefix)]
        return names + ["%d,%d" % (r, c) for r in range(self.rows) for c in range(self.cols)]


def is_image_batch(array):
    """A probe input of images: (N, H, W, C) with 1 to 4 channels."""
    return np.ndim(array) == 4 and np.shape(array)[-1] in (1, 2, 3, 4)


def patch_size_of(model):
    """(ph, pw) from the model's layers, or None: a `patch_size` attribute
    (keras_hub), else a Conv2D whose kernel equals its strides (> 1)."""
    import keras

    from tb_attention_plugin.writing import capture

    for layer in capture.all_layers(model):
        size = getattr(layer, "patch_size", None)
        if isinstance(size, (int, np.integer)) and size > 0:
            return int(size), int(size)
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return int(size[0]), int(size[1])
    for layer in capture.all_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            kernel, strides = tuple(layer.kernel_size), tuple(layer.strides)
            if kernel == strides and max(kernel) > 1:
                return kernel
    return None


def find_grid(image_shape, length, patch_size=None, rows_cols=None):
    """The Grid of `length` tokens over an image of `image_shape` (H, W), or
    None when none fits. `patch_size` (ph, pw) from the model, or
    `rows_cols` from the user, fix it; otherwise the length decides."""
    height, width = image_shape[:2]
    if rows_cols is not None:
        rows, cols = rows_cols
        return _fits(rows, cols, length)
    if patch_size is not None:
        return _fits(height // patch_size[0], width // patch_size[1], length)
    for prefix in (1, 0) + tuple(range(2, MAX_PREFIX + 1)):
        patches = length - prefix
        for size in range(1, min(height, width) + 1):
            if height % size == 0 and width % size == 0 and (height // size) * (width // size) == patches:
                return Grid(height // size, width // size, prefix)
    return None


def _fits(rows, cols, length):
    prefix = length - rows * cols
    return Grid(rows, cols, prefix) if rows > 0 and cols > 0 and 0 <= prefix <= MAX_PREFIX else None


def encode_png(image):
    """One (H, W, C) uint8 image, C in 1..4 (grey, grey + alpha, RGB, RGBA),
    as PNG bytes: 8 bits per channel, no filter, zlib level 6 (PNG spec,
    ISO/IEC 15948; what any PNG decoder reads, TensorFlow's and browsers')."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width, channels = image.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + image[r].tobytes() for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6))
            + chunk(b"IEND", b""))


def to_uint8(image):
    """One (H, W, C) probe image as uint8 for a PNG: uint8 as it is, any
    other dtype stretched from its own min..max to 0..255 (a constant image
    is mid-grey). C = 2 (grey + alpha) and 4 (RGBA) are kept."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float64)
    low, high = np.nanmin(image), np.nanmax(image)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.full(image.shape, 128, np.uint8)
    return np.round(255 * (np.nan_to_num(image, nan=low) - low) / (high - low)).astype(np.uint8)
