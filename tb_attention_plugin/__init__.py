"""tb-attention: attention maps of Keras models, recorded during training and
shown in TensorBoard's Attention tab.

The package in four parts, data flowing one way (README, "Layout"):
  writing/  the callback, the capture hooks, masks, tokens and the summary op
  format/   what is stored: metadata, the blob encoding, the proto, the reader
  math/     numbers derived from maps: importance, statistics, rollout, head metrics
  serving/  the TensorBoard plugin: entry point, routes, parameters, store

The public names below are imported lazily: TensorBoard imports this package
to load the plugin, and that must not pull in Keras.
"""

__version__ = "0.1.0"

__all__ = ["AttentionCallback", "read_attention", "read_head_metrics", "read_probe_images", "summary", "__version__"]


def __getattr__(name):
    if name == "AttentionCallback":
        from tb_attention_plugin.writing.callback import AttentionCallback

        return AttentionCallback
    if name in ("read_attention", "read_head_metrics", "read_probe_images"):
        from tb_attention_plugin.format import reader

        return getattr(reader, name)
    if name == "summary":  # the summary op, for custom training loops
        from tb_attention_plugin.writing import summary

        return summary
    raise AttributeError("module 'tb_attention_plugin' has no attribute %r" % name)
