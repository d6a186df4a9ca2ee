"""Head metrics written at capture time in a real fit: each stored value is
head_metrics' definition applied to the stored maps (float32: exact), with
token ids for induction and the previous capture for change; the tidy table
loads into pandas; the metrics can sit beside the loss as scalars."""

import numpy as np
import pandas as pd
import pytest

import keras
from tb_attention_plugin import AttentionCallback, read_attention, read_head_metrics
from tb_attention_plugin.math import head_metrics

# Stored metrics come from the float32 scores before cropping copies; the
# maps read back are the same float32 numbers, so only float64 summation
# order separates the two: far below 1e-6.
SAME_NUMBERS = 1e-6


def _induction_like_fit(tmp_path, **kwargs):
    inp = keras.Input((12,), dtype="int32")
    x = keras.layers.Embedding(10, 8)(inp)
    x = x + keras.layers.MultiHeadAttention(2, 4, name="causal")(x, x, use_causal_mask=True)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    half = rng.integers(1, 10, (32, 6))
    seq = np.concatenate([half, half], axis=1)  # every example repeats: induction applies
    vocab = ["w%d" % i for i in range(10)]
    cb = AttentionCallback(tmp_path / "run", seq[:2], tokens=vocab, update_freq=2, encoding="float32", **kwargs)
    model.fit(seq, np.roll(seq, -1, axis=1), batch_size=8, verbose=0, callbacks=[cb])
    return seq[:2]


def test_stored_metrics_are_the_definitions_applied_to_the_stored_maps(tmp_path):
    probe = _induction_like_fit(tmp_path)
    layer = read_attention(str(tmp_path))["run"]["causal"]
    assert layer.metric_names == head_metrics.METRIC_NAMES
    steps, examples, heads, metrics = layer.head_metrics.shape
    assert (steps, examples, heads, metrics) == (len(layer.steps), 2, 2, len(head_metrics.METRIC_NAMES))
    for s in range(steps):
        for i in range(2):
            previous = layer.maps[i][s - 1] if s else None
            expected = head_metrics.all_metrics(layer.maps[i][s], layer.key_tokens[i], "causal", previous, ids=probe[i])
            np.testing.assert_allclose(layer.head_metrics[s, i], expected, atol=SAME_NUMBERS, equal_nan=True)
    names = list(head_metrics.METRIC_NAMES)
    # Induction applies (each example repeats its first half); alignment does not.
    assert not np.isnan(layer.head_metrics[:, :, :, names.index("induction")]).any()
    assert np.isnan(layer.head_metrics[:, :, :, names.index("monotone_alignment")]).all()
    # Change: nothing before the first capture, then the mean |difference|.
    change = layer.head_metrics[:, :, :, names.index("change")]
    assert np.isnan(change[0]).all() and (change[1:] > 0).all()


def test_head_scalars_put_each_layers_mean_metrics_beside_the_loss_only_when_asked(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    _induction_like_fit(tmp_path / "off")
    _induction_like_fit(tmp_path / "on", head_scalars=True)
    layer = read_attention(str(tmp_path / "on"))["run"]["causal"]
    names = list(head_metrics.METRIC_NAMES)
    # Left out: what does not apply (no special token in this vocabulary; the
    # alignment is for cross attention; patch_distance for image patches).
    written = {"attention/causal/%s" % n for n in names
               if n not in ("monotone_alignment", "special_token_mass", "patch_distance")}
    for where, expected_tags in (("off", set()), ("on", written)):
        events = event_accumulator.EventAccumulator(str(tmp_path / where / "run"))
        events.Reload()
        scalars = {t for t in events.Tags()["tensors"] if t.startswith("attention/")}
        assert scalars == expected_tags, where
    values = events.Tensors("attention/causal/induction")
    assert [e.step for e in values] == list(layer.steps)
    mean = np.nanmean(layer.head_metrics[-1, :, :, names.index("induction")])
    assert float(tensor_util.make_ndarray(values[-1].tensor_proto)) == pytest.approx(mean, abs=SAME_NUMBERS)


def test_the_tidy_table_loads_into_pandas_in_one_line(tmp_path):
    _induction_like_fit(tmp_path)
    table = pd.DataFrame(read_head_metrics(str(tmp_path)))
    assert list(table.columns) == ["run", "layer", "head", "step", "example", "metric", "value"]
    layer = read_attention(str(tmp_path))["run"]["causal"]
    # Every non-NaN stored value is one row.
    assert len(table) == int((~np.isnan(layer.head_metrics)).sum())
    row = table[(table.step == layer.steps[-1]) & (table.example == 1) & (table["head"] == 0) & (table.metric == "induction")]
    names = list(head_metrics.METRIC_NAMES)
    assert row.value.item() == pytest.approx(layer.head_metrics[-1, 1, 0, names.index("induction")])
