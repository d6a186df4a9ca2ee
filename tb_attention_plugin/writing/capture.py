"""Capturing attention probabilities from a Keras 3 model without changing it.

While a probe function is traced, each captured layer instance gets wrappers
(on the instance, never the class) that record what it computes; the wrappers,
and the softmax hooks below, are removed right after the trace. The traced
graph keeps computing the probabilities with the model's current weights on
every later call, so the training step itself is never touched.

Layer families:
  * MultiHeadAttention / GroupQueryAttention (and subclasses such as
    keras_hub's CachedMultiHeadAttention): the wrapper around
    `_compute_attention` forces the scores (softmax before dropout) and
    records the attention mask it was given; a wrapper around `call` records
    whether queries and keys are the same sequence and `use_causal_mask`.
  * keras.layers.Attention / AdditiveAttention: `call` is run with
    `return_attention_scores=True`; the weights are (batch, q, k).
  * any other layer (found by its class name containing "Attention", such as
    keras_hub's LlamaAttention or T5MultiHeadAttention and hand-written
    layers, or named in `layers=`): the probabilities it computes with
    `keras.ops.softmax`, `keras.activations.softmax`, `tf.nn.softmax` or a
    `keras.layers.Softmax` sublayer while it runs. A layer named in `layers=`
    that computes no softmax is captured by its output (a `Dense(softmax)`
    block) or the second item of `(output, weights)`.
Every call of a captured layer on the probe is recorded (a layer shared by two
branches gives two maps), in the order the model runs them.
"""

import contextlib
import inspect

import keras
import numpy as np

from tb_attention_plugin.writing import backends
from tb_attention_plugin.writing import layouts
from tb_attention_plugin.writing import masks
from tb_attention_plugin.writing import value_vectors

MHA_CLASSES = (keras.layers.MultiHeadAttention, keras.layers.GroupQueryAttention)
DOT_ATTENTION_CLASSES = (keras.layers.Attention, keras.layers.AdditiveAttention)
KNOWN_CLASSES = MHA_CLASSES + DOT_ATTENTION_CLASSES

# Every public name a layer may compute a softmax through: Keras's, and the
# backend's own (backends.*.SOFTMAX_FUNCTIONS, e.g. `tf.nn.softmax`). The
# Keras ones all resolve to `keras.src.ops.nn.softmax`, which calls the
# backend's; the hooks pass nested calls through, so one softmax is recorded
# once.
_KERAS_SOFTMAX_FUNCTIONS = (
    (keras.src.ops, "softmax"),
    (keras.src.ops.nn, "softmax"),
    (keras.ops, "softmax"),
    (keras.ops.nn, "softmax"),
)


# Where a layer with its own softmax multiplies its probabilities with its
# values (keras_hub Llama, Gemma, ...: `ops.einsum`), read for the value
# norms of value-weighted attention (value_vectors.norms_of_product).
_KERAS_EINSUM_FUNCTIONS = (
    (keras.src.ops, "einsum"),
    (keras.src.ops.numpy, "einsum"),
    (keras.ops, "einsum"),
    (keras.ops.numpy, "einsum"),
)


class CaptureError(ValueError):
    """A layer that cannot be captured as it is; the message names the fix."""


def layer_path(layer):
    return getattr(layer, "path", None) or layer.name


def all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def _named_like_attention(layer):
    return not isinstance(layer, KNOWN_CLASSES) and "attention" in type(layer).__name__.lower()


def find_attention_layers(model):
    """Every Keras attention layer at any depth, and every other layer whose
    class is named like attention, unless it holds one of those (a block
    around a MultiHeadAttention is left to the layer inside)."""
    found = [
        layer for layer in all_layers(model)
        if isinstance(layer, KNOWN_CLASSES) or _named_like_attention(layer)
    ]
    found_ids = {id(layer) for layer in found}

    def holds_attention(layer):
        return any(id(inner) in found_ids for inner in layer._flatten_layers(include_self=False))

    return [layer for layer in found if isinstance(layer, KNOWN_CLASSES) or not holds_attention(layer)]


def holders_left_out(model, chosen):
    """[(path, why)] of the attention-like layers of `model` not among
    `chosen`: blocks named like attention that hold a chosen layer, and,
    when layers= picked some, the attention layers it did not name."""
    chosen_ids = {id(layer) for layer in chosen}
    left = []
    for layer in all_layers(model):
        if id(layer) in chosen_ids or not (isinstance(layer, KNOWN_CLASSES) or _named_like_attention(layer)):
            continue
        inner = [layer_path(l) for l in layer._flatten_layers(include_self=False) if id(l) in chosen_ids]
        why = ("holds %s, captured instead" % ", ".join(inner)) if inner else "not named in layers="
        left.append((layer_path(layer), "%s (%s)" % (why, type(layer).__name__)))
    return left


