"""Seed 003: an encoder-decoder Transformer, on rewriting dates.

    python -m demo_models.transformer --logdir logs/transformer

Task: "on 21 november 2026" -> "2026 - 11 - 21" (word tokens; the source
order varies: day month year, month day year, year month day, with optional
filler words). The correct alignment is known: each of year, month and day
in the output comes from one source token, so a trained model's
cross-attention should point there.

Model (seed 003's structure with keras.layers.MultiHeadAttention): sinusoidal
positional encoding, 2 encoder layers (self attention with the padding mask),
2 decoder layers (causal self attention, then cross attention to the encoder
output with the source padding mask), feed-forward blocks, residuals and
layer normalisation. All three attention kinds are captured, with decoder
tokens on the query side and source tokens on the key side of the
cross-attention maps.
"""

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras
import numpy as np

from demo_models import common

MONTHS = ["january", "february", "march", "april", "may", "june", "july",
          "august", "september", "october", "november", "december"]
FILLERS = ["on", "the", "date", "is", "of", "day"]
YEARS = [str(y) for y in range(1970, 2040)]
SPECIAL = ["<pad>", "<start>", "<end>", "-"]
VOCAB = SPECIAL + FILLERS + MONTHS + [str(d) for d in range(1, 32)] + ["%02d" % m for m in range(1, 13)] + YEARS
# "01".."12" may coincide with nothing in 1..31 as written ("1" vs "01"), but
# keep the list unique anyway.
VOCAB = list(dict.fromkeys(VOCAB))
ID = {token: i for i, token in enumerate(VOCAB)}
PAD = 0
SRC_LEN, TGT_LEN = 7, 6  # target: <start> year - month - day  /  year - month - day <end>

PRESETS = {
    "tiny": dict(n=4000, epochs=6, d_model=64, heads=4, layers=2, update_freq=50),
    "default": dict(n=12000, epochs=8, d_model=64, heads=4, layers=2, update_freq=100),
}


def make_example(rng):
    """(source words, target words, {output position: source position})."""
    year, month, day = rng.choice(YEARS), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    parts = {"year": year, "month": MONTHS[month - 1], "day": str(day)}
    order = [["day", "month", "year"], ["month", "day", "year"], ["year", "month", "day"]][int(rng.integers(0, 3))]
    fillers = list(rng.choice(FILLERS, size=int(rng.integers(0, SRC_LEN - 3 + 1))))
    words = fillers + [parts[name] for name in order]
    position = {name: len(fillers) + order.index(name) for name in order}
    target = [year, "-", "%02d" % month, "-", "%02d" % day]
    # output position in `target` -> source position of the word it comes from
    alignment = {0: position["year"], 2: position["month"], 4: position["day"]}
    return words, target, alignment


def date_data(n, seed=0):
    """Front-padded source ids (n, 7), decoder input and target ids (n, 6),
    and per example the known alignment {output position: padded source position}."""
    rng = np.random.default_rng(seed)
    src = np.zeros((n, SRC_LEN), "int32")
    dec_in = np.zeros((n, TGT_LEN), "int32")
    target = np.zeros((n, TGT_LEN), "int32")
    alignments = []
    for i in range(n):
        words, out, alignment = make_example(rng)
        offset = SRC_LEN - len(words)
        src[i, offset:] = [ID[w] for w in words]
        dec_in[i] = [ID["<start>"]] + [ID[w] for w in out]
        target[i] = [ID[w] for w in out] + [ID["<end>"]]
        alignments.append({t: offset + s for t, s in alignment.items()})
    return src, dec_in, target, alignments


def positional_encoding(length, depth):
    positions = np.arange(length)[:, None]
    rates = 1 / (10000 ** (np.arange(depth)[None, :] // 2 * 2 / depth))
    angles = positions * rates
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return angles.astype("float32")


class PositionalEmbedding(keras.layers.Layer):
    def __init__(self, length, d_model, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(len(VOCAB), d_model)
        self.encoding = positional_encoding(length, d_model)
        self.scale = float(np.sqrt(d_model))

    def call(self, ids):
        return self.embedding(ids) * self.scale + self.encoding[None]


class FeedForward(keras.layers.Layer):
    def __init__(self, d_model, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(2 * d_model, activation="relu")
        self.outer = keras.layers.Dense(d_model)
        self.norm = keras.layers.LayerNormalization()

    def call(self, x):
        return self.norm(x + self.outer(self.inner(x)))


class EncoderLayer(keras.layers.Layer):
    def __init__(self, d_model, heads, **kwargs):
        super().__init__(**kwargs)
        self.self_attention = keras.layers.MultiHeadAttention(heads, d_model // heads, name="self_attention")
        self.norm = keras.layers.LayerNormalization()
        self.ffn = FeedForward(d_model)

    def call(self, x, mask):
        attention_mask = mask[:, :, None] & mask[:, None, :]
        return self.ffn(self.norm(x + self.self_attention(x, x, attention_mask=attention_mask)))


class DecoderLayer(keras.layers.Layer):
    def __init__(self, d_model, heads, **kwargs):
        super().__init__(**kwargs)
        self.causal_attention = keras.layers.MultiHeadAttention(heads, d_model // heads, name="causal_attention")
        self.cross_attention = keras.layers.MultiHeadAttention(heads, d_model // heads, name="cross_attention")
        self.norm1 = keras.layers.LayerNormalization()
        self.norm2 = keras.layers.LayerNormalization()
        self.ffn = FeedForward(d_model)

    def call(self, x, encoded, source_mask):
        x = self.norm1(x + self.causal_attention(x, x, use_causal_mask=True))
        cross_mask = keras.ops.ones_like(x[:, :, :1], dtype="bool") & source_mask[:, None, :]
        x = self.norm2(x + self.cross_attention(x, encoded, attention_mask=cross_mask))
        return self.ffn(x)


def build_model(d_model, heads, layers):
    src = keras.Input((SRC_LEN,), dtype="int32", name="source")
    tgt = keras.Input((TGT_LEN,), dtype="int32", name="target_in")
    source_mask = keras.ops.not_equal(src, PAD)
    x = PositionalEmbedding(SRC_LEN, d_model, name="source_embedding")(src)
    for i in range(layers):
        x = EncoderLayer(d_model, heads, name="encoder_%d" % i)(x, source_mask)
    y = PositionalEmbedding(TGT_LEN, d_model, name="target_embedding")(tgt)
    for i in range(layers):
        y = DecoderLayer(d_model, heads, name="decoder_%d" % i)(y, x, source_mask)
    out = keras.layers.Dense(len(VOCAB), activation="softmax")(y)
    model = keras.Model([src, tgt], out, name="date_transformer")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    args, preset = common.parse_args("Transformer rewriting dates", PRESETS, argv)
    src, dec_in, target, _ = date_data(preset["n"], seed=args.seed)
    probe_src, probe_dec, _, _ = date_data(8, seed=args.seed + 1)
    model = build_model(preset["d_model"], preset["heads"], preset["layers"])
    common.train(model, (src, dec_in), target, args, probe=(probe_src, probe_dec), tokens=VOCAB,
                 update_freq=preset["update_freq"], pad_id=PAD)
    return model


if __name__ == "__main__":
    main()
