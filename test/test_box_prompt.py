"""Boxes -> label image: GrabCut finds the object in its box; bad boxes give clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vos_ros.box_prompt import BoxError, boxes_to_label_image, validate_boxes


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured background with an orange disc (the object) and its true mask."""
    rng = np.random.default_rng(3)
    frame = rng.integers(40, 120, (240, 320, 3), dtype=np.uint8)
    truth = np.zeros((240, 320), np.uint8)
    cv2.circle(truth, (160, 120), 50, 1, -1)
    frame[truth > 0] = (240, 140, 30)
    frame = np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
    return frame, truth.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_grabcut_segments_the_object_inside_its_box():
    frame, truth = _scene()
    labels = boxes_to_label_image(frame, [(100, 60, 221, 181)], [5])
    assert labels.dtype == np.uint16 and labels.shape == truth.shape
    assert set(np.unique(labels)) == {0, 5}
    assert _iou(labels == 5, truth) > 0.9  # the box alone scores pi/4 = 0.79
    box_only = boxes_to_label_image(frame, [(100, 60, 221, 181)], [5], method="box")
    assert _iou(box_only == 5, truth) < 0.85


def test_several_boxes_get_their_ids_and_flat_regions_fall_back_to_the_box():
    frame = np.full((100, 120, 3), 128, np.uint8)  # uniform: GrabCut has nothing to separate
    labels = boxes_to_label_image(frame, [(10, 10, 40, 50), (60, 20, 100, 70)], [1, 2])
    assert (labels[10:50, 10:40] == 1).all() and (labels[20:70, 60:100] == 2).all()
    assert (labels > 0).sum() == 30 * 40 + 40 * 50


def test_boxes_are_clipped_to_the_image():
    assert validate_boxes([(-5, -5, 20, 30)], (50, 60)) == [(0, 0, 20, 30)]


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 10, 20), "non-positive size"),
        ((30, 10, 20, 20), "non-positive size"),
        ((200, 10, 220, 20), "outside"),
        ((-40, -40, -1, -1), "outside"),
        ((1, 2, 3), "4 numbers"),
        ((0, 0, float("nan"), 5), "finite"),
    ],
)
def test_bad_boxes_are_refused_with_a_reason(box, message):
    frame = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(BoxError, match=message):
        boxes_to_label_image(frame, [box], [1])


def test_bad_ids_and_frames_are_refused():
    frame = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(BoxError, match="ids"):
        boxes_to_label_image(frame, [(0, 0, 5, 5)], [1, 2])
    with pytest.raises(BoxError, match="out of range"):
        boxes_to_label_image(frame, [(0, 0, 5, 5)], [0])
    with pytest.raises(BoxError, match="RGB uint8"):
        boxes_to_label_image(frame[:, :, 0], [(0, 0, 5, 5)], [1])
