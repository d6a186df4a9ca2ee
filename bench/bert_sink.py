"""Does a [CLS] / [SEP] sink form in a small BERT trained here? (issue 35 item 4)

    python -m bench.bert_sink [--layers 4] [--epochs 8] [--logdir DIR]

Kobayashi et al. (EMNLP 2020) found pretrained BERT's heads putting much of
their weight on [SEP] and [CLS] while the value vectors of those tokens are
small, so value-weighted attention moves to the content tokens. This trains
a keras_hub BertBackbone built from config (`--layers` x 4 heads, width 64,
random init) on the IMDB demo's reviews (the generated corpus, offline) with
[CLS] first and [SEP] last, classifying from [CLS] (pooled_output), with
AttentionCallback's defaults, and prints per head, at the first and last
capture, the mean weight (over the 8 probe reviews and their query rows)
on [CLS] and [SEP] and the same for value-weighted attention (each row's
shares of weight x value norm). Nothing is staged: whatever forms is
printed; uniform attention over a review gives about 1 / its length.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from demo_models import imdb  # noqa: E402
from tb_attention_plugin import AttentionCallback, read_attention  # noqa: E402

NUM_WORDS, MAXLEN = 2000, 62
CLS, SEP = NUM_WORDS + 3, NUM_WORDS + 4


def _with_specials(reviews):
    out = np.zeros((len(reviews), MAXLEN), "int32")
    for i, review in enumerate(reviews):
        body = [t for t in review if t not in (imdb.PAD, imdb.START)][: MAXLEN - 2]
        out[i, : len(body) + 2] = [CLS] + body + [SEP]
    return out


def _inputs(ids):
    return {"token_ids": ids, "padding_mask": (ids != 0).astype("int32"), "segment_ids": np.zeros_like(ids)}


def run(layers=4, epochs=8, logdir=None):
    import keras_hub

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test), _, _ = imdb.load_imdb(NUM_WORDS, offline=True, generated_size=4000)
    train, test = _with_specials(x_train[:3000]), _with_specials(x_test[:400])
    backbone = keras_hub.models.BertBackbone(vocabulary_size=NUM_WORDS + 5, num_layers=layers, num_heads=4,
                                             hidden_dim=64, intermediate_dim=128, max_sequence_length=MAXLEN,
                                             dropout=0.0)
    model = keras.Model(backbone.input, keras.layers.Dense(1, activation="sigmoid")(backbone.output["pooled_output"]))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    logdir = logdir or tempfile.mkdtemp(prefix="bert-sink-")
    start = time.perf_counter()
    history = model.fit(_inputs(train), y_train[:3000], validation_data=(_inputs(test), y_test[:400]), epochs=epochs,
                        batch_size=32, verbose=0,
                        callbacks=[AttentionCallback(logdir, probe=_inputs(test[:8]), update_freq=50)])
    seconds = time.perf_counter() - start
    rows = []
    for name, layer in read_attention(logdir)["."].items():
        for s in (0, -1):
            for h in range(layer.num_heads):
                sums = np.zeros(4)
                for e in range(len(layer.maps)):
                    weights = layer.maps[e][s][h]
                    shares = weights * layer.value_norms[e][s][h][None, :]
                    shares /= shares.sum(-1, keepdims=True)
                    sums += [weights[:, 0].mean(), weights[:, -1].mean(), shares[:, 0].mean(), shares[:, -1].mean()]
                rows.append((name, int(layer.steps[s]), h, *(sums / len(layer.maps))))
    return {"rows": rows, "seconds": seconds, "val_accuracy": history.history["val_accuracy"][-1],
            "layers": layers, "epochs": epochs, "logdir": logdir}


def report(result):
    lines = ["BertBackbone %d layers x 4 heads, %d epochs (%.0f s), validation accuracy %.3f; log: %s"
             % (result["layers"], result["epochs"], result["seconds"], result["val_accuracy"], result["logdir"]), "",
             "| layer | step | head | weight on [CLS] | on [SEP] | value-weighted on [CLS] | on [SEP] |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| %s | %d | %d | %.3f | %.3f | %.3f | %.3f |" % row for row in result["rows"]]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--logdir", default=None)
    args = parser.parse_args()
    print(report(run(args.layers, args.epochs, args.logdir)))


if __name__ == "__main__":
    main()
