"""Runs every benchmark under bench/ and writes BENCHMARKS.md.

    make bench        (or: python -m bench.run_all)
"""

import datetime
import os
import platform

from bench import (backend_capture, backend_latency, bertviz_compare, first_request, fit_overhead, frontend_paint,
                   head_metrics_cost, relevance, scaling, scaling_table, storage_over_training, value_weighted,
                   writer_cost, zoo_capture)


def machine():
    cpus = os.cpu_count()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import tensorflow as tf, keras, tensorboard
    return "%s, %d cores, %.0f GiB; Python %s, TensorFlow %s, Keras %s, TensorBoard %s" % (
        model, cpus, memory, platform.python_version(), tf.__version__, keras.__version__, tensorboard.__version__)


def main():
    sections = [
        "# Benchmarks",
        "",
        "Written by `make bench` on %s. Machine: %s. Figures are medians of interleaved runs; "
        "nothing here is asserted in tests. Targets, findings and the changes made for them: "
        "docs/PERFORMANCE.md." % (datetime.date.today().isoformat(), machine()),
        "",
        "## Training overhead and storage (`python -m bench.fit_overhead --reps 5`)",
        "",
        "Issue 33 items 1 and 3: fits of at least 1,000 optimizer steps; targets <= 1.01x at the default "
        "cadence with the trace included, <= 1.3x capturing every step in steady state.",
        "",
        fit_overhead.report(fit_overhead.run(reps=5)),
        "",
        "## Writing a capture (`python -m bench.writer_cost`)",
        "",
        writer_cost.report(writer_cost.run()),
        "",
        "## One capture on each Keras backend (`python -m bench.backend_capture`)",
        "",
        backend_capture.report(),
        "",
        "## Backend routes and memory (`python -m bench.backend_latency`)",
        "",
        "RustBoard (the default reader), the issue's log. Cache misses are included: the first "
        "request of each layer's importance series reads the whole series (see max).",
        "",
        backend_latency.report(backend_latency.run(1000, 4, 8, 8, 256, 200)),
        "",
        "### Memory for 100 BERT-base-shaped captures (`python -m bench.backend_latency --bert-base`)",
        "",
        "12 layers x 12 heads x 512 tokens, one probe example (what the default max_cells keeps), 100 "
        "captures; TensorBoard's own memory measured on an empty log directory first (issue 33 item 4).",
        "",
        backend_latency.report(backend_latency.run(*backend_latency.BERT_BASE, 100)),
        "",
        "### Growth with captured steps (`python -m bench.backend_latency --steps-scaling "
        "100,1000,5000 --tokens 64`)",
        "",
        "4 layers x 8 examples x 8 heads x 64 tokens. Memory / disk includes TensorBoard's own "
        "~550-600 MB, which dominates small logs.",
        "",
        backend_latency.scaling_report([backend_latency.run(s, 4, 8, 8, 64, 200) for s in (100, 1000, 5000)]),
        "",
        "### First request of each route on long logs (`python -m bench.first_request`)",
        "",
        "8 examples x 8 heads x 128 tokens; each route's first request on an empty plugin cache, both "
        "readers. Targets (issue 20 item 2): importance and head_stats <= 200 ms at 1000 steps, "
        "<= 500 ms at 10,000; /index of 4 layers x 1000 steps fast; memory <= 1.3x disk.",
        "",
        first_request.report(first_request.run([(1000, 4), (10000, 1)])),
        "",
        "## Frontend paint (`python -m bench.frontend_paint --demo-logdir LOGS`)",
        "",
        "Headless Chromium (software rendering, --disable-gpu) on the same 2 cores as TensorBoard.",
        "",
        frontend_paint.report(*frontend_paint.run(os.environ.get("BENCH_DEMO_LOGDIR", "logs"))),
        "",
    ]
    sections += [
        "## Scaling of one capture (`python -m bench.scaling`)",
        "",
        "One probe example, one layer, random peaked attention.",
        "",
        scaling.report(),
        "",
    ]
    sections += [
        "## Beside bertviz and matplotlib images (`python -m bench.bertviz_compare`)",
        "",
        "The same attention for the three (issue 20 item 5): 12 layers x 12 heads x T tokens of one example, "
        "rows softmax of N(0, 3^2) logits, made-up word tokens. bertviz 1.4.1's model_view(html_action='return') "
        "in its own venv (.venv-bertviz, torch 2.13.0 CPU), its HTML opened in headless Chromium as it is and "
        "with the three scripts it loads from cdnjs (require.js 2.3.6, d3 5.7.0, jQuery 2.0.0) answered from "
        "npm copies (jQuery 2.1.0: npm has no 2.0.0); bench/image_workaround.py's callback; tb-attention's "
        "summary.attention (uint8), shown by the real tensorboard. Navigation to painted: until every "
        "layer x head is drawn (bertviz's model view, the tab's model view), wall clock, each view given 180 s "
        "and bertviz's browser 8 GiB.",
        "",
        bertviz_compare.report(bertviz_compare.run()),
        "",
    ]
    sections += [
        "## Capture cost per architecture (`python -m bench.zoo_capture`)",
        "",
        "keras_hub backbones built from config: 2 layers, 4 heads, width 64, 64 tokens (ViT 65), "
        "probe of 8, batches of 16.",
        "",
        zoo_capture.report(),
        "",
    ]
    sections += [
        "## Head metrics' share of a capture (`python -m bench.head_metrics_cost`)",
        "",
        "One layer serialized, 8 examples of random softmax attention.",
        "",
        head_metrics_cost.report(),
        "",
    ]
    sections += [
        "## Value-weighted attention's cost (`python -m bench.value_weighted`)",
        "",
        "Issue 35 item 1: a capture with and without the value norms of its layers (the default stores them).",
        "",
        value_weighted.report(value_weighted.run()),
        "",
    ]
    sections += [
        "## Relevance's cost (`python -m bench.relevance`)",
        "",
        "Issue 35 item 2: a capture with and without relevance=\"predicted\" (one backward pass of the probe).",
        "",
        relevance.report(relevance.run()),
        "",
    ]
    sections += [
        "## Scaling table (`python -m bench.scaling_table`)",
        "",
        "Issue 20 item 3: one axis at a time from 4 layers x 8 heads x 128 tokens x 1 probe example. "
        "Transformer encoder blocks (keras.layers.MultiHeadAttention and a feed-forward of 4 x width; "
        "width 512, the BERT-base-shaped row 768), random weights, AttentionCallback with max_cells=None. "
        "Capture: the probe function on the training thread; write: what the background writer runs "
        "(`_write_capture`); serving: the real tensorboard (RustBoard) on a log of 100 captures (the "
        "steps rows 1000 and 10,000) repeating the captures written. On a shared machine read CPU "
        "times, ratios and exponents rather than wall times.",
        "",
        scaling_table.report(scaling_table.run()),
        "",
    ]
    demo_logdir = os.environ.get("BENCH_DEMO_LOGDIR", "logs")
    if os.path.isdir(demo_logdir):
        sections += [
            "## Storage early and late in training (`python -m bench.storage_over_training %s`)" % demo_logdir,
            "",
            "The demos' default runs; uint8 maps, zlib-compressed per blob when smaller.",
            "",
            storage_over_training.report(demo_logdir),
            "",
        ]
    text = "\n".join(sections)
    with open("BENCHMARKS.md", "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
