"""Real query rows and key columns from any attention mask a layer was given.

Pure numpy. Keras and keras_hub pass masks in many forms; all of them are
broadcast to the scores `(batch, heads, q, k)`:

  (batch, k)                  key padding (e.g. a `padding_mask` input)
  (batch, 1, k)               broadcast padding (BERT, BART, TransformerEncoder)
  (batch, q, k)               padding and/or causal (MultiHeadAttention, GPT-2)
  (batch, 1, q, k), (batch, 1, 1, k), (batch, heads, q, k)

and in three conventions:

  "keep"     boolean or 0/1, True/1 where attention is allowed (Keras).
  "drop"     0/1 where 1 marks a masked position (the TensorFlow tutorial's
             `create_padding_mask`, seed 003).
  "additive" float added to the logits: 0 where allowed, a large negative
             number (-1e9, -1e4, -inf) where masked.

A boolean mask is always "keep". A 0/1 number mask is ambiguous; when the
layer's own probabilities are at hand, the convention under which the
positions it masks carry (almost) no attention is the one the layer used.
"""

import numpy as np

from tb_attention_plugin.writing import messages

KEEP, DROP, ADDITIVE = "keep", "drop", "additive"

# An additive mask entry at or below this masks its position: real masks use
# -1e4 (float16-safe), -1e9 or -inf; position biases stay far above it.
ADDITIVE_MASKED_BELOW = -1e3

# The most attention a row may put on positions a convention says are masked
# for that convention to be the layer's. exp(-1e4) underflows to 0, so a
# masked position holds 0 up to float32 rounding of the row.
MASKED_MASS_TOLERANCE = 1e-3


class UnknownMaskForm(ValueError):
    """A mask whose shape or values cannot be read as an attention mask."""


def broadcast_mask(mask, scores_shape):
    """A mask of any supported shape -> (batch, heads or 1, q or 1, k or 1).

    Args:
      mask: array of rank 2 to 4 (see the module docstring).
      scores_shape: (batch, heads, q, k) of the scores it masks.

    Raises:
      UnknownMaskForm: the shape does not broadcast to the scores.
    """
    mask = np.asarray(mask)
    batch, heads, q, k = scores_shape
    if mask.ndim == 2:
        if mask.shape == (batch, k):
            mask = mask[:, None, None, :]
        elif mask.shape == (q, k) and q != batch:  # one mask for every example
            mask = mask[None, None]
        else:
            raise UnknownMaskForm("a rank-2 mask of shape %s" % messages.shape(mask.shape))
    elif mask.ndim == 3:
        mask = mask[:, None]
    elif mask.ndim != 4:
        raise UnknownMaskForm("a rank-%d mask of shape %s" % (mask.ndim, messages.shape(mask.shape)))
    for size, full in zip(mask.shape, (batch, heads, q, k)):
        if size not in (1, full):
            raise UnknownMaskForm(
                "a mask of shape %s for attention of shape %s"
                % (messages.shape(mask.shape), messages.shape(scores_shape))
            )
    return mask


def allowed(mask, convention):
    """Boolean 'attention allowed here' of a broadcast mask."""
    mask = np.asarray(mask)
    if convention == KEEP:
        return mask > 0.5 if mask.dtype != bool else mask
    if convention == DROP:
        return ~(mask > 0.5) if mask.dtype != bool else ~mask
    if convention == ADDITIVE:
        return mask > ADDITIVE_MASKED_BELOW
    raise ValueError("unknown mask convention %r" % (convention,))


