"""Reduced maps (issue 34): what is kept of a long map, the dense map rebuilt
from it and the bound it states, the stored blob, and the round trip through
the summary op and read_attention."""

import numpy as np
import pytest

from tb_attention_plugin.format import encoding
from tb_attention_plugin.format import metadata
from tb_attention_plugin.math import numerics
from tb_attention_plugin.format import reduction


def _softmax_maps(rng, heads, q, k, sharpness=3.0, causal=False):
    logits = rng.normal(size=(heads, q, k)).astype(np.float32) * sharpness
    if causal:
        logits = np.where(np.tril(np.ones((q, k), bool)), logits, -np.inf)
    maps = np.exp(logits - logits.max(-1, keepdims=True))
    return (maps / maps.sum(-1, keepdims=True)).astype(np.float32)


def test_reduce_keeps_each_rows_largest_weights_and_block_max_and_mean_by_hand():
    # One head, 3 x 5, top 2 per row, blocks of 2 (the last row and column of
    # blocks are 1 cell wide).
    maps = np.array([[[0.1, 0.5, 0.0, 0.4, 0.0],
                      [0.2, 0.2, 0.3, 0.0, 0.3],
                      [0.0, 0.0, 0.0, 0.0, 1.0]]], np.float32)
    reduced = reduction.reduce(maps, top_k=2, block=2)
    assert reduced.positions[0, 0].tolist() == [1, 3]
    np.testing.assert_array_equal(reduced.values[0, 0], np.float32([0.5, 0.4]))
    assert reduced.positions[0, 1].tolist() == [2, 4]  # the two 0.3s
    assert reduced.positions[0, 2, 1] == 4 and reduced.values[0, 2, 1] == 1.0
    # Blocks: rows {0, 1} x cols {0, 1} holds .1 .5 .2 .2: max .5, mean 1.0 / 4.
    np.testing.assert_allclose(reduced.block_max[0], [[0.5, 0.4, 0.3], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(reduced.block_mean[0], [[0.25, 0.7 / 4, 0.3 / 2], [0.0, 0.0, 1.0]], rtol=1e-6)
    assert not reduced.exact
    assert reduction.reduce(maps, top_k=5, block=2).exact


def test_the_kept_weights_are_each_rows_largest_with_ties_zeros_and_short_last_blocks():
    # reduce searches only the blocks of largest max; against a partition of
    # whole rows on 300 random shapes, a third of them full of ties (weights
    # in quarters), a fifth half zeros (causal-like), blocks of 1 to 8 that
    # leave a shorter last block.
    rng = np.random.default_rng(5)
    for trial in range(300):
        heads, q, k, block = rng.integers(1, 3), rng.integers(0, 40), rng.integers(1, 90), int(rng.integers(1, 9))
        maps = rng.random((heads, q, k)).astype(np.float32)
        if trial % 3 == 0:
            maps = np.round(maps * 4) / 4
        if trial % 5 == 0:
            maps[..., : k // 2] = 0
        reduced = reduction.reduce(maps, 8, block)
        kept = min(8, k)
        largest = np.sort(np.partition(maps, k - kept, axis=-1)[..., k - kept:], axis=-1)
        np.testing.assert_array_equal(np.sort(reduced.values, axis=-1), largest)
        assert np.all(np.diff(reduced.positions, axis=-1) > 0) and reduced.positions.max(initial=0) < k
        np.testing.assert_array_equal(reduced.values, np.take_along_axis(maps, reduced.positions, -1))


def test_rebuild_spreads_what_a_block_holds_beyond_its_kept_cells_by_hand():
    # Row 0 keeps 0.5 (col 1) and 0.4 (col 3), floor 0.4. Block (rows 0-1,
    # cols 0-1) sums 1.0, of which kept: 0.5 (row 0) and, in row 1, the 0.3s
    # at cols 2 and 4 are outside it, so 0.5 is kept there: 0.5 left over 3
    # cells = 1/6 each, under every row floor (0.4, 0.3) and the block max.
    maps = np.array([[[0.1, 0.5, 0.0, 0.4, 0.0],
                      [0.2, 0.2, 0.3, 0.0, 0.3],
                      [0.0, 0.0, 0.0, 0.0, 1.0]]], np.float32)
    estimate, bound = reduction.rebuild(reduction.reduce(maps, top_k=2, block=2))
    np.testing.assert_allclose(estimate[0, 0, 0], 0.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(estimate[0, 1, :2], [0.5 / 3] * 2, rtol=1e-6)
    # Kept cells are exact, with no bound (float32).
    assert estimate[0, 0, 1] == 0.5 and bound[0, 0, 1] == 0
    # Cell (0, 0): truth in [0, min(row floor 0.4, block max 0.5)], shown 1/6.
    np.testing.assert_allclose(bound[0, 0, 0], 0.4 - 0.5 / 3, rtol=1e-6)
    # Row 2 keeps 1.0 and one zero: its floor is 0, so its other cells are 0, exactly.
    assert estimate[0, 2].tolist() == [0, 0, 0, 0, 1.0] and bound[0, 2].max() == 0


def test_what_a_block_leaves_over_bounds_its_cells_from_below_by_hand():
    # One row [.1 .6 .2 .1], top 1 (the .6), blocks of 2. Block 0 leaves one
    # cell out: it holds .7 - .6 = .1, exactly. Block 1 keeps nothing: .3
    # over 2 cells, each at most its max .2, so each at least .3 - .2 = .1:
    # shown .15 within .05.
    maps = np.array([[[0.1, 0.6, 0.2, 0.1]]], np.float32)
    estimate, bound = reduction.rebuild(reduction.reduce(maps, top_k=1, block=2))
    np.testing.assert_allclose(estimate[0, 0], [0.1, 0.6, 0.15, 0.15], rtol=1e-6)
    np.testing.assert_allclose(bound[0, 0], [0, 0, 0.05, 0.05], atol=1e-7)


@pytest.mark.parametrize("name", ["float32", "uint8"])
@pytest.mark.parametrize("heads,q,k,causal,top_k", [
    (2, 40, 40, False, 8),     # one overview block per cell: the overview alone is exact
    (3, 300, 300, True, 8),    # blocks of 3, causal rows of 1..300 keys
    (2, 301, 257, False, 4),   # cross, uneven edge blocks
    (1, 50, 6, False, 8),      # rows of fewer keys than top_k: exact
    (2, 0, 30, False, 8),      # an empty example
])
def test_stored_reduced_maps_rebuild_within_their_bound_on_every_cell(name, heads, q, k, causal, top_k):
    rng = np.random.default_rng(q + k)
    maps = _softmax_maps(rng, heads, q, k, causal=causal)
    code = encoding.parse_encoding(name)
    block = reduction.block_for(q, k, side=100)
    blob = encoding.encode_reduced(reduction.reduce(maps, top_k, block), code, top_k)
    stored = encoding.decode_reduced(blob, code, maps.shape, top_k, block)
    estimate, bound = reduction.rebuild(stored, encoding.cell_error(code))
    # The bound's own arithmetic is float32: a few ulps of 1.0 on top.
    assert np.all(np.abs(estimate - maps) <= bound + 1e-6)
    # Kept cells are the stored weights: within the encoding's error.
    kept = np.take_along_axis(estimate, stored.positions, -1)
    np.testing.assert_allclose(kept, np.take_along_axis(maps, stored.positions, -1),
                               atol=encoding.cell_error(code) + 1e-7)
    if k <= top_k:
        assert stored.exact and bound.max(initial=0) <= encoding.cell_error(code)


def test_a_head_that_looks_at_a_band_is_stored_exactly_and_small():
    # Each query attends to itself and the 3 keys before it (a local window):
    # 4 nonzero weights per row, all kept; the rebuild is the map itself.
    q = 2048
    maps = np.zeros((1, q, q), np.float32)
    for lag in range(4):
        rows = np.arange(lag, q)
        maps[0, rows, rows - lag] = 1.0
    maps /= maps.sum(-1, keepdims=True)
    reduced = reduction.reduce(maps)
    estimate, bound = reduction.rebuild(reduced)
    np.testing.assert_array_equal(estimate, maps)
    assert bound.max() == 0
    blob = encoding.encode_reduced(reduced, encoding.FLOAT32, reduction.TOP_K)
    # 2048 rows x 8 kept (float32 + uint16 steps) + 2 x 128 x 128 blocks =
    # 327,680 bytes raw; the band's steps and zeros pack well.
    assert len(blob) < 327_680 / 4, len(blob)


@pytest.mark.parametrize("damage,words", [
    (lambda blob: blob[: len(blob) // 2], "truncated|less"),
    (lambda blob: blob + b"\0" * 10, "neither|more"),
    (lambda blob: b"not zlib at all", "neither"),
])
def test_a_damaged_reduced_blob_is_refused(damage, words):
    maps = _softmax_maps(np.random.default_rng(1), 2, 64, 64)
    blob = encoding.encode_reduced(reduction.reduce(maps, 8, 8), encoding.UINT8, 8)
    with pytest.raises(ValueError, match=words):
        encoding.decode_reduced(damage(blob), encoding.UINT8, maps.shape, 8, 8)


def test_a_reduced_blob_whose_positions_pass_the_last_key_is_refused():
    maps = _softmax_maps(np.random.default_rng(2), 1, 4, 16)
    raw = bytearray(encoding.inflate_exact(encoding.encode_reduced(reduction.reduce(maps, 2, 4), encoding.UINT8, 2),
                                           encoding.stored_bytes(_facts(1, [(4, 16)], reduced=(2, 4)), 0)))
    steps_at = 4 * 2  # after the uint8 values of 4 rows x 2 kept
    raw[steps_at : steps_at + 2] = (60000).to_bytes(2, "little")
    with pytest.raises(ValueError, match="beyond its 16 keys"):
        encoding.decode_reduced(bytes(raw), encoding.UINT8, (1, 4, 16), 2, 4)


def _facts(heads, lengths, reduced=None):
    facts = metadata.PluginData(num_heads=heads, encoding=metadata.PluginData.UINT8)
    for q, k in lengths:
        facts.examples.add(query_length=q, key_length=k)
    if reduced:
        facts.storage = metadata.PluginData.REDUCED
        facts.top_k, facts.block_size = reduced
    return facts


def test_reduced_steps_are_version_3_and_full_ones_stay_version_2(tmp_path):
    """A log of full maps stays readable by version-2 readers; only reduced
    steps need a newer one."""
    pytest.importorskip("tensorflow")
    from tb_attention_plugin.writing import summary

    maps = _softmax_maps(np.random.default_rng(3), 2, 6, 6)[None]
    full = summary.serialize(summary.prepare("a", maps))
    reduced = summary.prepare("a", maps)
    reduced.storage = "reduced"
    reduced = summary.serialize(reduced)
    for items, version in ((full, 2), (reduced, 3)):
        tag, blobs, meta = items[0]
        assert metadata.parse_plugin_metadata(meta.plugin_data.content).version == version
        assert metadata.parse_plugin_metadata(bytes(blobs[-1])).version == version
    assert metadata.parse_plugin_metadata(reduced[0][2].plugin_data.content).top_k == reduction.TOP_K


def test_summary_op_writes_reduced_maps_that_read_attention_rebuilds_within_bound(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from conftest import only_layer
    from tb_attention_plugin.writing import summary

    rng = np.random.default_rng(4)
    scores = np.stack([_softmax_maps(rng, 2, 300, 300, causal=True) for _ in range(2)])
    mask = np.ones((2, 300), bool)
    mask[1, 250:] = False  # example 1: 250 real tokens, padded at the back
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in (0, 5):
            assert summary.attention("long", scores, step=step, query_mask=mask, key_mask=mask,
                                     storage="reduced", kind="causal")
        with pytest.raises(ValueError, match="storage must be one of"):
            summary.attention("bad", scores, step=0, storage="zipped")
    writer.close()
    layer = only_layer(tmp_path, "long")
    assert layer.storage == "reduced" and layer.steps.tolist() == [0, 5]
    maps1 = layer.maps[1]
    assert maps1.shape == (2, 2, 250, 250) and len(maps1) == 2
    # Example 1's rows were renormalised by nothing: they are the crop of
    # the padded map, and the stored form bounds them, uint8 error included.
    truth = scores[1, :, :250, :250]
    assert np.all(np.abs(maps1[-1] - truth) <= maps1.bound(-1) + 1e-6)
    assert maps1.form(0).block == reduction.block_for(300, 300)
    # The numbers come from the full float32 scores, not the reduced form.
    np.testing.assert_allclose(layer.received[1][-1, :2], numerics.received_attention(truth), rtol=1e-5)
