"""Capturing attention scores from a Keras 3 model without changing it.

While a probe function is traced, each captured layer instance gets a wrapper
(on the instance, never the class) that records its attention weights; the
wrappers are removed right after the trace. The traced graph keeps computing
the scores with the model's current weights on every later call, so the
training step itself is never touched.

Layer families:
  * MultiHeadAttention / GroupedQueryAttention (and subclasses): the wrapper
    around `_compute_attention` forces the scores (softmax before dropout) and
    records the attention mask; a wrapper around `call` records whether
    queries and keys are the same tensor (self attention).
  * keras.layers.Attention / AdditiveAttention: `call` is run with
    `return_attention_scores=True`; the weights are (batch, q, k).
  * any other layer named in `layers=`: its output is taken as the weights,
    or the second item when it returns `(output, weights)`.
"""

import inspect

import keras
import tensorflow as tf

MHA_CLASSES = (keras.layers.MultiHeadAttention, keras.layers.GroupQueryAttention)
DOT_ATTENTION_CLASSES = (keras.layers.Attention, keras.layers.AdditiveAttention)


def layer_path(layer):
    return getattr(layer, "path", None) or layer.name


def all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def find_attention_layers(model):
    """Every MHA, GQA, Attention and AdditiveAttention layer, at any depth."""
    return [
        layer
        for layer in all_layers(model)
        if isinstance(layer, MHA_CLASSES + DOT_ATTENTION_CLASSES)
    ]


def select_layers(model, names):
    """Layers chosen by `layers=`: each name matches a layer's name or path.

    Raises:
      ValueError: naming what was found, when nothing (or a name) is missing.
    """
    candidates = all_layers(model)
    if names is None:
        found = find_attention_layers(model)
        if not found:
            raise ValueError(
                "AttentionCallback found no attention layer in model %r (no "
                "MultiHeadAttention, GroupQueryAttention, Attention or "
                "AdditiveAttention at any depth). Its layers are: %s. Pass "
                "layers=['name'] to capture a layer whose output is attention "
                "weights (e.g. a Dense(softmax) block) or a custom layer that "
                "returns (output, weights)." % (model.name, _describe(candidates))
            )
        return found
    if isinstance(names, str):
        names = [names]
    chosen = []
    for name in names:
        matches = [l for l in candidates if l.name == name or layer_path(l) == name]
        if not matches:
            raise ValueError(
                "layers=%r names no layer of model %r. Its layers are: %s"
                % (name, model.name, _describe(candidates))
            )
        chosen.extend(l for l in matches if l not in chosen)
    return chosen


def _describe(layers):
    shown = ", ".join(
        "%s (%s)" % (layer_path(l), type(l).__name__) for l in layers[:40]
    )
    return (shown or "none") + (" ..." if len(layers) > 40 else "")


class Recording:
    """What one layer produced during the probe trace (symbolic tensors)."""

    def __init__(self):
        self.scores = None
        self.query_valid = None  # (batch, q) bool, or None: unknown
        self.key_valid = None  # (batch, k) bool, or None
        self.same_sequence = None  # True / False, or None: unknown
        self.graph = None  # the probe's graph; Keras also calls layers in scratch graphs

    def wants(self, tensor):
        """True for the first tensor from the probe's own graph."""
        return self.scores is None and getattr(tensor, "graph", None) is self.graph


def _valid_from_attention_mask(mask, recording):
    if mask is None:
        return
    mask = tf.cast(mask, tf.bool)
    if mask.shape.rank == 4:  # (batch, heads, q, k) masks: same for every head
        mask = tf.reduce_any(mask, axis=1)
    if mask.shape.rank == 3:
        recording.query_valid = tf.reduce_any(mask, axis=2)
        recording.key_valid = tf.reduce_any(mask, axis=1)


def _same_values(query, value, key=None):
    """Scalar bool tensor: queries and keys/values are one sequence (self
    attention). Compared by value, since `mha(emb(x), emb(x))` gives two
    tensors with the same contents."""
    others = [value] + ([key] if key is not None and key is not value else [])
    if any(o is not query and tuple(o.shape) != tuple(query.shape) for o in others):
        return tf.constant(False)
    return tf.reduce_all([tf.reduce_all(tf.equal(o, query)) for o in others])


