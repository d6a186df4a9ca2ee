"""Long probes in real fits (issue 34): when full maps would pass max_cells,
the callback stores the largest layers reduced (every head, each row's
largest weights exact, a block overview) instead of refusing, keeps
exact_layers= full, and computes every number from the full maps."""

import logging

import keras
import numpy as np
import pytest

from conftest import GRAPH_VS_EAGER, only_layer
from models import VOCAB
from tb_attention_plugin import AttentionCallback
from tb_attention_plugin.format import encoding
from tb_attention_plugin.format import reduction

LONG = 300  # overview blocks of 3 x 3: reduced maps are 28% of full ones


def _long_model():
    inp = keras.Input((LONG,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inp)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha_1")(x, x)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha_2")(x, x)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))
    model.compile("adam", "mse")
    return model


def _data(n=8):
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (n, LONG))
    x[1, :40] = 0  # example 1 is padded at the front: its maps are 260 x 260
    return x, rng.normal(size=(n, 1)).astype("float32")


# Full maps: 2 layers x 2 heads x (300^2 + 260^2) = 495,200 weights per
# capture. Reduced, per head and example: 2 x q x 8 (weights and positions)
# + 2 x 100 x 100 blocks (3 x 3 cells; 87 x 87 for the 260-token example).
FULL = 2 * 2 * (LONG**2 + 260**2)
REDUCED_LAYER = 2 * ((2 * 300 * 8 + 2 * 100 * 100) + (2 * 260 * 8 + 2 * 87 * 87))


def test_a_capture_over_max_cells_stores_every_head_reduced_and_the_numbers_exactly(tmp_path, caplog):
    model = _long_model()
    x, y = _data()
    probe = x[:2]
    reduced = AttentionCallback(tmp_path / "reduced", probe, update_freq=2, max_cells=2 * REDUCED_LAYER)
    # The same captures in full, float32, for reference (max_cells=None: no limit).
    full = AttentionCallback(tmp_path / "full", probe, update_freq=2, max_cells=None, encoding="float32")
    with caplog.at_level(logging.INFO):
        plan = str(reduced.plan(model))
    assert "reduced (top 8 per row)" in plan and "%d numbers per capture" % (2 * REDUCED_LAYER) in plan
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[reduced, full])
    assert "stores the maps of 2 of 2 layers reduced (mha_1, mha_2)" in caplog.text
    assert "%d weights per capture, more than max_cells=%d" % (FULL, 2 * REDUCED_LAYER) in caplog.text
    assert reduced.captured_steps == full.captured_steps == [0, 2]
    for name in ("mha_1", "mha_2"):
        stored, truth = only_layer(tmp_path / "reduced", name), only_layer(tmp_path / "full", name)
        assert stored.storage == "reduced" and truth.storage == "full"
        assert stored.key_tokens == truth.key_tokens and len(stored.maps) == 2
        for example, (q, k) in enumerate([(300, 300), (260, 260)]):
            maps = stored.maps[example]
            assert maps.shape == (2, 2, q, k)  # steps, every head, the cropped tokens
            for s in range(2):
                estimate, bound = maps.rebuilt(s)
                # Within the stated bound (uint8 included) of the float32 maps of
                # the other callback's graph, which may differ by GRAPH_VS_EAGER.
                assert np.all(np.abs(estimate - truth.maps[example][s]) <= bound + 2 * GRAPH_VS_EAGER)
                # The kept weights are each row's largest.
                form = maps.form(s)
                kth = np.sort(truth.maps[example][s], axis=-1)[..., -reduction.TOP_K]
                assert np.all(form.values.min(-1) >= kth - encoding.UINT8_MAX_ERROR - GRAPH_VS_EAGER)
            # Importance, statistics and metrics come from the full float32 maps.
            np.testing.assert_allclose(stored.received[example], truth.received[example], atol=1e-4)
        np.testing.assert_allclose(stored.head_stats, truth.head_stats, rtol=1e-4, atol=1e-5)
        # `change` of a reduced layer is measured against a float16 copy of the
        # previous maps (max_map_bytes): off by at most 2^-11 of the mean
        # previous weight, 1/300 here, so 1.6e-6, under atol.
        np.testing.assert_allclose(stored.head_metrics, truth.head_metrics, rtol=1e-4, atol=1e-5)