def select_layers(model, names):
    """Layers chosen by `layers=`: each name matches a layer's name, its
    Keras path, or its path as the model nests it (a tag, readable_tags).

    Returns:
      (layers, required): `required` is False for layers found only by their
      class name, which are dropped if they compute no softmax on the probe.

    Raises:
      ValueError: naming what was found, when nothing (or a name) is missing.
    """
    candidates = all_layers(model)
    if names is None:
        found = find_attention_layers(model)
        if not found:
            raise ValueError(
                "AttentionCallback found no attention layer in model \"%s\" (no "
                "MultiHeadAttention, GroupQueryAttention, Attention, "
                "AdditiveAttention or layer class named like attention, at any "
                "depth). Its layers are: %s. Pass layers=[\"name\"] to capture a "
                "layer that computes a softmax over keys, a layer whose output "
                "is attention weights (e.g. a Dense(softmax) block) or a custom "
                "layer that returns (output, weights)."
                % (model.name, _describe(candidates))
            )
        return found, [isinstance(layer, KNOWN_CLASSES) for layer in found]
    if isinstance(names, str):
        names = [names]
    nesting = _nesting(model)

    def named(layer, name):  # by name, Keras path, or path as nested (a tag)
        path = layer_path(layer)
        nested = "/".join(_nested_scopes(nesting.get(id(layer), []), path) + [path])
        return name in (layer.name, path) or ("/" + nested).endswith("/" + name)

    chosen = []
    for name in names:
        matches = [l for l in candidates if named(l, name)]
        if not matches:
            raise ValueError(
                "layers= names \"%s\", which is no layer of model \"%s\". Its layers "
                "are: %s. Pass their names or paths." % (name, model.name, _describe(candidates))
            )
        chosen.extend(l for l in matches if l not in chosen)
    return chosen, [True] * len(chosen)


def _describe(layers):
    shown = ", ".join(
        "%s (%s)" % (layer_path(l), type(l).__name__) for l in layers[:40]
    )
    return (shown or "none") + (" ..." if len(layers) > 40 else "")


def readable_tags(model, layers):
    """Each layer's tag: its Keras path where that is its own; where several
    layers share a path (seed 003's functional sub-models, each holding an
    `attention` layer), the path as the model nests it, from the shortest
    enclosing scope that tells them apart (`encoder_layer_1/attention`).
    Only layers whose whole nesting is alike get a suffix (`_2`, `_3`, ...,
    one that is no layer's name or path, numbered in the order the model
    runs them: numbered_in_run_order). Paths are compared among all the
    model's layers, so a layer's tag does not depend on which are captured.
    Returns a list, as `layers`, with such layers' tags still alike."""
    nesting = _nesting(model)
    everyone = all_layers(model)
    ids = {id(layer): i for i, layer in enumerate(everyone)}
    if any(id(layer) not in ids for layer in layers):  # not reachable from the model
        everyone = everyone + [layer for layer in layers if id(layer) not in ids]
        ids = {id(layer): i for i, layer in enumerate(everyone)}
    tags = _tags_of(everyone, nesting)
    return [tags[ids[id(layer)]] for layer in layers]


def _tags_of(layers, nesting):
    """readable_tags of every layer in `layers` (all of a model's)."""
    bases = [layer_path(layer) for layer in layers]
    tags = list(bases)
    taken = set(bases)
    for base in sorted(set(bases)):
        members = [i for i, b in enumerate(bases) if b == base]
        if len(members) < 2:
            continue
        full = [_nested_scopes(nesting.get(id(layers[i]), []), base) for i in members]
        longest = max(len(f) for f in full)
        candidates = [base] * len(members)  # no scope tells them apart
        for depth in range(1, longest + 1):
            candidates = ["/".join(f[-depth:] + [base]) for f in full]
            if len(set(candidates)) == len(candidates) and not taken & set(candidates):
                break
        for i, tag in zip(members, candidates):
            tags[i] = tag
        taken.update(candidates)
    return tags  # alike only where the whole nesting is: numbered_in_run_order


def numbered_in_run_order(tags, taken):
    """Tags made unique where layers share their whole nesting (a list of
    layers named alike in one block): `_2`, `_3`, ... in the order given
    (the order the model runs them), each suffix one that is not in `taken`
    (every layer's name and path) nor another tag."""
    out, seen = [], {}
    used = set(tags) | set(taken)
    for tag in tags:
        seen[tag] = seen.get(tag, 0) + 1
        if seen[tag] == 1:
            out.append(tag)
            continue
        n = seen[tag]
        while "%s_%d" % (tag, n) in used:
            n += 1
        seen[tag] = n
        used.add("%s_%d" % (tag, n))
        out.append("%s_%d" % (tag, n))
    return out


def _nesting(model):
    """{id(layer): names of the layers that hold it, outermost first} (the
    model itself left out), by the shortest way down from the model."""
    nesting, queue = {}, [(model, [])]
    while queue:
        holder, scopes = queue.pop(0)
        for layer in holder._flatten_layers(include_self=False, recursive=False):
            if id(layer) not in nesting:
                nesting[id(layer)] = scopes
                queue.append((layer, scopes + [layer.name]))
    return nesting


