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
import keras


class TokenSource:
    """Token strings and real-token masks of one integer input of the probe."""

    def __init__(self, name, ids, tokens, pad_id, labelled=True, index=0):
        self.name = name
        self.index = index  # position in keras.tree.flatten(probe)
        self.ids = ids
        self.length = ids.shape[1]
        self.tokens = tokens  # list per example of list of str (length each)
        self.mask = None if pad_id is None else ids != pad_id
        self.labelled = labelled  # False: given no tokens of its own (positions)


def probe_batch_size(probe):
    """Number of examples of a probe structure; ValueError if inconsistent."""
    leaves = keras.tree.flatten(probe)
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
    flat_probe = keras.tree.flatten(probe)
    names = _input_names(probe)
    specs = [_as_spec(spec) for spec in _spec_per_input(probe, tokens, len(flat_probe))]
    named_per_input = isinstance(probe, dict) and isinstance(tokens, dict) and set(tokens) <= set(probe)
    sources = []
    for index, (name, leaf, spec) in enumerate(zip(names, flat_probe, specs)):
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
        sources.append(TokenSource(
            name, ids, _decode(spec, ids, name), _pad_id_of(pad_id, name),
            labelled=spec is not None, index=index,
        ))
    return sources


_NO_TOKEN_WORDS = ("mask", "segment", "type", "position")


def _pad_id_of(pad_id, name):
    """pad_id may be one id for every input or a dict {input name: id}."""
    return pad_id.get(name) if isinstance(pad_id, dict) else pad_id


def _carries_no_tokens(name):
    """Probe keys like padding_mask, segment_ids, token_type_ids."""
    return any(word in name.lower() for word in _NO_TOKEN_WORDS)


def _input_names(probe):
    if isinstance(probe, dict):
        return [str(k) for k in sorted(probe)]  # keras.tree flattens dicts sorted by key
    flat = keras.tree.flatten(probe)
    return ["input"] if len(flat) == 1 else ["input %d" % i for i in range(len(flat))]


def _spec_per_input(probe, tokens, count):
    if count > 1:
        if isinstance(probe, dict) and isinstance(tokens, dict) and set(tokens) <= set(probe):
            return [tokens.get(k) for k in sorted(probe)]
        if isinstance(tokens, (tuple, list)) and len(tokens) == count and not _is_vocabulary(tokens):
            return list(tokens)
    return [tokens] * count


def _as_spec(spec):
    """One input's `tokens` in a form `_decode` takes: None, a callable, a
    list vocabulary, a dict {id: str}, or per-example lists. Tokenizers are
    read the way their users know them: keras_hub's by `id_to_token`,
    TextVectorization and StringLookup by `get_vocabulary()`; any iterable of
    strings (`dict_keys`, a numpy array) is a vocabulary. ValueError, naming
    the fix, for what cannot be tokens."""
    if spec is None:
        return None
    if callable(getattr(spec, "id_to_token", None)):
        tokenizer = spec
        return lambda ids: [tokenizer.id_to_token(int(i)) for i in ids]
    if callable(getattr(spec, "get_vocabulary", None)):
        spec = spec.get_vocabulary()
    if isinstance(spec, (str, bytes)):
        raise ValueError(
            "tokens is one string; pass a vocabulary (a list of strings indexed by "
            "id), a callable ids -> strings, or one list of strings per example"
        )
    if isinstance(spec, dict):
        if spec and all(isinstance(k, str) for k in spec):
            raise ValueError(
                "tokens is a dict keyed by strings (like Keras's word_index, which "
                "maps words to ids); pass its inverse, e.g. "
                "tokens={i: w for w, i in word_index.items()}"
            )
        return spec
    if callable(spec):
        return spec
    if not isinstance(spec, (list, tuple)):
        try:
            spec = list(spec)  # dict_keys, a numpy array of strings, ...
        except TypeError:
            return spec  # refused by _decode with the forms it takes
    if spec and all(isinstance(t, (int, np.integer, float, np.floating)) for t in spec):
        raise ValueError(
            "tokens is a list of %d numbers, which are not token strings; pass a "
            "vocabulary (a list of strings indexed by id, or a dict {id: string}) "
            "or one list of strings per example" % len(spec)
        )
    return spec


def _is_vocabulary(tokens):
    # bytes count, to be refused with advice by _text rather than misread
    return isinstance(tokens, (list, tuple)) and all(isinstance(t, (str, bytes)) for t in tokens)


def _is_explicit(spec):
    return isinstance(spec, (list, tuple)) and not _is_vocabulary(spec)


def _decode(spec, ids, name):
    """Per-example token strings of one input, checked to be text."""
    out = _strings(spec, ids, name)
    for i, row in enumerate(out):
        for j, token in enumerate(row):
            try:
                token.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    "token %d of example %d of probe input \"%s\" is not valid "
                    "Unicode text (it holds a lone surrogate, %s); give token strings "
                    "that encode as UTF-8, e.g. decode bytes with "
                    "errors=\"replace\"" % (j, i, name, token.encode("utf-8", "backslashreplace").decode())
                ) from None
    return out


def _text(token, name):
    """A token as a string; bytes are refused (their str() is a repr)."""
    if isinstance(token, (bytes, np.bytes_)):
        raise ValueError(
            "the tokens for probe input \"%s\" are bytes; give strings, e.g. "
            "decode them: lambda ids: [t.decode(\"utf-8\") for t in ...]" % name
        )
    return str(token)


def _strings(spec, ids, name):
    batch, length = ids.shape
    if spec is None:
        return [[str(i) for i in range(length)] for _ in range(batch)]
    if callable(spec):
        out = [[_text(t, name) for t in spec(row)] for row in ids]
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
        return [[_text(lookup.get(int(i), "<%d>" % int(i)), name) for i in row] for row in ids]
    if _is_explicit(spec):
        if len(spec) != batch:
            raise ValueError(
                "tokens has %d examples and the probe has %d. Give one list of "
                "strings per probe example" % (len(spec), batch)
            )
        out = []
        for i, row in enumerate(spec):
            row = [_text(t, name) for t in row]
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


def feeding(sources, inputs, length, prefer_last=False):
    """The token source of the probe input a layer's sequence comes from.

    `inputs`: positions in keras.tree.flatten(probe) that the sequence was
    traced back to (capture.stream_sources), or None when unknown. Among
    those of the right length, inputs given tokens of their own come first;
    when the graph says nothing, the length decides (`match`).
    """
    if inputs is None:
        return match(sources, length, prefer_last)
    candidates = [s for s in sources if s.index in inputs and s.length == length]
    if any(s.labelled for s in candidates):
        candidates = [s for s in candidates if s.labelled]
    return candidates[0] if candidates else None


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
