"""Which tokens of a ViT are which patches: found from the model, the user
or the sequence length, each worked out by hand."""

import numpy as np
import pytest

from tb_attention_plugin.writing.image_grid import Grid, find_grid, to_uint8


@pytest.mark.parametrize(
    "image, length, patch, rows_cols, grid",
    [
        ((224, 224), 197, (16, 16), None, Grid(14, 14, 1)),  # ViT-B/16: 196 patches + CLS
        ((224, 224), 196, (16, 16), None, Grid(14, 14, 0)),  # no class token
        ((224, 224), 201, (16, 16), None, Grid(14, 14, 5)),  # CLS + 4 registers
        ((48, 48), 65, None, None, Grid(8, 8, 1)),  # from the length: 64 = (48/6)^2, one prefix
        ((32, 64), 33, None, None, Grid(4, 8, 1)),  # not square: 8-pixel patches
        ((30, 30), 50, None, (7, 7), Grid(7, 7, 1)),  # the user says (patches that do not divide)
        ((224, 224), 197, (32, 32), None, None),  # 49 patches leave 148 extra tokens: not this layer's
        ((30, 30), 20, None, None, None),  # nothing fits: 30 x 30 makes 1, 4, 9, 25, 36, ... patches
    ],
)
def test_grids(image, length, patch, rows_cols, grid):
    assert find_grid(image, length, patch, rows_cols) == grid


def test_grid_tokens_name_prefix_tokens_then_patches_row_by_row():
    assert Grid(2, 3, 2).tokens() == ["CLS", "REG1", "0,0", "0,1", "0,2", "1,0", "1,1", "1,2"]


def test_images_become_uint8_by_their_own_range():
    image = np.array([[[-1.0], [0.0]], [[1.0], [3.0]]])
    np.testing.assert_array_equal(to_uint8(image)[..., 0], [[0, 64], [128, 255]])  # (x + 1) / 4 * 255
    assert to_uint8(np.full((2, 2, 3), 7.0)).tolist() == np.full((2, 2, 3), 128).tolist()
    raw = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert to_uint8(raw) is raw


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_decoder_reads_our_pngs_and_libpngs_filtered_ones(channels):
    # Probe images are read back without TensorFlow (format/png.py): ours
    # are unfiltered; logs of earlier versions hold tf.io.encode_png's,
    # whose libpng filters rows (sub, up, average, Paeth) on smooth images.
    tf = pytest.importorskip("tensorflow")
    from tb_attention_plugin.format.png import decode_png
    from tb_attention_plugin.writing.image_grid import encode_png

    rows, cols = np.indices((9, 7))
    image = np.stack([(rows * 20 + cols * 3 + 11 * c) % 256 for c in range(channels)], -1).astype(np.uint8)
    image[4, 3] = 255  # one sharp pixel among smooth gradients
    np.testing.assert_array_equal(decode_png(encode_png(image)), image)
    filtered = tf.io.encode_png(image).numpy()
    assert decode_png(filtered).shape == (9, 7, channels)
    np.testing.assert_array_equal(decode_png(filtered), image)
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(b"GIF89a")
