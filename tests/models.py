"""Tiny models shared by the tests."""

import keras
import numpy as np

VOCAB, LEN = 30, 10


def tiny_mha_classifier(heads=2):
    inp = keras.Input((LEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inp)
    x = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=4, name="mha")(x, x)
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inp, out, name="tiny")
    model.compile("adam", "mse")
    return model


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (n, LEN))
    x[:, :2] = 0
    return x, rng.normal(size=(n, 1)).astype("float32")