def _nested_scopes(scopes, path):
    """The enclosing scopes of a layer that its Keras path does not already
    start with (keras_hub's blocks name their sublayers' paths themselves)."""
    head = path.split("/")[:-1]
    for cut in range(len(scopes), 0, -1):
        if scopes[-cut:] == head[:cut]:
            return scopes[:-cut]
    return list(scopes)


class _Call:
    """What one call of a captured layer computed (symbolic tensors)."""

    def __init__(self, name, layer):
        self.name = name
        self.layer = layer
        self.links = None  # (query, key, outputs): positions in the trace's links
        self.scores = None
        self.mask = None
        self.convention = None  # masks.KEEP when the layer's semantics say so
        self.same_sequence = None  # scalar bool tensor, or None: unknown
        self.causal = False  # use_causal_mask was passed
        self.softmaxes = []  # (probabilities, mask or None, convention)
        self.output = None
        self.query = None  # the sequence the queries come from (symbolic)
        self.key = None  # the sequence the keys come from
        self.outputs = ()  # every tensor the call returned
        # (norms (batch, heads, keys), vector) of what each key sends
        # (value_vectors.norms), when known
        self.sent = None
        # per entry of `softmaxes`, the index of the gate the probabilities
        # were multiplied by (relevance: _Recorder.recorded_softmax), or None
        self.gates = []


class _Recorder:
    """The state of one trace: which captured layer is running, what it did."""

    def __init__(self):
        self.reset(lambda tensor: False)
        self.value_norms = True  # record value_vectors.norms where a layer shows its value

    def reset(self, live, gate=None):
        self._live = live
        # The backend's gate for gradient-weighted relevance, or None: a
        # function p -> p * g with g ones the backend differentiates by, so
        # that d target / d g = (d target / d p) * p (writing/relevance.py).
        self._gate = gate
        self.gate_count = 0
        self.calls = []  # _Call, in the order the model ran them
        self.stack = []  # the captured calls running now, innermost last
        self.in_softmax = False
        self.in_value_norms = False

    def live(self, tensor):
        """True for tensors of the probe's own trace (Keras also calls layers
        in scratch graphs to infer shapes); the backend tells."""
        return self._live(tensor)

    def recorded_softmax(self, record, probabilities, mask, convention):
        """Notes a probability map computed inside `record`'s call, and
        returns what the layer goes on with: the same map, multiplied by a
        gate of ones when relevance is asked."""
        record.softmaxes.append((probabilities, mask, convention))
        if self._gate is None:
            record.gates.append(None)
            return probabilities
        record.gates.append(self.gate_count)
        self.gate_count += 1
        return self._gate(probabilities)

    def begin(self, name, layer):
        call = _Call(name, layer)
        self.calls.append(call)
        self.stack.append(call)
        return call

    def end(self):
        self.stack.pop()

    def running(self, layer):
        """The innermost running call, if it is `layer`'s."""
        if self.stack and self.stack[-1] is not None and self.stack[-1].layer is layer:
            return self.stack[-1]
        return None


_is_tensor = keras.ops.is_tensor


def _first_tensor(values):
    return next((v for v in keras.tree.flatten(values) if _is_tensor(v)), None)


def _same_values(query, *others):
    """Scalar bool tensor: queries and keys/values are one sequence (self
    attention). Compared by value, since `mha(emb(x), emb(x))` gives two
    tensors with the same contents."""
    others = [o for o in others if o is not None and o is not query]
    if any(tuple(o.shape) != tuple(query.shape) for o in others):
        return keras.ops.convert_to_tensor(False)
    if not others:
        return keras.ops.convert_to_tensor(True)
    return keras.ops.all(keras.ops.stack([keras.ops.all(keras.ops.equal(o, query)) for o in others]))


def _patch_mha(layer, name, recorder):
    original_call = layer.call
    original_compute = layer._compute_attention
    call_signature = inspect.signature(original_call)
    compute_signature = inspect.signature(original_compute)
    is_gqa = isinstance(layer, keras.layers.GroupQueryAttention)

    def call(*args, **kwargs):
        bound = call_signature.bind(*args, **kwargs)
        query = bound.arguments.get("query")
        if not recorder.live(query):
            return original_call(*args, **kwargs)
        record = recorder.begin(name, layer)
        record.same_sequence = _same_values(
            query, bound.arguments.get("value"), bound.arguments.get("key")
        )
        record.causal = bool(bound.arguments.get("use_causal_mask", False))
        record.query = query
        record.key = next(
            (bound.arguments.get(k) for k in ("key", "value") if _is_tensor(bound.arguments.get(k))), query
        )
        try:
            outputs = original_call(*args, **kwargs)
        finally:
            recorder.end()
        record.outputs = tuple(keras.tree.flatten(outputs))
        return outputs

    def compute_attention(*args, **kwargs):
        bound = compute_signature.bind(*args, **kwargs)
        if "return_attention_scores" in compute_signature.parameters:
            bound.arguments["return_attention_scores"] = True
        if is_gqa:
            # GQA reads the flag from the instance, set by `call`.
            layer._return_attention_scores = True
        output, scores = original_compute(*bound.args, **bound.kwargs)
        record = recorder.running(layer)
        if record is not None and record.scores is None and recorder.live(scores):
            record.scores = scores
            record.mask = bound.arguments.get("attention_mask")
            record.convention = masks.KEEP
            if recorder.value_norms:
                # Inside the layer's call: on JAX the weights are then the
                # stateless call's values (each capture's), not constants of the trace.
                record.sent = value_vectors.norms(layer, bound.arguments.get("value"))
        return output, scores

    return {"call": call, "_compute_attention": compute_attention}


