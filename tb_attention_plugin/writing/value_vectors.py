"""How much each key sends through each head: the norms behind
value-weighted attention (Kobayashi, Kuribayashi, Yokoi and Inui, EMNLP
2020, "Attention is Not Only a Weight: Analyzing Transformers with Vector
Norms").

A head h of a Keras `MultiHeadAttention` (and its keras_hub subclasses) or
`GroupQueryAttention` outputs, for query i,

    sum_j a_hij f_h(x_j),   f_h(x) = (x W_V^h + b_V^h) W_O^h,

and the output projection's bias is added once after the heads are summed.
Since a_hij >= 0, the size of what key j passes to query i is
a_hij ||f_h(x_j)||: the attention weight times a norm that depends on the
head and the key only. So a capture stores the weights as it always did and
these norms, (batch, heads, keys), and value-weighted maps are their product
(reader, tab): exact, and 1/q the bytes of a second map.

Computed in the probe's own pass from the projected value tensor the layer
hands to `_compute_attention`, (batch, keys, heads, value_dim), and the
output projection's kernel, (heads, value_dim, width), through the per-head
Gram matrix W_O^h W_O^h^T (value_dim x value_dim): ||v W||^2 = v (W W^T) v^T,
with no (batch, heads, keys, width) tensor (134 MB per example for an 8-head
layer of width 2048 at 2048 tokens).

Where the output projection cannot be applied per head (a gated
GroupQueryAttention multiplies the heads' output by the query's gate before
it; a quantized or reshaped kernel), the norm is that of the value vector
itself, x W_V^h + b_V^h, and stored as such (`VALUE_ONLY`).

A layer with its own softmax (keras_hub Llama, Gemma, Mistral, Qwen) hands
its probabilities to one `ops.einsum` with the values, e.g. Gemma's
"bkgts,bskh->btkgh" (batch, key/value heads, groups, queries, keys) x
(batch, keys, key/value heads, dim): the value operand of that product is
read there (`norms_of_product`), its heads laid out as the probabilities'
query heads (layouts.py: key/value head k, group g is query head k * G + g),
and the output projection is the layer's `_output_dense` / `output_dense`
when its kernel is (query heads, dim, width).
"""

import keras
import numpy as np

VALUE_OUTPUT = "value_output"
VALUE_ONLY = "value_only"


OUTPUT_PROJECTIONS = ("_output_dense", "output_dense")  # Keras's and keras_hub's names


def output_kernel(layer, heads, value_dim):
    """The output projection's kernel as (heads, value_dim, width), or None
    when it is not one such per-head projection of the heads' outputs."""
    if getattr(layer, "use_gate", False):
        return None  # GQA's gate multiplies each query's output before W_O
    dense = next((getattr(layer, name) for name in OUTPUT_PROJECTIONS if getattr(layer, name, None) is not None), None)
    if dense is None or getattr(dense, "quantization_mode", None):
        return None
    kernel = getattr(dense, "kernel", None)  # with a LoRA update, the merged kernel
    if kernel is None or len(kernel.shape) != 3 or tuple(kernel.shape[:2]) != (heads, value_dim):
        return None
    return kernel


def norms(layer, value):
    """(float32 (batch, heads, keys) norms, VALUE_OUTPUT or VALUE_ONLY) for a
    layer's projected `value` (batch, keys, heads, value_dim), or None when
    the value is not of that form (attention over several axes)."""
    if value is None or len(value.shape) != 4:
        return None
    heads, value_dim = value.shape[2], value.shape[3]
    value = keras.ops.cast(value, "float32")
    kernel = output_kernel(layer, heads, value_dim)
    if kernel is None:
        squares, vector = keras.ops.sum(keras.ops.square(value), axis=-1), VALUE_ONLY
    else:
        # Read in the traced pass, as the layer reads it (each capture sees
        # that step's weights; on JAX the stateless call's values).
        kernel = keras.ops.cast(kernel, "float32")
        gram = keras.ops.einsum("hde,hfe->hdf", kernel, kernel)
        squares = keras.ops.sum(keras.ops.einsum("bkhd,hdf->bkhf", value, gram) * value, axis=-1)
        vector = VALUE_OUTPUT
    # v G v^T of a positive semi-definite G can round below 0 by a few ulps
    norms_ = keras.ops.sqrt(keras.ops.maximum(squares, 0.0))
    return keras.ops.transpose(norms_, (0, 2, 1)), vector



def norms_of_product(layer, equation, probabilities, value, probabilities_first=True):
    """The norms of a custom layer's values, read from the einsum that
    multiplies its probabilities with them, as `norms` gives them, or None
    when the equation is not of that form.

    `equation` as given to einsum, `probabilities` and `value` its two
    operands (`probabilities_first`: in that order). The probabilities'
    subscripts are batch, head letters, query, key (the softmax's axis
    last); the value's hold the batch, the key, head letters that begin the
    probabilities' (the key/value heads; the groups follow them) and one
    letter of its own (the dimension).
    """
    try:
        inputs, _ = equation.replace(" ", "").split("->")
        first, second = inputs.split(",")
    except (AttributeError, ValueError):
        return None
    probs, values = (first, second) if probabilities_first else (second, first)
    if len(probs) != len(probabilities.shape) or len(values) != len(value.shape) or len(set(values)) != len(values):
        return None
    batch, heads, key = probs[0], probs[1:-2], probs[-1]
    own = [letter for letter in values if letter not in probs]
    shared = "".join(letter for letter in values if letter in heads)
    if len(probs) < 4 or len(own) != 1 or batch not in values or key not in values \
            or not heads.startswith(shared) or len(values) != len(shared) + 3:
        return None
    # (batch, keys, key/value heads..., dim) -> (batch, keys, Hv, dim)
    order = [values.index(batch), values.index(key)] + [values.index(l) for l in shared] + [values.index(own[0])]
    value = keras.ops.transpose(value, order)
    shape = tuple(value.shape)
    value_heads = int(np.prod(shape[2:-1], dtype=np.int64))
    query_heads = int(np.prod(tuple(probabilities.shape)[1:-2], dtype=np.int64))
    if None in shape[1:] or query_heads % value_heads:
        return None
    value = keras.ops.reshape(value, (-1, shape[1], value_heads, shape[-1]))
    if query_heads != value_heads:  # each key/value head serves the groups after it
        value = keras.ops.repeat(value, query_heads // value_heads, axis=2)
    return norms(layer, value)
