"""The head layouts attention layers compute, brought to one: (batch, heads,
q, k) with head n the layer's n-th query head.

Pure numpy, backend-neutral: applied to what a capture recorded, before
anything is checked or stored. The layouts seen in real layers:

  (batch, heads, q, k)              Keras MultiHeadAttention, Llama, T5, ...
  (batch, q, k)                     Keras Attention, one head (kept as is)
  (batch, kv_heads, groups, q, k)   grouped-query attention that keeps key/value
                                    heads and groups apart (keras_hub Gemma,
                                    Gemma3: einsum "btkgh,bskh->bkgts")
  (batch, q, heads, k)              heads after the query axis (einsum
                                    "bqhd,bkhd->bqhk"), told apart from
                                    (batch, heads, q, k) by the query length

Grouped layouts come from a query reshape (batch, q, heads, dim) ->
(batch, q, kv_heads, groups, dim), which lays query head n out as
kv_head * groups + group: flattening (kv_heads, groups) in C order gives
each query head its own index back.
"""

import numpy as np


def query_heads(scores, mask=None, query_length=None):
    """Brings a layer's probabilities (and the mask it applied) to
    (batch, heads, q, k), or leaves (batch, q, k) as it is.

    Args:
      scores: the probabilities as the layer computed them (any layout of
        the module docstring).
      mask: the mask the layer gave its softmax, shaped to broadcast
        against `scores`, or None. Masks of rank < scores' rank are left as
        they are (they broadcast over the trailing axes already).
      query_length: the length of the query sequence, when known; it tells
        (batch, q, heads, k) from (batch, heads, q, k).

    Returns:
      (scores, mask, kv_heads): kv_heads is the number of key/value heads of
      a grouped layout, else None. Other ranks come back unchanged, for the
      caller's check to refuse with the layer's name.
    """
    scores = np.asarray(scores)
    if scores.ndim == 5:
        batch, kv_heads, groups, q, k = scores.shape
        scores = scores.reshape(batch, kv_heads * groups, q, k)
        if mask is not None and np.ndim(mask) == 5:
            mask = np.asarray(mask)
            if mask.shape[1] == 1 and mask.shape[2] == 1:
                mask = mask[:, 0]  # the same for every head: (batch, 1, q, k)
            else:
                mask = np.broadcast_to(mask, (mask.shape[0], kv_heads, groups) + mask.shape[3:])
                mask = mask.reshape((mask.shape[0], kv_heads * groups) + mask.shape[3:])
        return scores, mask, kv_heads
    if scores.ndim == 4:
        if query_length is not None and scores.shape[1] == query_length != scores.shape[2]:
            scores = np.swapaxes(scores, 1, 2)
            if mask is not None and np.ndim(mask) == 4:
                mask = np.swapaxes(mask, 1, 2)
        return scores, mask, None
    return scores, mask, None  # (batch, q, k), or a rank the caller refuses
