"""DAVIS J and F measures and their statistics, checked on hand-made masks and against a
brute-force boundary matcher."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos_ros.evaluation.davis_metrics import (
    ObjectSeries,
    boundary_f_measure,
    boundary_map,
    boundary_tolerance,
    decay_bin_edges,
    disk,
    global_row,
    region_iou,
    series_statistics,
)


def square(h: int, w: int, y0: int, x0: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def test_region_iou_counts_pixels():
    gt = square(10, 10, 0, 0, 4)  # 16 px
    pred = square(10, 10, 2, 2, 4)  # overlap 2x2 = 4 px, union 28
    assert region_iou(gt, pred) == pytest.approx(4 / 28)
    assert region_iou(gt, gt) == 1.0


def test_region_iou_empty_union_is_one_and_void_is_excluded():
    empty = np.zeros((5, 5), bool)
    assert region_iou(empty, empty) == 1.0
    gt = square(5, 5, 0, 0, 2)
    pred = gt | square(5, 5, 3, 3, 2)  # 4 extra false-positive pixels
    void = square(5, 5, 3, 3, 2)
    assert region_iou(gt, pred) == pytest.approx(4 / 8)
    assert region_iou(gt, pred, void) == 1.0


def test_region_iou_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        region_iou(np.zeros((4, 4)), np.zeros((4, 5)))


def test_boundary_map_of_a_square_sits_half_a_pixel_towards_the_origin():
    seg = square(6, 6, 1, 1, 3)  # rows/cols 1..3
    b = boundary_map(seg)
    expected = np.zeros((6, 6), bool)
    # inside pixels differing from a right/lower/lower-right neighbour: the bottom and right rim
    expected[3, 1:4] = True
    expected[1:4, 3] = True
    # background pixels just above/left of the square differ from their lower/right neighbours
    expected[0, 0:4] = True
    expected[0:4, 0] = True
    assert np.array_equal(b, expected)


def test_boundary_map_at_the_image_edge():
    # Past the image edge is not background for the boundary: a full mask has no boundary, and
    # a mask touching the right edge is outlined only where it meets the background.
    assert not boundary_map(np.ones((4, 5), bool)).any()
    right = np.zeros((4, 6), bool)
    right[:, 3:] = True
    b = boundary_map(right)
    expected = np.zeros((4, 6), bool)
    expected[:, 2] = True
    assert np.array_equal(b, expected)


def test_tolerance_and_disk_match_the_official_values():
    assert boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.7)
    assert boundary_tolerance((360, 640)) == 6
    assert boundary_tolerance((480, 854), bound_th=3) == 3
    d = disk(2)
    assert d.shape == (5, 5)
    assert d.sum() == 13 and d[0, 2] == 1 and d[0, 1] == 0


def test_boundary_f_perfect_shifted_and_empty():
    gt = square(480, 854, 100, 100, 80)
    assert boundary_f_measure(gt, gt) == 1.0
    assert boundary_f_measure(gt, np.roll(gt, 5, axis=1)) == 1.0  # within 8 px
    assert boundary_f_measure(gt, np.roll(gt, 200, axis=1)) == 0.0
    empty = np.zeros_like(gt)
    assert boundary_f_measure(gt, empty) == 0.0
    assert boundary_f_measure(empty, gt) == 0.0
    assert boundary_f_measure(empty, empty) == 1.0


def _brute_force_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """F-measure by explicit distances between boundary pixels (no dilation, no cropping)."""
    gb = np.argwhere(boundary_map(gt))
    pb = np.argwhere(boundary_map(pred))
    if len(gb) == 0 and len(pb) == 0:
        return 1.0
    if len(gb) == 0 or len(pb) == 0:
        return 0.0
    d2 = ((gb[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
    recall = np.mean(d2.min(axis=1) <= radius**2)
    precision = np.mean(d2.min(axis=0) <= radius**2)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_boundary_f_equals_brute_force(seed: int, radius: int):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
    gt = rng.random((h, w)) < 0.3
    pred = rng.random((h, w)) < 0.3
    gt[: rng.integers(0, h)] = False  # vary the empty area so cropping is exercised
    assert boundary_f_measure(gt, pred, bound_th=radius) == pytest.approx(
        _brute_force_f(gt, pred, radius)
    )


def test_void_pixels_are_removed_before_the_boundaries():
    gt = square(50, 50, 10, 10, 20)
    pred = gt | square(50, 50, 35, 35, 10)
    void = square(50, 50, 32, 32, 18)
    assert boundary_f_measure(gt, pred, bound_th=1) < 1.0
    assert boundary_f_measure(gt, pred, void, bound_th=1) == 1.0  # the void hides the extra
    assert boundary_f_measure(gt & ~void, pred & ~void, bound_th=1) == boundary_f_measure(
        gt, pred, void, bound_th=1
    )


def test_decay_bins_follow_the_official_edges():
    # round(linspace(1, n, 5) + 1e-10) - 1, bins share their end frames
    assert decay_bin_edges(48) == [0, 12, 24, 35, 47]
    assert decay_bin_edges(10) == [0, 2, 5, 7, 9]
    values = np.arange(10, dtype=float)
    stats = series_statistics(values)
    assert stats.decay == pytest.approx(np.mean(values[0:3]) - np.mean(values[7:10]))


def test_statistics_on_sequences_longer_than_255_frames():
    values = np.linspace(1.0, 0.0, 300)
    edges = decay_bin_edges(300)
    assert edges[-1] == 299  # the official uint8 edges would wrap to 43 here
    stats = series_statistics(values)
    first = values[edges[0] : edges[1] + 1].mean()
    last = values[edges[3] : edges[4] + 1].mean()
    assert stats.decay == pytest.approx(first - last)
    assert stats.decay > 0.7


def test_recall_counts_strictly_above_half_and_nan_as_miss():
    stats = series_statistics([0.5, 0.51, 1.0, float("nan")])
    assert stats.recall == pytest.approx(2 / 4)
    assert stats.mean == pytest.approx((0.5 + 0.51 + 1.0) / 3)


def test_global_row_averages_over_objects():
    a = ObjectSeries("a", 1, [1, 2], [1.0, 1.0], [0.8, 0.8])
    b = ObjectSeries("b", 1, [1, 2, 3, 4], [0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2])
    row = global_row([a, b])
    assert row["J-Mean"] == pytest.approx(0.5)  # per object, not per frame
    assert row["F-Mean"] == pytest.approx(0.5)
    assert row["J&F-Mean"] == pytest.approx(0.5)
    assert row["J-Recall"] == pytest.approx(0.5)