def _patch_dot_attention(layer, name, recorder):
    original_call = layer.call

    def call(inputs, mask=None, *args, **kwargs):
        asked = kwargs.pop("return_attention_scores", False)
        if not recorder.live(_first_tensor(inputs)):
            return original_call(inputs, mask, *args, return_attention_scores=asked, **kwargs)
        record = recorder.begin(name, layer)
        try:
            output, scores = original_call(
                inputs, mask, *args, return_attention_scores=True, **kwargs
            )
        finally:
            recorder.end()
        record.scores = scores
        record.same_sequence = _same_values(*inputs[:3])
        # [query, value] or [query, value, key]
        record.query, record.key = inputs[0], inputs[2] if len(inputs) > 2 else inputs[1]
        record.outputs = (output, scores)
        record.causal = bool(kwargs.get("use_causal_mask", False))
        record.mask = _mask_from_pair(mask, scores)
        record.convention = masks.KEEP
        return (output, scores) if asked else output

    return {"call": call}


def _mask_from_pair(mask, scores):
    """[query_mask, value_mask] of keras.layers.Attention -> (batch, q, k)."""
    if mask is None or all(m is None for m in mask):
        return None
    ops = keras.ops
    shape = ops.shape(scores)
    query = ops.ones(shape[:2], "bool") if mask[0] is None else ops.cast(mask[0], "bool")
    value = (
        ops.ones((shape[0], shape[2]), "bool")
        if len(mask) < 2 or mask[1] is None
        else ops.cast(mask[1], "bool")
    )
    return ops.logical_and(query[:, :, None], value[:, None, :])


# Layers that only rearrange what another layer computed.
_REARRANGING = ("Permute", "Reshape")


def source_class(layer):
    """The class name shown for a captured layer: its own, or for a layer
    that only rearranges probabilities (the seed's `attention_vec`, a
    Permute) the layer that computed them and the rearranging one, e.g.
    "Dense(softmax) via Permute"."""
    name = type(layer).__name__
    if name not in _REARRANGING:
        return name
    try:  # Keras 3: a functional layer's input knows the operation that made it
        producer = layer.input._keras_history.operation
    except (AttributeError, ValueError, RuntimeError):  # called more than once, or not in a graph
        return name
    inner = type(producer).__name__
    if getattr(getattr(producer, "activation", None), "__name__", "") == "softmax":
        inner += "(softmax)"
    return "%s via %s" % (inner, name)


def _patch_other(layer, name, recorder):
    """A layer that is not a Keras attention layer: record its call arguments
    and output; the softmax hooks record what it computes inside."""
    original_call = layer.call
    try:
        signature = inspect.signature(original_call)
    except (TypeError, ValueError):
        signature = None

    def call(*args, **kwargs):
        if not recorder.live(_first_tensor((args, kwargs))):
            return original_call(*args, **kwargs)
        record = recorder.begin(name, layer)
        arguments = _bind(signature, args, kwargs)
        record.mask = next(
            (v for k, v in arguments.items() if "mask" in k.lower() and _is_tensor(v)), None
        )
        try:
            outputs = original_call(*args, **kwargs)
        finally:
            recorder.end()
        record.output = outputs[1] if isinstance(outputs, (tuple, list)) and len(outputs) > 1 else outputs
        record.outputs = tuple(keras.tree.flatten(outputs))
        # Decided after the call: the probabilities' shape says which
        # arguments can be the query and key sequences.
        shape = tuple(record.softmaxes[0][0].shape) if len(record.softmaxes) == 1 else None
        query, key = pick_sequences(arguments, shape)
        if query is not None:
            record.query, record.key = query, key
            record.same_sequence = _same_values(query, key)
        return outputs

    return {"call": call}


# Words in an argument's name that say it is no query or key sequence
# (DeBERTa's `rel_embeddings`, rotary tables, T5's position bias, caches).
_NOT_A_SEQUENCE = ("mask", "bias", "cache", "position", "rel_", "relative", "rotary", "rope")
# Words that name the key (or value) sequence of a layer taking several.
_KEY_WORDS = ("key", "value", "context", "memory", "encoder")


