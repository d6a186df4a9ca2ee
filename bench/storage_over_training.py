"""Stored bytes per attention cell early and late in training, per demo layer.

    python -m bench.storage_over_training LOGDIR     (e.g. after make demo-train DEMO=all)

Reads the MAPS blobs as stored (uint8, zlib-compressed when smaller) and
divides by the number of weights they hold: compression depends on how
peaked attention is, so it changes while a model trains.
"""

import sys

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

from tb_attention_plugin.format import metadata
from tb_attention_plugin.format.reader import event_files


def blob_sizes(paths):
    """{layer: {step: (stored bytes, cells)}} for MAPS tags."""
    out, infos = {}, {}
    for path in paths:
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.tag not in infos:
                    if value.metadata.plugin_data.plugin_name != metadata.PLUGIN_NAME:
                        continue
                    infos[value.tag] = metadata.parse_plugin_metadata(value.metadata.plugin_data.content)
                info = infos[value.tag]
                if info.role != metadata.PluginData.MAPS:
                    continue
                blobs = tensor_util.make_ndarray(value.tensor)
                cells = sum(info.num_heads * e.query_length * e.key_length for e in info.examples)
                out.setdefault(info.layer, {})[event.step] = (sum(len(b) for b in blobs), cells)
    return out


def report(logdir):
    lines = ["| run | layer | cells per capture | bytes/cell at the first step | at the last step |",
             "|---|---|---|---|---|"]
    for run, paths in sorted(event_files(logdir).items()):
        for layer, steps in sorted(blob_sizes(paths).items()):
            first, last = steps[min(steps)], steps[max(steps)]
            lines.append("| %s | %s | %d | %.3f (step %d) | %.3f (step %d) |" % (
                run, layer, first[1], first[0] / first[1], min(steps), last[0] / last[1], max(steps)))
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1]))
