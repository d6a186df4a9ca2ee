"""The TensorBoard entry point: a loader that is always safe to import.

TensorBoard imports every `tensorboard_plugins` entry point at start-up and an
import error there stops it, so this module imports only TensorBoard's base
classes. The plugin itself (and numpy, protobuf code) is imported in `load`;
if that fails the Attention tab is missing, with the reason in the log, and
the rest of TensorBoard works.
"""

import logging

from tensorboard.plugins import base_plugin

logger = logging.getLogger(__name__)

PLUGIN_NAME = "attention"  # same as metadata.PLUGIN_NAME, not imported on purpose


class AttentionPluginLoader(base_plugin.TBLoader):
    """Loads the Attention plugin and keeps every captured step by default."""

    def fix_flags(self, flags):
        # TensorBoard keeps 10 (Python reader) or 100 (RustBoard) points per
        # tag of a third-party plugin. 0 means all; a user's
        # --samples_per_plugin attention=N still wins.
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict):
            samples.setdefault(PLUGIN_NAME, 0)

    def load(self, context):
        try:
            from tb_attention_plugin.serving.attention_plugin import AttentionPlugin
        except Exception:
            logger.exception("tb-attention: the Attention plugin could not be imported")
            return None
        return AttentionPlugin(context)
