"""The callback's event writer (writing/event_writer.py): one record per
capture, read by TensorFlow's record reader (checksums checked) and by
read_attention; a record cut short loses that capture whole, never part of
it; probe images as PNG without TensorFlow."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tb_attention_plugin import read_attention
from tb_attention_plugin.writing import event_writer, image_grid, summary


def _capture(step, layers=("a", "b")):
    items = []
    for i, name in enumerate(layers):
        scores = np.full((2, 2, 3, 3), 1 / 3, np.float32) * (1 + 0 * step)
        items.extend(summary.serialize(summary.prepare(name, scores, kind="self", layer_index=i)))
    return items


def _events(path):
    return [tf.compat.v1.Event.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def test_each_capture_is_one_event_holding_every_tag_with_metadata_once(tmp_path):
    writer = event_writer.EventWriter(str(tmp_path))
    for step in (0, 5):
        writer.write(_capture(step), step, scalars=[("attention/a/entropy", 0.5)])
    writer.flush()
    writer.close()
    events = _events(writer.path)  # TensorFlow's reader checks every record's CRC
    assert events[0].file_version == "brain.Event:2"
    first, second = events[1:]
    assert [first.step, second.step] == [0, 5]
    tags = [v.tag for v in first.summary.value]
    # per layer: maps, 2 importance tags, head stats, head metrics; then the scalar
    assert len(tags) == 2 * 5 + 1 and "a" in tags and "b/_importance/1" in tags
    assert all(v.metadata.plugin_data.plugin_name for v in first.summary.value)
    # the attention tags' metadata is written once per file, the scalar's every time
    described = [v.tag for v in second.summary.value if v.metadata.plugin_data.plugin_name]
    assert described == ["attention/a/entropy"]
    layers = read_attention(str(tmp_path))["."]
    assert list(layers["a"].steps) == [0, 5]
    np.testing.assert_allclose(layers["b"].maps[1][-1], np.full((2, 3, 3), 1 / 3), atol=1 / 510)


def test_a_capture_cut_short_is_lost_whole_and_the_captures_before_it_read(tmp_path):
    writer = event_writer.EventWriter(str(tmp_path))
    writer.write(_capture(0), 0)
    writer.flush()
    whole = os.path.getsize(writer.path)
    writer.write(_capture(1), 1)
    writer.flush()
    writer.close()
    cut = whole + (os.path.getsize(writer.path) - whole) // 2  # half of step 1's record
    with open(writer.path, "r+b") as f:
        f.truncate(cut)
    layers = read_attention(str(tmp_path))["."]
    assert list(layers["a"].steps) == list(layers["b"].steps) == [0]
    assert [e.step for e in _events_until_damage(writer.path)] == [0, 0]


def _events_until_damage(path):
    out = []
    try:
        for record in tf.data.TFRecordDataset(path):
            out.append(tf.compat.v1.Event.FromString(record.numpy()))
    except tf.errors.DataLossError:
        pass
    return out


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_probe_images_are_png_any_decoder_reads(channels):
    image = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    png = image_grid.encode_png(image)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), image)
