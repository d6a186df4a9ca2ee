"""What users pass as `probe=`, brought to the inputs the model takes.

Taken as they are: one array, a tuple/list of arrays (one per model input,
e.g. encoder and decoder ids) or a dict {input name: array}, the structure
`model(...)` takes. Also taken, the way Keras itself reads them:

  * a `tf.data.Dataset` (or any iterable of batches with `element_spec`):
    its first batch, whose `(x, y)` / `(x, y, sample_weight)` is read like
    `model.fit` reads a dataset's elements (`keras.utils.unpack_x_y_sample_weight`);
  * `(x, y)` or `(x, y, sample_weight)` given to a model that takes one
    input (or one dict): x, once the model says how many inputs it takes
    (`inputs_for`);
  * raw strings (a list of str or a string array) for a keras_hub task model
    with a `preprocessor`: the preprocessor's output for them, labelled with
    its tokenizer (`inputs_for`);
  * a keras_hub preprocessor's output: its dict, or `(dict, y, sample_weight)`.

Refused with the fix: a Python generator or iterator (it would be consumed),
and anything else that is not arrays.
"""

import keras
import numpy as np


def first_batch(probe):
    """The probe's inputs, with a dataset replaced by its first batch's and
    a list of strings made one string array; (probe, note) where `note`
    says what was done for the log (None: nothing).

    Raises:
      ValueError: a generator or iterator.
    """
    if _is_dataset(probe):
        batch = next(iter(probe), None)
        if batch is None:
            raise ValueError("probe= is a dataset with no batch: pass a dataset of at least one batch, "
                             "or the arrays themselves, e.g. probe=x_val[:8]")
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch if isinstance(batch, tuple) else (batch,))
        return _to_numpy(x), "the first batch of the dataset given as probe= (its inputs)"
    if _is_iterator(probe):
        raise ValueError(
            "probe= is a %s, which would be consumed by reading it; pass its first batch's "
            "inputs as arrays, e.g. probe=next(iter(dataset))[0], or probe=x_val[:8]"
            % type(probe).__name__
        )
    if isinstance(probe, (list, tuple)) and probe and all(isinstance(p, str) for p in probe):
        return np.asarray(probe, dtype=object), None
    return probe, None


def holds_strings(probe):
    """True for a probe of raw text (a string array), which only a model's
    preprocessor can turn into inputs."""
    return isinstance(probe, np.ndarray) and probe.dtype.kind in "OUS" and probe.size > 0 and all(
        isinstance(s, (str, bytes, np.str_, np.bytes_)) for s in probe.reshape(-1)[:8])


def inputs_for(model, probe):
    """The probe as `model` takes it: raw strings through the model's
    preprocessor, `(x, y[, sample_weight])` to x for a model of one input.
    Returns (probe, note, tokenizer): `note` says what was done (None:
    nothing), `tokenizer` the preprocessor's, to label tokens with.

    Raises:
      ValueError: strings for a model without a preprocessor.
    """
    tokenizer = None
    note = None
    if holds_strings(probe):
        preprocessor = getattr(model, "preprocessor", None)
        if preprocessor is None:
            raise ValueError(
                "probe= holds text, and model \"%s\" has no preprocessor to turn it into "
                "inputs; pass the token ids the model takes (e.g. a tokenizer's output "
                "for those texts), or a keras_hub task model with its preprocessor" % model.name
            )
        x, _, _ = keras.utils.unpack_x_y_sample_weight(_as_tuple(preprocessor(probe.tolist())))
        tokenizer = getattr(preprocessor, "tokenizer", None)
        return _to_numpy(x), "the output of %s's preprocessor for the %d texts given as probe=" % (
            model.name, len(probe)), tokenizer
    expected = getattr(model, "_inputs_struct", None)
    single_input = expected is not None and not isinstance(expected, (list, tuple))
    if single_input and isinstance(probe, (list, tuple)) and len(probe) in (2, 3):
        x = probe[0]
        if isinstance(expected, dict) == isinstance(x, dict):
            note = "the inputs x of the (x, y%s) given as probe= (model \"%s\" takes one input)" % (
                ", sample_weight" if len(probe) == 3 else "", model.name)
            return x, note, tokenizer
    return probe, note, tokenizer


def _is_dataset(probe):
    return hasattr(probe, "element_spec") and hasattr(probe, "__iter__") and not isinstance(probe, np.ndarray)


def _is_iterator(probe):
    return hasattr(probe, "__next__") or type(probe).__name__ in ("generator", "DataLoader")


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _to_numpy(structure):
    """Tensors of any backend (and tf.RaggedTensor-free dicts) to numpy."""
    if isinstance(structure, dict):
        return {k: _to_numpy(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_to_numpy(v) for v in structure)
    return keras.ops.convert_to_numpy(structure) if not isinstance(structure, np.ndarray) else structure
