"""Capture on Keras's TensorFlow backend: the probe is traced once into a
`tf.function` graph; every capture runs that graph, which reads the model's
variables as they are at that moment. The history of a tensor is the graph
itself (an op's inputs)."""

import keras
import numpy as np
import tensorflow as tf

SOFTMAX_FUNCTIONS = ((tf.nn, "softmax"), (tf.math, "softmax"))

# Not converted by autograph, as Keras's own train and predict functions are
# not: the model runs as in fit, and recording the calls is plain Python
# (autograph's conversion of its loops was half of the trace, about 100 of
# 200 ms on the IMDB demo).
_unconverted = tf.autograph.experimental.do_not_convert


class Traced:
    def __init__(self, model, probe, forward, explain=None):
        self._probe = keras.tree.map_structure(tf.convert_to_tensor, probe)
        found = {}

        def traced(x):
            # tf.function traces twice when the first call creates variables
            # (an unbuilt model): every trace starts afresh and the last wins.
            graph = tf.compat.v1.get_default_graph()
            seen = {}

            def call_model(inputs):
                seen["outputs"] = model(inputs, training=False)
                return seen["outputs"]

            def live(tensor):
                return getattr(tensor, "graph", None) is graph

            if explain is None:
                out, links = _unconverted(forward)(x, call_model, live)
            else:
                # One backward pass: the gradient of the explained output by
                # a gate of ones on each probability map is (d out / d p) * p.
                gates = []
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    def gate(p):
                        ones = tf.ones_like(p)
                        tape.watch(ones)
                        gates.append(ones)
                        return p * ones

                    out, links = _unconverted(forward)(x, call_model, live, gate)
                    target = _unconverted(explain)(seen["outputs"])
                gradients = tape.gradient(target, gates, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                out = dict(out, relevance=[tf.cast(g, "float32") for g in gradients])
            found["links"], found["inputs"] = links, keras.tree.flatten(x)
            return out

        self._concrete = tf.function(traced).get_concrete_function(self._probe)
        self.links, self.inputs = found["links"], found["inputs"]

    def run(self):
        # np.asarray shares the output tensor's buffer; `.numpy()` copies it,
        # which held every map twice at once (5.4 GB for a 2.7 GB capture of
        # 18 x 8 heads at 2048 tokens). The arrays are read-only.
        return keras.tree.map_structure(np.asarray, self._concrete(self._probe))

    @staticmethod
    def key(node):
        """A hashable name of a graph tensor (graph tensors are unhashable)."""
        return (node.op.name, node.value_index)

    @staticmethod
    def parents(node):
        return list(node.op.inputs)

    @staticmethod
    def is_node(value):
        return tf.is_tensor(value) and hasattr(value, "op")

    def forget_history(self):
        self.links = self.inputs = None  # the graph itself stays: the function runs it


def trace(model, probe, forward, hooked, explain=None):
    with hooked():
        return Traced(model, probe, forward, explain)


def is_chief(model):
    """Under a tf.distribute strategy, only the worker that saves summaries."""
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    try:
        return bool(strategy.extended.should_save_summary)
    except (AttributeError, NotImplementedError):  # strategies that do not say
        return True


def reads_metrics(model):
    """Whether the chief may read the model's running loss: not under a
    distribution strategy, where a synced metric's value is an all-reduce
    and the chief alone starting one stalls or aborts the other workers."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy is None or strategy is tf.distribute.get_strategy()
