"""Turning the probe batch into per-example token strings.

A `tokens` argument takes one of these forms:
  * None: positions "0", "1", ... are shown.
  * a callable: `tokens(ids) -> list of str`, called on each example's 1-D
    integer ids (e.g. a tokenizer's decode-per-id, or `lambda ids: [vocab[i]
    for i in ids]`).
  * a vocabulary: a list of strings indexed by id, or a dict {id: string}.
  * explicit strings: a list (one per probe example) of lists of strings, one
    per position, for a single-sequence probe.
For a probe with several inputs (tuple, list or dict), give either one form
for all inputs, or one per input in the same structure (a tuple/list with one
entry per input, or a dict with the probe's keys).

Inputs of a dict probe whose key says they carry no tokens (`padding_mask`,
`segment_ids`, `token_type_ids`, `position_ids`: a key containing "mask",
"segment", "type" or "position") never label maps and are never cropped by
`pad_id`, unless `tokens` names them explicitly.
"""

import numpy as np
import tensorflow as tf


class TokenSource:
    """Token strings and real-token masks of one integer input of the probe."""

    def __init__(self, name, ids, tokens, pad_id, labelled=True):
        self.name = name
        self.ids = ids
        self.length = ids.shape[1]
        self.tokens = tokens  # list per example of list of str (length each)
        self.mask = None if pad_id is None else ids != pad_id
        self.labelled = labelled  # False: given no tokens of its own (positions)


def probe_batch_size(probe):
    """Number of examples of a probe structure; ValueError if inconsistent."""
    leaves = tf.nest.flatten(probe)
    if not leaves:
        raise ValueError("probe is empty: pass a batch of inputs, e.g. probe=x_val[:8]")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in sizes:
        raise ValueError("probe inputs must have a batch axis: pass e.g. probe=x_val[:8]")
    if len(sizes) != 1:
        raise ValueError(
            "the probe's inputs have different batch sizes, %s: slice every "
            "input with the same [:n]" % " and ".join(map(str, sorted(sizes)))
        )
    (size,) = sizes
    if size == 0:
        raise ValueError("probe has 0 examples: pass at least one, e.g. probe=x_val[:8]")
    return size


def token_sources(probe, tokens, pad_id):
    """The probe's 2-D integer inputs, each with its token strings.

    Raises:
      ValueError: tokens whose structure or counts do not match the probe.
    """
    flat_probe = tf.nest.flatten(probe)
    names = _input_names(probe)
    specs = _spec_per_input(probe, tokens, len(flat_probe))
    named_per_input = isinstance(probe, dict) and isinstance(tokens, dict) and set(tokens) <= set(probe)
    sources = []
    for name, leaf, spec in zip(names, flat_probe, specs):
        if isinstance(probe, dict) and _carries_no_tokens(name) and not (
            named_per_input and name in tokens
        ):
            continue
        ids = np.asarray(leaf)
        if ids.ndim != 2:
            if _is_explicit(spec):
                raise ValueError(
                    "explicit tokens were given for probe input \"%s\" of shape %s, "
                    "and tokens must match a (batch, length) input"
                    % (name, " x ".join(map(str, ids.shape)))
                )
            continue
        if not np.issubdtype(ids.dtype, np.integer):
            if np.issubdtype(ids.dtype, np.floating) and np.all(ids == np.round(ids)):
                ids = ids.astype(np.int64)
            elif _is_explicit(spec):
                ids = np.zeros(ids.shape, dtype=np.int64)
            else:
                continue
        sources.append(TokenSource(name, ids, _decode(spec, ids, name), pad_id, labelled=spec is not None))
    return sources


_NO_TOKEN_WORDS = ("mask", "segment", "type", "position")


def _carries_no_tokens(name):
    """Probe keys like padding_mask, segment_ids, token_type_ids."""
    return any(word in name.lower() for word in _NO_TOKEN_WORDS)


def _input_names(probe):
    if isinstance(probe, dict):
        return [str(k) for k in sorted(probe)]  # tf.nest flattens dicts sorted by key
    flat = tf.nest.flatten(probe)
    return ["input"] if len(flat) == 1 else ["input %d" % i for i in range(len(flat))]


def _spec_per_input(probe, tokens, count):
    if count > 1:
        if isinstance(probe, dict) and isinstance(tokens, dict) and set(tokens) <= set(probe):
            return [tokens.get(k) for k in sorted(probe)]
        if isinstance(tokens, (tuple, list)) and len(tokens) == count and not _is_vocabulary(tokens):
            return list(tokens)
    return [tokens] * count


def _is_vocabulary(tokens):
    return isinstance(tokens, (list, tuple)) and all(isinstance(t, str) for t in tokens)


def _is_explicit(spec):
    return isinstance(spec, (list, tuple)) and not _is_vocabulary(spec)


def _decode(spec, ids, name):
    batch, length = ids.shape
    if spec is None:
        return [[str(i) for i in range(length)] for _ in range(batch)]
    if callable(spec):
        out = [[str(t) for t in spec(row)] for row in ids]
        for i, row in enumerate(out):
            if len(row) != length:
                raise ValueError(
                    "the tokens callable returned %d strings for example %d of probe "
                    "input \"%s\", which has %d ids. Return one string per id"
                    % (len(row), i, name, length)
                )
        return out
    if isinstance(spec, dict) or _is_vocabulary(spec):
        lookup = spec if isinstance(spec, dict) else dict(enumerate(spec))
        return [[str(lookup.get(int(i), "<%d>" % int(i))) for i in row] for row in ids]
    if _is_explicit(spec):
        if len(spec) != batch:
            raise ValueError(
                "tokens has %d examples and the probe has %d. Give one list of "
                "strings per probe example" % (len(spec), batch)
            )
        out = []
        for i, row in enumerate(spec):
            row = [str(t) for t in row]
            if len(row) != length:
                raise ValueError(
                    "tokens[%d] has %d strings and probe input \"%s\" has %d positions. "
                    "Give one string per position, padding included"
                    % (i, len(row), name, length)
                )
            out.append(row)
        return out
    raise ValueError(
        "tokens must be None, a callable ids -> strings, a vocabulary (list of "
        "str or dict id -> str) or a list of per-example string lists, and a "
        "%s was given: pass one of those" % type(spec).__name__
    )


def match(sources, length, prefer_last=False):
    """The token source whose sequence length is `length`, or None.

    Inputs given tokens of their own come before those shown as positions.
    With several inputs of that length, the first is taken (the last with
    prefer_last, which picks the decoder side of an encoder-decoder probe).
    """
    candidates = [s for s in sources if s.length == length]
    if any(s.labelled for s in candidates):
        candidates = [s for s in candidates if s.labelled]
    if not candidates:
        return None
    return candidates[-1] if prefer_last else candidates[0]
