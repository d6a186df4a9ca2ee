"""A Gemma-2B-shaped model at 2048 tokens with defaults (issue 34).

    python -m bench.long_probe [--tokens 2048] [--examples 1] [--max-map-bytes N] [--profile]

keras_hub's GemmaBackbone built from config with Gemma-2B's attention shape
(18 layers, 8 query heads, 1 key/value head) and a tiny width (64, head_dim
8; random weights, nothing downloaded), a probe of random tokens, no
padding, `AttentionCallback(log_dir, probe)` with defaults. Prints what the
callback chose (storage, numbers per capture, the maps' bytes that
max_map_bytes counts), then:
  setup      the probe's trace and first run (`plan`), and the peak RSS then
  probe run  one capture's forward pass on the training thread
  serialize  what the background writer computes per capture (crop,
             reduce, importance, statistics, metrics, rollout, encode),
             wall and CPU, and the peak RSS after it
  bytes      the event file's size for that one capture
  second     the next capture, with the first's maps kept (as the callback
             keeps them for the head metric `change`), and the peak RSS then
With --profile, cProfile's 25 costliest calls of serialize.
"""

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

from tb_attention_plugin import AttentionCallback  # noqa: E402
from tb_attention_plugin.format import metadata  # noqa: E402


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def main():
    import keras_hub

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--examples", type=int, default=1)
    parser.add_argument("--max-map-bytes", type=float, default=4e9, help="the callback's max_map_bytes")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    model = keras_hub.models.GemmaBackbone(vocabulary_size=1000, num_layers=18, num_query_heads=8,
                                           num_key_value_heads=1, hidden_dim=64, intermediate_dim=128, head_dim=8)
    ids = np.random.default_rng(0).integers(1, 1000, (args.examples, args.tokens))
    log_dir = tempfile.mkdtemp(prefix="tba-long-")
    callback = AttentionCallback(log_dir, {"token_ids": ids, "padding_mask": np.ones_like(ids)},
                                 max_map_bytes=args.max_map_bytes)
    print("peak RSS before (the model built, TensorFlow loaded) %.2f GB" % peak_gb())
    start = time.perf_counter()
    plan = callback.plan(model)
    print(str(plan).splitlines()[0])
    print("storage: %s" % ", ".join("%d %s" % (n, s) for s, n in sorted(
        {s: sum(p.storage == s for p in plan.layers) for s in ("full", "reduced")}.items()) if n))
    held = sum(layer.held_bytes(plan.examples) for layer in plan.layers)
    print("maps held per capture (what max_map_bytes counts: this capture's float32 maps and the previous "
          "one's) %.2f GB" % (held / 1e9))
    print("setup (trace + first probe run) %.1f s; peak RSS %.2f GB" % (time.perf_counter() - start, peak_gb()))
    start = time.perf_counter()
    results = callback._probe_fn()
    print("probe run %.1f s" % (time.perf_counter() - start))
    start, cpu = time.perf_counter(), time.process_time()
    serialized = callback._serialize(results)
    print("serialize %.1f s wall, %.1f s CPU; peak RSS %.2f GB"
          % (time.perf_counter() - start, time.process_time() - cpu, peak_gb()))
    maps_item = next(item for item in serialized if item[2].plugin_data.content and
                     metadata.parse_plugin_metadata(item[2].plugin_data.content).role == metadata.PluginData.MAPS)
    callback._start_run(metadata.parse_plugin_metadata(maps_item[2].plugin_data.content))
    callback._write(serialized, 0)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(log_dir) for f in files)
    print("%.1f MB per capture on disk" % (size / 1e6))
    # The next capture, as the writer makes it: the head metric `change`
    # compares with this capture's maps, which the callback keeps until then.
    callback._previous_maps = callback._serialized_maps
    del serialized, maps_item, results  # as the writer drops a written capture
    start = time.perf_counter()
    results = callback._probe_fn()
    callback._serialize(results)
    print("second capture (probe + serialize, the first's maps kept for `change`) %.1f s; peak RSS %.2f GB"
          % (time.perf_counter() - start, peak_gb()))
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(callback._serialize, results)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
