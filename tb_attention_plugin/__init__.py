"""tb-attention: attention maps of Keras models, recorded during training and
shown in TensorBoard's Attention tab.

`AttentionCallback`, `read_attention` and `read_head_metrics` are imported lazily: TensorBoard
imports this package to load the plugin, and that must not pull in Keras.
"""

__version__ = "0.1.0"

__all__ = ["AttentionCallback", "read_attention", "read_head_metrics", "read_probe_images", "__version__"]


def __getattr__(name):
    if name == "AttentionCallback":
        from tb_attention_plugin.callback import AttentionCallback

        return AttentionCallback
    if name in ("read_attention", "read_head_metrics", "read_probe_images"):
        from tb_attention_plugin import reader

        return getattr(reader, name)
    raise AttributeError("module 'tb_attention_plugin' has no attribute %r" % name)
