"""AttentionCallback: records attention maps to TensorBoard during model.fit."""

import dataclasses
import functools
import logging
import os
import re
import threading
import weakref

import keras
import numpy as np
from tensorboard.compat import tf as tf_or_stub  # TensorFlow's gfile where installed

from tb_attention_plugin.writing import background
from tb_attention_plugin.writing import backends
from tb_attention_plugin.writing import event_writer
from tb_attention_plugin.writing import capture
from tb_attention_plugin.format import encoding as encoding_lib
from tb_attention_plugin.writing import head_watch
from tb_attention_plugin.writing import image_grid as image_grid_lib
from tb_attention_plugin.writing import masks
from tb_attention_plugin.writing import messages
from tb_attention_plugin.format import metadata
from tb_attention_plugin.math import numerics
from tb_attention_plugin.format import reduction
from tb_attention_plugin.writing import probes
from tb_attention_plugin.writing import relevance as relevance_lib
from tb_attention_plugin.writing import run_dirs
from tb_attention_plugin.writing import summary
from tb_attention_plugin.writing import tokens as tokens_lib

logger = logging.getLogger(__name__)

# log_dir -> the callback that last began a fit writing to it. Two callbacks
# writing one log_dir at once would interleave captures of the same tags at
# the same steps; a claim left by a fit that ended without on_train_end
# (an exception, Ctrl-C) is taken over, and a collected callback claims
# nothing.
_CLAIMS = weakref.WeakValueDictionary()


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
      log_dir: directory (any path TensorBoard's `tf.io.gfile` takes: README,
        Install) to write event files to;
        it becomes one TensorBoard run. Give it the same directory as
        `keras.callbacks.TensorBoard` to see both side by side. Training the
        same model on the same probe again appends to it (steps never go
        backwards: after a recompile, captures continue after the last step
        written); a different model, probe or layer set goes to a run of its
        own, `log_dir/rerun_2` (`rerun_3`, ...), with one log line saying why.
      probe: a fixed batch the model takes: one array, a tuple/list (e.g.
        encoder and decoder inputs) or a dict, e.g. `x_val[:8]`. The same
        examples are captured every time so they can be compared over steps.
        Also taken (writing/probes.py): a `tf.data.Dataset` (its first
        batch's inputs), `(x, y[, sample_weight])` for a model of one input
        or of several (x a tuple of them: `((enc, dec), y)`; y is what
        relevance="loss" explains), a keras_hub preprocessor's output, and raw text for a keras_hub task
        model with a preprocessor (labelled by its tokenizer).
      tokens: how to label positions (see `tb_attention_plugin.writing.tokens`): None
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
      pad_id: id of padding in the probe's integer inputs (e.g. 0), or a
        dict {input name: id} for a dict probe, used to crop maps when the
        model passes no Keras mask to the layer. Default None.
      encoding: 'uint8' (default; 1 byte per weight, error at most 1/510) or
        'float32' (exact, 4 bytes per weight).
      max_cells: the most numbers one capture may store, all layers and
        examples together (default 50 million, 50 MB as uint8 before
        compression); every captured step stays in TensorBoard's memory. A
        hard ceiling: when full maps would pass it (a 12-layer, 12-head
        model at 512 tokens is 38 M weights per example), the largest
        layers not in exact_layers are stored reduced, every head kept:
        each query row's 8 largest weights exact, with their positions, and
        a block max and mean overview (docs/FORMAT.md, "Reduced maps"; at
        2048 tokens 1.6% of the full maps), until the capture fits; then
        the first probe examples that fit are kept, with one warning; only
        when one example alone is over it is the fit refused, before
        training. None: no limit, full maps.
      max_map_bytes: the most host memory the probe's maps may take per
        capture (default 4e9, 4 GB): each capture's maps as float32 (4 bytes
        per weight, padding included) plus the previous capture's, kept for
        the head metric `change` (4 bytes per weight for a layer stored
        full, 2 for one stored reduced: float16). A long probe of an LLM is
        large here before it is in max_cells: one 2048-token example of 18
        layers x 8 heads is 2.4 GB of float32 maps. The first probe examples
        that fit are kept, with one warning, and one example over it is
        refused before training. A capture raises the process's memory by
        about 1.4x this (BENCHMARKS.md, "Long probes"). None: no limit.
      exact_layers: layer names or paths whose full maps are always stored;
        the other layers' maps are stored reduced when full maps would pass
        max_cells (below). Default None.
      value_weighted: also store, for every MultiHeadAttention (keras_hub's
        included) and GroupQueryAttention layer, and layers with their own
        softmax whose product with the values is one einsum (keras_hub
        Llama, Gemma, Mistral, Qwen), the norm of what each key
        sends through each head, ||(x_j W_V^h + b_V^h) W_O^h|| (Kobayashi et
        al., EMNLP 2020), so that the tab and the reader show value-weighted
        attention (weight x norm), and the head metrics of those maps.
        Default True; False stores nothing extra (README: its cost).
      relevance: also store, at every capture, the gradient-weighted
        relevance of each layer's weights (Chefer et al., ICCV 2021), d
        target / d a_hij * a_hij, for the output named here:
        "loss" (minus the compiled loss on the probe's labels: give
        probe=(x, y)), "predicted" (each example's predicted class), a class
        index, or a function of the model's outputs giving one value per
        example (e.g. `lambda logits: logits[:, -1, token_id]`). One extra
        backward pass of the probe per capture; the tab's Show control and
        the reader show it beside the weights (writing/relevance.py,
        docs/FORMAT.md "Relevance"). Default None: not computed.
      head_scalars: also write each layer's head metrics (docs/HEAD_METRICS.md;
        mean over heads and probe examples) as ordinary scalars
        `attention/LAYER/METRIC`, beside the loss in the Scalars tab. Default
        False, so the Scalars tab is not flooded. The per-head values are
        always stored, for the Attention tab and `read_head_metrics`.
      image_grid: for an image probe ((N, H, W, C)), the (rows, cols) of the
        patch grid, when the model does not say it (keras_hub's `patch_size`,
        a Conv2D with kernel = strides) and the sequence length alone does
        not. Default None: found. Maps of image models are labelled "CLS",
        "REG1", ... and "row,col" per patch; the probe images are stored
        once per run (PNG) for the tab.
      collapse_entropy: warn once per layer when its attention entropy,
        normalised to 0..1 (docs/HEAD_METRICS.md) and averaged over heads and
        probe examples, falls below this (default 0.05: nearly every head on
        one token); None: never.
      stalled_ratio: warn once per head when its maps stop changing while the
        loss moved by more than 1% since the last capture: no change at all
        (a frozen layer), or, after 3 captures, a mean change under this
        share of the head's largest one (default 0.01); None: never.

    Example:

    ```python
    callback = AttentionCallback("logs/run1", probe=x_val[:8], tokens=vocabulary)
    print(callback.plan(model))  # what will be captured, before training
    model.fit(x_train, y_train, epochs=3, callbacks=[
        keras.callbacks.TensorBoard("logs/run1"), callback])
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
        max_map_bytes=4_000_000_000,
        exact_layers=None,
        value_weighted=True,
        relevance=None,
        head_scalars=False,
        image_grid=None,
        collapse_entropy=0.05,
        stalled_ratio=0.01,
    ):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if update_freq != "epoch" and not (
            isinstance(update_freq, (int, np.integer)) and update_freq > 0
        ):
            raise ValueError(
                "AttentionCallback: update_freq must be a positive number of steps "
                "or \"epoch\", and %s was given. Pass e.g. update_freq=100."
                % messages.quoted(update_freq)
            )
        self.update_freq = update_freq
        self.pad_id = pad_id
        with messages.setup_errors():
            encoding_lib.parse_encoding(encoding)  # fails early on a bad name
        self._encoding = encoding
        self.max_cells = max_cells
        self.max_map_bytes = max_map_bytes
        self._exact_layers = set(exact_layers or ())
        self.value_weighted = bool(value_weighted)
        relevance_lib.check(relevance)
        self.relevance = relevance
        self.head_scalars = bool(head_scalars)
        self._head_watch = head_watch.HeadWatch(collapse_entropy, stalled_ratio)
        self._layer_names = layers
        self._tokens = tokens
        self._image_grid = None if image_grid is None else tuple(int(n) for n in image_grid)
        with messages.setup_errors():
            probe, self._probe_note, self._batch_labels = probes.first_batch(probe)
        # The probe as given (a dataset's first batch); set_model brings it
        # to what the model takes (probes.inputs_for), once per model.
        self._given_probe = probe
        self._set_probe(probe, tokens)
        self._patch_size = None
        self._images_written = set()  # run dirs holding this probe's images
        self._layers = None
        self._required = None
        self._probe_fn = None
        self._plans = None  # name -> _LayerPlan, fixed by the first capture
        self._previous_maps = {}  # name -> maps of the last capture written (head_metrics.change)
        self._relevance_warned = set()  # layers whose relevance was not finite once (said once each)
        self._serialized_maps = {}  # name -> maps of the capture being written
        self._traced_model = None  # the model _probe_fn and _plans are for
        self._chief = True
        self._run_dir = None  # where this model's captures go (log_dir or a rerun_N)
        self._run = None  # run_dirs.RunState of _run_dir, kept up to date
        self._runs = {}  # run_dir -> RunState of every run this callback wrote
        self._step_offset = 0  # written step = optimizer.iterations + offset
        self._writer = None  # opened on the first write, reopened after a failed one
        self._next_due = 0  # optimizer.iterations of the next scheduled capture
        self._epoch_iterations = 0  # optimizer.iterations when this epoch began
        # Batches begun with this model: the step count of a model that was
        # never compiled (no optimizer.iterations), see _iterations.
        self._batches_begun = 0
        self._counts_batches = False
        self._fit_thread = None  # set while a fit runs; see _claim_log_dir
        self._begin_pending = False  # the capture before training is still to do
        self._first = None  # the probe's results traced in on_train_begin
        self.captured_steps = []  # steps written and flushed, for tests and users

    def _set_probe(self, probe, tokens):
        """The probe's arrays and everything read from them; wrong token
        counts fail here, before training. Raw text (for a model's
        preprocessor) is read once the model is known."""
        self._probe = keras.tree.map_structure(np.asarray, probe)
        self._given_batch = None  # the probe's size as given, once a budget kept fewer
        self._kept_by = None  # which budget kept fewer: "max_cells" or "max_map_bytes"
        self._kept_because = None  # why, in words, and what to pass (logged once set up)
        with messages.setup_errors():
            self._batch = tokens_lib.probe_batch_size(self._probe)
            self._sources = [] if probes.holds_strings(self._probe) else tokens_lib.token_sources(
                self._probe, tokens, self.pad_id)
        self._probe_digest = run_dirs.probe_digest(self._probe)
        # Probe inputs that are images ((N, H, W, C)): their patches label
        # ViT maps, and they are stored once per run (_probe_images).
        self._image_inputs = [
            i for i, leaf in enumerate(keras.tree.flatten(self._probe)) if image_grid_lib.is_image_batch(leaf)
        ]

    def _take_probe_for(self, model):
        """Brings the probe as given to the inputs `model` takes (raw text
        through its preprocessor, (x, y) to x: probes.inputs_for)."""
        with messages.setup_errors():
            probe, note, tokenizer, labels = probes.inputs_for(model, self._given_probe)
        self._set_probe(probe, self._tokens if self._tokens is not None else tokenizer)
        self._labels = labels if labels is not None else self._batch_labels  # (y, sample_weight) or None
        for said in (self._probe_note, note):
            if said:
                logger.info("AttentionCallback captures %s.", said)

    # -- setup ---------------------------------------------------------------

    def set_model(self, model):
        # Captures still being written read this callback's plans and run
        # state, which a new model or fit may change, and those of a fit that
        # raised must reach the log_dir before this fit's: all are written first.
        self.flush()
        self._bind_model(model)
        self._chief = self._is_chief()
        if self._chief:
            self._check_writable()

    def plan(self, model):
        """What this callback would capture on `model`, without training or
        writing: runs the probe once (the trace a fit then reuses) and
        returns a `CapturePlan`; print it for a table of each layer's tag,
        class, kind, heads (and key/value heads), where its query and key
        tokens come from, how its maps are cropped, its weights per capture,
        and every attention-like layer left out, with why.

        Raises:
          ValueError: what `model.fit` would refuse before its first step.
        """
        self.flush()
        self._bind_model(model)
        if self._plans is None:
            self._setup_capture()
        return CapturePlan(
            model_name=model.name,
            examples=self._batch,
            given_examples=self._given_batch,
            kept_by=self._kept_by,
            encoding=self._encoding,
            layers=sorted(self._plans.values(), key=lambda plan: plan.index),
            skipped=[(name, "named like attention, but computed no softmax on the probe")
                     for name in self._probe_fn.skipped] + capture.holders_left_out(model, self._layers),
        )

    def _bind_model(self, model):
        """Everything set_model checks and fixes about `model` but the log
        directory: the probe as the model takes it, the layers to capture."""
        super().set_model(model)
        backends.current()  # refuses a backend capture does not run on
        if self._traced_model is not model:
            self._take_probe_for(model)
        _check_probe_keys(model, self._probe)
        with messages.setup_errors():
            self._layers, self._required = capture.select_layers(model, self._layer_names)
        if self._image_inputs:
            self._patch_size = image_grid_lib.patch_size_of(model)
        if self._traced_model is not model:
            # A new model needs a new trace, and maybe a run of its own. The
            # same model (another fit, evaluate) keeps both.
            self._traced_model = model
            self._probe_fn = None
            self._plans = None
            self._previous_maps = {}
            self._batches_begun = 0

    def _is_chief(self):
        return backends.current().is_chief(self.model)

    def _log_dir_key(self):
        return self.log_dir if "://" in self.log_dir else os.path.abspath(self.log_dir)

    def _claim_log_dir(self):
        """Refuses a second callback writing this log_dir in the same fit
        (or in a fit running in another thread); takes over the claim of
        one whose fit ended without on_train_end."""
        key = self._log_dir_key()
        holder = _CLAIMS.get(key)
        if holder is not None and holder is not self:
            if holder._fits_beside(self):
                raise ValueError(
                    "AttentionCallback: another AttentionCallback already writes to %s "
                    "in this training. Give each callback its own log_dir, e.g. "
                    "logs/run1 and logs/run2." % self.log_dir
                )
            holder._end_fit()  # its fit raised or was interrupted
        _CLAIMS[key] = self
        self._fit_thread = threading.current_thread()

    def _fits_beside(self, other):
        """Whether this callback is in a fit running now beside `other`'s:
        the same fit (Keras gives every callback of one fit the same params
        dict) or one in another thread that is still alive. A fit that
        ended without on_train_end in this thread is over: this thread now
        runs `other`'s."""
        if self._fit_thread is None:
            return False
        if self.params is not None and self.params is other.params:
            return True
        return self._fit_thread is not threading.current_thread() and self._fit_thread.is_alive()

    def _end_fit(self):
        """Releases the log_dir and the event file. Never raises."""
        self._fit_thread = None
        if _CLAIMS.get(self._log_dir_key()) is self:
            del _CLAIMS[self._log_dir_key()]
        self._drop_writer()

    def _check_writable(self):
        try:
            tf_or_stub.io.gfile.makedirs(self.log_dir)
        except (tf_or_stub.errors.OpError, OSError) as e:
            raise ValueError(
                "AttentionCallback cannot write to log_dir %s (%s). Pass a "
                "directory you can write to." % (self.log_dir, messages.error_text(e))
            ) from None

    def _drop_writer(self):
        """Forgets the writer; the next write opens a new event file. After
        a failed write the old file may end in a partial record, after which
        nothing in that file can be read. Never raises."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # the failure that made us drop it, again
                pass

    def _build_probe_fn(self):
        explain = None
        if self.relevance is not None:
            explain = relevance_lib.explainer(self.relevance, self.model, self._labels)
        try:
            self._probe_fn = capture.ProbeFunction(
                self.model, self._layers, self._required, self._probe, value_norms=self.value_weighted,
                explain=explain,
            )
        except relevance_lib.RelevanceError as e:  # what relevance= asks does not fit the model's outputs
            raise ValueError("AttentionCallback: %s" % messages.sentence(str(e))) from None
        except capture.CaptureError as e:
            raise ValueError("AttentionCallback: %s" % messages.sentence(str(e))) from None
        except Exception as e:
            # A backend may wrap the cause in a traceback (tf.function does);
            # its last line says it, after the exception's class name. Quoted
            # as the model said it.
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            said = re.sub(r"^\w+(Error|Exception): ", "", lines[-1]) if lines else messages.error_text(e)
            raise ValueError(
                "AttentionCallback could not run the model on the probe; the model "
                "says \u201c%s\u201d. Pass probe= in the structure model(...) takes, "
                "e.g. probe=x_val[:8], or (enc[:8], dec[:8]) for two inputs."
                % said.rstrip(".")
            ) from e
        for name in self._probe_fn.skipped:
            logger.info(
                "AttentionCallback: layer %s is named like attention but computed "
                "no softmax on the probe, so it is not captured.", messages.quoted(name)
            )

    def _setup_capture(self):
        """Traces the probe and fixes each layer's facts from its first
        capture. Every error here is one the user must fix, so it is raised
        before the first training step. When a budget keeps fewer probe
        examples, the probe is traced again for them, and one warning says
        which budget and what to pass."""
        while True:
            self._build_probe_fn()
            # Known from the trace, before any map exists: the maps alone,
            # and the previous capture's at their least (stored reduced).
            per_example = self._probe_fn.map_bytes_per_example
            held = None if per_example is None else (lambda n: n * (per_example + per_example // 2))
            fitting = self._examples_in_memory(held)
            if fitting < self._batch:
                # Said with the most they can take (every layer stored full),
                # so that the max_map_bytes it names keeps them all.
                self._kept_because = self._kept_because or self._memory_reason(
                    lambda n: 2 * n * per_example, "up to ")
                self._shrink_probe(fitting, "max_map_bytes")
                continue
            first = self._probe_fn()
            self._plans = {}
            for index, captured in enumerate(first):
                self._plans[captured.name] = self._plan_layer(captured, index, list(self._plans.values()))
            keep, budget = self._fit_budget()
            if keep == self._batch:
                break
            self._shrink_probe(keep, budget)
        reduced = [plan.name for plan in self._plans.values() if plan.storage == "reduced"]
        if reduced:
            logger.info(
                "AttentionCallback stores the maps of %d of %d layers reduced (%s): every head, with "
                "each query row's %d largest weights exact and an overview of block max and mean "
                "(docs/FORMAT.md, \"Reduced maps\"), because full maps would be %d weights per "
                "capture, more than max_cells=%d. Importance, statistics and metrics are computed "
                "from the full maps either way. Pass exact_layers=[...] to keep some layers' full maps.",
                len(reduced), len(self._plans), ", ".join(reduced[:3]) + (
                    " and %d more" % (len(reduced) - 3) if len(reduced) > 3 else ""),
                reduction.TOP_K, sum(plan.cells for plan in self._plans.values()), self.max_cells)
        if self._kept_because:
            logger.warning("AttentionCallback stores the first %d of the %d probe examples: %s",
                           self._batch, self._given_batch, self._kept_because)
        return first

    def _examples_in_memory(self, held):
        """How many of the probe's first examples a capture may hold within
        max_map_bytes; `held(n)`: the bytes of maps a capture of the first n
        holds (None: not known). Raises, naming the settings to change, when
        not one fits."""
        if self.max_map_bytes is None or held is None:
            return self._batch
        fitting = max((n for n in range(self._batch + 1) if held(n) <= self.max_map_bytes), default=0)
        if fitting == 0:
            raise ValueError(
                "AttentionCallback: one probe example's attention maps take %s of memory at each "
                "capture (as float32, and the previous capture's kept to measure how the heads "
                "change), more than max_map_bytes=%d. Pass layers=[...] to capture fewer layers, "
                "shorter probe sequences, or a larger max_map_bytes= if the machine has the memory "
                "(a capture raises the process's memory by about 1.4x it)." % (_size(held(1)), self.max_map_bytes))
        return fitting

    def _memory_reason(self, held, up_to=""):
        """Why fewer examples are kept, when max_map_bytes is the reason."""
        return (
            "all %d would hold %s%s of attention maps in memory at each capture (float32, and the "
            "previous capture's for the head metric change), more than max_map_bytes=%d. Pass "
            "max_map_bytes=%d to keep all %d if the machine has the memory (a capture raises the "
            "process's memory by about 1.4x it)."
            % (self._batch, up_to, _size(held(self._batch)), self.max_map_bytes, held(self._batch), self._batch))

    # -- schedule ------------------------------------------------------------

    def _optimizer_steps(self):
        """The model's `optimizer.iterations` variable, or None for a model
        that was never compiled (a custom loop with its own optimizer)."""
        return getattr(getattr(self.model, "optimizer", None), "iterations", None)

    def _iterations(self):
        """Optimizer steps done: `optimizer.iterations` (several fits keep
        counting; steps_per_execution and skipped loss-scale steps count as
        the optimizer does), or, without one, the batches this callback saw
        begin (on_train_batch_begin calls)."""
        iterations = self._optimizer_steps()
        if iterations is None:
            return self._batches_begun
        return int(keras.ops.convert_to_numpy(iterations))

    def on_train_begin(self, logs=None):
        if not self._chief:
            return
        self._claim_log_dir()
        self._counts_batches = self._optimizer_steps() is None
        if self._plans is None:
            self._first = self._setup_capture()
            self._run_dir = None  # chosen by the facts of the first capture
        # The capture of the state before training waits for the first
        # batch: every callback of this fit has then passed on_train_begin,
        # so a second one on this log_dir is refused before anything is
        # written. No weight changes in between.
        self._begin_pending = True

    def on_train_batch_begin(self, batch, logs=None):
        # At the start of a batch, `iterations` counts the steps already done,
        # so this sees exactly the state at the end of the previous batch. It
        # is used instead of on_train_batch_end because overriding that makes
        # Keras convert every batch's logs synchronously (no async dispatch),
        # which cost 2-8% of the IMDB demo's fit time even for a no-op.
        if self._fit_thread is None:
            return
        try:
            self._batch_begins(batch)
        finally:
            self._batches_begun += 1

    def _batch_begins(self, batch):
        # Without an optimizer the count of batches is the step itself.
        done = self._batches_begun if self._counts_batches else self._epoch_iterations + batch
        if self._begin_pending:
            self._capture_begin()
        elif self.update_freq != "epoch" and done >= self._next_due:
            # Due by the count of batches: only then is optimizer.iterations
            # read (a read of a TensorFlow variable on every batch cost about
            # 0.5 ms of a 41 ms IMDB step, 1% of the fit), and `_capture`
            # checks it, so a custom train_step that steps the optimizer
            # otherwise than once per batch captures late, never at a wrong step.
            self._capture(only_if_due=True)

    def on_epoch_begin(self, epoch, logs=None):
        if self._fit_thread is not None:
            self._epoch_iterations = self._iterations()  # `batch` counts from 0 in each epoch

    def on_epoch_end(self, epoch, logs=None):
        if self._fit_thread is not None and self.update_freq == "epoch":
            self._capture()

    def on_train_end(self, logs=None):
        try:
            if self._fit_thread is not None:
                if self._begin_pending:  # a fit of no batches
                    self._capture_begin()
                self._capture()
        except Exception as e:  # never raise out of the user's fit
            _warn_skipped("the final capture", e)
        finally:
            self.flush()  # the fit returns with every capture on disk
            self._end_fit()

    # -- capture -------------------------------------------------------------

    def _capture_begin(self):
        first, self._first, self._begin_pending = self._first, None, False
        self._capture(first)

    def _capture(self, first=None, only_if_due=False):
        """Takes one capture: on the training thread only the probe's forward
        pass (the one part that must see this step's weights) and the running
        loss; the rest is queued for the background writer. Any failure is a
        warning and a skipped capture; training goes on."""
        step = None
        try:
            iterations = self._iterations()
            step = iterations + self._step_offset  # for the warning; fixed when written
            if only_if_due and iterations < self._next_due:
                return
            if self._run is not None and iterations + self._step_offset == self._run.last_step:
                return  # this state is written (a fit continuing where the last ended)
            if self.update_freq != "epoch":
                self._next_due = (iterations // self.update_freq + 1) * self.update_freq
            results = first if first is not None else self._probe_fn()
            loss = _running_loss(self.model)
        except Exception as e:
            _warn_skipped("the capture at step %s" % step, e)
            return
        background.WRITER.submit(functools.partial(self._write_capture, iterations, results, loss))

    def flush(self):
        """Waits until every capture taken so far is written and flushed.
        A fit waits at its end; after a fit that raised or was interrupted,
        the captures still queued are written in the background (and before
        the interpreter exits): call this to wait for them, e.g. before
        reading the log in the same notebook."""
        background.WRITER.wait()

    def _write_capture(self, iterations, results, loss):
        """On the background writer: every layer is computed, cropped and
        serialized before anything is written, so a step is written whole
        or not at all. Never raises: a failure is a warning and a skipped
        capture."""
        step = iterations + self._step_offset
        try:
            if self._run is not None and iterations + self._step_offset == self._run.last_step:
                return  # taken twice before the first was written (epoch end, then train end)
            serialized = self._serialize(results)
            if self._run_dir is None:
                self._start_run(run_dirs.facts_of_serialized(serialized))
                if iterations + self._step_offset == self._run.last_step:
                    return
            step = self._next_step(iterations)
            self._write(serialized, step)
        except Exception as e:
            _warn_skipped("the capture at step %s" % step, e)
            return
        self._run.last_step = step
        self.captured_steps.append(step)
        self._previous_maps = self._serialized_maps
        try:
            self._head_watch.observe(serialized, step, loss)
        except Exception:  # a watch is advice; it never costs a capture
            logger.debug("head watch failed", exc_info=True)

    def _serialize(self, results):
        records = [self._prepare(captured) for captured in results]
        self._add_rollout(records)
        serialized = [item for record in records for item in summary.serialize(record)]
        # Kept for the next capture's head metric `change`. A reduced layer's
        # maps are long ones: a float16 copy halves what stays in memory
        # (max_map_bytes), and changes the metric by at most 2^-11 of each
        # previous weight (float16's rounding), far below what it tracks.
        self._serialized_maps = {
            record.name: record.maps if record.storage == "full" else [m.astype(np.float16) for m in record.maps]
            for record in records}
        return serialized

    def _start_run(self, facts):
        """Picks the run this model's captures go to (see run_dirs)."""
        run_dir, state, why = run_dirs.choose(self.log_dir, facts, self._runs)
        if why is not None:
            logger.warning(
                "AttentionCallback writes this training to %s, a run of its own, because "
                "%s already holds attention of another model or probe (%s). Pass a new "
                "log_dir to name the run yourself.", run_dir, self.log_dir, why,
            )
        if run_dir != self._run_dir:
            self._drop_writer()
        self._run_dir, self._run = run_dir, state
        state.facts = facts
        self._runs[run_dir] = state

    def _next_step(self, iterations):
        """The step to write: optimizer.iterations plus an offset that keeps
        steps going forward in this run after a recompile, a new optimizer or
        a new model of the same shape reset the count."""
        step = iterations + self._step_offset
        last = self._run.last_step
        if step <= last:
            self._step_offset = last + 1 - iterations
            logger.warning(
                "AttentionCallback: %s already holds captures up to step %d and "
                "optimizer.iterations is %d (a recompile, a new optimizer or a new model "
                "reset it); this training's captures are written at iterations + %d, "
                "from step %d on, so steps never go backwards. Pass a new log_dir to "
                "start a separate run.", self._run_dir, last, iterations,
                self._step_offset, last + 1,
            )
            step = last + 1
        return step

    def _write(self, serialized, step):
        """Writes and flushes one capture. A failure (disk full, permission,
        a remote file system) drops the writer so the next capture starts a
        new event file, readable whatever the old one ends with."""
        try:
            if self._writer is None:
                self._writer = event_writer.EventWriter(self._run_dir)
            new_images = self._image_inputs and self._run_dir not in self._images_written
            if new_images:
                images = keras.tree.flatten(self._probe)[self._image_inputs[0]]
                serialized = serialized + [summary.probe_images(images)]
            # One Event per capture (event_writer): written whole or not at
            # all, and never dropped by Keras's TensorBoard(update_freq=N),
            # whose record_if governs tf.summary only.
            self._writer.write(serialized, step, _head_scalars(serialized) if self.head_scalars else ())
            self._writer.flush()
            if new_images:
                self._images_written.add(self._run_dir)
        except Exception:
            self._drop_writer()
            raise

    def _fit_budget(self):
        """Chooses each layer's storage and how many probe examples (the
        first ones) a capture keeps:
          1. every layer's full maps, if they fit in max_cells numbers;
          2. else layers stored reduced (each row's largest weights and a
             block overview: format/reduction.py), the largest first, until
             they fit; layers named in exact_layers= always stay full;
          3. else the first probe examples that fit;
        and no more examples than max_map_bytes holds in memory
        (_examples_in_memory). Refuses, before training, when one example
        alone does not fit. Returns (examples kept, the budget that limits
        them), and says why in self._kept_because when fewer than given."""
        plans = list(self._plans.values())
        for plan in plans:
            plan.storage = "full"
        unknown = self._exact_layers.difference(*(plan.aliases for plan in plans))
        if unknown:
            raise ValueError(
                "AttentionCallback: exact_layers names %s, which %s no captured layer; the "
                "captured layers are %s." % (", ".join(sorted(map(messages.quoted, unknown))),
                                             "is" if len(unknown) == 1 else "are",
                                             ", ".join(messages.quoted(plan.name) for plan in plans)))

        def total(examples=None):
            return sum(plan.stored_cells(examples) for plan in plans)

        exact = [plan for plan in plans if plan.aliases & self._exact_layers]
        keep = self._batch
        if self.max_cells is not None:
            reducible = sorted((plan for plan in plans if plan not in exact), key=lambda plan: -plan.cells)
            for plan in reducible:
                if total() <= self.max_cells:
                    break
                if plan.stored_cells() > sum(plan.reduced_example_cells):  # short maps are smaller whole
                    plan.storage = "reduced"
            keep = max(n for n in range(self._batch + 1) if total(n) <= self.max_cells)
        if keep == 0:
            largest = sorted(plans, key=lambda plan: -plan.stored_cells(1))[:3]
            raise ValueError(
                "AttentionCallback: one probe example alone would store %d numbers (largest layers: "
                "%s), more than max_cells=%d, even with every layer%s reduced where that is "
                "smaller; every captured step is kept in TensorBoard's memory. Pass layers=[...] "
                "to capture fewer layers%s, shorter probe sequences, or a larger max_cells= if you "
                "have the memory."
                % (total(1), ", ".join("%s %d (%s)" % (plan.name, plan.stored_cells(1), plan.storage)
                                       for plan in largest), self.max_cells,
                   " but exact_layers=" if exact else "",
                   ", fewer exact_layers= (%s)" % ", ".join(p.name for p in exact) if exact else "")
            )
        held = lambda n: sum(plan.held_bytes(n) for plan in plans)
        in_memory = self._examples_in_memory(held)
        if in_memory < min(keep, self._batch):
            self._kept_because = self._kept_because or self._memory_reason(held)
        elif keep < self._batch and not self._kept_because:
            reduced = sum(plan.storage == "reduced" for plan in plans)
            self._kept_because = (
                "all %d would be %d numbers per capture, more than max_cells=%d, and every captured "
                "step stays in TensorBoard's memory. Every head of every layer of those %d is "
                "stored (%s); pass max_cells=%d to store all %d."
                % (self._batch, total(), self.max_cells, keep,
                   "%d layers reduced" % reduced if reduced else "in full", total(), self._batch))
        return min(keep, in_memory), "max_cells" if keep <= in_memory else "max_map_bytes"

    def _shrink_probe(self, count, budget):
        """Keeps the first `count` probe examples (and their tokens), as
        `budget` ("max_cells" or "max_map_bytes") asks."""
        self._given_batch = self._given_batch or self._batch
        self._kept_by = budget
        self._probe = keras.tree.map_structure(lambda array: array[:count], self._probe)
        if self._labels is not None:
            self._labels = tuple(None if part is None else keras.tree.map_structure(lambda a: a[:count], part)
                                 for part in self._labels)
        self._batch = count
        for source in self._sources:
            source.ids, source.tokens = source.ids[:count], source.tokens[:count]
            if source.mask is not None:
                source.mask = source.mask[:count]
        self._probe_digest = run_dirs.probe_digest(self._probe)
        self._probe_fn = None
        self._plans = None

    def _prepare(self, captured):
        """One layer's capture -> a cropped summary.LayerStep."""
        plan = self._plans[captured.name]
        scores = captured.scores
        if plan.transpose:
            scores = np.swapaxes(scores, -1, -2)
        # Passed on as the layer gave them, (batch, q, k) or (batch, heads,
        # q, k): the summary records whether there was a head axis.
        if tuple(np.shape(scores)[-2:]) != plan.shape:
            raise ValueError(
                "layer %s returned attention of shape %s, first captured as %s"
                % (messages.quoted(plan.name), messages.shape(scores.shape), messages.shape(plan.shape))
            )
        record = summary.prepare(
            plan.name,
            scores,
            query_tokens=plan.query_tokens,
            key_tokens=plan.key_tokens,
            query_mask=plan.query_mask,
            key_mask=plan.key_mask,
            kind=plan.kind,
            encoding=self._encoding,
            layer_class=plan.layer_class,
            layer_index=plan.index,
            value_norms=captured.value_norms,
            value_vector=captured.value_vector or "value_output",
            relevance=self._finite_relevance(captured, plan),
            relevance_target=relevance_lib.describe(self.relevance) if self.relevance is not None else "",
        )
        record.probe_digest = self._probe_digest
        record.grid = plan.grid
        record.probe_examples = self._given_batch or 0
        record.row_tolerance = plan.row_tolerance
        record.sliding_window = plan.window
        record.storage = plan.storage
        record.previous_maps = self._previous_maps.get(plan.name)
        if plan.query_ids is not None:
            record.query_ids = [ids[qo : qo + ql] for ids, ((qo, ql), _) in zip(plan.query_ids, record.spans)]
        return record

    def _finite_relevance(self, captured, plan):
        """The capture's relevance of a layer, or None: not asked, not known,
        or not finite (the explained output or its gradient overflowed). That
        step then stores the weights without relevance, and one warning per
        layer says so: the relevance is lost, never the capture."""
        relevance = captured.relevance
        if relevance is None or plan.transpose:
            return None
        if np.all(np.isfinite(relevance)):
            return relevance
        if plan.name not in self._relevance_warned:
            self._relevance_warned.add(plan.name)
            logger.warning(
                "AttentionCallback: the relevance of layer %s is NaN or Inf at this capture (the output "
                "relevance= explains, or its gradient, overflowed), so its weights are stored without it; "
                "later captures store it again where it is finite.", messages.quoted(plan.name))
        return None

    def _plan_layer(self, captured, index, earlier):
        """Facts fixed for the whole run, from the first capture: orientation,
        real tokens, token strings, kind. `earlier`: the plans of the layers
        the model ran before this one."""
        name = captured.name
        scores = np.asarray(captured.scores)
        transpose = _softmax_over_axis_1(scores) if captured.source == "output" else False
        if transpose:
            scores = np.swapaxes(scores, 1, 2)
        # The dtype the layer computed in, before as_head_first casts to float32.
        row_tolerance = numerics.row_sum_tolerance(np.asarray(scores).dtype, np.shape(scores)[-1])
        _check_probabilities(captured, scores, row_tolerance)
        scores = summary.as_head_first(scores)
        batch, heads, q, k = scores.shape
        if batch != self._batch:
            raise ValueError(
                "AttentionCallback: layer %s returned attention for %d examples "
                "and the probe has %d. A layer that sees reshaped batches (inside "
                "TimeDistributed, or called on folded inputs) cannot be captured: "
                "pass layers=[...] without it." % (messages.quoted(name), batch, self._batch)
            )
        query_valid = key_valid = cells = None
        if captured.mask is not None and not transpose:
            try:
                cells = masks.allowed_cells(captured.mask, scores, captured.convention)
                query_valid, key_valid = masks.real_tokens_of(cells)
            except masks.UnknownMaskForm as e:
                logger.warning(
                    "AttentionCallback could not read the mask of layer %s (%s), so "
                    "its maps are stored uncropped, padding included.", messages.quoted(name), e
                )
        # A sequence attending to itself makes a square map: a layer whose
        # one input is read as both query and key but whose map is q x k with
        # q != k (the seed's Dense(softmax) block: features x time steps)
        # relates two different axes, as cross attention does.
        same = captured.same_sequence
        if same is None and captured.source == "softmax":
            # A custom layer none of whose arguments fits the map as its
            # query or key sequence (capture.pick_sequences): its kind is
            # read from the map's shape, which is a guess; say so.
            logger.warning(
                "AttentionCallback could not tell which arguments of layer %s (%s) are its "
                "query and key sequences, so it is stored as %s attention (the map is %d x %d) "
                "and cropped only by %s. Pass pad_id= to crop padding, or layers=[...] "
                "without it to leave it out.", messages.quoted(name), type(captured.layer).__name__,
                "self" if q == k else "cross", q, k,
                "the mask it applied" if captured.mask is not None else "pad_id, if given")
        same = (q == k) if same is None else (bool(same) and q == k)
        if same and key_valid is not None:
            # A padded token is padding as a query too; a causal + padding
            # mask (GPT-2) lets padded queries attend to earlier real keys,
            # and a (batch, 1, k) mask says nothing about queries.
            query_valid = key_valid if query_valid is None else query_valid & key_valid
        query_source = tokens_lib.feeding(self._sources, captured.query_inputs, q, prefer_last=not same)
        key_source = query_source if same else tokens_lib.feeding(self._sources, captured.key_inputs, k)
        query_tokens = query_source.tokens if query_source else None
        key_tokens = key_source.tokens if key_source else None
        grid = None
        if same and query_source is None:
            grid = self._grid_for(captured.query_inputs, q)
            if grid is not None:
                query_tokens = key_tokens = [grid.tokens()] * self._batch
        if not same and (query_valid is None or query_valid.all()):
            # A cross-attention mask covers the keys only. Its queries are the
            # sequence of the self-attention that ran last before it on the
            # same length (the decoder's own, in every decoder block): take
            # that layer's real queries and tokens.
            own = next((p for p in reversed(earlier) if p.kind != "cross" and p.shape[0] == q), None)
            if own is not None and own.query_mask is not None:
                query_valid, query_tokens = own.query_mask, own.query_tokens
        query_from = _token_origin(query_source, grid)
        key_from = query_from if same else _token_origin(key_source, None)
        query_ids = query_source.ids if query_source is not None and same else None
        query_mask = _combine(query_valid, query_source)
        key_mask = _combine(key_valid, key_source)
        cropped_by = " and ".join(
            [what for what, used in (
                ("the layer's mask", query_valid is not None or key_valid is not None),
                ("pad_id", any(src is not None and src.mask is not None for src in (query_source, key_source))),
            ) if used]) or "nothing (every position is kept)"
        window = 0
        if same and cells is not None and cells.shape[2] == q and cells.shape[3] == k:
            window = masks.sliding_window(cells, query_mask, key_mask)
        maps, spans = summary.crop_examples(scores, query_mask, key_mask)
        if not same:
            kind = "cross"
        elif captured.causal:
            kind = "causal"
        else:
            kind = summary.infer_kind(maps, True)
        return _LayerPlan(
            name=name,
            transpose=transpose,
            shape=(q, k),
            query_tokens=query_tokens,
            key_tokens=key_tokens,
            query_ids=query_ids,
            query_mask=query_mask,
            key_mask=key_mask,
            kind=kind,
            grid=grid,
            layer_class=capture.source_class(captured.layer),
            index=index,
            explained=captured.relevance is not None and not transpose,
            cells=heads * sum(ql * kl for (_, ql), (_, kl) in spans),
            example_cells=[heads * ql * kl for (_, ql), (_, kl) in spans],
            reduced_example_cells=reduced_cells(heads, spans),
            aliases={name, capture.layer_path(captured.layer), captured.layer.name},
            heads=heads,
            kv_heads=captured.kv_heads,
            window=window,
            query_from=query_from,
            key_from=key_from,
            cropped_by=cropped_by,
            row_tolerance=row_tolerance,
        )

    def _grid_for(self, inputs, length):
        """The patch Grid of a self-attention over `length` tokens that come
        from an image input of the probe (traced: `inputs`), or None."""
        images = [i for i in self._image_inputs if inputs is None or i in inputs]
        if not images:
            return None
        shape = np.shape(keras.tree.flatten(self._probe)[images[0]])[1:3]
        return image_grid_lib.find_grid(shape, length, self._patch_size, self._image_grid)

    def _add_rollout(self, records):
        """Rollout through each stack of self-attention layers with the same
        tokens, in the order the model runs them; written with each layer of
        the stack."""
        stacks = {}
        for record in records:
            if record.kind == "cross" or any(qs != ks for qs, ks in record.spans):
                continue
            key = (tuple(record.spans), _freeze(record.key_tokens))
            stacks.setdefault(key, []).append(record)
        for members in stacks.values():
            # Each layer's A_hat, (examples, n, n) zero-padded (numerics.Examples),
            # kept in float32: the stored importance is float32 too.
            layers = []
            for record in members:
                examples = record.examples
                layers.append(numerics.rollout_layer(examples.maps).astype(np.float32))
                importance = numerics.rollout_importances(layers, examples.q)
                record.rollout = [importance[i, :n] for i, n in enumerate(examples.q)]
                record.rollout_stack = members[0].name
            self._add_relevance_rollout(members)

    @staticmethod
    def _add_relevance_rollout(members):
        """Relevance rollout (Chefer et al.) through a stack, up to each
        layer, while every layer below it has relevance (a layer without
        one ends it: a product missing a factor is no rollout)."""
        layers = []
        for record in members:
            if record.relevance is None:
                return
            layers.append(numerics.relevance_layer(numerics.padded(record.relevance)))
            importance = numerics.rollout_importances(layers, record.examples.q)
            record.relevance_rollout = [importance[i, :n] for i, n in enumerate(record.examples.q)]


@dataclasses.dataclass
class _LayerPlan:
    """What is fixed about one captured layer for the whole run."""

    name: str
    transpose: bool  # (batch, time, features) with the softmax over time: show features x time
    shape: tuple  # (q, k) after transposing
    query_tokens: list  # per example, full padded length; None: positions
    query_ids: np.ndarray  # (batch, q) token ids of self attention's input, or None
    key_tokens: list
    query_mask: np.ndarray  # (batch, q) real tokens, or None: all
    key_mask: np.ndarray
    kind: str
    layer_class: str
    index: int  # order in which the model runs the layer
    cells: int  # weights of its full maps per capture
    example_cells: list  # of which, per probe example
    # What storing it reduced costs per probe example (reduced_cells), and
    # how it is stored: "full" or "reduced" (chosen by _fit_budget).
    reduced_example_cells: list = None
    storage: str = "full"
    aliases: set = dataclasses.field(default_factory=set)  # its tag, path and name (exact_layers)
    grid: image_grid_lib.Grid = None  # the tokens are image patches (a ViT)
    heads: int = 1  # query heads
    kv_heads: int = None  # key/value heads of grouped-query attention, else None
    window: int = 0  # the sliding window of a local layer (masks.sliding_window), 0: none
    query_from: str = ""  # where the query tokens come from, in words (CapturePlan)
    key_from: str = ""
    cropped_by: str = ""  # what crops the maps, in words
    # numerics.row_sum_tolerance of the dtype the layer computed in
    row_tolerance: float = numerics.ROW_SUM_TOLERANCE
    # relevance is stored too: a second set of maps (its shares, as the
    # weights are stored) and, while captured, its float32 gradient products
    explained: bool = False

    def held_bytes(self, examples):
        """Host memory the maps of the first `examples` probe examples take
        at a capture: this capture's float32 maps as the layer returned them
        (padding included), and the previous capture's, kept for the head
        metric `change`: the same arrays for a layer stored full, a float16
        copy of the cropped maps for one stored reduced (callback._write_capture)."""
        now = 4 * self.heads * self.shape[0] * self.shape[1] * examples
        products = now if self.explained else 0
        if self.storage == "full":
            return 2 * now + products
        return now + products + 2 * sum(self.example_cells[:examples])

    def stored_cells(self, examples=None):
        """Numbers stored per capture for the first `examples` probe
        examples (all: None) in this layer's storage."""
        per_example = self.example_cells if self.storage == "full" else self.reduced_example_cells
        return int(sum(per_example[:examples])) * (2 if self.explained else 1)


def reduced_cells(heads, spans):
    """Per example, the numbers a reduced capture of maps of `spans` stores
    (encoding.reduced_sections: each row's kept weights and their key
    positions, the block max and mean of the overview, whose block the
    longest example sets: reduction.block_of_step, as summary.maps_facts)."""
    block = reduction.block_of_step((ql, kl) for (_, ql), (_, kl) in spans)
    return [sum(int(np.prod(shape)) for _, _, shape in encoding_lib.reduced_sections(
        heads, ql, kl, reduction.TOP_K, block, encoding_lib.UINT8)) for (_, ql), (_, kl) in spans]


def _token_origin(source, grid):
    """Where a map's tokens come from, in words, for CapturePlan."""
    if grid is not None:
        return "image patches (%d x %d grid)" % (grid.rows, grid.cols)
    if source is None:
        return "positions"
    return "probe input %s%s" % (
        messages.quoted(source.name), "" if source.labelled else " (labelled by position: pass tokens=)")


@dataclasses.dataclass
class CapturePlan:
    """What AttentionCallback.plan(model) found; str() is a table."""

    model_name: str
    examples: int  # probe examples stored
    given_examples: int  # the probe's size as given, when a budget keeps fewer; else None
    kept_by: str  # that budget: "max_cells" or "max_map_bytes"
    encoding: str
    layers: list  # _LayerPlan, in the order the model runs them
    skipped: list  # (layer, why) of attention-like layers not captured

    @property
    def weights_per_capture(self):
        """Numbers stored per capture: weights, and the key positions of
        layers stored reduced."""
        return sum(plan.stored_cells() for plan in self.layers)

    def __str__(self):
        per_weight = encoding_lib.bytes_per_cell(encoding_lib.parse_encoding(self.encoding))
        lines = [
            "AttentionCallback on model %s: %d layers, probe of %d examples%s; %d numbers per "
            "capture (%s as %s, before compression)" % (
                messages.quoted(self.model_name), len(self.layers), self.examples,
                " (the first %d of %d: %s)" % (self.examples, self.given_examples, self.kept_by)
                if self.given_examples else "",
                self.weights_per_capture, _size(self.weights_per_capture * per_weight), self.encoding),
        ]
        header = ("tag", "class", "kind", "heads", "queries from", "keys from", "cropped by", "stored", "numbers")
        rows = [header] + [(
            plan.name, plan.layer_class,
            plan.kind + (", window %d" % plan.window if plan.window else ""),
            "%d (%d kv)" % (plan.heads, plan.kv_heads) if plan.kv_heads else str(plan.heads),
            plan.query_from, plan.key_from, plan.cropped_by,
            ("full" if plan.storage == "full" else "reduced (top %d per row)" % reduction.TOP_K)
            + (" + relevance" if plan.explained else ""),  # its shares: a second set of maps (numbers x 2)
            str(plan.stored_cells()),
        ) for plan in self.layers]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        if self.skipped:
            lines.append("Not captured:")
            lines += ["  %s: %s" % (name, why) for name, why in self.skipped]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython and notebooks show the table
        printer.text(str(self))


def _size(n):
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return ("%d %s" if unit == "bytes" else "%.1f %s") % (n, unit)
        n /= 1000.0


def _warn_skipped(what, error):
    logger.warning(
        "AttentionCallback skipped %s: %s Training goes on and earlier captures "
        "are kept.", what, messages.sentence(messages.error_text(error))
    )


def _running_loss(model):
    """The loss Keras has averaged over the epoch so far, or None. Not read
    under a distribution strategy: a synced metric's value is an all-reduce,
    and the chief alone starting one stalls or aborts the other workers."""
    if not backends.current().reads_metrics(model):
        return None
    for metric in getattr(model, "metrics", []):
        if metric.name == "loss":
            value = float(metric.result())
            return value if np.isfinite(value) else None
    return None


def _head_scalars(serialized):
    """[(tag, value)]: each layer's head metrics, mean over heads and
    examples, as ordinary scalars `attention/LAYER/METRIC`: the Scalars tab
    shows them beside the loss and compares runs. Metrics that do not apply
    (all NaN) are left out."""
    scalars = []
    for info, tensor in summary.items_of_role(serialized, metadata.PluginData.HEAD_METRICS):
        values = np.asarray(tensor).reshape(-1, len(info.metric_names))
        for name, column in zip(info.metric_names, values.T):
            if not np.isnan(column).all():
                scalars.append(("attention/%s/%s" % (info.layer, name), float(np.nanmean(column))))
    return scalars


def _check_probe_keys(model, probe):
    """A dict probe must use the input names a functional model takes."""
    expected = getattr(model, "_inputs_struct", None)
    if not (isinstance(probe, dict) and isinstance(expected, dict)):
        return
    unknown = sorted(set(probe) - set(expected))
    missing = sorted(set(expected) - set(probe))
    if unknown or missing:
        raise ValueError(
            "AttentionCallback: the probe's keys do not match the model's inputs "
            "(%s%s). The model takes %s: pass probe= with exactly those keys."
            % (
                "unknown %s" % ", ".join(map(messages.quoted, unknown)) if unknown else "",
                ("; " if unknown and missing else "") + ("missing %s" % ", ".join(map(messages.quoted, missing)) if missing else ""),
                ", ".join(map(messages.quoted, sorted(expected))),
            )
        )


def _softmax_over_axis_1(scores):
    """A (batch, time, features) output whose softmax runs over time, like
    seed 002's attention_vec: rows do not sum to 1, columns do."""
    return (
        scores.ndim == 3
        and not numerics.rows_sum_to_one(scores)
        and numerics.rows_sum_to_one(np.swapaxes(scores, 1, 2))
    )


def _check_probabilities(captured, scores, tolerance):
    """Refuses, before training, to store as attention what is not a
    distribution over keys (a layer's output, T5's position bias). Rows
    must sum to 1 within `tolerance` (numerics.row_sum_tolerance of the
    dtype the layer computed in)."""
    scores = np.asarray(scores, dtype=np.float64)
    problem = None
    if scores.ndim not in (3, 4):
        problem = "a tensor of shape %s, where attention is (batch, heads, q, k) or (batch, q, k)" % messages.shape(scores.shape)
    elif not np.all(np.isfinite(scores)):
        problem = "values that are NaN or Inf"
    else:
        sums = scores.sum(axis=-1)
        # Fully masked rows may come out as zeros (Keras >= 3.10). Rows of a
        # layer computed in bfloat16 or float16 sum to 1 only within that
        # dtype's rounding (numerics.row_sum_tolerance).
        ones = np.abs(sums - 1) <= tolerance
        rows_ok = ones | (np.abs(sums) <= tolerance)
        if scores.min() < -1e-6 or scores.max() > 1 + tolerance or not rows_ok.all() or not ones.any():
            problem = "values in [%.3g, %.3g] whose rows sum to [%.3g, %.3g], not probabilities over keys" % (
                scores.min(), scores.max(), sums.min(), sums.max())
    if problem:
        how = {"output": "its output", "softmax": "the softmax it computes", "scores": "its scores"}[captured.source]
        raise ValueError(
            "AttentionCallback: layer %s (%s) is not attention: %s holds %s. Pass "
            "layers=[...] naming the layer that computes the attention "
            "probabilities (its softmax), or a layer that returns (output, weights)."
            % (messages.quoted(captured.name), type(captured.layer).__name__, how, problem)
        )


def _combine(layer_valid, source):
    """Real tokens: those the layer's own mask keeps and, when pad_id is
    given, that are not padding (a causal-only mask keeps padding; the user
    said what padding is). None: all."""
    padding = source.mask if source is not None else None
    if layer_valid is None or padding is None:
        return layer_valid if padding is None else padding
    return layer_valid & padding


def _freeze(tokens):
    return None if tokens is None else tuple(tuple(t) for t in tokens)
