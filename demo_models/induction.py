"""Induction heads forming while you watch: a phase change over training.

    python -m demo_models.induction --logdir logs/induction

A two-layer attention-only Transformer (token and learned position
embeddings, two causal MultiHeadAttention layers of 4 heads with residuals,
no MLP) learns next-token prediction on sequences of 32 random tokens in
which a span of 6 to 15 tokens appears twice, at a random place. The first
occurrence is unpredictable; the second can be copied, but only by an
induction circuit (Olsson et al. 2022): a previous-token head in layer 1
writes "my previous token was A" into each position, and a head in layer 2
looks for the position whose previous token equals its own token and copies
the token it holds. Because the span's length and place vary, no positional
shortcut ("look 12 back") works.

What to look for in the tab (default preset, 80 s on 2 cores): for about
500 steps attention is flat; then, over the next 300, layer2's heads lock
onto the token after the previous occurrence (a diagonal offset by the span
length in the repeated half) and layer1's onto the previous token (the
sub-diagonal), while `loss/repeated` (the loss on the predictable second
occurrence, in the Scalars tab, run `induction/train`) falls from about
log(64) = 4.2 towards 0. Measured with `head_metrics.induction_score` in
tests/test_demo_induction.py.
"""

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras
import numpy as np
import tensorflow as tf

from demo_models import common

VOCAB, LENGTH, DIM, HEADS = 64, 32, 64, 4
TOKENS = ["<pad>"] + ["t%d" % i for i in range(1, VOCAB)]

PRESETS = {
    "tiny": dict(examples=30000, epochs=2, update_freq=25),
    "default": dict(examples=30000, epochs=3, update_freq=20),
}


def repeated_spans(n, seed=0):
    """Token sequences (n, LENGTH) of ids 1..63 where one span of 6 to 15
    tokens is repeated right after itself; returns (x, y, repeated) for
    next-token prediction: x = seq[:, :-1], y = seq[:, 1:], and `repeated`
    (n, LENGTH - 1) True where y is a token of the second occurrence (the
    positions an induction head can predict)."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(1, VOCAB, (n, LENGTH))
    repeated = np.zeros((n, LENGTH), dtype=bool)
    for row, marks in zip(seq, repeated):
        span = int(rng.integers(6, 16))
        start = int(rng.integers(0, LENGTH - 2 * span + 1))
        row[start + span : start + 2 * span] = row[start : start + span]
        marks[start + span + 1 : start + 2 * span] = True  # the first copied token is not predictable
    return seq[:, :-1], seq[:, 1:], repeated[:, 1:]


class PositionEmbedding(keras.layers.Layer):
    """A learned vector per position, added to the token embedding."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=(input_shape[1], DIM), initializer="random_normal")

    def call(self, x):
        return x + self.positions[None]


def build_model(learning_rate=3e-3):
    ids = keras.Input((LENGTH - 1,), dtype="int32")
    x = PositionEmbedding()(keras.layers.Embedding(VOCAB, DIM)(ids))
    for layer in (1, 2):
        attention = keras.layers.MultiHeadAttention(HEADS, DIM // HEADS, name="layer%d" % layer)
        x = x + attention(x, x, use_causal_mask=True)
    logits = keras.layers.Dense(VOCAB)(keras.layers.LayerNormalization()(x))
    model = keras.Model(ids, logits, name="induction")
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class RepeatedLoss(keras.callbacks.Callback):
    """Every `update_freq` steps, the loss on a held-out batch split in two:
    `loss/repeated` (tokens of the second occurrence: what induction
    predicts) and `loss/other`, as scalars in `log_dir/train`, the run of
    Keras's own training scalars."""

    def __init__(self, log_dir, update_freq, seed=12345):
        super().__init__()
        self.x, self.y, self.repeated = repeated_spans(256, seed)
        self.writer = tf.summary.create_file_writer(log_dir + "/train")
        self.update_freq = update_freq

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.update_freq:
            return
        logits = self.model(self.x, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(self.y, logits, from_logits=True).numpy()
        with self.writer.as_default():
            tf.summary.scalar("loss/repeated", losses[self.repeated].mean(), step=step)
            tf.summary.scalar("loss/other", losses[~self.repeated].mean(), step=step)
        self.writer.flush()


def main(argv=None):
    args, preset = common.parse_args("Induction heads: a two-layer attention-only Transformer", PRESETS, argv)
    x, y, _ = repeated_spans(preset["examples"], seed=args.seed)
    probe = repeated_spans(8, seed=args.seed + 1)[0]
    model = build_model()
    common.train(model, x, y, args, probe=probe, tokens=TOKENS, update_freq=preset["update_freq"],
                 batch_size=64, callbacks=[RepeatedLoss(args.logdir, preset["update_freq"])])
    return model


if __name__ == "__main__":
    main()
