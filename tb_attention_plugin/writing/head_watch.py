"""Early warnings while training, from each capture's head metrics
(docs/HEAD_METRICS.md): a layer whose attention entropy collapses, a head
that stops changing while the loss moves. Each is said once."""

import logging
import warnings

import numpy as np

from tb_attention_plugin.math import head_metrics
from tb_attention_plugin.format import metadata
from tb_attention_plugin.writing import summary
from tb_attention_plugin.writing.messages import quoted

logger = logging.getLogger(__name__)

# A head's `change` (mean over cells of |P_now - P_before|) below this is
# float noise, not a change: the probabilities are float32 (the metrics are
# computed from them before any uint8 encoding, so the encoding's 1/510 is
# no floor here: fine-tuning moves maps by 1e-5 per capture in a healthy
# run), and recomputing one map with other rounding (another reduction
# order, a retrace) moves each weight w <= 1 by up to about eps * w, so a
# mean change under float32's epsilon (1.19e-7, the spacing of float32
# numbers at 1) cannot be told from rounding. Heads whose changes are all
# under it say nothing about one another.
NOISE_FLOOR = float(np.finfo(np.float32).eps)


class HeadWatch:
    """Thresholds as AttentionCallback takes them; None switches one off."""

    def __init__(self, collapse_entropy=0.05, stalled_ratio=0.01):
        self.collapse_entropy = collapse_entropy
        self.stalled_ratio = stalled_ratio
        self._warned = set()  # (kind, layer[, head]) warned once each
        self._loss_at_capture = None
        self._peak_change = {}  # (layer, head) -> largest change seen, captures seen

    def observe(self, serialized, step, loss):
        """Early warnings, once each (docs/HEAD_METRICS.md): a layer whose
        attention entropy collapsed (Zhai et al. 2023 tie it to training
        instability), a head whose map stopped changing while the loss moves."""
        loss_moved = (
            loss is not None and self._loss_at_capture is not None
            and abs(loss - self._loss_at_capture) > 0.01 * max(abs(self._loss_at_capture), 1e-12)
        )
        self._loss_at_capture = loss
        names = head_metrics.METRIC_NAMES
        layers = []  # (layer name, normalized entropy of the layer, change per head)
        # a layer's relevance (NAME/_relevance) has head metrics of its own, no attention to watch
        relevance = {info.layer for info, _ in summary.items_of_role(serialized, metadata.PluginData.MAPS)
                     if info.relevance_of}
        for info, tensor in summary.items_of_role(serialized, metadata.PluginData.HEAD_METRICS):
            if info.layer in relevance:
                continue
            values = np.asarray(tensor)  # (examples, heads, metrics)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: nothing to say
                layers.append((
                    info.layer,
                    np.nanmean(values[:, :, names.index("normalized_entropy")]),
                    np.nanmean(values[:, :, names.index("change")], axis=0),
                ))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # The typical and the largest head's change at this capture, over every layer.
            every = np.concatenate([c for _, _, c in layers]) if layers else np.array([np.nan])
            typical, moving = np.nanmedian(every), np.nanmax(every)
        for layer, entropy, change in layers:
            if (self.collapse_entropy is not None and entropy < self.collapse_entropy
                    and ("collapse", layer) not in self._warned):
                self._warned.add(("collapse", layer))
                logger.warning(
                    "AttentionCallback: the attention entropy of layer %s collapsed at step %d: "
                    "%.3f of its maximum on average (below collapse_entropy=%g), so its heads "
                    "each look at almost one token. Zhai et al. (2023) link this to unstable "
                    "training: watch the loss, and consider a lower learning rate or "
                    "normalising queries and keys.", quoted(layer), step, entropy,
                    self.collapse_entropy)
            if self.stalled_ratio is None:
                continue
            for head, now in enumerate(change):
                if np.isnan(now):
                    continue
                peak, seen = self._peak_change.get((layer, head), (0.0, 0))
                self._peak_change[layer, head] = (max(peak, now), seen + 1)
                # A change under NOISE_FLOOR may be anything up to it:
                # `bound` is the most this head's change can be. Frozen: no
                # head changed at all, bit for bit (a layer that does not
                # train), or this one is at float noise while even the
                # floor is under stalled_ratio of the typical head's change.
                # Or stopped while the rest of the model still changes:
                # after 3 captures, under stalled_ratio of its own largest
                # change and of the typical head's change now. Heads that
                # settle together as training converges (every head's
                # change falls) are not stalled, nor heads compared at
                # float noise (every head at ~1e-9, or 6e-8 against a
                # typical 2e-7: the comparison says nothing).
                bound = max(now, NOISE_FLOOR)
                frozen = moving == 0 or (now < NOISE_FLOOR and bound < self.stalled_ratio * typical)
                stalled = frozen or (
                    seen >= 3 and bound < self.stalled_ratio * peak and bound < self.stalled_ratio * typical)
                if not (stalled and loss_moved) or ("stalled", layer, head) in self._warned:
                    continue
                self._warned.add(("stalled", layer, head))
                logger.warning(
                    "AttentionCallback: head %d of layer %s stopped changing at step %d (mean "
                    "change %.2g since the last capture, %.2g at most before, %.2g for the "
                    "typical head now; stalled_ratio=%g) while the loss still moves; check that "
                    "the layer trains (trainable, gradients reach it).", head, quoted(layer), step,
                    now, peak, typical, self.stalled_ratio)
