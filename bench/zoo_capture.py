"""Capture cost on each keras_hub architecture the callback supports.

    python -m bench.zoo_capture

Each backbone is built from config (random weights, nothing downloaded) at a
small but not toy size: 2 layers, 4 heads, width 64, 64 tokens (ViT: 32x32
images in 4x4 patches, 65 tokens), a probe of 8 examples, batches of 16. For
each: the median time of one training step (`train_on_batch`), of one capture
(what `AttentionCallback._capture` does: probe forward pass, crop,
statistics, encode, write, flush) and the overhead at the default cadence, one capture every 100
steps: 1 + capture / (100 x step).
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tb_attention_plugin import AttentionCallback  # noqa: E402

V, T, WIDTH, HEADS, LAYERS, BATCH, PROBE = 1000, 64, 64, 4, 2, 16, 8


def _text(rng, n, length=T):
    ids = rng.integers(2, V, (n, length))
    ids[:, length - length // 4:] = 0  # a quarter of padding
    return ids, (ids != 0).astype("int32")


def _architectures():
    import keras_hub

    m = keras_hub.models
    common = dict(vocabulary_size=V, num_layers=LAYERS, hidden_dim=WIDTH, intermediate_dim=2 * WIDTH)

    def text(rng):
        ids, mask = _text(rng, BATCH)
        return {"token_ids": ids, "padding_mask": mask}

    def bert_inputs(rng):
        x = text(rng)
        x["segment_ids"] = np.zeros_like(x["token_ids"])
        return x

    def seq2seq(rng):
        enc, enc_mask = _text(rng, BATCH)
        dec, dec_mask = _text(rng, BATCH, T // 2)
        return {"encoder_token_ids": enc, "encoder_padding_mask": enc_mask,
                "decoder_token_ids": dec, "decoder_padding_mask": dec_mask}

    return {
        "BERT": (lambda: m.BertBackbone(num_heads=HEADS, max_sequence_length=T, **common), bert_inputs),
        "GPT-2": (lambda: m.GPT2Backbone(num_heads=HEADS, max_sequence_length=T, **common), text),
        "Llama (GQA 4/2)": (lambda: m.LlamaBackbone(num_query_heads=HEADS, num_key_value_heads=2, **common), text),
        "BART": (lambda: m.BartBackbone(num_heads=HEADS, max_sequence_length=T, **common), seq2seq),
        "T5": (lambda: m.T5Backbone(num_heads=HEADS, **common), seq2seq),
        "ViT": (
            lambda: m.ViTBackbone(image_shape=(32, 32, 3), patch_size=4, num_layers=LAYERS,
                                  num_heads=HEADS, hidden_dim=WIDTH, mlp_dim=2 * WIDTH),
            lambda rng: rng.normal(size=(BATCH, 32, 32, 3)).astype("float32"),
        ),
    }


def _model(backbone):
    outputs = backbone.output
    outputs = list(outputs.values()) if isinstance(outputs, dict) else [outputs]
    pooled = [keras.layers.GlobalAveragePooling1D()(o) for o in outputs if len(o.shape) == 3]
    joined = keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0]
    model = keras.Model(backbone.input, keras.layers.Dense(1)(joined))
    model.compile("adam", "mse")
    return model


def measure(build, inputs, reps=10):
    rng = np.random.default_rng(0)
    x = inputs(rng)
    y = np.zeros((BATCH, 1), "float32")
    model = _model(build())
    probe = {k: v[:PROBE] for k, v in x.items()} if isinstance(x, dict) else x[:PROBE]
    callback = AttentionCallback(tempfile.mkdtemp(prefix="tba-zoo-"), probe, update_freq=10**9)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback])  # trace both
    steps = []
    for _ in range(reps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        steps.append(time.perf_counter() - start)
    captures = []
    for i in range(reps):
        start = time.perf_counter()
        callback._write(callback._serialize(callback._probe_fn()), 10**6 + i)
        captures.append(time.perf_counter() - start)
    layers = len(callback._plans)
    cells = sum(p.cells for p in callback._plans.values())
    step, capture = statistics.median(steps), statistics.median(captures)
    return layers, cells, step, capture, 1 + capture / (100 * step)


def report(rows=None):
    rows = rows if rows is not None else run()
    lines = [
        "| architecture | layers captured | weights per capture | train step | one capture | overhead at update_freq=100 |",
        "|---|---|---|---|---|---|",
    ]
    for name, (layers, cells, step, capture, overhead) in rows.items():
        lines.append("| %s | %d | %d | %.1f ms | %.1f ms | %.4fx |" % (
            name, layers, cells, step * 1e3, capture * 1e3, overhead))
    return "\n".join(lines)


def run():
    return {name: measure(build, inputs) for name, (build, inputs) in _architectures().items()}


if __name__ == "__main__":
    print(report())
