"""Per-class IoU from one confusion matrix, both label encodings, and per-instance IoU."""

from __future__ import annotations

import numpy as np
import pytest

from vos_ros.evaluation.confusion import (
    ConfusionMatrix,
    InstanceIoU,
    decode_instance_labels,
    decode_labels,
    decode_panoptic_labels,
)
from vos_ros.evaluation.scoring import DatasetScorer


def test_instance_encoding_uses_the_class_map_and_ignore_value():
    label = np.array([[0, 1, 1], [2, 2, 255]], np.uint8)
    dec = decode_instance_labels(label, {1: "person"}, ignore_value=255)
    assert dec.instance_classes == {1: "person", 2: "object"}
    assert dec.ignore.tolist() == [[False, False, False], [False, False, True]]
    assert dec.instances[1, 2] == 0


def test_panoptic_encoding_splits_class_instance_stuff_and_ignore():
    label = np.array([[0, 26001, 26002], [7, 24001, 65535]], np.uint16)
    dec = decode_panoptic_labels(label, {26: "car", 24: "person", 7: "road"})
    assert dec.instance_classes == {26001: "car", 26002: "car", 24001: "person"}
    assert dec.stuff_classes == {7: "road"}
    assert dec.ignore[1, 2] and dec.ignore.sum() == 1
    assert dec.instances[1, 0] == 0 and dec.stuff_image[1, 0] == 7
    unnamed = decode_labels(np.array([[3001]], np.int32), "panoptic")
    assert unnamed.instance_classes == {3001: "class_3"}


def test_unknown_encoding_and_bad_arrays_are_rejected():
    with pytest.raises(ValueError, match="unknown label encoding"):
        decode_labels(np.zeros((2, 2), np.uint8), "rgb")
    with pytest.raises(ValueError, match="2-D"):
        decode_instance_labels(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="integers"):
        decode_panoptic_labels(np.zeros((2, 2), np.float32))


def test_per_class_iou_is_tp_over_tp_fp_fn_of_one_matrix():
    cm = ConfusionMatrix()
    gt = np.array([[1, 1, 0, 0], [2, 2, 0, 0]])
    pred = np.array([[1, 0, 0, 2], [2, 2, 1, 0]])
    classes = {1: "cat", 2: "dog"}
    cm.add(cm.class_image(gt, classes), cm.class_image(pred, classes), np.zeros(gt.shape, bool))
    # cat: TP 1, FP 1 (pixel (1,2)), FN 1 (pixel (0,1)); dog: TP 2, FP 1 (pixel (0,3)), FN 0
    iou = cm.iou()
    assert iou["cat"] == pytest.approx(1 / 3)
    assert iou["dog"] == pytest.approx(2 / 3)
    # background: TP 2 ((0,2), (1,3)), FP 1 ((0,1)), FN 2 ((0,3), (1,2))
    assert iou["background"] == pytest.approx(2 / 5)
    # a second frame adds to the same counts (no per-frame averaging)
    cm.add(cm.class_image(gt, classes), cm.class_image(gt, classes), np.zeros(gt.shape, bool))
    assert cm.iou()["cat"] == pytest.approx(3 / 5)


def test_ignore_pixels_are_excluded():
    cm = ConfusionMatrix()
    gt = np.array([[1, 0]])
    pred = np.array([[1, 1]])
    ignore = np.array([[False, True]])
    cm.add(cm.class_image(gt, {1: "a"}), cm.class_image(pred, {1: "a"}), ignore)
    assert cm.iou() == {"a": 1.0}
    with pytest.raises(ValueError, match="shapes differ"):
        cm.add(np.zeros((2, 2), np.int64), np.zeros((2, 3), np.int64), np.zeros((2, 2), bool))


def test_instance_iou_sums_pixels_over_frames():
    inst = InstanceIoU("seq", 1, "a")
    one = np.array([[True, True, False, False]])
    inst.add(one, one, np.zeros_like(one))  # 2 / 2
    inst.add(one, np.array([[True, False, False, True]]), np.zeros_like(one))  # 1 / 3
    assert inst.iou == pytest.approx(3 / 5)
    inst.drop_last()
    assert inst.iou == 1.0 and inst.frames == 1


def test_scorer_maps_ground_truth_to_targets_and_skips_prompt_frames():
    """Per-class IoU over a sequence with a renumbered target and one object appearing late."""
    scorer = DatasetScorer()
    seq = scorer.sequence("s", 3)
    h, w = 8, 8
    gt0 = np.zeros((h, w), np.uint16)
    gt0[1:4, 1:4] = 5  # ground-truth key 5, tracked as target 1
    gt1 = gt0.copy()
    gt1[5:7, 5:7] = 9  # key 9 appears on frame 1, tracked as target 2
    target_of = {5: 1, 9: 2}
    classes = {5: "cat", 9: "dog"}
    pred0 = (gt0 == 5).astype(np.uint16)
    pred1 = pred0 + 2 * (gt1 == 9)
    pred2 = np.zeros((h, w), np.uint16)
    pred2[1:4, 1:3] = 1  # target 1 loses a column; target 2 lost
    for i, (gt, pred) in enumerate([(gt0, pred0), (gt1, pred1), (gt1, pred2)]):
        seq.add_frame(i, decode_instance_labels(gt, classes), pred, {1: "cat", 2: "dog"}, target_of)
    seq.finish(complete=False)  # keep the last frame so its scores are visible
    assert seq.objects[5].frames == [1, 2]
    assert seq.objects[5].j == [1.0, pytest.approx(6 / 9)]
    assert seq.objects[9].frames == [2]  # its first frame was the prompt
    assert seq.objects[9].j == [0.0]
    iou = scorer.confusion.iou()  # frames 1 and 2
    assert iou["cat"] == pytest.approx((9 + 6) / 18)
    assert iou["dog"] == pytest.approx(4 / 8)
