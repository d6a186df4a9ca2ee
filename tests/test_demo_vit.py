"""The ViT demo learns to look at the shape: the class token's rollout on
the patches the shape touches grows from about their share of the image to
at least twice it."""

import numpy as np
import pytest

from demo_models import vit
from tb_attention_plugin import read_attention

# The demos are healthy runs: no early warning may fire on them.
pytestmark = pytest.mark.usefixtures("no_head_warnings")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("DEMO_QUIET", "1")


@pytest.mark.slow
def test_the_class_token_looks_at_the_shape_after_training(tmp_path):
    vit.main(["--logdir", str(tmp_path / "vit"), "--preset", "tiny"])
    layers = read_attention(str(tmp_path))["vit"]
    assert list(layers) == ["block0", "block1", "block2"]
    _, _, corners = vit.shape_images(8, seed=1)

    def class_token_share_ratio(step_index):
        ratios = []
        for i, corner in enumerate(corners):
            # Rollout by hand (Abnar & Zuidema; numerics.rollout_step), class row.
            rollout = np.eye(vit.GRID * vit.GRID + 1)
            for layer in layers.values():
                mixed = 0.5 * layer.maps[i][step_index].mean(axis=0) + 0.5 * np.eye(len(rollout))
                mixed /= mixed.sum(axis=1, keepdims=True)
                rollout = mixed @ rollout
            on_patches = rollout[0, 1:] / rollout[0, 1:].sum()
            patches = vit.shape_patches(corner)
            ratios.append(on_patches[patches].sum() / patches.mean())
        return float(np.mean(ratios))

    start, end = class_token_share_ratio(0), class_token_share_ratio(-1)
    assert 0.7 < start < 1.4, start  # about the shape's area share at step 0
    assert end >= 2 * start, (start, end)


def test_vit_maps_are_labelled_by_patch_and_the_probe_images_are_stored(tmp_path):
    from tb_attention_plugin import AttentionCallback, read_probe_images

    model = vit.build_model()
    images, labels, _ = vit.shape_images(64, seed=0)
    probe = images[:3]
    model.fit(images, labels, batch_size=16, verbose=0,
              callbacks=[AttentionCallback(tmp_path / "run", probe, update_freq=2)])
    layer = read_attention(str(tmp_path))["run"]["block0"]
    # Found from the patch-embedding Conv2D (kernel 6 = strides 6): an 8 x 8
    # grid after one class token.
    assert layer.grid == (8, 8, 1)
    assert layer.key_tokens[0][:3] == ["CLS", "0,0", "0,1"] and layer.key_tokens[0][-1] == "7,7"
    # The ViT paper's mean attention distance, stored per head with the
    # capture: what head_metrics.patch_distance gives on the stored maps
    # (uint8 cells: within 1/510 of each weight, a few hundredths of a patch).
    from tb_attention_plugin.math import head_metrics

    column = layer.metric_names.index("patch_distance")
    for example in range(3):
        for s in (0, -1):
            expected = head_metrics.patch_distance(layer.maps[example][s], layer.grid)
            np.testing.assert_allclose(layer.head_metrics[s, example, :, column], expected, atol=0.02)
    assert np.all((layer.head_metrics[..., column] >= 0) & (layer.head_metrics[..., column] <= np.hypot(7, 7)))
    stored = read_probe_images(str(tmp_path))["run"]
    assert len(stored) == 3 and stored[0].shape == (48, 48, 1) and stored[0].dtype == np.uint8
    # Each image stretched from its own min..max to 0..255, losslessly (PNG).
    expected = np.round(255 * (probe[1] - probe[1].min()) / (probe[1].max() - probe[1].min()))
    np.testing.assert_array_equal(stored[1], expected.astype(np.uint8))
