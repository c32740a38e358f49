"""Turn pixel boxes into a label image, the way a detector hands targets to the tracker (no ROS).

Each box becomes the mask of one new target: by default OpenCV's GrabCut segments the object inside
the box (run on a crop around the box, which keeps it to tens of milliseconds on VGA frames); when
GrabCut finds nothing usable the filled box itself is the mask, so a request never silently yields
an empty target.

Conventions (as in :mod:`vos_ros.types`): frames are RGB ``uint8`` ``(H, W, 3)``; boxes are
``(x0, y0, x1, y1)`` in pixels with x1/y1 exclusive; the result is a ``uint16`` ``(H, W)`` label
image with 0 = background and ``ids[i]`` inside box ``i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import cv2
import numpy as np

# GrabCut needs some background around the box to learn the background colour model.
_CONTEXT_FRACTION = 0.5
_MIN_CONTEXT_PX = 16
# A GrabCut mask covering less than this fraction of its box is taken as a failure.
_MIN_FILL_FRACTION = 0.05
# Boxes thinner than this cannot hold a GrabCut model; they are used as plain boxes.
_MIN_GRABCUT_SIDE_PX = 4


class BoxPromptMethod(str, Enum):
    """How a box becomes a mask."""

    GRABCUT = "grabcut"  # segment the object inside the box, fall back to the box if that fails
    BOX = "box"  # the filled box is the mask


class BoxError(ValueError):
    """A box that cannot become a mask (outside the image, negative or zero size, bad id)."""


def validate_boxes(
    boxes: Sequence[Sequence[float]], image_shape: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """Check boxes against an image of ``image_shape = (H, W)`` and round them to integer pixels.

    A box may stick out of the image (it is clipped), but it must overlap the image and have a
    positive width and height.

    :raises BoxError: naming the box index and the reason.
    """
    height, width = image_shape
    checked = []
    for index, box in enumerate(boxes):
        if len(box) != 4:
            raise BoxError(f"box {index}: expected 4 numbers (x0, y0, x1, y1), got {len(box)}")
        if not all(np.isfinite(v) for v in box):
            raise BoxError(f"box {index}: coordinates must be finite, got {tuple(box)}")
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise BoxError(
                f"box {index}: ({x0}, {y0}, {x1}, {y1}) has non-positive size "
                f"{x1 - x0}x{y1 - y0}; expected x0 < x1 and y0 < y1"
            )
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise BoxError(
                f"box {index}: ({x0}, {y0}, {x1}, {y1}) lies outside the {width}x{height} image"
            )
        checked.append((max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)))
    return checked


def grabcut_box_mask(
    frame_rgb: np.ndarray, box: tuple[int, int, int, int], iterations: int = 5
) -> np.ndarray | None:
    """GrabCut foreground of ``box`` as a bool ``(H, W)`` mask, or None when it finds no object.

    ``box`` must already be validated and clipped to the frame (see :func:`validate_boxes`).
    """
    height, width = frame_rgb.shape[:2]
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) < _MIN_GRABCUT_SIDE_PX:
        return None
    margin_x = max(_MIN_CONTEXT_PX, int((x1 - x0) * _CONTEXT_FRACTION))
    margin_y = max(_MIN_CONTEXT_PX, int((y1 - y0) * _CONTEXT_FRACTION))
    cx0, cy0 = max(0, x0 - margin_x), max(0, y0 - margin_y)
    cx1, cy1 = min(width, x1 + margin_x), min(height, y1 + margin_y)
    if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1):
        return None  # the box fills the frame: no background to learn from
    crop = np.ascontiguousarray(frame_rgb[cy0:cy1, cx0:cx1, ::-1])  # OpenCV wants BGR
    gc_mask = np.zeros(crop.shape[:2], np.uint8)
    rect = (x0 - cx0, y0 - cy0, x1 - x0, y1 - y0)
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means on OpenCV's random generator: a fixed seed
    # gives the same mask for the same box and frame every time (the evaluator replays boxes).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(crop, gc_mask, rect, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None  # e.g. a uniform crop: GrabCut cannot fit its colour models
    foreground = (gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)
    if foreground.sum() < _MIN_FILL_FRACTION * (x1 - x0) * (y1 - y0):
        return None
    full = np.zeros((height, width), bool)
    full[cy0:cy1, cx0:cx1] = foreground
    return full


def boxes_to_label_image(
    frame_rgb: np.ndarray,
    boxes: Sequence[Sequence[float]],
    ids: Sequence[int],
    method: BoxPromptMethod | str = BoxPromptMethod.GRABCUT,
    grabcut_iterations: int = 5,
) -> np.ndarray:
    """A ``uint16`` ``(H, W)`` label image with ``ids[i]`` on the object inside ``boxes[i]``.

    Where boxes overlap, the later box wins (its pixels overwrite the earlier ones), except that
    a pixel GrabCut placed in the background of a box keeps an earlier box's id.

    :param frame_rgb: RGB ``uint8`` ``(H, W, 3)`` frame the boxes were drawn on.
    :param boxes: ``(x0, y0, x1, y1)`` pixel boxes, x1/y1 exclusive.
    :param ids: the target id (1..65535) for each box.
    :param method: ``"grabcut"`` (default) or ``"box"``.
    :raises BoxError: for a bad box or id, or mismatched lengths.
    """
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise BoxError(
            f"frame must be RGB uint8 (H, W, 3), got {frame_rgb.dtype} {frame_rgb.shape}"
        )
    if len(boxes) != len(ids):
        raise BoxError(f"got {len(boxes)} boxes but {len(ids)} ids")
    for target_id in ids:
        if not 0 < int(target_id) <= np.iinfo(np.uint16).max:
            raise BoxError(f"target id {target_id} out of range 1..65535")
    method = BoxPromptMethod(method)
    checked = validate_boxes(boxes, frame_rgb.shape[:2])
    labels = np.zeros(frame_rgb.shape[:2], np.uint16)
    for box, target_id in zip(checked, ids, strict=True):
        mask = None
        if method is BoxPromptMethod.GRABCUT:
            mask = grabcut_box_mask(frame_rgb, box, grabcut_iterations)
        if mask is None:
            x0, y0, x1, y1 = box
            labels[y0:y1, x0:x1] = target_id
        else:
            labels[mask] = target_id
    return labels
