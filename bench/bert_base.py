"""A BERT-base-shaped model with no extra arguments (issue 20 item 4).

    python -m bench.bert_base

keras_hub's BertBackbone built from config (12 layers, 12 heads, width 768,
512 tokens; random weights, nothing downloaded), a probe of 8 examples,
`AttentionCallback(log_dir, probe)` with defaults: full maps would be
12 x 12 x 512 x 512 = 38 M weights per example, so max_cells (50 M) has the
maps stored reduced (issue 34; before, it kept the first example in full). Prints the setup,
a training step (batch 2), one capture and the bytes per capture on disk.
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tb_attention_plugin import AttentionCallback, read_attention  # noqa: E402

T = 512


def measure():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, max_sequence_length=T)
    inputs = {k: keras.Input((T,), dtype="int32", name=k) for k in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(inputs, keras.layers.Dense(1)(backbone(inputs)["pooled_output"]))
    model.compile("adam", "mse")
    ids = np.random.default_rng(0).integers(1, 30522, (8, T))
    probe = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    batch = {k: v[:2] for k, v in probe.items()}
    log_dir = tempfile.mkdtemp(prefix="tba-bert-")
    callback = AttentionCallback(log_dir, probe, update_freq=1000)
    start = time.perf_counter()
    model.fit(batch, np.zeros((2, 1)), batch_size=2, verbose=0, callbacks=[callback])
    setup = time.perf_counter() - start
    start = time.perf_counter()
    model.train_on_batch(batch, np.zeros((2, 1)))
    step = time.perf_counter() - start
    start = time.perf_counter()
    callback._write(callback._serialize(callback._probe_fn()), 10**6)
    capture = time.perf_counter() - start
    layers = read_attention(log_dir)["."]
    size = sum(os.path.getsize(os.path.join(log_dir, f)) for f in os.listdir(log_dir))
    return dict(setup=setup, step=step, capture=capture, examples=len(next(iter(layers.values())).maps),
                layers=len(layers), bytes_per_capture=size / 3)


def report(row=None):
    row = row or measure()
    return (
        "12 layers x 12 heads x 512 tokens, probe of 8, defaults: %(examples)d example stored, "
        "%(layers)d layers; first fit of one step (two traces, two captures) %(setup).0f s; "
        "training step (batch 2) %(step).1f s; one capture %(capture).1f s, so %(share).2f%% of "
        "training at update_freq=100; %(mb).1f MB on disk per capture (random weights)."
        % dict(row, share=100 * row["capture"] / (100 * row["step"]), mb=row["bytes_per_capture"] / 1e6)
    )


if __name__ == "__main__":
    print(report())