def test_exact_layers_stay_full_and_fewer_examples_are_kept_before_a_fit_is_refused(tmp_path, caplog):
    x, y = _data()
    # mha_1 full (2 heads x 90,000 for example 0) beside mha_2 reduced: one example fits.
    one = 2 * LONG**2 + 2 * (2 * 300 * 8 + 2 * 100 * 100)
    callback = AttentionCallback(tmp_path / "one", x[:2], update_freq=4, max_cells=one + 1000,
                                 exact_layers=["mha_1"])
    with caplog.at_level(logging.WARNING):
        _long_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert "stores the first 1 of the 2 probe examples" in caplog.text and "1 layers reduced" in caplog.text
    assert only_layer(tmp_path / "one", "mha_1").storage == "full"
    assert only_layer(tmp_path / "one", "mha_2").storage == "reduced"
    assert len(only_layer(tmp_path / "one", "mha_1").maps) == 1
    # Under that, the fit is refused before its first step, naming the fixes.
    model = _long_model()
    with pytest.raises(ValueError, match=r"one probe example alone would store %d numbers.*mha_1 180000 \(full\)"
                       r".*even with every layer but exact_layers= reduced.*fewer exact_layers= \(mha_1\)" % one):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[
            AttentionCallback(tmp_path / "none", x[:2], max_cells=one - 1, exact_layers=["mha_1"])])
    assert int(model.optimizer.iterations) == 0
    with pytest.raises(ValueError, match=r"exact_layers names \"mha_3\", which is no captured layer; the "
                                         r"captured layers are \"mha_1\", \"mha_2\""):
        AttentionCallback(tmp_path / "typo", x[:2], exact_layers=["mha_3"]).plan(_long_model())


def test_short_maps_stay_full_whatever_the_budget_since_reduced_they_would_be_larger(tmp_path):
    # At 10 tokens a reduced head (2 x 10 x 8 + 2 x 10 x 10 blocks of 1) is
    # 360 numbers, its full map 100: the budget keeps fewer examples instead.
    from models import tiny_data, tiny_mha_classifier

    x, _ = tiny_data(8)
    callback = AttentionCallback(tmp_path, x[:3], max_cells=2 * 2 * 8 * 8)
    plan = callback.plan(tiny_mha_classifier())
    assert [layer.storage for layer in plan.layers] == ["full"] and plan.examples == 2


def test_max_map_bytes_keeps_the_examples_whose_maps_fit_in_memory_before_any_map_exists(
        tmp_path, caplog, monkeypatch):
    from tb_attention_plugin.writing import capture

    batches = []  # the batch of every probe run: the maps that existed
    run = capture.ProbeFunction.__call__

    def counted(self):
        captured = run(self)
        batches.append(len(captured[0].scores))
        return captured

    monkeypatch.setattr(capture.ProbeFunction, "__call__", counted)
    x, y = _data()
    # One example's maps as float32, padding included: 2 layers x 2 heads x
    # 300 x 300 x 4 bytes = 1,440,000. Known from the trace: 3 examples' maps
    # and at least half as much again for the previous capture's (kept for
    # `change`, float16 when reduced): 3 x 1.5 x 1,440,000 = 6,480,000 bytes.
    # 5,000,000 holds 2 such examples; once the layers are known to be
    # stored full (the previous maps are the same float32 arrays, 2 x
    # 1,440,000 per example) it holds 1.
    callback = AttentionCallback(tmp_path / "one", x[:3], update_freq=4, max_map_bytes=5_000_000)
    with caplog.at_level(logging.WARNING):
        _long_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert max(batches) == 2 and batches[-1] == 1  # 3 examples' maps were never made
    # Said with what they take at most (every layer full: 2 x 3 x 1,440,000),
    # so that the max_map_bytes it names keeps all 3 whatever is stored reduced.
    assert ("stores the first 1 of the 3 probe examples: all 3 would hold up to 8.6 MB of attention maps "
            "in memory at each capture" in caplog.text)
    assert "more than max_map_bytes=5000000. Pass max_map_bytes=8640000 to keep all 3" in caplog.text
    kept = AttentionCallback(tmp_path / "three", x[:3], max_map_bytes=8_640_000).plan(_long_model())
    assert kept.examples == 3
    assert caplog.text.count("probe examples") == 1  # one warning, however many retraces
    assert len(only_layer(tmp_path / "one", "mha_1").maps) == 1
    assert "(the first 1 of 3: max_map_bytes)" in str(callback.plan(_long_model()))
    assert AttentionCallback(tmp_path / "all", x[:3], max_map_bytes=None).plan(_long_model()).examples == 3


