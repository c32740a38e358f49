"""Training smoke test on a tiny synthetic DAVIS-layout folder, augmentation and resume."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vos_ros.model.augment import (
    backward_flow_sampling,
    perturb_prev_mask,
    random_clip_geometry,
    warp_with_sampling,
)
from vos_ros.model.data import load_training_set
from vos_ros.model.synth_pairs import make_training_clip
from vos_ros.model.train import TrainConfig, load_checkpoint, train


def _write_tiny_davis(root: Path, sequences: int = 2, frames: int = 6) -> Path:
    """Moving coloured discs on textured backgrounds, DAVIS layout, 160x96."""
    rng = np.random.default_rng(0)
    for s in range(sequences):
        name = f"seq{s}"
        img_dir = root / "JPEGImages" / "480p" / name
        ann_dir = root / "Annotations" / "480p" / name
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        background = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
        for t in range(frames):
            img = background.copy()
            mask = np.zeros((96, 160), np.uint8)
            center = (40 + 8 * t + 20 * s, 48)
            cv2.circle(img, center, 18, (255, 60 * s, 0), -1)
            cv2.circle(mask, center, 18, 1, -1)
            cv2.imwrite(str(img_dir / f"{t:05d}.jpg"), img)
            cv2.imwrite(str(ann_dir / f"{t:05d}.png"), mask)
    return root


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return _write_tiny_davis(tmp_path / "data")


def _config(tiny_data: Path, out: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        data=str(tiny_data),
        out=str(out),
        steps=steps,
        batch=2,
        clip_len=3,
        crop_h=64,
        crop_w=64,
        store_h=96,
        store_w=128,
        max_gap=2,
        warmup=2,
        cache_dir=str(out.parent / "cache"),
        arch={"c32": 32, "c16": 32, "dec8": 16},
    )


def test_data_cache_round_trip(tiny_data, tmp_path):
    first = load_training_set(tiny_data, 128, 96, tmp_path / "cache")
    cached = load_training_set(tiny_data, 128, 96, tmp_path / "cache")
    assert [s.name for s in first] == [s.name for s in cached] == ["seq0", "seq1"]
    np.testing.assert_array_equal(first[1].frames, cached[1].frames)
    assert first[0].masks.shape == (6, 96, 128) and set(np.unique(first[0].masks)) == {0, 1}


def test_clips_have_visible_non_overlapping_targets(tiny_data, tmp_path):
    sequences = load_training_set(tiny_data, 128, 96, None)
    rng = np.random.default_rng(3)
    for _ in range(5):
        frames, targets = make_training_clip(rng, sequences, 3, 2, (64, 64), paste_prob=1.0)
        assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
        assert targets.shape[1:] == (3, 64, 64) and targets.shape[0] in (1, 2)
        assert (targets[:, 0].reshape(len(targets), -1).sum(1) > 0).all()
        assert targets.sum(axis=0).max() <= 1  # targets never overlap


def test_augmentation_keeps_frames_and_masks_aligned():
    rng = np.random.default_rng(0)
    frames = np.zeros((2, 96, 160, 3), np.uint8)
    masks = np.zeros((2, 96, 160), np.uint8)
    frames[:, 30:60, 50:90] = 255
    masks[:, 30:60, 50:90] = 1
    out_f, out_m = random_clip_geometry(rng, frames, masks, (64, 96))
    inside = out_f[..., 0][out_m > 0]
    assert inside.size and inside.mean() > 200
    soft = perturb_prev_mask(rng, masks[0])
    assert soft.dtype == np.float32 and soft.min() >= 0 and soft.max() <= 1


def test_training_runs_logs_and_resumes_exactly(tiny_data, tmp_path):
    straight = _config(tiny_data, tmp_path / "straight", steps=4)
    train(straight, progress=False)
    split = _config(tiny_data, tmp_path / "split", steps=4)
    train(split, progress=False, stop_after_steps=2)
    assert load_checkpoint(Path(split.out) / "last.pt")["step"] == 2
    train(split, resume="require", progress=False)

    a = load_checkpoint(Path(straight.out) / "last.pt")
    b = load_checkpoint(Path(split.out) / "last.pt")
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, atol=1e-6, rtol=1e-5, msg=name)
    events = [json.loads(line) for line in (Path(split.out) / "train.log").read_text().splitlines()]
    assert [e["event"] for e in events if "event" in e] == ["start", "pause", "start", "end"]
    assert all(np.isfinite(e["loss"]) for e in events if "loss" in e)


def test_resume_required_without_checkpoint_fails(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        train(_config(tiny_data, tmp_path / "none", steps=1), resume="require", progress=False)


def test_flow_warp_follows_motion_and_matches_grid_sample():
    """Masks warped with the training flow land on the moved object; the torch grid used for
    the network's own predictions pulls the same pixels as cv2.remap."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), 2)
    prev_rgb, cur_rgb = texture.copy(), np.roll(texture, 8, axis=1)  # everything moves 8 px right
    mask = np.zeros((24, 40), np.float32)
    mask[8:16, 10:20] = 1.0
    sampling = backward_flow_sampling(cur_rgb, prev_rgb, (24, 40))
    warped = warp_with_sampling(mask, sampling)
    moved = np.roll(mask, 2, axis=1)  # 8 px at 1/4 resolution
    assert ((warped > 0.5) & (moved > 0.5)).sum() / ((warped > 0.5) | (moved > 0.5)).sum() > 0.7

    grid = np.stack([sampling[0] * 2 / 39 - 1, sampling[1] * 2 / 23 - 1], axis=-1)
    pulled = torch.nn.functional.grid_sample(
        torch.from_numpy(mask)[None, None],
        torch.from_numpy(grid.astype(np.float32))[None],
        align_corners=True,
        padding_mode="zeros",
    )[0, 0].numpy()
    np.testing.assert_allclose(pulled, warped, atol=1e-3)


def test_training_clips_give_up_on_objects_too_small_to_crop():
    from vos_ros.model.data import Sequence

    frames = np.zeros((3, 96, 160, 3), np.uint8)
    masks = np.zeros((3, 96, 160), np.uint8)
    masks[:, 40, 80] = 1  # one pixel
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="too small"):
        make_training_clip(rng, [Sequence("dot", frames, masks)], 3, 1, (64, 96), 0.0)
