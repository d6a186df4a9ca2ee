"""AttentionCallback: records attention maps to TensorBoard during model.fit."""

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from tb_attention_plugin import capture
from tb_attention_plugin import encoding as encoding_lib
from tb_attention_plugin import numerics
from tb_attention_plugin import summary
from tb_attention_plugin import tokens as tokens_lib

logger = logging.getLogger(__name__)

# log_dirs that a live callback writes to: a second writer would interleave
# two captures of the same tags at the same steps.
_ACTIVE_LOG_DIRS = {}


class AttentionCallback(keras.callbacks.Callback):
    """Writes the attention maps of a fixed probe batch to TensorBoard.

    At the start of training (the untrained model), every `update_freq`
    optimizer steps and at the end of training, the model runs on `probe`
    (with `training=False`) and the attention weights of every attention layer
    are written as `attention` summaries: the maps of each example cropped to
    its real tokens, token importance (received attention, summed over
    queries), head statistics and attention rollout. View them in the
    Attention tab of `tensorboard --logdir`.

    Args:
      log_dir: directory (any `tf.io.gfile` path) to write event files to;
        it becomes one TensorBoard run. Give it the same directory as
        `keras.callbacks.TensorBoard` to see both side by side.
      probe: a fixed batch the model takes: one array, a tuple/list (e.g.
        encoder and decoder inputs) or a dict, e.g. `x_val[:8]`. The same
        examples are captured every time so they can be compared over steps.
      tokens: how to label positions (see `tb_attention_plugin.tokens`): None
        (positions), a callable `ids -> list of str`, a vocabulary (list of
        str or dict id -> str), or one list of strings per example. Default
        None.
      layers: None (default) to capture every MultiHeadAttention,
        GroupQueryAttention, Attention and AdditiveAttention layer at any
        depth, or a list of layer names/paths, which may also name layers
        whose output is attention weights (a `Dense(softmax)` block) or custom
        layers returning `(output, weights)`.
      update_freq: capture every this many optimizer steps (default 100), or
        'epoch' to capture at the end of each epoch.
      pad_id: id of padding in the probe's integer inputs (e.g. 0), used to
        crop maps when the model passes no Keras mask to the layer. Default
        None.
      encoding: 'uint8' (default; 1 byte per weight, error at most 1/510) or
        'float32' (exact, 4 bytes per weight).
      max_cells: the most attention weights one capture may store, all layers
        and examples together (default 50 million, 50 MB as uint8 before
        compression). Every captured step stays in TensorBoard's memory, so a
        larger capture is refused before training with the figures and the
        ways to shrink it.

    Example:

    ```python
    model.fit(x_train, y_train, epochs=3, callbacks=[
        keras.callbacks.TensorBoard("logs/run1"),
        AttentionCallback("logs/run1", probe=x_val[:8], tokens=vocabulary),
    ])
    ```
    """

    def __init__(
        self,
        log_dir,
        probe,
        tokens=None,
        layers=None,
        update_freq=100,
        pad_id=None,
        encoding="uint8",
        max_cells=50_000_000,
    ):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if update_freq != "epoch" and not (
            isinstance(update_freq, (int, np.integer)) and update_freq > 0
        ):
            raise ValueError(
                "update_freq must be a positive number of steps or 'epoch', got %r"
                % (update_freq,)
            )
        self.update_freq = update_freq
        self.pad_id = pad_id
        encoding_lib.parse_encoding(encoding)  # fails early on a bad name
        self._encoding = encoding
        self.max_cells = max_cells
        self._layer_names = layers
        self._probe = tf.nest.map_structure(np.asarray, probe)
        self._batch = tokens_lib.probe_batch_size(self._probe)
        # Validated now so that wrong token counts fail before training.
        self._sources = tokens_lib.token_sources(self._probe, tokens, pad_id)
        self._layers = None
        self._probe_fn = None
        self._writer = None
        self._layer_state = {}  # path -> fixed per-tag facts (kind, orientation, ...)
        self._last_step = None
        self._next_due = 0
        self.captured_steps = []  # steps written, for tests and users

    # -- setup ---------------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        self._layers = capture.select_layers(model, self._layer_names)
        self._probe_fn = None  # a new model needs a new trace
        if self._is_chief():
            self._claim_log_dir()
            self._open_writer()

    def _is_chief(self):
        strategy = getattr(self.model, "distribute_strategy", None) or tf.distribute.get_strategy()
        try:
            return bool(strategy.extended.should_save_summary)
        except (AttributeError, NotImplementedError):  # strategies that do not say
            return True

    def _log_dir_key(self):
        return self.log_dir if "://" in self.log_dir else os.path.abspath(self.log_dir)

    def _claim_log_dir(self):
        other = _ACTIVE_LOG_DIRS.get(self._log_dir_key())
        if other is not None and other is not self:
            raise ValueError(
                "another AttentionCallback already writes to %r in this training: "
                "give each callback its own log_dir (e.g. logs/run1 and logs/run2)"
                % self.log_dir
            )
        _ACTIVE_LOG_DIRS[self._log_dir_key()] = self

    def _release_log_dir(self):
        if _ACTIVE_LOG_DIRS.get(self._log_dir_key()) is self:
            del _ACTIVE_LOG_DIRS[self._log_dir_key()]

    def _open_writer(self):
        if self._writer is not None:
            return
        try:
            tf.io.gfile.makedirs(self.log_dir)
            self._writer = tf.summary.create_file_writer(self.log_dir)
        except (tf.errors.OpError, OSError) as e:
            raise ValueError(
                "cannot write to log_dir %r (%s): pass a directory you can write to"
                % (self.log_dir, e)
            ) from None

    def _build_probe_fn(self):
        try:
            self._probe_fn = capture.ProbeFunction(self.model, self._layers, self._probe)
        except Exception as e:
            # tf.function wraps the cause in a traceback; its last line says it.
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise ValueError(
                "AttentionCallback could not run the model on the probe: %s. "
                "Pass probe= in the structure model(...) takes, e.g. "
                "probe=x_val[:8], or (enc[:8], dec[:8]) for two inputs."
                % (lines[-1] if lines else type(e).__name__)
            ) from e

    # -- schedule ------------------------------------------------------------

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        if self._writer is None:
            return
        if self._probe_fn is None:
            self._build_probe_fn()
            # The first capture validates shapes against tokens; a mismatch
            # here is a setup error, raised before any training step.
            self._capture(self._step(), raise_errors=True)
        else:
            self._capture(self._step())

    def on_train_batch_begin(self, batch, logs=None):
        # At the start of a batch, `iterations` counts the steps already done,
        # so this sees exactly the state at the end of the previous batch. It
        # is used instead of on_train_batch_end because overriding that makes
        # Keras convert every batch's logs synchronously (no async dispatch),
        # which cost 2-8% of the IMDB demo's fit time even for a no-op.
        if self._writer is None or self.update_freq == "epoch":
            return
        step = self._step()
        if step >= self._next_due:
            self._capture(step)

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is not None and self.update_freq == "epoch":
            self._capture(self._step())

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._capture(self._step())
            self._writer.flush()
        self._release_log_dir()

    # -- capture -------------------------------------------------------------

    def _capture(self, step, raise_errors=False):
        if step == self._last_step:
            return
        if self.update_freq != "epoch":
            self._next_due = (step // self.update_freq + 1) * self.update_freq
        try:
            results = self._probe_fn()
            records = [self._prepare(path, results[path]) for path in self._probe_fn.paths]
            if raise_errors:
                self._check_budget(records)
            self._add_rollout(records)
            with self._writer.as_default(), tf.summary.record_if(True):
                for record in records:
                    summary.attention(step=step, **record)
            self._writer.flush()
        except Exception as e:
            if raise_errors:
                raise
            logger.warning(
                "AttentionCallback skipped the capture at step %d: %s: %s",
                step, type(e).__name__, e,
            )
            return
        self._last_step = step
        self.captured_steps.append(step)

    def _check_budget(self, records):
        """Refuses captures larger than max_cells (checked on the first one;
        the probe and so the sizes are fixed)."""
        sizes = {}
        for record in records:
            maps, _ = summary.crop_examples(record["scores"], record["query_mask"], record["key_mask"])
            sizes[record["name"]] = sum(m.size for m in maps)
        total = sum(sizes.values())
        if total > self.max_cells:
            largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
            raise ValueError(
                "one capture would store %d attention weights (largest layers: %s), more than "
                "max_cells=%d; every captured step is kept in TensorBoard's memory. Pass fewer "
                "probe examples, layers=[...] to capture fewer layers, shorter probe sequences, "
                "or a larger max_cells= if you have the memory."
                % (total, ", ".join("%s %d" % kv for kv in largest), self.max_cells)
            )

    def _prepare(self, path, result):
        """One layer's capture -> keyword arguments of summary.attention."""
        state = self._layer_state.get(path)
        scores = result["scores"]
        if state is None:
            state = self._first_look(path, result)
            self._layer_state[path] = state
        if state["transpose"]:
            scores = np.swapaxes(scores, -1, -2)
        scores = summary.as_head_first(scores)  # NaN/Inf are refused by summary.attention
        if scores.shape[2:] != state["shape"]:
            raise ValueError(
                "layer %r returned attention of shape %s, first captured as %s"
                % (path, scores.shape, state["shape"])
            )
        return dict(
            name=path,
            scores=scores,
            query_tokens=state["query_tokens"],
            key_tokens=state["key_tokens"],
            query_mask=state["query_mask"],
            key_mask=state["key_mask"],
            kind=state["kind"],
            encoding=state["encoding"],
            layer_class=state["layer_class"],
            layer_index=state["index"],
        )

    def _first_look(self, path, result):
        """Facts fixed for the whole run: orientation, tokens, masks, kind."""
        scores = np.asarray(result["scores"])
        transpose = False
        if scores.ndim == 3 and not numerics.rows_sum_to_one(scores):
            # A softmax over the time axis stored as (batch, time, features),
            # like seed 002's attention_vec: show features x time.
            transpose = numerics.rows_sum_to_one(np.swapaxes(scores, 1, 2))
        if transpose:
            scores = np.swapaxes(scores, 1, 2)
        scores = summary.as_head_first(scores)
        batch, _, q, k = scores.shape
        if batch != self._batch:
            raise ValueError(
                "layer %r returned attention for %d examples, the probe has %d"
                % (path, batch, self._batch)
            )
        same = result["same_sequence"]
        if same is None:
            same = q == k
        query_source = tokens_lib.match(self._sources, q, prefer_last=not same)
        key_source = query_source if same else tokens_lib.match(self._sources, k)
        query_mask = _combine(result["query_valid"], query_source)
        key_mask = _combine(result["key_valid"], key_source)
        maps, _ = summary.crop_examples(scores, query_mask, key_mask)
        encoding = self._encoding
        if encoding == "uint8" and (scores.min() < 0 or scores.max() > 1):
            logger.warning(
                "layer %r has weights outside [0, 1]; storing it as float32", path
            )
            encoding = "float32"
        index = self._probe_fn.paths.index(path)
        return dict(
            transpose=transpose,
            shape=(q, k),
            query_tokens=query_source.tokens if query_source else None,
            key_tokens=key_source.tokens if key_source else None,
            query_mask=query_mask,
            key_mask=key_mask,
            kind=summary.infer_kind(maps, same),
            encoding=encoding,
            layer_class=type(self._layers[index]).__name__,
            index=index,
        )

    def _add_rollout(self, records):
        """Rollout through each stack of self-attention layers with the same
        tokens, in model order; written with each layer of the stack."""
        stacks = {}
        for record in records:
            if record["kind"] == "cross":
                continue
            maps, spans = summary.crop_examples(
                record["scores"], record["query_mask"], record["key_mask"]
            )
            if any(qs != ks for qs, ks in spans):
                continue
            key = (tuple(spans), _freeze(record["key_tokens"]))
            stacks.setdefault(key, []).append((record, maps))
        for members in stacks.values():
            rollouts = [None] * self._batch
            for record, maps in members:
                rollouts = [numerics.rollout_step(r, m) for r, m in zip(rollouts, maps)]
                record["rollout"] = [numerics.rollout_importance(r) for r in rollouts]
                record["rollout_stack"] = members[0][0]["name"]


def _combine(layer_valid, source):
    """Real-token mask from the layer's own mask, else the pad id, else None."""
    if layer_valid is not None:
        return layer_valid
    if source is not None and source.mask is not None:
        return source.mask
    return None


def _freeze(tokens):
    return None if tokens is None else tuple(tuple(t) for t in tokens)