def conventions_to_try(mask):
    """The conventions a mask's dtype and values admit, most likely first."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return [KEEP]
    if np.any(mask < 0):
        return [ADDITIVE]
    if np.all((mask == 0) | (mask == 1)):
        return [KEEP, DROP]
    raise UnknownMaskForm(
        "mask values in [%g, %g] are neither 0/1 nor an additive mask"
        % (float(mask.min()), float(mask.max()))
    )


def masked_mass(allowed_cells, scores):
    """The most attention any row puts on cells it may not attend to.

    Rows with no allowed cell are left out: implementations differ in what
    they return for them (zeros in Keras, uniform rows with additive masks).

    Args:
      allowed_cells: boolean, broadcastable to scores.
      scores: (batch, heads, q, k).
    """
    allowed_cells = np.broadcast_to(allowed_cells, scores.shape)
    some_allowed = allowed_cells.any(axis=-1)
    outside = np.where(allowed_cells, 0.0, scores).sum(axis=-1)
    outside = np.where(some_allowed, outside, 0.0)
    return float(outside.max()) if outside.size else 0.0


def real_tokens(mask, scores, convention=None):
    """Which query rows and key columns of each example hold real tokens.

    A key is real when some query may attend to it; a query is real when it
    may attend to some key. (For self attention, callers also drop query rows
    whose own key is padding: a causal + padding mask lets padded queries
    attend to earlier real keys.)

    Args:
      mask: the mask the layer applied, any form of the module docstring.
      scores: (batch, heads, q, k) probabilities the layer computed with it.
      convention: KEEP, DROP or ADDITIVE when known (a Keras layer's own
        mask is KEEP); None decides from the mask's values and the scores.

    Returns:
      (query_valid (batch, q), key_valid (batch, k)) booleans; None for a
      side the mask does not cover (size 1 there: a `(batch, 1, k)` padding
      mask says nothing about the queries).

    Raises:
      UnknownMaskForm: a shape that does not broadcast, values of no known
        convention, or a mask the scores do not follow.
    """
    return real_tokens_of(allowed_cells(mask, scores, convention))


def real_tokens_of(cells):
    """(query_valid, key_valid) of `allowed_cells`' result, as
    `real_tokens` returns them."""
    query_valid = cells.any(axis=(1, 3)) if cells.shape[2] != 1 else None
    key_valid = cells.any(axis=(1, 2)) if cells.shape[3] != 1 else None
    return query_valid, key_valid


def allowed_cells(mask, scores, convention=None):
    """Where the layer's mask allows attention: boolean, the mask's shape
    broadcast to (batch, heads or 1, q or 1, k or 1), under the mask's
    convention (decided as `real_tokens` says).

    Raises:
      UnknownMaskForm: as `real_tokens`.
    """
    scores = np.asarray(scores)
    mask = broadcast_mask(mask, scores.shape)
    candidates = [convention] if convention else conventions_to_try(mask)
    chosen = None
    for candidate in candidates:
        cells = allowed(mask, candidate)
        if masked_mass(cells, scores) <= MASKED_MASS_TOLERANCE:
            chosen = cells
            break
    if chosen is None:
        if convention:  # the layer's own convention: trust it
            chosen = allowed(mask, convention)
        else:
            raise UnknownMaskForm(
                "the attention does not follow the mask of shape %s under any "
                "convention (%s)" % (mask.shape, ", ".join(candidates))
            )
    return np.broadcast_to(chosen, scores.shape[:1] + mask.shape[1:])


def sliding_window(cells, query_valid=None, key_valid=None):
    """The sliding window W of a self-attention mask, or 0 for none: the
    window (keras_hub Gemma3's local layers) when, on the real tokens, the
    allowed cells are exactly |i - j| < W (and j <= i for a causal mask)
    with W shorter than the longest real sequence, so that it hides keys.

    Args:
      cells: boolean (batch, heads or 1, q, k), as `allowed_cells` gives,
        q == k (positions i, j in the padded input).
      query_valid, key_valid: (batch, q) / (batch, k) real tokens, or None.
    """
    cells = np.asarray(cells).all(axis=1)  # allowed for every head
    batch, q, k = cells.shape
    if q != k or q < 2:
        return 0
    real = np.ones((batch, q, k), dtype=bool)
    if query_valid is not None:
        real &= np.asarray(query_valid)[:, :, None]
    if key_valid is not None:
        real &= np.asarray(key_valid)[:, None, :]
    seen = cells & real
    if not seen.any():
        return 0
    rows, cols = np.arange(q)[:, None], np.arange(k)[None, :]
    distance = np.abs(rows - cols)
    window = int(distance[seen.any(axis=0)].max()) + 1
    if window >= int(real.any(axis=2).sum(axis=1).max()):
        return 0  # every real key is in reach: nothing hidden
    band = distance < window
    if not (seen & (cols > rows)).any():  # causal: no key after its query
        band &= cols <= rows
    return window if np.array_equal(seen, band[None] & real) else 0