def pick_sequences(arguments, probabilities_shape):
    """(query, key) sequences of a custom attention layer's call, from its
    arguments {name: value}, or (None, None) when none can be told.

    A sequence is a rank-3 float tensor (batch, length, features) whose name
    is not one of _NOT_A_SEQUENCE's. When the shape of the probabilities is
    known, a sequence must also match it: its batch, and a length that is
    the map's query length (axis -2, or 1 for (batch, q, heads, k)) or key
    length (axis -1); so a relative-position table (batch, 2 x span,
    features) is not taken for a second sequence unless its length happens
    to be the map's, and then its name still rules it out. The query is the
    first sequence; the key is the one named like a key, value, context,
    memory or encoder, else the next one, else the query itself.
    """

    def fits(tensor):
        if probabilities_shape is None:
            return True
        batch, length = tensor.shape[0], tensor.shape[1]
        lengths = {probabilities_shape[-1], probabilities_shape[-2]}
        if len(probabilities_shape) == 4:
            lengths.add(probabilities_shape[1])
        return (batch is None or probabilities_shape[0] is None or batch == probabilities_shape[0]) and (
            length is None or None in lengths or length in lengths)

    sequences = [
        (name, value) for name, value in arguments.items()
        if _is_tensor(value) and len(value.shape) == 3 and _is_float(value)
        and not any(word in name.lower() for word in _NOT_A_SEQUENCE) and fits(value)
    ]
    if not sequences:
        return None, None
    query = sequences[0][1]
    rest = sequences[1:]
    named_key = [v for n, v in rest if any(word in n.lower() for word in _KEY_WORDS)]
    key = named_key[0] if named_key else rest[0][1] if rest else query
    return query, key


def _is_float(tensor):
    return "float" in keras.backend.standardize_dtype(tensor.dtype)


def _bind(signature, args, kwargs):
    """{argument name: value} of one call; the items of a dict argument count
    as arguments (seed 003's layers take {"query", "key", "value", "mask"})."""
    named = None
    if signature is not None:
        try:
            named = dict(signature.bind(*args, **kwargs).arguments)
        except TypeError:
            pass
    if named is None:
        named = {"arg%d" % i: a for i, a in enumerate(args)}
        named.update(kwargs)
    flat = {}
    for name, value in named.items():
        if isinstance(value, dict):
            flat.update((str(k), v) for k, v in value.items())
        else:
            flat[name] = value
    return flat


def _patch_softmax_layer(softmax_layer, recorder):
    """A keras.layers.Softmax inside a captured layer (Llama's
    `attention_softmax`): records its output and the mask it applied."""
    original_call = softmax_layer.call

    def call(inputs, mask=None):
        record = recorder.stack[-1] if recorder.stack else None
        if record is None or recorder.in_softmax:
            return original_call(inputs, mask)
        recorder.in_softmax = True
        try:
            outputs = original_call(inputs, mask)
        finally:
            recorder.in_softmax = False
        if recorder.live(outputs) and len(outputs.shape) >= 3:
            return recorder.recorded_softmax(record, outputs, mask, masks.KEEP)
        return outputs

    return {"call": call}


def _softmax_hook(original, recorder):
    def softmax(x, *args, **kwargs):
        record = recorder.stack[-1] if recorder.stack else None
        if record is None or recorder.in_softmax:
            return original(x, *args, **kwargs)
        recorder.in_softmax = True
        try:
            outputs = original(x, *args, **kwargs)
        finally:
            recorder.in_softmax = False
        if recorder.live(outputs) and len(outputs.shape) >= 3:
            return recorder.recorded_softmax(record, outputs, None, None)
        return outputs

    return softmax


def _einsum_hook(original, recorder):
    """Reads the value operand of the first einsum a captured layer with its
    own softmax runs on its probabilities (value_vectors.norms_of_product):
    inside the layer's call, so that on JAX the output projection's weights
    are the stateless call's. Keras's attention layers are read in
    `_compute_attention` instead."""

    def einsum(equation, *operands, **kwargs):
        out = original(equation, *operands, **kwargs)
        record = recorder.stack[-1] if recorder.stack else None
        if (record is None or recorder.in_value_norms or record.sent is not None or not record.softmaxes
                or len(operands) != 2 or isinstance(record.layer, MHA_CLASSES) or not recorder.live(out)):
            return out
        probabilities = record.softmaxes[-1][0]
        shape = tuple(probabilities.shape)
        matches = [i for i, operand in enumerate(operands)
                   if operand is probabilities or tuple(getattr(operand, "shape", ())) == shape]
        if len(matches) != 1:
            return out
        recorder.in_value_norms = True  # its own einsums are not the layer's
        try:
            record.sent = value_vectors.norms_of_product(
                record.layer, equation, operands[matches[0]], operands[1 - matches[0]], matches[0] == 0)
        except Exception:  # a product of another form: no value norms, the capture goes on
            record.sent = None
        finally:
            recorder.in_value_norms = False
        return out

    return einsum


