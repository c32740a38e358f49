"""The torch prototype twin gives the engine's numbers and passes gradients to the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vos_ros.model.contract import KEY_DIM, PROTOS_PER_FRAME, frame_prototypes
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


@pytest.mark.parametrize(("h", "w"), [(9, 16), (36, 64), (5, 7)])
def test_torch_twin_matches_numpy(h, w):
    rng = np.random.default_rng(h * w)
    key = _unit_key(rng, h, w)
    for mask in _masks(rng, h, w):
        fg_np, bg_np = frame_prototypes(key, mask)
        fg_t, bg_t = frame_prototypes_torch(torch.from_numpy(key), torch.from_numpy(mask))
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
