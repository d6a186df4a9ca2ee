"""Seed 002: LSTM with a Dense(softmax) attention block named `attention_vec`.

    python -m demo_models.lstm_attention --logdir logs/lstm_attention

Data: 20 time steps of 2 random features; the label is planted in step 10
(both features equal the label there), everything else is noise. The
attention block (Permute -> Dense(softmax over time) -> Permute, named
`attention_vec`, shape (batch, time, features)) sits before the LSTM, as in
the seed's `model_attention_applied_before_lstm`. AttentionCallback captures
it by name and shows it as features x time, so the received attention of
each time step is the sum over features; it should peak at step 10.
"""

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras
import numpy as np

from demo_models import common

TIME_STEPS, INPUT_DIM, PLANTED_STEP = 20, 2, 10

PRESETS = {
    "tiny": dict(n=5000, epochs=3, update_freq=40),
    "default": dict(n=10000, epochs=5, update_freq=50),
}


def planted_data(n, seed=0, attention_column=PLANTED_STEP):
    """x (n, 20, 2) standard normal, y (n, 1) in {0, 1}, x[:, 10, :] = y."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size=(n, TIME_STEPS, INPUT_DIM)).astype("float32")
    y = rng.integers(0, 2, size=(n, 1))
    x[:, attention_column, :] = np.tile(y, (1, INPUT_DIM))
    return x, y.astype("float32")


def attention_3d_block(inputs):
    a = keras.layers.Permute((2, 1))(inputs)  # (batch, features, time)
    a = keras.layers.Dense(TIME_STEPS, activation="softmax")(a)  # softmax over time
    a_probs = keras.layers.Permute((2, 1), name="attention_vec")(a)  # (batch, time, features)
    return keras.layers.Multiply()([inputs, a_probs])


def build_model(lstm_units=32):
    inputs = keras.Input((TIME_STEPS, INPUT_DIM))
    x = attention_3d_block(inputs)
    x = keras.layers.LSTM(lstm_units)(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, out, name="lstm_attention")
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    args, preset = common.parse_args("LSTM_attention with a Dense(softmax) block", PRESETS, argv)
    x, y = planted_data(preset["n"], seed=args.seed)
    x_probe, _ = planted_data(8, seed=args.seed + 1)
    model = build_model()
    common.train(model, x, y, args, probe=x_probe, tokens=None, update_freq=preset["update_freq"],
                 layers=["attention_vec"])
    return model


if __name__ == "__main__":
    main()
