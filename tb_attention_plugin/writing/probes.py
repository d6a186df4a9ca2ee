"""What users pass as `probe=`, brought to the inputs the model takes.

Taken as they are: one array, a tuple/list of arrays (one per model input,
e.g. encoder and decoder ids) or a dict {input name: array}, the structure
`model(...)` takes. Also taken, the way Keras itself reads them:

  * a `tf.data.Dataset` (or any iterable of batches with `element_spec`):
    its first batch, whose `(x, y)` / `(x, y, sample_weight)` is read like
    `model.fit` reads a dataset's elements (`keras.utils.unpack_x_y_sample_weight`);
  * `(x, y)` or `(x, y, sample_weight)`: x, once the model says how many
    inputs it takes (`inputs_for`): for a model of one input (or one dict),
    or for a model of several whose x is a list or tuple of that many arrays,
    e.g. `((encoder_ids, decoder_ids), y)`;
  * raw strings (a list of str or a string array, or a dict of them such as
    Gemma3's {"prompts", "responses"}) for a keras_hub task model with a
    `preprocessor`: the preprocessor's output for them (`inputs_for`);
  * a keras_hub preprocessor's output: its dict, or `(dict, y, sample_weight)`.
A keras_hub task's tokens are labelled with its preprocessor's tokenizer
unless `tokens=` says otherwise.

Refused with the fix: a Python generator or iterator (it would be consumed),
and anything else that is not arrays.
"""

import re

import keras
import numpy as np


def first_batch(probe):
    """The probe's inputs, with a dataset replaced by its first batch's and
    a list of strings made one string array; (probe, note, labels) where
    `note` says what was done for the log (None: nothing) and `labels` is a
    dataset batch's (y, sample_weight), or None (relevance="loss").

    Raises:
      ValueError: a generator or iterator.
    """
    if _is_dataset(probe):
        batch = next(iter(probe), None)
        if batch is None:
            raise ValueError("probe= is a dataset with no batch: pass a dataset of at least one batch, "
                             "or the arrays themselves, e.g. probe=x_val[:8]")
        x, y, weight = keras.utils.unpack_x_y_sample_weight(batch if isinstance(batch, tuple) else (batch,))
        labels = None if y is None else (_to_numpy(y), None if weight is None else _to_numpy(weight))
        return _to_numpy(x), "the first batch of the dataset given as probe= (its inputs)", labels
    if _is_iterator(probe):
        raise ValueError(
            "probe= is a %s, which would be consumed by reading it; pass its first batch's "
            "inputs as arrays, e.g. probe=next(iter(dataset))[0], or probe=x_val[:8]"
            % type(probe).__name__
        )
    return _texts_as_arrays(probe), None, None


def _texts_as_arrays(probe):
    """Lists of strings (at the top or as a dict's values, like Gemma3's
    {"prompts": [...], "responses": [...]}) as string arrays: one input
    each, not one input per string."""
    if isinstance(probe, dict):
        return {k: _texts_as_arrays(v) for k, v in probe.items()}
    if isinstance(probe, (list, tuple)) and probe and all(isinstance(p, str) for p in probe):
        return np.asarray(probe, dtype=object)
    return probe


def _is_text(leaf):
    return isinstance(leaf, np.ndarray) and leaf.dtype.kind in "OUS" and leaf.size > 0 and all(
        isinstance(s, (str, bytes, np.str_, np.bytes_)) for s in leaf.reshape(-1)[:8])


def holds_strings(probe):
    """True for a probe of raw text (string arrays, alone or in a dict),
    which only a model's preprocessor can turn into inputs."""
    leaves = list(probe.values()) if isinstance(probe, dict) else [probe]
    return any(_is_text(leaf) for leaf in leaves)


