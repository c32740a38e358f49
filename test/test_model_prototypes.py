"""The torch prototype twin gives the engine's numbers and passes gradients to the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vos_ros.model.contract import (
    KEY_DIM,
    PROTOS_PER_FRAME,
    PROTOTYPE_SCHEMES,
    frame_prototypes,
    local_bg_cells,
)
from vos_ros.model.torch_prototypes import frame_prototypes_torch


def _unit_key(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    key = rng.normal(size=(KEY_DIM, h, w)).astype(np.float32)
    return key / np.linalg.norm(key, axis=0, keepdims=True)


def _masks(rng: np.random.Generator, h: int, w: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[:h, :w]
    blob = (((yy - h / 3) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 5)) ** 2 < 1).astype(np.float32)
    soft = np.clip(blob * 0.8 + rng.uniform(0, 0.3, (h, w)).astype(np.float32), 0, 1)
    corner = np.zeros((h, w), np.float32)
    corner[:2, :3] = 1.0
    return [blob, soft, corner, np.zeros((h, w), np.float32), np.ones((h, w), np.float32)]


@pytest.mark.parametrize("scheme", PROTOTYPE_SCHEMES)
@pytest.mark.parametrize(("h", "w"), [(9, 16), (36, 64), (5, 7)])
def test_torch_twin_matches_numpy(h, w, scheme):
    rng = np.random.default_rng(h * w)
    key = _unit_key(rng, h, w)
    for mask in _masks(rng, h, w):
        fg_np, bg_np = frame_prototypes(key, mask, scheme)
        fg_t, bg_t = frame_prototypes_torch(torch.from_numpy(key), torch.from_numpy(mask), scheme)
        assert fg_t.shape == bg_t.shape == (PROTOS_PER_FRAME, KEY_DIM)
        np.testing.assert_allclose(fg_t.numpy(), fg_np, atol=1e-5)
        np.testing.assert_allclose(bg_t.numpy(), bg_np, atol=1e-5)


def test_gradients_reach_the_key():
    rng = np.random.default_rng(0)
    key = torch.from_numpy(_unit_key(rng, 12, 20)).requires_grad_(True)
    mask = torch.from_numpy(_masks(rng, 12, 20)[0])
    fg, bg = frame_prototypes_torch(key, mask)
    (fg.sum() + bg.sum()).backward()
    assert key.grad is not None
    assert float(key.grad.abs().sum()) > 0


def test_local_bg_cells_surround_the_object_and_stay_inside():
    # object box rows 10..20, cols 30..50 of a 36x64 map: cells cover rows 5..25, cols 20..60
    cells = local_bg_cells((10, 20, 30, 50), 36, 64)
    assert len(cells) == PROTOS_PER_FRAME - 1
    assert min(c[0] for c in cells) == 5 and max(c[1] for c in cells) == 25
    assert min(c[2] for c in cells) == 20 and max(c[3] for c in cells) == 60
    # at the border the enlarged box is clipped, and every cell keeps at least one pixel
    for ya, yb, xa, xb in local_bg_cells((0, 1, 60, 64), 36, 64):
        assert 0 <= ya < yb <= 36 and 0 <= xa < xb <= 64


def test_local_bg_prototypes_describe_the_surroundings():
    # key = one direction inside a ring around the object, another far away: the local scheme's
    # cell prototypes point at the ring, the frame-grid ones at the far background.
    h, w = 36, 64
    key = np.zeros((KEY_DIM, h, w), np.float32)
    key[2] = 1.0  # far background
    key[:, 8:28, 20:44] = 0.0
    key[1, 8:28, 20:44] = 1.0  # near the object
    key[:, 13:23, 27:37] = 0.0
    key[0, 13:23, 27:37] = 1.0  # the object
    mask = np.zeros((h, w), np.float32)
    mask[13:23, 27:37] = 1.0
    _, bg_local = frame_prototypes(key, mask, "local-bg")
    _, bg_grid = frame_prototypes(key, mask, "frame-grid")
    assert np.all(bg_local[1:, 1] > 0.5)
    assert np.all(bg_grid[1:, 1] < 0.5)


def test_unknown_scheme_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="prototype scheme"):
        frame_prototypes(_unit_key(rng, 4, 4), np.zeros((4, 4), np.float32), "nearest")
