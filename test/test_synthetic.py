"""The synthetic scene generator: deterministic, textured, and covering the hard cases."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from vos_ros.evaluation.davis_folder import DavisFolder
from vos_ros.synthetic import CLASSES, SceneConfig, generate, synthetic_clip, write_davis_folder

CONFIG = SceneConfig(width=160, height=120, frames=36, objects=5, seed=11)


@pytest.fixture(scope="module")
def frames():
    return list(generate(CONFIG).frames())


def test_same_seed_same_pixels_other_seed_other_scene(frames):
    again = list(generate(CONFIG).frames())
    assert all(
        np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
        for a, b in zip(frames, again, strict=True)
    )
    other = next(generate(SceneConfig(width=160, height=120, frames=36, seed=12)).frames())
    assert not np.array_equal(other.image, frames[0].image)


def test_shapes_types_and_classes(frames):
    scene = generate(CONFIG)
    assert len(frames) == 36
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].label.shape == (120, 160) and frames[0].label.dtype == np.uint16
    assert set(scene.class_map) == {1, 2, 3, 4, 5}
    assert set(scene.class_map.values()) <= set(CLASSES)
    assert len(set(scene.class_map.values())) >= 4
    stamps = [f.stamp_ns for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_frames_are_textured_not_flat(frames):
    image = frames[0].image.astype(np.float32)
    background = image[frames[0].label == 0]
    assert background.std(axis=0).mean() > 10  # sky, ground and clutter vary
    for oid in (1, 2):
        pixels = image[frames[0].label == oid]
        assert pixels.std(axis=0).mean() > 5  # objects are shaded and textured too


def _areas(frames, oid):
    return np.array([(f.label == oid).sum() for f in frames])


def test_object_appears_mid_clip(frames):
    areas = _areas(frames, 4)
    first = int(np.argmax(areas > 0))
    assert first == CONFIG.frames // 3
    assert areas[first] > 100  # it appears whole, so it can be prompted on that frame


def test_object_leaves_the_frame_and_comes_back(frames):
    visible = _areas(frames, 3) > 0
    gone = np.flatnonzero(~visible)
    assert visible[0] and gone.size > 0 and visible[gone[-1] + 1 :].any()


def test_objects_cross_and_occlude(frames):
    def box(mask):
        xs = np.nonzero(mask)[1]
        return xs.min(), xs.max()

    crossed = False
    for f in frames:
        if (f.label == 1).any() and (f.label == 2).any():
            a, b = box(f.label == 1), box(f.label == 2)
            crossed |= a[0] <= b[1] and b[0] <= a[1]
    assert crossed
    # the person is partly hidden while the car passes in front of it
    areas = _areas(frames, 1)
    assert areas.min() < 0.8 * np.median(areas)


def test_clip_and_davis_folder_round_trip(tmp_path: Path):
    config = SceneConfig(width=96, height=64, frames=5, seed=2)
    clip = synthetic_clip(config)
    first = next(clip.frames())
    assert first.gt.instance_classes == {
        k: v for k, v in clip.scene.class_map.items() if (first.gt.instances == k).any()
    }
    write_davis_folder(tmp_path, generate(config), "syn")
    folder = DavisFolder(tmp_path)
    assert folder.sequences() == ["syn"]
    read = list(folder.clip("syn").frames())
    original = list(generate(config).frames())
    assert len(read) == 5
    assert np.array_equal(read[3].gt.instances, original[3].label)
    assert np.array_equal(read[3].image, original[3].image)  # lossless PNG frames
    assert folder.classes["syn"] == clip.scene.class_map


def test_rejects_tiny_frames():
    with pytest.raises(ValueError, match="at least 64x48"):
        generate(SceneConfig(width=32, height=32))