def test_layers_stored_reduced_hold_less_memory_and_one_example_over_max_map_bytes_is_refused(tmp_path):
    x, y = _data()
    # One example, stored full: its maps and the previous capture's, the same
    # float32 arrays: 2 x 1,440,000 bytes, over 2,400,000.
    model = _long_model()
    with pytest.raises(ValueError, match=r"one probe example's attention maps take 2.9 MB of memory at each "
                       r"capture.*more than max_map_bytes=2400000. Pass layers=\[...\] to capture fewer layers, "
                       r"shorter probe sequences, or a larger max_map_bytes="):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[
            AttentionCallback(tmp_path / "full", x[:1], max_map_bytes=2_400_000)])
    assert int(model.optimizer.iterations) == 0
    # Stored reduced (max_cells), the previous maps are kept as a float16 copy
    # of the cropped maps: 1,440,000 + 2 bytes x 360,000 weights = 2,160,000.
    reduced = AttentionCallback(tmp_path / "reduced", x[:1], update_freq=4, max_cells=100_000,
                                max_map_bytes=2_400_000)
    _long_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[reduced])
    assert reduced.captured_steps == [0, 2] and only_layer(tmp_path / "reduced", "mha_2").storage == "reduced"
    # Under what the trace alone shows (1.5 x 1,440,000), refused before the first run.
    with pytest.raises(ValueError, match=r"take 2.2 MB .*more than max_map_bytes=2000000"):
        AttentionCallback(tmp_path / "none", x[:1], max_cells=100_000, max_map_bytes=2_000_000).plan(_long_model())


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_keras_hub_models_over_max_cells_store_maps_within_their_bound_of_the_layers_own(tmp_path, family):
    """As a fine-tuner meets it: keras_hub GPT-2 (causal + padding in one
    mask) and Llama (grouped-query heads, its own softmax) built from config,
    300-token examples padded at the back, a budget that full maps pass.
    The last capture, rebuilt, is within its stated bound of the
    probabilities each layer computes in an eager call."""
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub needs Python >= 3.11")
    import test_zoo_keras_hub as zoo

    ids = np.random.default_rng(0).integers(2, zoo.V, (zoo.N, LONG))
    ids[:, LONG - 20:] = 0  # 280 real tokens
    if family == "gpt2":
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=zoo.V, num_layers=2, num_heads=2, hidden_dim=8,
                                                 intermediate_dim=16, max_sequence_length=LONG)
    else:
        backbone = keras_hub.models.LlamaBackbone(vocabulary_size=zoo.V, num_layers=2, num_query_heads=2,
                                                  num_key_value_heads=1, hidden_dim=8, intermediate_dim=16)
    # Full maps: 2 layers x 2 heads x 3 examples x 280^2 = 940,800 weights;
    # reduced, 2 x 2 x 3 x (2 x 280 x 8 + 2 x 94 x 94) = 265,824 numbers.
    model, probe, layers = zoo._fit(backbone, {"token_ids": ids, "padding_mask": (ids != 0).astype("int32")},
                                    tmp_path, max_cells=300_000)
    attention = [l for l in model._flatten_layers(include_self=False)
                 if type(l).__name__ in ("CachedMultiHeadAttention", "LlamaAttention")]
    reference = zoo._own_probabilities(model, probe, attention)
    assert sorted(layers) == sorted(reference) and len(layers) == 2
    for path, stored in layers.items():
        assert stored.storage == "reduced" and stored.kind == "causal" and stored.encoding == "float32"
        for example, maps in enumerate(stored.maps):
            assert maps.shape[1:] == (2, 280, 280)
            estimate, bound = maps.rebuilt(-1)
            truth = reference[path][example, :, :280, :280]
            assert np.all(np.abs(estimate - truth) <= bound + GRAPH_VS_EAGER), path
            # float32 storage: the kept weights are the layer's own.
            form = maps.form(-1)
            np.testing.assert_allclose(form.values, np.take_along_axis(truth, form.positions, -1),
                                       atol=GRAPH_VS_EAGER, rtol=0)
