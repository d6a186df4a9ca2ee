import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


# Stored float32 maps against an eager call of the same layer: the probe runs
# as a traced graph, where TensorFlow may fuse or reorder the softmax and
# matmuls differently than eager, and CPUs differ in vector width; results
# then differ by a few float32 ulps (seen: 6e-8 on weights <= 1). 1e-6 is
# ~16 ulps at 1.0 and far below anything visible or the uint8 step (1/255).
# On JAX the probe is one XLA program, compiled whole: XLA fuses the scores,
# the exp and the row sums into loops whose vectorised exp and summation
# order differ from the op-by-op eager call's; seen 1.5e-6 at a weight of
# 0.45 in Gemma3 (about 50 ulps). 1e-5 is still 400 times below the uint8
# step.
GRAPH_VS_EAGER = 1e-5 if os.environ["KERAS_BACKEND"] == "jax" else 1e-6


def only_layer(logdir, layer, run="."):
    from tb_attention_plugin import read_attention

    runs = read_attention(str(logdir))
    assert run in runs, "runs found: %s" % list(runs)
    assert layer in runs[run], "layers found: %s" % list(runs[run])
    return runs[run][layer]


def assert_maps_equal(stored, reference, spans, atol):
    """stored: list per example (heads, q, k); reference: (batch, heads, Q, K)."""
    for i, ((qo, ql), (ko, kl)) in enumerate(spans):
        expected = reference[i, :, qo : qo + ql, ko : ko + kl]
        assert stored[i].shape == expected.shape
        np.testing.assert_allclose(stored[i], expected, atol=atol, rtol=0)


@pytest.fixture
def no_head_warnings(caplog):
    """For the demos' healthy runs: no entropy-collapse or stalled-head
    warning (issue 21: the thresholds must not cry wolf)."""
    import logging

    caplog.set_level(logging.WARNING, logger="tb_attention_plugin")
    yield
    said = [r.getMessage() for r in caplog.records
            if "collapsed at step" in r.getMessage() or "stopped changing" in r.getMessage()]
    assert not said, said


@contextlib.contextmanager
def explicit_attention():
    """keras_hub's attention layers (Llama, Gemma, ...) call a fused
    `ops.dot_product_attention` on JAX and torch, which never forms the
    probabilities; inside this block they take their explicit path (scores,
    masked softmax, product with the values), so an eager reference call
    shows its probabilities. The capture does the same in its probe only;
    tests/test_backends.py shows the two paths give the same outputs."""
    import sys

    switch = "fused_attention_op_available"
    modules = [m for name, m in list(sys.modules.items())
               if name.startswith("keras_hub.src.") and m is not None and callable(getattr(m, switch, None))]
    originals = [(m, getattr(m, switch)) for m in modules]
    for m in modules:
        setattr(m, switch, lambda: False)
    try:
        yield
    finally:
        for m, original in originals:
            setattr(m, switch, original)
