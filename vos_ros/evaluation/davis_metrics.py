"""DAVIS region (J) and boundary (F) measures, computed as the official DAVIS 2017 evaluator does.

Facts reproduced from the official protocol (Perazzi et al. 2016, Pont-Tuset et al. 2017):

- J is the Jaccard index of the binary masks; an empty union scores 1.
- F is the boundary F-measure: both masks are turned into 1-pixel boundary maps (boundaries sit
  half a pixel towards the origin, see :func:`boundary_map`), each map is dilated by a disk whose
  radius is ``ceil(bound_th * image diagonal)`` pixels (8 px at 854x480 for ``bound_th=0.008``),
  and precision/recall count the boundary pixels of one map that fall inside the other's dilation.
- Per object and sequence: mean, recall (share of frames scoring > 0.5) and decay (mean of the first
  quarter of the frames minus the mean of the last quarter, with the official bin edges).
- Semi-supervised protocol: the first frame (given as ground truth) and the last frame are not
  scored.

The official code stores the decay bin edges as ``uint8`` and so breaks on sequences longer than 255
frames; here they are plain integers, which gives the same edges for every shorter sequence.

All masks are ``(H, W)`` arrays, any dtype; non-zero means foreground.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal (official default)
RECALL_THRESHOLD = 0.5
DECAY_BINS = 4


def _check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}")
    if a.ndim != 2:
        raise ValueError(f"{what}: expected 2-D (H, W) masks, got shape {a.shape}")


def region_iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """DAVIS J: |gt ∩ pred| / |gt ∪ pred| over non-void pixels; 1.0 when the union is empty.

    :param gt: ``(H, W)`` ground-truth mask of one object.
    :param pred: ``(H, W)`` predicted mask of the same object.
    :param void: optional ``(H, W)`` mask of pixels that are not scored.
    """
    _check_same_shape(gt, pred, "region_iou")
    gt_b = gt.astype(bool)
    pred_b = pred.astype(bool)
    inter = gt_b & pred_b
    union = gt_b | pred_b
    if void is not None:
        _check_same_shape(gt, void, "region_iou void")
        keep = ~void.astype(bool)
        inter &= keep
        union &= keep
    n_union = int(np.count_nonzero(union))
    if n_union == 0:
        return 1.0
    return int(np.count_nonzero(inter)) / n_union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask (the classic ``seg2bmap``).

    A pixel is a boundary pixel when it differs from its right, lower or lower-right neighbour;
    pixels past the image edge count as background, except that the last row only compares with
    the right neighbour, the last column only with the lower one, and the bottom-right corner is
    never a boundary. This places boundaries half a pixel towards the origin.

    :param mask: ``(H, W)`` mask, non-zero = foreground.
    :returns: ``(H, W)`` bool boundary map.
    """
    seg = mask.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_tolerance(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Dilation radius in pixels: ``bound_th`` itself if >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(shape[0], shape[1]))


