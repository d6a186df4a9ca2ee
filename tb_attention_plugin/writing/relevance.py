"""Gradient-weighted relevance (Chefer, Gur and Wolf, ICCV 2021, "Generic
Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers"): for an output to explain, each attention
weight's relevance is d target / d a_hij * a_hij; per layer, the head mean
of its positive part; through the layers, rollout R <- R + A_bar R.

What is explained is named by the callback's `relevance=` argument:

  "loss"       minus the model's compiled loss of the probe against the
               probe's labels (given as `(x, y[, sample_weight])`, a dataset
               of such batches, or raw text through a keras_hub task's
               preprocessor), so that positive relevance is attention that
               lowers the loss: that supports the labels;
  "predicted"  each example's largest output (its predicted class's logit)
               of a model with one (batch, classes) output;
  an int c     output c of such a model (class c's logit);
  a callable   `f(outputs) -> (batch,)` tensor, in keras.ops, from the
               model's outputs as it returns them, e.g. a token's logit of a
               language model: `lambda logits: logits[:, -1, token_id]`.

The per-example targets are summed: the examples of a probe do not interact
in an inference pass, so one backward pass gives each example's gradient.
The gradient by each probability map is taken by multiplying the map with a
gate of ones inside the probe's pass (capture.py, backends/): d target /
d gate = (d target / d p) * p, exactly the product wanted, on every backend.
"""

import numbers

import keras
import numpy as np
from keras.src.losses.losses import LossFunctionWrapper  # what compile wraps a loss function in (not public)

LOSS = "loss"
PREDICTED = "predicted"


class RelevanceError(ValueError):
    """What relevance= asks does not fit the model's outputs; names the fix."""


def check(relevance):
    """Refuses a `relevance=` that names nothing to explain, naming the choices."""
    if relevance is None or relevance in (LOSS, PREDICTED) or callable(relevance):
        return
    if isinstance(relevance, numbers.Integral) and not isinstance(relevance, bool) and relevance >= 0:
        return
    raise ValueError(
        "AttentionCallback: relevance=%r names no output to explain. Pass \"loss\" (the probe's "
        "loss against its labels, probe=(x, y)), \"predicted\" (each example's predicted class), "
        "a class index such as relevance=3, or a function of the model's outputs giving one value "
        "per example, e.g. relevance=lambda logits: logits[:, -1, token_id]." % (relevance,)
    )


def describe(relevance):
    """What `relevance` explains, in words stored with the maps."""
    if relevance == LOSS:
        return "loss (minus the loss on the probe's labels)"
    if relevance == PREDICTED:
        return "predicted class"
    if callable(relevance):
        return "output %s" % getattr(relevance, "__name__", type(relevance).__name__)
    return "class %d" % relevance


def explainer(relevance, model, labels):
    """The function the probe's backward pass starts from: the model's
    outputs -> a scalar tensor, the sum over the probe's examples of what
    `relevance` explains.

    Args:
      relevance: as `check` takes it (not None).
      model: the model (its compiled loss, for "loss").
      labels: (y, sample_weight or None) of the probe, or None.

    Raises:
      ValueError: "loss" without labels or a compiled loss of one output;
        naming what to pass instead.
    """
    if relevance == LOSS:
        return _loss_target(model, labels)
    if callable(relevance):
        def custom(outputs):
            values = keras.ops.convert_to_tensor(relevance(outputs))
            return keras.ops.sum(keras.ops.cast(values, "float32"))
        return custom

    def class_output(outputs):
        logits = _single_output(outputs, "relevance=%r" % (relevance,))
        if len(logits.shape) != 2:
            raise RelevanceError(
                "relevance=%r explains one output of a model of (batch, classes) outputs, and "
                "this model returns %s. Pass a function of the outputs giving one value per "
                "example, e.g. relevance=lambda logits: logits[:, -1, token_id], or \"loss\"."
                % (relevance, tuple(logits.shape)))
        logits = keras.ops.cast(logits, "float32")
        if relevance == PREDICTED:
            return keras.ops.sum(keras.ops.max(logits, axis=-1))
        if relevance >= logits.shape[-1]:
            raise RelevanceError("relevance=%d is no class of this model's %d outputs: pass 0..%d"
                             % (relevance, logits.shape[-1], logits.shape[-1] - 1))
        return keras.ops.sum(logits[:, relevance])

    return class_output


def _single_output(outputs, what):
    if keras.ops.is_tensor(outputs) or isinstance(outputs, np.ndarray):
        return outputs
    raise RelevanceError(
        "%s explains a model of one output, and this model returns %s. Pass a function of "
        "its outputs giving one value per example, e.g. relevance=lambda out: "
        "out[\"logits\"][:, 0]." % (what, type(outputs).__name__))


def _loss_target(model, labels):
    if labels is None:
        raise ValueError(
            "AttentionCallback: relevance=\"loss\" explains the probe's loss against its labels, "
            "and the probe has none. Pass probe=(x, y) (or a dataset of (x, y) batches), or "
            "relevance=\"predicted\" to explain each example's predicted class.")
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if loss is None or isinstance(loss, (dict, list, tuple)) or not callable(loss):
        raise ValueError(
            "AttentionCallback: relevance=\"loss\" explains the model's compiled loss, and model "
            "\"%s\" has %s. Compile it with one loss, or pass a function of its outputs giving one "
            "value per example, e.g. relevance=lambda logits: logits[:, 0]."
            % (model.name, "none" if loss is None else "one per output"))
    y, sample_weight = labels
    if not isinstance(loss, keras.losses.Loss):
        # a loss function (or a name): wrapped as compile wraps it, which brings
        # labels of shape (batch,) and outputs of (batch, 1) to one rank
        loss = LossFunctionWrapper(loss)

    def target(outputs):
        y_pred = keras.ops.cast(_single_output(outputs, "relevance=\"loss\""), "float32")
        y_true = keras.ops.convert_to_tensor(y)
        try:  # unreduced: one value per example (and position, for sequences)
            values = loss.call(y_true, y_pred)
        except Exception as e:  # the loss's own words, and what to pass instead
            raise RelevanceError(
                "relevance=\"loss\" could not compute the model's loss of the probe's labels (%s, of shape "
                "%s, against outputs of shape %s): %s. Pass the labels as fit takes them, probe=(x, y), or a "
                "function of the outputs giving one value per example"
                % (type(loss).__name__, tuple(y_true.shape), tuple(y_pred.shape), str(e).strip().splitlines()[0])
            ) from None
        values = keras.ops.cast(values, "float32")
        if sample_weight is not None:
            weight = keras.ops.cast(keras.ops.convert_to_tensor(sample_weight), "float32")
            weight = keras.ops.reshape(weight, tuple(weight.shape) + (1,) * (len(values.shape) - len(weight.shape)))
            values = values * weight
        return -keras.ops.sum(values)

    return target