def _patch_mha(layer, recording):
    original_compute = layer._compute_attention
    original_call = layer.call
    is_gqa = isinstance(layer, keras.layers.GroupQueryAttention)

    def call(query, value, key=None, *args, **kwargs):
        if recording.same_sequence is None and recording.wants(query):
            recording.same_sequence = _same_values(query, value, key)
        return original_call(query, value, key, *args, **kwargs)

    signature = inspect.signature(original_compute)

    def compute_attention(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if "return_attention_scores" in signature.parameters:
            bound.arguments["return_attention_scores"] = True
        if is_gqa:
            # GQA reads the flag from the instance, set by `call`.
            layer._return_attention_scores = True
        output, scores = original_compute(*bound.args, **bound.kwargs)
        if recording.wants(scores):
            recording.scores = scores
            _valid_from_attention_mask(bound.arguments.get("attention_mask"), recording)
        return output, scores

    return {"call": call, "_compute_attention": compute_attention}


def _patch_dot_attention(layer, recording):
    original_call = layer.call

    def call(inputs, mask=None, *args, **kwargs):
        asked = kwargs.pop("return_attention_scores", False)
        output, scores = original_call(
            inputs, mask, *args, return_attention_scores=True, **kwargs
        )
        if recording.wants(scores):
            recording.scores = scores
            recording.same_sequence = _same_values(*inputs[:3])
            if mask is not None:
                if mask[0] is not None:
                    recording.query_valid = tf.cast(mask[0], tf.bool)
                if len(mask) > 1 and mask[1] is not None:
                    recording.key_valid = tf.cast(mask[1], tf.bool)
        return (output, scores) if asked else output

    return {"call": call}


def _patch_output(layer, recording):
    original_call = layer.call

    def call(*args, **kwargs):
        outputs = original_call(*args, **kwargs)
        weights = outputs[1] if isinstance(outputs, (tuple, list)) else outputs
        if recording.wants(weights):
            recording.scores = weights
        return outputs

    return {"call": call}


def _patches_for(layer, recording):
    if isinstance(layer, MHA_CLASSES):
        return _patch_mha(layer, recording)
    if isinstance(layer, DOT_ATTENTION_CLASSES):
        return _patch_dot_attention(layer, recording)
    return _patch_output(layer, recording)


class ProbeFunction:
    """The model's forward pass on the probe, returning every layer's scores.

    Traced once (with the wrappers installed) when built; calling it runs the
    graph and returns {path: dict(scores=, query_valid=, key_valid=,
    same_sequence=)} of numpy arrays.
    """

    def __init__(self, model, layers, probe):
        self.paths = [layer_path(l) for l in layers]
        self._probe = tf.nest.map_structure(tf.convert_to_tensor, probe)
        recordings = {path: Recording() for path in self.paths}

        def forward(x):
            # tf.function traces twice when the first call creates variables
            # (an unbuilt model): start every trace afresh.
            for r in recordings.values():
                r.__init__()
                r.graph = tf.compat.v1.get_default_graph()
            model(x, training=False)
            missing = [p for p, r in recordings.items() if r.scores is None]
            if missing:
                raise ValueError(
                    "these layers did not run on the probe, so no attention was "
                    "recorded: %s. Check that the probe is the input the model "
                    "takes and that the layers are on its forward path" % missing
                )
            out = {}
            for path, r in recordings.items():
                out[path] = {
                    "same_sequence": tf.constant(-1) if r.same_sequence is None
                    else tf.cast(r.same_sequence, tf.int32),
                    "scores": r.scores,
                    "query_valid": r.query_valid if r.query_valid is not None else tf.zeros([0]),
                    "key_valid": r.key_valid if r.key_valid is not None else tf.zeros([0]),
                }
            return out

        installed = []
        try:
            for layer, path in zip(layers, self.paths):
                for name, fn in _patches_for(layer, recordings[path]).items():
                    object.__setattr__(layer, name, fn)
                    installed.append((layer, name))
            self._concrete = tf.function(forward).get_concrete_function(self._probe)
        finally:
            for layer, name in installed:
                object.__delattr__(layer, name)

    def __call__(self):
        result = self._concrete(self._probe)
        out = {}
        for path in self.paths:
            values = result[path]
            q_valid = values["query_valid"].numpy()
            k_valid = values["key_valid"].numpy()
            out[path] = {
                "scores": values["scores"].numpy(),
                "query_valid": q_valid.astype(bool) if q_valid.ndim == 2 else None,
                "key_valid": k_valid.astype(bool) if k_valid.ndim == 2 else None,
                # -1: unknown (a layer captured by its output)
                "same_sequence": None if int(values["same_sequence"]) < 0
                else bool(values["same_sequence"]),
            }
        return out
