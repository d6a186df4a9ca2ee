"""tb-attention: attention maps of Keras models, recorded during training and
shown in TensorBoard's Attention tab.

`AttentionCallback` and `read_attention` are imported lazily: TensorBoard
imports this package to load the plugin, and that must not pull in Keras.
"""

__version__ = "0.1.0"

__all__ = ["AttentionCallback", "read_attention", "__version__"]


def __getattr__(name):
    if name == "AttentionCallback":
        from tb_attention_plugin.callback import AttentionCallback

        return AttentionCallback
    if name == "read_attention":
        from tb_attention_plugin.reader import read_attention

        return read_attention
    raise AttributeError("module 'tb_attention_plugin' has no attribute %r" % name)
