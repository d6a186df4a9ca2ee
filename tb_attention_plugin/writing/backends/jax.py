"""Capture on Keras's JAX backend: the probe's forward pass is a stateless
call of the model (its variables passed in, so every capture sees the
weights of that step) traced once with `jax.jit(...).trace`, with capture's
hooks active. Its jaxpr is then both the history of every tensor (which
equation made a variable from which) and, replayed without the history's
extra outputs, the one compiled function every capture runs.

The weights are read where the JAX trainer keeps them during `fit`
(`model._jax_state`, between Keras's syncs), so a capture never forces a
sync of the model's variables (`Callback.model` does one on every read)."""

import jax
import keras
import numpy as np
from jax.extend import core as jax_core

SOFTMAX_FUNCTIONS = ((jax.nn, "softmax"),)


def _state(model):
    """(trainable, non-trainable) values of the model's variables now."""
    state = getattr(model, "_jax_state", None)
    if state and not getattr(model, "_jax_state_synced", True):
        trainable = state.get("trainable_variables")
        non_trainable = state.get("non_trainable_variables")
        if trainable is not None and non_trainable is not None:
            return list(trainable), list(non_trainable)
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables])


def _model_caller(model, trainable, non_trainable, seen):
    """call_model for `forward`: the model as Keras's JAX predict step calls
    it, its outputs kept in `seen`."""
    kwargs = {"training": False} if getattr(model, "_call_has_training_arg", True) else {}

    def call_model(inputs):
        seen["outputs"], _ = model.stateless_call(trainable, non_trainable, inputs, **kwargs)
        return seen["outputs"]

    return call_model


def _live_in(x):
    """live() for `forward`: a tensor of the trace `x` belongs to (not of a
    shape inference), also when differentiated (jax.grad wraps it)."""
    marker = getattr(keras.tree.flatten(x)[0], "_trace", None)

    def live(tensor):
        while isinstance(tensor, jax.core.Tracer) and isinstance(getattr(tensor, "primal", None), jax.core.Tracer):
            tensor = tensor.primal  # jax.grad's tracers (LinearizeTracer, JVPTracer) wrap the trace's own
        return isinstance(tensor, jax.core.Tracer) and tensor._trace is marker

    return live


def _replayed(closed, treedef, count):
    """A jitted function of a traced jaxpr's inputs giving its first `count`
    outputs as `treedef` (the others are dropped and not computed)."""
    replay = jax_core.jaxpr_as_fun(closed)

    def run(*args):
        return jax.tree_util.tree_unflatten(treedef, replay(*jax.tree_util.tree_leaves(args))[:count])

    return jax.jit(run)


class Traced:
    def __init__(self, model, probe, forward, explain=None):
        self._model = model
        self._probe = keras.tree.map_structure(jax.numpy.asarray, probe)
        if not model.built:  # its variables exist only once it has run (on one example)
            model(keras.tree.map_structure(lambda t: t[:1], self._probe), training=False)
        shapes = {}
        gate_shapes = []  # the probability maps a gate multiplies, in order (relevance)

        def noted(p):
            gate_shapes.append((p.shape, p.dtype))
            return p

        def traced(trainable, non_trainable, x):
            call_model = _model_caller(model, trainable, non_trainable, {})
            out, links = forward(x, call_model, _live_in(x), noted if explain is not None else None)
            shapes["out"] = jax.tree_util.tree_structure(out)
            return out, list(links)

        trainable, non_trainable = _state(model)
        closed = jax.jit(traced).trace(trainable, non_trainable, self._probe).jaxpr
        jaxpr = closed.jaxpr
        out_count = shapes["out"].num_leaves
        self.links = list(jaxpr.outvars[out_count:])
        self.inputs = list(jaxpr.invars[len(trainable) + len(non_trainable):])
        self._producers = {
            id(var): equation for equation in jaxpr.eqns for var in equation.outvars}
        if explain is None:
            # the history's extra outputs are dropped (and not computed)
            self._run = _replayed(closed, shapes["out"], out_count)
            return

        # Relevance: gates are inputs of what JAX differentiates, so their
        # shapes come from the trace above; a second trace (still hooked)
        # runs the probe under jax.grad by gates of ones. Its calls are the
        # first trace's, in the same order (capture's keys and links alike).
        def explained(trainable, non_trainable, x):
            seen = {}
            call_model = _model_caller(model, trainable, non_trainable, seen)
            live = _live_in(x)

            def target(gates):
                remaining = iter(gates)
                out, _ = forward(x, call_model, live, lambda p: p * next(remaining))
                return explain(seen["outputs"]), out

            ones = [jax.numpy.ones(shape, dtype) for shape, dtype in gate_shapes]
            gradients, out = jax.grad(target, has_aux=True)(ones)
            out = dict(out, relevance=[g.astype("float32") for g in gradients])
            shapes["explained"] = jax.tree_util.tree_structure(out)
            return out

        closed = jax.jit(explained).trace(trainable, non_trainable, self._probe).jaxpr
        self._run = _replayed(closed, shapes["explained"], shapes["explained"].num_leaves)

    def run(self):
        out = self._run(*_state(self._model), self._probe)
        return jax.tree_util.tree_map(np.asarray, out)

    @staticmethod
    def key(node):
        return id(node)

    def parents(self, node):
        equation = self._producers.get(id(node))
        if equation is None:  # an input, a weight or a constant
            return []
        return [var for var in equation.invars if isinstance(var, jax_core.Var)]

    @staticmethod
    def is_node(value):
        return isinstance(value, jax_core.Var)

    def forget_history(self):
        self.links = self.inputs = None
        self._producers = {}


def trace(model, probe, forward, hooked, explain=None):
    with hooked():
        return Traced(model, probe, forward, explain)


def is_chief(model):
    """Only process 0 writes (one process per host in multi-host JAX)."""
    return jax.process_index() == 0


def reads_metrics(model):
    """The running loss is read on every process alike (JAX's metrics are
    plain arrays, synced by `Callback.model`): no collective to stall."""
    return True
