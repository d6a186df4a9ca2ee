"""IMDB sentiment with one MultiHeadAttention layer: seed 000 done right.

    python -m demo_models.imdb --logdir logs/imdb

Reviews -> Embedding (mask_zero, so padding is masked) + learned positions ->
MultiHeadAttention (4 heads, self attention, no residual: everything the
classifier sees went through attention) -> masked mean pooling -> sigmoid.

Data: `keras.datasets.imdb` when its host answers; else a copy in keras's
format already in the keras cache (`$KERAS_HOME/datasets/imdb.npz` and
`imdb_word_index.json`); else, offline, a generated corpus of real English
words whose label is decided by the sentiment words in the text. Ids follow
keras's convention in all three: 0 pad, 1 start, 2 out-of-vocabulary, and the
word of frequency rank r has id r + 3.
"""

import json
import os
import socket
import sys

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras
import numpy as np

from demo_models import common

PAD, START, OOV, INDEX_FROM = 0, 1, 2, 3

PRESETS = {
    "tiny": dict(num_words=400, maxlen=60, train=800, epochs=2, update_freq=10),
    "default": dict(num_words=2000, maxlen=80, train=3000, epochs=3, update_freq=20),
}

POSITIVE = """great excellent wonderful brilliant superb loved amazing beautiful
moving perfect fantastic enjoyable charming delightful masterpiece""".split()
NEGATIVE = """terrible awful boring horrible worst dull waste poor stupid bad
disappointing mess painful annoying pointless""".split()
NEUTRAL = """the a an and of to in is it that this was as with for on film movie
story plot actor actress director scene scenes character characters time
people one two first last new old end way man woman life world year day
night house family friend city school music camera screen script dialogue
cast role part show series book version style effects sound light water
road car war police money love death truth history picture audience critic
ending beginning middle moment place hand eyes face voice words question
answer reason idea point fact case story line shot score set costume color
watched saw made went came took found told gave thought looked seemed felt
became began kept left turned played wrote called asked tried used moved
really just very also still even only again then there here now later
about after before during through between under over into while because
although though since until which who what when where how why all some
many most other such same each every both few more long short young small
large early late high low real whole full certain main local public red
black white green blue dark bright quiet loud slow fast simple strange
""".split()


def generated_corpus(n, seed=0, min_len=20, max_len=70):
    """(reviews as lists of words, labels): real English words; the label is
    decided by which kind of sentiment word the review holds more of."""
    rng = np.random.default_rng(seed)
    reviews, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        words = list(rng.choice(NEUTRAL, size=int(rng.integers(min_len, max_len))))
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        picks = list(rng.choice(own, size=int(rng.integers(2, 4))))
        if rng.random() < 0.3:  # a dissenting word, outnumbered
            picks.append(rng.choice(other))
        for word in picks:
            words.insert(int(rng.integers(0, len(words) + 1)), word)
        reviews.append([str(w) for w in words])
        labels.append(label)
    return reviews, np.array(labels)


def word_index_of(reviews):
    """{word: frequency rank from 1}, as keras's imdb_word_index.json."""
    counts = {}
    for review in reviews:
        for word in review:
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return {word: rank for rank, word in enumerate(ranked, start=1)}


def encode(reviews, word_index, num_words):
    """Words -> keras imdb ids: [START] + rank + 3, OOV past num_words."""
    out = []
    for review in reviews:
        ids = [word_index[w] + INDEX_FROM for w in review]
        out.append([START] + [i if i < num_words else OOV for i in ids])
    return out


def id_to_word(word_index):
    """{id: word} for decoding, with the three reserved ids."""
    table = {rank + INDEX_FROM: word for word, rank in word_index.items()}
    table.update({PAD: "<pad>", START: "<start>", OOV: "<unk>"})
    return table


def _load_keras_format(directory, num_words):
    """Reads imdb.npz / imdb_word_index.json in keras's format, applying
    keras's id convention (start char, index_from=3, OOV past num_words)."""
    with np.load(os.path.join(directory, "imdb.npz"), allow_pickle=True) as f:
        x_train, y_train = f["x_train"], f["y_train"]
        x_test, y_test = f["x_test"], f["y_test"]
    with open(os.path.join(directory, "imdb_word_index.json")) as f:
        word_index = json.load(f)

    def convert(xs):
        out = []
        for x in xs:
            ids = [START] + [int(w) + INDEX_FROM for w in x]
            out.append([i if i < num_words else OOV for i in ids])
        return out

    return (convert(x_train), np.asarray(y_train)), (convert(x_test), np.asarray(y_test)), word_index


