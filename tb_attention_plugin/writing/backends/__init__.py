"""What differs between Keras's backends when the probe is captured.

One module per backend, chosen as Keras chooses its own (by
`keras.config.backend()`), each answering the same small interface; the
layers above (capture.py, callback.py) never ask which backend runs:

  SOFTMAX_FUNCTIONS: [(module, attribute)] of the backend's own softmax
      functions a hand-written layer may call (beside Keras's, hooked by
      capture.py on every backend).
  trace(model, probe, forward, hooked, explain=None) -> Traced: traces
      `forward(inputs, call_model, live, gate=None)` once, inside `with
      hooked():` (capture's hooks active), into the backend's compiled form;
      an eager backend (torch) runs it again, hooked, at every capture.
      `forward` returns (out, links): `out` the tensors to return at every
      capture, `links` tensors whose history (which probe inputs they come
      from) is asked once. With `explain` (the model's outputs -> a scalar
      tensor, writing/relevance.py), `gate` is a function p -> p * ones the
      backend differentiates by, and `out` gets "relevance": the gradient of
      `explain` by each gate, in the order the gates were made, float32.
  Traced.run() -> `out` as numpy arrays, computed with the model's weights
      as they are now.
  Traced.links / .inputs / .parents(node) / .key(node) / .is_node(value):
      the history, as a graph of nodes (capture.stream_sources walks it);
      Traced.forget_history() lets it go once walked.
  is_chief(model) -> bool: whether this process writes (one writer per
      training, however many devices or workers).
  reads_metrics(model) -> bool: whether the writer may read the running
      loss without stalling other workers.
"""

import keras

SUPPORTED = ("tensorflow", "jax", "torch")


def current():
    """The module for the backend Keras runs on.

    Raises:
      ValueError: on a backend capture does not support, naming it (the
        backend is then the cause, not the model or the probe).
    """
    name = keras.config.backend()
    if name == "tensorflow":
        from tb_attention_plugin.writing.backends import tensorflow as module
    elif name == "jax":
        from tb_attention_plugin.writing.backends import jax as module
    elif name == "torch":
        from tb_attention_plugin.writing.backends import torch as module
    else:
        raise ValueError(
            "AttentionCallback captures attention on Keras's %s backends, and Keras "
            "runs on the %s backend here. Set KERAS_BACKEND to one of them (keras_hub "
            "models work the same) before keras is imported, or write attention from "
            "your own loop with tb_attention_plugin.summary.attention(...)."
            % (", ".join(SUPPORTED[:-1]) + " and " + SUPPORTED[-1], name)
        )
    return module