# keras_hub's attention layers (Llama, Gemma, Mistral, ...) compute their
# attention with a fused `ops.dot_product_attention` where the backend has one
# (JAX, torch), which never forms the probabilities. While the probe is
# traced they are told it is missing, so they take their own explicit path
# (scores, their masked softmax, the product with the values): the same
# function of the same weights, whose probabilities the hooks then see. The
# training step, traced by Keras apart from the probe, keeps the fused op.
_FUSED_SWITCH = "fused_attention_op_available"  # a function each such module imports
_FUSED_METHOD = "_use_fused_attention_op"  # Gemma's per-layer switch


def _no_fused_attention(*args, **kwargs):
    return False


def _explicit_path_patches(layers):
    """[(module, attribute)] of the fused-attention switches the modules of
    the layers' classes (and their bases) hold."""
    modules = {}
    for layer in layers:
        for cls in type(layer).__mro__:
            module = inspect.getmodule(cls)
            if module is not None and callable(getattr(module, _FUSED_SWITCH, None)):
                modules[id(module)] = module
    return [(module, _FUSED_SWITCH) for module in modules.values()]


def _patches_for(layer, name, recorder):
    """{(object, attribute): replacement} for one captured layer."""
    if isinstance(layer, MHA_CLASSES):
        patches = _patch_mha(layer, name, recorder)
    elif isinstance(layer, DOT_ATTENTION_CLASSES):
        patches = _patch_dot_attention(layer, name, recorder)
    else:
        patches = _patch_other(layer, name, recorder)
        if callable(getattr(layer, _FUSED_METHOD, None)):
            yield (layer, _FUSED_METHOD), _no_fused_attention
        for inner in layer._flatten_layers(include_self=False, recursive=True):
            if isinstance(inner, keras.layers.Softmax):
                for attr, fn in _patch_softmax_layer(inner, recorder).items():
                    yield (inner, attr), fn
    for attr, fn in patches.items():
        yield (layer, attr), fn


class Captured:
    """One call of one layer on the probe, as numpy arrays."""

    def __init__(self, name, layer, scores, mask, convention, same_sequence, causal, source,
                 query_inputs=None, key_inputs=None, kv_heads=None, value_norms=None, value_vector=None,
                 relevance=None):
        self.name = name  # the layer's tag name (path, unique; `/call_2`... for later calls)
        self.layer = layer
        # (batch, heads, q, k) or (batch, q, k) (layouts.query_heads), or what
        # a picked layer returned; in the dtype the layer computed it in.
        self.scores = scores
        self.kv_heads = kv_heads  # key/value heads of grouped-query attention, else None
        self.mask = mask  # the mask the layer applied, any form of masks.py, or None
        self.convention = convention  # masks.KEEP, or None: decide from the data
        self.same_sequence = same_sequence  # True / False, or None: unknown
        self.causal = causal  # the layer was told to mask causally
        self.source = source  # "scores", "softmax" or "output": how it was found
        # Positions in keras.tree.flatten(probe) of the inputs whose sequence
        # the queries (keys) are (see stream_sources); None: not known.
        self.query_inputs = query_inputs
        self.key_inputs = key_inputs
        # float32 (batch, heads, keys): the norm of what each key sends
        # through each head (value_vectors.norms), and which vector that is
        # (value_vectors.VALUE_OUTPUT / VALUE_ONLY); None where not known.
        self.value_norms = value_norms
        self.value_vector = value_vector
        # (batch, heads, q, k) as `scores`: (d target / d A) * A, the gradient
        # of the explained output by the weights times the weights
        # (writing/relevance.py), when asked and known; else None.
        self.relevance = relevance