def inputs_for(model, probe):
    """The probe as `model` takes it: raw strings through the model's
    preprocessor, `(x, y[, sample_weight])` to x for a model of one input.
    Returns (probe, note, tokenizer, labels): `note` says what was done
    (None: nothing), `tokenizer` the preprocessor's, to label tokens with,
    `labels` the (y, sample_weight or None) that came with x, or None.

    Raises:
      ValueError: strings for a model without a preprocessor.
    """
    preprocessor = getattr(model, "preprocessor", None)
    # A keras_hub task labels its inputs with its own tokenizer, whether the
    # probe is text or the preprocessor's output.
    tokenizer = getattr(preprocessor, "tokenizer", None)
    note = None
    if holds_strings(probe):
        if preprocessor is None:
            raise ValueError(
                "probe= holds text, and model \"%s\" has no preprocessor to turn it into "
                "inputs; pass the token ids the model takes (e.g. a tokenizer's output "
                "for those texts), or a keras_hub task model with its preprocessor" % model.name
            )
        texts = {k: v.tolist() for k, v in probe.items()} if isinstance(probe, dict) else probe.tolist()
        try:
            processed = preprocessor(texts)
        except Exception as e:  # the preprocessor's own words, and what to pass instead
            raise ValueError(
                "probe= holds text, and the preprocessor of model \"%s\" (%s) did not take it: %s. "
                "Pass the text as that preprocessor takes it (e.g. keras_hub Gemma3's "
                "{\"prompts\": [...], \"responses\": [...]}), or its output: "
                "probe=model.preprocessor(texts)"
                % (model.name, type(preprocessor).__name__, _first_line(e))
            ) from None
        x, y, weight = keras.utils.unpack_x_y_sample_weight(_as_tuple(processed))
        count = len(next(iter(texts.values())) if isinstance(texts, dict) else texts)
        labels = None if y is None else (_to_numpy(y), None if weight is None else _to_numpy(weight))
        return _to_numpy(x), "the output of %s's preprocessor for the %d texts given as probe=" % (
            model.name, count), tokenizer, labels
    expected = getattr(model, "_inputs_struct", None)
    single_input = expected is not None and not isinstance(expected, (list, tuple))
    if isinstance(probe, (list, tuple)) and len(probe) in (2, 3) and (
            single_input or _holds_inputs_of(probe[0], expected)):
        x = probe[0]
        if isinstance(expected, dict) == isinstance(x, dict):
            note = "the inputs x of the (x, y%s) given as probe= (model \"%s\" takes %s)" % (
                ", sample_weight" if len(probe) == 3 else "", model.name,
                "one input" if single_input else "%d inputs" % len(expected))
            labels = (np.asarray(probe[1]), np.asarray(probe[2]) if len(probe) == 3 else None)
            return x, note, tokenizer, labels
    return probe, note, tokenizer, None


def _holds_inputs_of(first, expected):
    """Whether `first`, the first item of a probe given to a model of
    several inputs (`expected`, a list), is those inputs (a list or tuple of
    as many arrays): then the probe is (x, y[, sample_weight]). A probe that
    is x itself has an array there."""
    return (isinstance(expected, (list, tuple)) and isinstance(first, (list, tuple))
            and len(first) == len(expected)
            and all(not isinstance(f, (list, tuple, dict, str)) and np.ndim(f) >= 1 for f in first))


def _first_line(error):
    """The line of an error that says what went wrong (Keras wraps a layer's
    error in "Exception encountered when calling ..." and bold ANSI codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line for line in lines if not line.startswith("Exception encountered")), "")
    return "%s %s" % (type(error).__name__, said.rstrip(".")) if said else type(error).__name__


def _is_dataset(probe):
    return hasattr(probe, "element_spec") and hasattr(probe, "__iter__") and not isinstance(probe, np.ndarray)


def _is_iterator(probe):
    return hasattr(probe, "__next__") or type(probe).__name__ in ("generator", "DataLoader")


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _to_numpy(structure):
    """Tensors of any backend to numpy, in the same structure."""
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)