def disk(radius: int) -> np.ndarray:
    """Disk structuring element: ``(2r+1, 2r+1)`` uint8, 1 where x² + y² <= r²."""
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def _dilate(bmap: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.dilate(bmap.astype(np.uint8), kernel).astype(bool)


def boundary_f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """DAVIS F: boundary F-measure of ``pred`` against ``gt`` with a disk tolerance.

    Conventions of the official code: no predicted boundary but a true one gives precision 1 and
    recall 0 (F = 0); the reverse gives F = 0; both empty gives F = 1.

    :param gt: ``(H, W)`` ground-truth mask of one object.
    :param pred: ``(H, W)`` predicted mask of the same object.
    :param void: optional ``(H, W)`` mask of pixels removed from both masks before the boundaries.
    :param bound_th: tolerance, a fraction of the diagonal (< 1) or pixels (>= 1).
    """
    _check_same_shape(gt, pred, "boundary_f_measure")
    gt_b = gt.astype(bool)
    pred_b = pred.astype(bool)
    if void is not None:
        _check_same_shape(gt, void, "boundary_f_measure void")
        keep = ~void.astype(bool)
        gt_b &= keep
        pred_b &= keep
    gt_bound = boundary_map(gt_b)
    pred_bound = boundary_map(pred_b)
    n_gt = int(np.count_nonzero(gt_bound))
    n_pred = int(np.count_nonzero(pred_bound))
    if n_gt == 0 and n_pred == 0:
        return 1.0
    if n_gt == 0 or n_pred == 0:
        return 0.0

    # Dilation is local, so only the window holding both boundaries matters: cropping to it gives
    # the same counts as the full image and is much faster for small objects.
    rows = np.flatnonzero(np.any(gt_bound | pred_bound, axis=1))
    cols = np.flatnonzero(np.any(gt_bound | pred_bound, axis=0))
    window = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    gt_bound = gt_bound[window]
    pred_bound = pred_bound[window]

    kernel = disk(boundary_tolerance(gt.shape, bound_th))
    pred_matched = np.count_nonzero(pred_bound & _dilate(gt_bound, kernel))
    gt_matched = np.count_nonzero(gt_bound & _dilate(pred_bound, kernel))
    precision = pred_matched / n_pred
    recall = gt_matched / n_gt
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class SeriesStats:
    """Mean, recall and decay of one per-frame series (J or F of one object)."""

    mean: float
    recall: float
    decay: float


def decay_bin_edges(n: int, n_bins: int = DECAY_BINS) -> list[int]:
    """Official bin edges over ``n`` frames: bin i is ``values[e[i] : e[i+1] + 1]``.

    Neighbouring bins share their end frame, as in the official code.
    """
    edges = np.round(np.linspace(1, n, n_bins + 1) + 1e-10) - 1
    return [int(e) for e in edges]


def series_statistics(values: Sequence[float] | np.ndarray) -> SeriesStats:
    """Mean, recall (share > 0.5) and decay (first bin mean - last bin mean), NaNs ignored.

    :param values: per-frame J or F of one object over the scored frames.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return SeriesStats(float("nan"), float("nan"), float("nan"))
    finite = arr[~np.isnan(arr)]
    mean = float(finite.mean()) if finite.size else float("nan")
    # The official recall averages (value > 0.5) over all frames: a NaN counts as a miss.
    recall = float(np.mean(arr > RECALL_THRESHOLD))
    edges = decay_bin_edges(arr.size)
    first = arr[edges[0] : edges[1] + 1]
    last = arr[edges[DECAY_BINS - 1] : edges[DECAY_BINS] + 1]
    decay = _nanmean(first) - _nanmean(last)
    return SeriesStats(mean, recall, decay)


def _nanmean(a: np.ndarray) -> float:
    finite = a[~np.isnan(a)]
    return float(finite.mean()) if finite.size else float("nan")


@dataclass
class ObjectSeries:
    """Per-frame J and F of one object in one sequence (only the frames that are scored)."""

    sequence: str
    object_id: int
    frames: list[int]
    j: list[float]
    f: list[float]

    @property
    def name(self) -> str:
        """The official per-object row name, ``<sequence>_<object id>``."""
        return f"{self.sequence}_{self.object_id}"

    def j_stats(self) -> SeriesStats:
        return series_statistics(self.j)

    def f_stats(self) -> SeriesStats:
        return series_statistics(self.f)


GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def global_row(objects: Sequence[ObjectSeries]) -> dict[str, float]:
    """The official global row: every statistic averaged over objects (not frames).

    :returns: dict with the keys of :data:`GLOBAL_KEYS`; NaN when no object was scored.
    """
    rows = [(o.j_stats(), o.f_stats()) for o in objects if o.j]
    if not rows:
        return dict.fromkeys(GLOBAL_KEYS, float("nan"))
    j_mean = _nanmean(np.array([j.mean for j, _ in rows]))
    f_mean = _nanmean(np.array([f.mean for _, f in rows]))
    return {
        "J&F-Mean": (j_mean + f_mean) / 2.0,
        "J-Mean": j_mean,
        "J-Recall": _nanmean(np.array([j.recall for j, _ in rows])),
        "J-Decay": _nanmean(np.array([j.decay for j, _ in rows])),
        "F-Mean": f_mean,
        "F-Recall": _nanmean(np.array([f.recall for _, f in rows])),
        "F-Decay": _nanmean(np.array([f.decay for _, f in rows])),
    }


def per_sequence_rows(objects: Sequence[ObjectSeries]) -> dict[str, dict[str, float]]:
    """Official per-object rows: ``{"<seq>_<id>": {"J-Mean", "F-Mean", ...}}``."""
    out: dict[str, dict[str, float]] = {}
    for obj in objects:
        if not obj.j:
            continue
        j, f = obj.j_stats(), obj.f_stats()
        out[obj.name] = {
            "J&F-Mean": (j.mean + f.mean) / 2.0,
            "J-Mean": j.mean,
            "J-Recall": j.recall,
            "J-Decay": j.decay,
            "F-Mean": f.mean,
            "F-Recall": f.recall,
            "F-Decay": f.decay,
            "frames": len(obj.j),
        }
    return out