class ProbeFunction:
    """The model's forward pass on the probe, returning every layer's
    attention. Traced once (with the hooks installed) when built, by the
    backend Keras runs on (backends/); calling it runs the traced function
    with the model's weights as they are then and returns a list of
    `Captured`, in the order the model ran the layers.

    Raises (when built):
      CaptureError: a required layer recorded nothing, or a layer computed
        several softmaxes per call (it holds several attentions).
    """

    def __init__(self, model, layers, required, probe, names=None, value_norms=True, explain=None):
        backend = backends.current()
        names = names or readable_tags(model, layers)
        everyone = all_layers(model)
        self._taken = {layer_path(l) for l in everyone} | {l.name for l in everyone}
        recorder = _Recorder()
        recorder.value_norms = value_norms
        self.skipped = []  # layers found by class name that computed no softmax
        self.map_bytes_per_example = None  # set by the trace
        required_by_layer = {id(l): r for l, r in zip(layers, required)}

        def forward(x, call_model, live, gate=None):
            recorder.reset(live, gate)
            call_model(x)
            out = self._plan(recorder.calls, names, required, required_by_layer)
            # The maps' sizes are static in the trace, whatever batch it ran at
            # (PyTorch traces one example): known before the first capture runs.
            # A layer explained (relevance) holds a second map, its gradient product.
            self.map_bytes_per_example = _float32_bytes_per_example(
                [values["scores"] for values in out.values()]
                + [values["scores"] for key, values in out.items() if explain and key in self._explainable])
            return out, _links(recorder.calls)

        @contextlib.contextmanager
        def hooked():
            """The hooks, installed for the block only (a trace, or on an
            eager backend every run of the probe)."""
            installed = []
            try:
                for layer, name in zip(layers, names):
                    for (owner, attr), fn in _patches_for(layer, name, recorder):
                        object.__setattr__(owner, attr, fn)
                        installed.append((owner, attr, None))
                for module, attr in _KERAS_SOFTMAX_FUNCTIONS + tuple(backend.SOFTMAX_FUNCTIONS):
                    original = getattr(module, attr)
                    setattr(module, attr, _softmax_hook(original, recorder))
                    installed.append((module, attr, original))
                if value_norms:
                    for module, attr in _KERAS_EINSUM_FUNCTIONS:
                        original = getattr(module, attr)
                        setattr(module, attr, _einsum_hook(original, recorder))
                        installed.append((module, attr, original))
                for module, attr in _explicit_path_patches(layers):
                    installed.append((module, attr, getattr(module, attr)))
                    setattr(module, attr, _no_fused_attention)
                yield
            finally:
                for owner, attr, original in reversed(installed):
                    if original is None:
                        object.__delattr__(owner, attr)
                    else:
                        setattr(owner, attr, original)

        # With `explain` (writing/relevance.py: the model's outputs -> the
        # scalar to explain), every run also gives the gradient of it by each
        # recorded probability map's gate: relevance (Chefer et al.).
        self._traced = backend.trace(model, probe, forward, hooked, explain)
        sources = stream_sources(recorder.calls, self._traced)
        self._traced.forget_history()
        recorder.reset(lambda tensor: False)  # drops the traced tensors: needed no more
        # {key: (query inputs, key inputs)}; found once, as the calls of every
        # run are the same (an eager backend records them anew each run)
        self._streams = {key: sources.get(meta[6], (None, None)) for key, meta in self._meta.items()}

    def _plan(self, calls, names, required, required_by_layer):
        """Picks what to return for every recorded call: {key: tensors}, the
        keys sorting in the order the model ran the calls."""
        counts, out, meta = {}, {}, {}
        self._gates = {}  # key -> index of its probabilities' gate (relevance), or None
        self._explainable = set()  # keys whose probabilities one gate multiplies
        ran = set()
        first_calls = list({id(call.layer): call for call in reversed(calls)}.values())[::-1]
        tags = dict(zip((id(call.layer) for call in first_calls),
                        numbered_in_run_order([call.name for call in first_calls], self._taken)))
        for call in calls:
            chosen = self._choose(call, required_by_layer[id(call.layer)])
            if chosen is None:
                continue
            scores, mask, convention, source = chosen
            sent = call.sent if source in ("scores", "softmax") else None
            tag = tags[id(call.layer)]
            counts[tag] = counts.get(tag, 0) + 1
            name = tag if counts[tag] == 1 else "%s/call_%d" % (tag, counts[tag])
            ran.add(call.name)
            key = "c%03d" % len(out)
            out[key] = {
                "scores": scores,
                "mask": mask if mask is not None else keras.ops.zeros([0]),
                "same_sequence": keras.ops.convert_to_tensor(-1, "int32") if call.same_sequence is None
                else keras.ops.cast(call.same_sequence, "int32"),
                "value_norms": keras.ops.zeros([0]) if sent is None else sent[0],
            }
            explainable = source in ("scores", "softmax") and len(call.gates) == 1
            self._gates[key] = call.gates[0] if explainable else None
            if explainable:
                self._explainable.add(key)
            meta[key] = (name, call.layer, mask is not None, convention, call.causal, source,
                         id(call), _static_length(call.query), None if sent is None else sent[1])
        missing = [n for n, r in zip(names, required) if r and n not in ran]
        if missing:
            raise CaptureError(
                "these layers did not run on the probe, so no attention was "
                "recorded: %s. Check that the probe is the input the model "
                "takes and that the layers are on its forward path" % missing
            )
        self.skipped = [n for n, r in zip(names, required) if not r and n not in ran]
        self._meta = meta
        return out

    @staticmethod
    def _choose(call, required):
        """(scores, mask, convention, source) of one call, or None to skip."""
        if call.scores is not None:
            return call.scores, call.mask, call.convention, "scores"
        if len(call.softmaxes) == 1:
            probabilities, mask, convention = call.softmaxes[0]
            if mask is None:
                mask, convention = call.mask, None
            return probabilities, mask, convention, "softmax"
        if len(call.softmaxes) > 1:
            inner = [
                layer_path(l) for l in call.layer._flatten_layers(include_self=False, recursive=True)
                if isinstance(l, KNOWN_CLASSES) or _named_like_attention(l)
            ]
            raise CaptureError(
                "layer \"%s\" computes %d softmaxes each time it runs, so it holds "
                "several attentions. Pass layers=[...] with the attention layers "
                "inside it%s."
                % (call.name, len(call.softmaxes), " (%s)" % ", ".join(inner) if inner else "")
            )
        if required and call.output is not None:
            return call.output, None, None, "output"
        return None

    def __call__(self):
        result = dict(self._traced.run())
        # (d target / d gate) = (d target / d p) * p per gate, in gate order
        gradients = result.pop("relevance", None)
        captured = []
        for key in sorted(result):
            name, layer, has_mask, convention, causal, source, _, query_length, value_vector = self._meta[key]
            query_inputs, key_inputs = self._streams[key]
            values = result[key]
            same = int(values["same_sequence"])
            scores = values["scores"]
            mask = values["mask"] if has_mask else None
            kv_heads = None
            gate = self._gates.get(key)
            relevance = None if gradients is None or gate is None else gradients[gate]
            if source != "output":  # a picked layer's output is checked as it is
                scores, mask, kv_heads = layouts.query_heads(scores, mask, query_length)
                if relevance is not None:
                    relevance = layouts.query_heads(relevance, None, query_length)[0]
            captured.append(Captured(
                name=name,
                layer=layer,
                scores=scores,
                mask=mask,
                kv_heads=kv_heads,
                convention=convention,
                same_sequence=None if same < 0 else bool(same),
                causal=causal,
                source=source,
                query_inputs=query_inputs,
                key_inputs=key_inputs,
                value_norms=values["value_norms"] if value_vector else None,
                value_vector=value_vector,
                relevance=relevance,
            ))
        return captured


