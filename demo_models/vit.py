"""Attention on the image: a small Vision Transformer learns where to look.

    python -m demo_models.vit --logdir logs/vit

Data: 48 x 48 grey images of Gaussian noise with one bright shape (a
square, a disc or a triangle, 8 x 8 pixels) at a random place; the label is
the shape. The model is written like keras.io's "Image classification with
Vision Transformer": 6 x 6 patches embedded by a strided convolution (an
8 x 8 grid), a learned class token and position embeddings, 3 pre-norm
Transformer blocks of `MultiHeadAttention` (4 heads) and an MLP, classified
from the class token.

What to look for in the tab: at step 0 the class token's rollout is spread
over the whole image (its share on the patches the shape touches is about
their share of the image); after a few hundred steps it sits on the shape,
three to four times that share, and follows it from probe image to probe
image. tests/test_demo_vit.py measures it.
"""

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras
import numpy as np
from keras import ops

from demo_models import common

SIZE, PATCH, SHAPE = 48, 6, 8
GRID = SIZE // PATCH
DIM, HEADS, BLOCKS = 64, 4, 3
SHAPE_NAMES = ("square", "disc", "triangle")

PRESETS = {
    "tiny": dict(images=6000, epochs=2, update_freq=40),
    "default": dict(images=6000, epochs=4, update_freq=25),
}


def _masks():
    yy, xx = np.mgrid[0:SHAPE, 0:SHAPE]
    centre = (SHAPE - 1) / 2
    return (
        np.ones((SHAPE, SHAPE), bool),
        (yy - centre) ** 2 + (xx - centre) ** 2 <= (SHAPE / 2) ** 2,
        yy >= np.abs(xx - centre) * 2,
    )


def shape_images(n, seed=0):
    """(images (n, 48, 48, 1) float32, labels (n,), corners (n, 2)): noise
    with standard deviation 0.5 plus 2.0 on the shape's pixels, whose 8 x 8
    box has its top-left pixel at `corners`."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.5, (n, SIZE, SIZE, 1)).astype("float32")
    labels = rng.integers(0, len(SHAPE_NAMES), n)
    corners = rng.integers(0, SIZE - SHAPE, (n, 2))
    masks = _masks()
    for image, label, (row, col) in zip(images, labels, corners):
        image[row : row + SHAPE, col : col + SHAPE, 0] += 2.0 * masks[label]
    return images, labels, corners


def shape_patches(corner):
    """(GRID * GRID,) bool: the patches the shape's box at `corner` touches."""
    covered = np.zeros((SIZE, SIZE), bool)
    covered[corner[0] : corner[0] + SHAPE, corner[1] : corner[1] + SHAPE] = True
    return covered.reshape(GRID, PATCH, GRID, PATCH).any(axis=(1, 3)).reshape(-1)


class ClassTokenAndPositions(keras.layers.Layer):
    """Prepends a learned class token and adds a learned position embedding."""

    def build(self, input_shape):
        self.class_token = self.add_weight(shape=(1, 1, DIM), initializer="zeros")
        self.positions = self.add_weight(shape=(1, GRID * GRID + 1, DIM), initializer="random_normal")

    def call(self, patches):
        batch = ops.shape(patches)[0]
        tokens = ops.broadcast_to(self.class_token, (batch, 1, DIM))
        return ops.concatenate([tokens, patches], axis=1) + self.positions


def build_model():
    images = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(DIM, PATCH, strides=PATCH, name="patches")(images)
    x = ClassTokenAndPositions()(keras.layers.Reshape((GRID * GRID, DIM))(x))
    for block in range(BLOCKS):
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.MultiHeadAttention(HEADS, DIM // HEADS, name="block%d" % block)(h, h)
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.Dense(DIM)(keras.layers.Dense(2 * DIM, activation="gelu")(h))
    logits = keras.layers.Dense(len(SHAPE_NAMES))(keras.layers.LayerNormalization()(x)[:, 0])
    model = keras.Model(images, logits, name="vit")
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def main(argv=None):
    args, preset = common.parse_args("ViT on generated shapes", PRESETS, argv)
    images, labels, _ = shape_images(preset["images"], seed=args.seed)
    probe = shape_images(8, seed=args.seed + 1)[0]
    model = build_model()
    common.train(model, images, labels, args, probe=probe, tokens=None,
                 update_freq=preset["update_freq"], batch_size=64)
    return model


if __name__ == "__main__":
    main()
