"""What the reduced form of long maps keeps (docs/FORMAT.md, "Reduced maps").

    python -m bench.reduced_forms [--tokens 2048] [--imdb-logdir DIR]

For each source of real maps, every head of every layer of one example is
reduced (format/reduction.py, top 8 per row, at most 128 x 128 blocks) and
rebuilt, and the bench prints:
  kept mass   the share of each row's weight its kept cells hold (mean over
              rows, and the 10th percentile: the rows the overview serves most)
  bound       the stated error of the rebuilt cells (median and max)
  error       the real |rebuilt - full| (mean and max): always <= bound
  bytes/head  the stored blob (uint8, zlib) of one head's reduced maps,
              beside its full uint8 blob (zlib), and their ratio

Sources:
  gpt2    keras_hub GPT-2 built from config (4 layers x 8 heads, width 64),
          random weights, a random-token example of --tokens tokens: the
          untrained model a fine-tune starts from is nearly uniform
  llama   keras_hub Llama from config (4 layers, 8 query / 2 kv heads), same
  imdb    the IMDB demo's maps at its last captured step (trained: run
          `python -m demo_models.imdb --logdir DIR` first and pass
          --imdb-logdir DIR; skipped without it)
  shaped  a synthetic 8-head map of --tokens tokens with what trained heads
          grow (a sink column, a local window, a previous-token head, an
          induction-like offset, two diffuse heads): what a long-context
          demo is expected to show
"""

import argparse
import os
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

from tb_attention_plugin.format import encoding
from tb_attention_plugin.format import reduction


def keras_hub_maps(family, tokens):
    """[(layer, (heads, q, k) float32)] of one example through a keras_hub
    backbone built from config (random weights), captured by the callback's
    own probe function."""
    import keras_hub

    from tb_attention_plugin import AttentionCallback

    if family == "gpt2":
        model = keras_hub.models.GPT2Backbone(vocabulary_size=1000, num_layers=4, num_heads=8, hidden_dim=64,
                                              intermediate_dim=128, max_sequence_length=tokens)
    else:
        model = keras_hub.models.LlamaBackbone(vocabulary_size=1000, num_layers=4, num_query_heads=8,
                                               num_key_value_heads=2, hidden_dim=64, intermediate_dim=128)
    ids = np.random.default_rng(0).integers(1, 1000, (1, tokens))
    callback = AttentionCallback("/tmp/unused-reduced-forms", {"token_ids": ids, "padding_mask": np.ones_like(ids)},
                                 max_cells=None)
    callback.plan(model)
    return [(c.name, np.asarray(c.scores, np.float32)[0]) for c in callback._probe_fn()]


def imdb_maps(logdir):
    from tb_attention_plugin import read_attention

    runs = read_attention(logdir)
    return [(name, layer.maps[0][-1]) for run in runs.values() for name, layer in run.items()]


def shaped_maps(tokens, seed=0):
    """Eight heads of what training grows: sink, window, previous token,
    an offset diagonal, two mixes, two diffuse; each row a softmax."""
    rng = np.random.default_rng(seed)
    i, j = np.arange(tokens)[:, None], np.arange(tokens)[None, :]
    causal = j <= i
    logits = rng.normal(size=(8, tokens, tokens)).astype(np.float32)
    logits[0, :, 0] += 8  # sink column
    logits[1] += np.where((i - j >= 0) & (i - j < 16), 6, 0)  # local window of 16
    logits[2] += np.where(i - j == 1, 9, 0)  # previous token
    logits[3] += np.where(i - j == 37, 7, 0)  # an offset diagonal
    logits[4] += np.where(j == 0, 5, 0) + np.where((i - j >= 0) & (i - j < 4), 4, 0)
    logits[5] += np.where(j % 64 == 0, 4, 0)  # periodic separators
    logits[6:] *= 0.5  # diffuse
    logits = np.where(causal, logits, -np.inf)
    maps = np.exp(logits - logits.max(-1, keepdims=True))
    return [("shaped", (maps / maps.sum(-1, keepdims=True)).astype(np.float32))]


def measure(name, layers):
    kept, floors, bounds, errors, reduced_bytes, full_bytes, heads = [], [], [], [], 0, 0, 0
    started = time.perf_counter()
    for _, maps in layers:
        form = reduction.reduce(maps)
        blob = encoding.encode_reduced(form, encoding.UINT8, reduction.TOP_K)
        stored = encoding.decode_reduced(blob, encoding.UINT8, maps.shape, reduction.TOP_K, form.block)
        estimate, bound = reduction.rebuild(stored, encoding.UINT8_MAX_ERROR)
        error = np.abs(estimate - maps)
        assert np.all(error <= bound + 1e-6), "bound violated"
        kept.append(reduction.kept_mass(form).ravel())
        bounds.append(bound.ravel()[::97])
        errors.append((error.mean(), error.max()))
        reduced_bytes += len(blob)
        full_bytes += len(zlib.compress(encoding.encode_raw(maps, encoding.UINT8), 1))
        heads += maps.shape[0]
    kept = np.concatenate(kept)
    bounds = np.concatenate(bounds)
    shape = layers[0][1].shape
    print("%-7s %2d layers x %2d heads, %5d x %-5d  kept mass %.3f (p10 %.3f)  bound median %.2g max %.2g  "
          "error mean %.2g max %.2g  bytes/head %7d reduced vs %8d full (%.3f)  [%.1f s]" % (
              name, len(layers), shape[0], shape[1], shape[2], kept.mean(), np.percentile(kept, 10),
              np.median(bounds), bounds.max(), np.mean([e[0] for e in errors]), max(e[1] for e in errors),
              reduced_bytes / heads, full_bytes / heads, reduced_bytes / full_bytes,
              time.perf_counter() - started))
    return reduced_bytes / heads


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--imdb-logdir")
    args = parser.parse_args()
    per_head = {}
    per_head["shaped"] = measure("shaped", shaped_maps(args.tokens))
    for family in ("gpt2", "llama"):
        per_head[family] = measure(family, keras_hub_maps(family, args.tokens))
    if args.imdb_logdir:
        measure("imdb", imdb_maps(args.imdb_logdir))
    for name, size in per_head.items():
        print("18 layers x 8 heads x 4 examples at %d tokens, as %s: %.1f MB per capture (target <= 32 MB)"
              % (args.tokens, name, size * 18 * 8 * 4 / 1e6))


if __name__ == "__main__":
    main()