def _float32_bytes_per_example(maps):
    """Bytes one probe example's maps take as float32 numpy arrays (what
    every capture holds on the host), from their traced shapes; None when a
    shape is not static."""
    total = 0
    for tensor in maps:
        dims = tuple(tensor.shape)[1:]
        if any(d is None for d in dims):
            return None
        total += 4 * int(np.prod(dims, dtype=np.int64))
    return total


def _static_length(sequence):
    """The length (axis 1) of a recorded query sequence, when known."""
    shape = getattr(sequence, "shape", None)
    if shape is None or len(shape) < 2:
        return None
    return shape[1]


def _links(calls):
    """The tensors whose history stream_sources asks, as a flat list; each
    call with a known query notes where its own are (`call.links`)."""
    links = []
    for call in calls:
        if call.query is None or not _is_tensor(call.query):
            continue
        outputs = [o for o in call.outputs if _is_tensor(o)]
        start = len(links)
        links.extend([call.query, call.key if _is_tensor(call.key) else call.query] + outputs)
        call.links = (start, start + 1, range(start + 2, start + 2 + len(outputs)))
    return links


def stream_sources(calls, traced):
    """{id(call): (query inputs, key inputs)}: which of the probe's inputs
    (positions in keras.tree.flatten(probe)) each recorded call's query and
    key sequences come from, by walking the traced function's history back
    from those tensors (`traced`: a backend's Traced, whose nodes are graph
    tensors on TensorFlow and jaxpr variables on JAX).

    An attention call mixes sequences: its output rows are its query
    positions, with keys and values from anywhere (the encoder, in cross
    attention). So the walk steps from an attention call's output straight
    to its query, never into its keys, values or mask; everything else
    (embeddings, additions, norms, residuals) is followed to the inputs.
    The decoder's later layers are thus traced to the decoder's tokens,
    whatever the lengths, and BERT's to token_ids and segment_ids (the
    caller drops inputs that carry no tokens).
    """
    key, links = traced.key, traced.links
    index = {key(node): i for i, node in enumerate(traced.inputs) if traced.is_node(node)}
    jump = {}
    for call in calls:  # outer calls first: their query is the stream
        if call.links is None:
            continue
        for position in call.links[2]:
            if traced.is_node(links[position]):
                jump.setdefault(key(links[position]), links[call.links[0]])
    memo = {}

    def sources(node):
        if not traced.is_node(node):  # a constant
            return frozenset()
        stack = [node]
        while stack:
            current = stack[-1]
            name = key(current)
            if name in memo:
                stack.pop()
                continue
            if name in index:
                memo[name] = frozenset([index[name]])
                stack.pop()
                continue
            before = [jump[name]] if name in jump else traced.parents(current)
            before = [t for t in before if traced.is_node(t)]
            pending = [t for t in before if key(t) not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[name] = frozenset().union(*(memo[key(t)] for t in before))
            stack.pop()
        return memo[key(node)]

    return {id(call): (sources(links[call.links[0]]), sources(links[call.links[1]]))
            for call in calls if call.links is not None}
