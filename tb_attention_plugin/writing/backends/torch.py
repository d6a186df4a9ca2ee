"""Capture on Keras's PyTorch backend: PyTorch runs eagerly, so there is no
trace to reuse. Every capture calls the model on the probe under
`torch.no_grad()` with capture's hooks installed for that call only; it
reads the variables as they are at that moment. The history of a tensor is
recorded once, on the first call, by a `TorchFunctionMode` that notes which
tensors each torch function made from which (ops on tensors, Tensor
methods, `torch.nn.functional`)."""

import keras
import numpy as np
import torch
from torch.overrides import TorchFunctionMode

SOFTMAX_FUNCTIONS = ((torch, "softmax"), (torch.nn.functional, "softmax"), (torch.Tensor, "softmax"))


def _is_live(tensor):
    # Keras infers shapes on the "meta" device; those calls are not the probe's
    return isinstance(tensor, torch.Tensor) and tensor.device.type != "meta"


class _History(TorchFunctionMode):
    """{id(output): [input tensors]} of every torch function called while
    active; the tensors are kept alive (their ids stay theirs) until the
    walk is done."""

    def __init__(self):
        super().__init__()
        self.made_from = {}
        self.alive = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in _tensors((args, kwargs))]
        if inputs:
            for tensor in _tensors(out):
                before = self.made_from.setdefault(id(tensor), [])
                # an in-place op returns its own input: never its own parent
                before.extend(t for t in inputs if t is not tensor)
                self.alive.append(tensor)
            self.alive.extend(inputs)
        return out


def _tensors(values):
    if isinstance(values, torch.Tensor):
        return [values]
    if isinstance(values, (list, tuple)):
        return [t for v in values for t in _tensors(v)]
    if isinstance(values, dict):
        return [t for v in values.values() for t in _tensors(v)]
    return []


class Traced:
    def __init__(self, model, probe, forward, hooked, explain=None):
        self._model, self._forward, self._hooked = model, forward, hooked
        self._explain = explain
        self._probe = keras.tree.map_structure(keras.ops.convert_to_tensor, probe)
        # The history is recorded on the first example alone: the walk needs
        # only which tensor came from which, and an eager trace is a run, whose
        # maps at a long probe's full batch could pass the capture's memory
        # budget before the callback has seen their size.
        first = keras.tree.map_structure(lambda t: t[:1], self._probe)
        history = _History()
        with history:
            out, links = self._call(first)
        self._made_from = history.made_from
        self._alive = history.alive  # ids stay unique while the history is read
        self.links = list(links)
        self.inputs = keras.tree.flatten(first)

    def _call(self, probe):
        with torch.no_grad(), self._hooked():
            return self._forward(probe, lambda inputs: self._model(inputs, training=False), _is_live)

    def _explained(self, probe):
        """`out` with "relevance": one backward pass of the explained output
        to a gate of ones on each probability map, (d out / d p) * p."""
        gates, seen = [], {}

        def gate(p):
            ones = torch.ones_like(p, requires_grad=True)
            gates.append(ones)
            return p * ones

        def call_model(inputs):
            seen["outputs"] = self._model(inputs, training=False)
            return seen["outputs"]

        with torch.enable_grad(), self._hooked():
            out, _ = self._forward(probe, call_model, _is_live, gate)
            target = self._explain(seen["outputs"])
            gradients = torch.autograd.grad(target, gates, allow_unused=True) if gates else []
        relevance = [torch.zeros_like(g) if d is None else d.float() for g, d in zip(gates, gradients)]
        return dict(out, relevance=relevance)

    def run(self):
        out = self._call(self._probe)[0] if self._explain is None else self._explained(self._probe)
        return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t.detach())), out)

    @staticmethod
    def key(node):
        return id(node)

    def parents(self, node):
        return self._made_from.get(id(node), [])

    @staticmethod
    def is_node(value):
        return isinstance(value, torch.Tensor)

    def forget_history(self):
        self.links = self.inputs = None
        self._made_from, self._alive = {}, []  # the probe's activations, kept only for the walk


def trace(model, probe, forward, hooked, explain=None):
    return Traced(model, probe, forward, hooked, explain)


_distributed = torch.distributed


def is_chief(model):
    """Rank 0 of a torch.distributed job writes; a single process always."""
    return not (_distributed.is_available() and _distributed.is_initialized()) or _distributed.get_rank() == 0


def reads_metrics(model):
    return True
