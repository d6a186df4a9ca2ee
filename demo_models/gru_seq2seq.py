"""Seed 004: GRU encoder-decoder with dot-product attention (no heads).

    python -m demo_models.gru_seq2seq --logdir logs/gru_seq2seq

Task: reverse a sequence of letters ("c a t" -> "t a c"). The encoder GRU
reads the source; the decoder GRU starts from its last state and, at each
output step, attends over all encoder states with the seed's dot-product
attention: scores = query @ keys^T, softmax over the source, weights of shape
(batch, dec_len, enc_len). The attention is a small custom layer returning
(context, weights), captured by name. A trained model's cross-attention is
the anti-diagonal: output i looks at source position len - 1 - i.
"""

import string

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras
import numpy as np

from demo_models import common

PAD, START, END = 0, 1, 2
LETTERS = list(string.ascii_lowercase[:12])
VOCAB = ["<pad>", "<start>", "<end>"] + LETTERS
LENGTH = 8

PRESETS = {
    "tiny": dict(n=3000, epochs=3, units=64, update_freq=20),
    "default": dict(n=12000, epochs=8, units=96, update_freq=50),
}


class DotProductAttention(keras.layers.Layer):
    """Seed 004's attention: softmax(query @ key^T) over the source, masked."""

    def call(self, query, key, key_mask=None):
        scores = keras.ops.matmul(query, keras.ops.transpose(key, (0, 2, 1)))
        if key_mask is not None:
            scores = keras.ops.where(key_mask[:, None, :], scores, -1e9)
        weights = keras.ops.softmax(scores, axis=-1)  # (batch, dec_len, enc_len)
        return keras.ops.matmul(weights, key), weights


def reversal_data(n, seed=0):
    """Source ids (n, LENGTH) front-padded, decoder input and target (n, LENGTH + 1)."""
    rng = np.random.default_rng(seed)
    src = np.zeros((n, LENGTH), "int32")
    dec_in = np.zeros((n, LENGTH + 1), "int32")
    target = np.zeros((n, LENGTH + 1), "int32")
    for i in range(n):
        length = int(rng.integers(4, LENGTH + 1))
        ids = rng.integers(3, len(VOCAB), size=length)
        src[i, LENGTH - length:] = ids
        out = list(ids[::-1]) + [END]
        dec_in[i, : length + 1] = [START] + out[:-1]
        target[i, : length + 1] = out
    return src, dec_in, target


def build_model(units):
    enc_in = keras.Input((LENGTH,), dtype="int32", name="source")
    dec_in = keras.Input((LENGTH + 1,), dtype="int32", name="target_in")
    enc_emb = keras.layers.Embedding(len(VOCAB), 32, name="enc_embedding")(enc_in)
    enc_states, enc_last = keras.layers.GRU(units, return_sequences=True, return_state=True)(enc_emb)
    dec_emb = keras.layers.Embedding(len(VOCAB), 32, name="dec_embedding")(dec_in)
    dec_states = keras.layers.GRU(units, return_sequences=True)(dec_emb, initial_state=enc_last)
    source_mask = keras.ops.not_equal(enc_in, PAD)
    context, _ = DotProductAttention(name="attention")(dec_states, enc_states, key_mask=source_mask)
    x = keras.layers.Concatenate()([dec_states, context])
    x = keras.layers.Dense(units, activation="tanh")(x)
    out = keras.layers.Dense(len(VOCAB), activation="softmax")(x)
    model = keras.Model([enc_in, dec_in], out, name="gru_seq2seq")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    args, preset = common.parse_args("GRU_seq2seq with dot-product attention", PRESETS, argv)
    src, dec_in, target = reversal_data(preset["n"], seed=args.seed)
    probe_src, probe_dec, _ = reversal_data(8, seed=args.seed + 1)
    model = build_model(preset["units"])
    common.train(model, (src, dec_in), target, args, probe=(probe_src, probe_dec), tokens=VOCAB,
                 update_freq=preset["update_freq"], layers=["attention"], pad_id=PAD)
    return model


if __name__ == "__main__":
    main()