def keras_cache_dir():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


IMDB_HOST = "storage.googleapis.com"  # where keras.datasets.imdb downloads from


def host_reachable(host=IMDB_HOST, port=443, timeout=3):
    """True when a TCP connection to host:port opens within `timeout` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_imdb(num_words, offline=False, generated_size=4000, seed=0):
    """((x_train, y_train), (x_test, y_test), word_index, source).

    Uses keras.datasets.imdb (keras's cached copy, or a download) when there
    is a cached copy or its host answers; else a copy in keras's format in
    the keras cache; else the generated corpus. x are lists of ids (not
    padded).
    """
    cache = keras_cache_dir()
    cached = os.path.exists(os.path.join(cache, "imdb.npz"))  # keras's loader reads its cache offline
    if not offline and (cached or host_reachable()):
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(15)
        try:
            train, test = keras.datasets.imdb.load_data(num_words=num_words)
            word_index = keras.datasets.imdb.get_word_index()
            return train, test, word_index, "keras.datasets.imdb"
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print("The IMDB download failed (%s); the demo goes on with the keras cache or, "
                  "failing that, a generated corpus." % reason, file=sys.stderr)
        finally:
            socket.setdefaulttimeout(previous)
    if os.path.exists(os.path.join(cache, "imdb.npz")) and os.path.exists(
        os.path.join(cache, "imdb_word_index.json")
    ):
        train, test, word_index = _load_keras_format(cache, num_words)
        return train, test, word_index, "keras cache " + cache
    reviews, labels = generated_corpus(generated_size, seed=seed)
    word_index = word_index_of(reviews)
    x = encode(reviews, word_index, num_words)
    split = int(0.8 * len(x))
    return (x[:split], labels[:split]), (x[split:], labels[split:]), word_index, "generated"


def describe_source(source, offline):
    """The one line the demo prints about where its reviews come from."""
    if source == "keras.datasets.imdb":
        return "Data: IMDB reviews from keras.datasets.imdb."
    if source.startswith("keras cache"):
        return "Data: IMDB reviews in keras's format from the %s." % source
    why = ("--offline was given" if offline else
           "%s (where keras.datasets.imdb downloads from) cannot be reached" % IMDB_HOST)
    return ("Data: %s, so the demo trains on a generated corpus of real English words "
            "whose label follows their sentiment words." % why)


class TokenAndPositionEmbedding(keras.layers.Layer):
    """Word embedding plus a learned position embedding, with the padding mask
    (id 0) passed on, so attention never looks at padding (seed 000 had none)."""

    def __init__(self, num_words, maxlen, dim, **kwargs):
        super().__init__(**kwargs)
        self.words = keras.layers.Embedding(num_words, dim)
        self.positions = keras.layers.Embedding(maxlen, dim)

    def call(self, ids):
        positions = keras.ops.arange(keras.ops.shape(ids)[-1])
        return self.words(ids) + self.positions(positions)

    def compute_mask(self, ids, mask=None):
        return keras.ops.not_equal(ids, PAD)


def build_model(num_words, maxlen, heads=4, key_dim=16, dim=32):
    tokens = keras.Input((maxlen,), dtype="int32", name="tokens")
    x = TokenAndPositionEmbedding(num_words, maxlen, dim, name="embedding")(tokens)
    x = keras.layers.MultiHeadAttention(heads, key_dim, name="attention")(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(tokens, out, name="imdb_attention")
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    args, preset = common.parse_args(
        "IMDB sentiment with MultiHeadAttention", PRESETS, argv,
        extra=lambda p: p.add_argument("--offline", action="store_true",
                                       help="skip the download, use the generated corpus"),
    )
    (x_train, y_train), (x_test, y_test), word_index, source = load_imdb(
        preset["num_words"], offline=args.offline, seed=args.seed)
    print(describe_source(source, args.offline), flush=True)
    pad = lambda xs: keras.utils.pad_sequences(xs, maxlen=preset["maxlen"])
    x_train, x_test = pad(x_train[: preset["train"]]), pad(x_test)
    y_train = np.asarray(y_train[: preset["train"]])
    vocabulary = id_to_word(word_index)
    model = build_model(preset["num_words"], preset["maxlen"])
    common.train(model, x_train, y_train, args, probe=x_test[:8], tokens=vocabulary,
                 update_freq=preset["update_freq"], validation_data=(x_test[:500], np.asarray(y_test[:500])))
    return model


if __name__ == "__main__":
    main()
