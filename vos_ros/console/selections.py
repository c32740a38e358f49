"""What the user drew on a frame, turned into target masks (no ROS).

- a box: :mod:`vos_ros.box_prompt` (GrabCut inside the box), exactly as the node does for
  ``~/add_objects``;
- a painted or outlined mask: a PNG the page drew at the frame's resolution (any non-transparent,
  non-black pixel is the target);
- positive/negative points: the node has no points service, so the console makes the mask itself
  the way the node makes one from a box: GrabCut, here seeded with the points (positive points
  sure foreground, negative ones sure background; the region around the positive points probable
  foreground, as a box's inside is for the node; outside it, background). More positive points
  widen the region.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import cv2
import numpy as np

from vos_ros.box_prompt import BoxError, boxes_to_label_image

# Seeds are discs this fraction of the frame's short side (points are clicked, not pixels).
_SEED_RADIUS_FRACTION = 0.012
# The probable-foreground region reaches this fraction of the short side beyond the positive points.
_REACH_FRACTION = 0.2
MAX_MASK_PNG_BYTES = 8 * 1024 * 1024


class SelectionError(ValueError):
    """A drawing that cannot become a mask; the text goes back to the page."""


@dataclass
class Point:
    x: float
    y: float
    positive: bool = True


def box_mask(frame_rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The node's box prompt (GrabCut, the filled box when GrabCut finds nothing) as a bool mask."""
    try:
        label = boxes_to_label_image(frame_rgb, [box], [1])
    except BoxError as exc:
        raise SelectionError(str(exc)) from None
    return label == 1


def points_mask(frame_rgb: np.ndarray, points: list[Point], iterations: int = 5) -> np.ndarray:
    """A bool mask from clicked points, by GrabCut seeded with them.

    :raises SelectionError: without a positive point, with a point outside the frame, or when
        GrabCut keeps nothing around the positive points.
    """
    height, width = frame_rgb.shape[:2]
    positives = [p for p in points if p.positive]
    if not positives:
        raise SelectionError("give at least one positive point (on the target)")
    for p in points:
        if not (0 <= p.x < width and 0 <= p.y < height):
            raise SelectionError(
                f"point ({p.x:.0f}, {p.y:.0f}) lies outside the {width}x{height} frame"
            )
    short = min(height, width)
    radius = max(2, round(_SEED_RADIUS_FRACTION * short))
    reach = round(_REACH_FRACTION * short)
    xs = [p.x for p in positives]
    ys = [p.y for p in positives]
    x0, x1 = max(0, int(min(xs)) - reach), min(width, int(max(xs)) + reach + 1)
    y0, y1 = max(0, int(min(ys)) - reach), min(height, int(max(ys)) + reach + 1)
    # GrabCut only carves background out of what it may keep: like the inside of a box
    seeds = np.full((height, width), cv2.GC_BGD, np.uint8)
    seeds[y0:y1, x0:x1] = cv2.GC_PR_FGD
    for p in points:
        value = cv2.GC_FGD if p.positive else cv2.GC_BGD
        cv2.circle(seeds, (round(p.x), round(p.y)), radius, int(value), -1)
    # GrabCut on a crop with some background around the region, as the node's box prompt does
    # (tens of milliseconds instead of the whole frame's hundreds)
    margin_x = max(16, (x1 - x0) // 2)
    margin_y = max(16, (y1 - y0) // 2)
    cx0, cy0 = max(0, x0 - margin_x), max(0, y0 - margin_y)
    cx1, cy1 = min(width, x1 + margin_x), min(height, y1 + margin_y)
    crop_seeds = np.ascontiguousarray(seeds[cy0:cy1, cx0:cx1])
    bgr = np.ascontiguousarray(frame_rgb[cy0:cy1, cx0:cx1, ::-1])
    cv2.setRNGSeed(0)  # the same clicks give the same mask
    try:
        cv2.grabCut(
            bgr,
            crop_seeds,
            None,
            np.zeros((1, 65), np.float64),
            np.zeros((1, 65), np.float64),
            iterations,
            cv2.GC_INIT_WITH_MASK,
        )
        found = (crop_seeds == cv2.GC_FGD) | (crop_seeds == cv2.GC_PR_FGD)
    except cv2.error:  # a uniform region: no colour model to fit; the seeds are the answer
        found = crop_seeds == cv2.GC_FGD
    mask = np.zeros((height, width), bool)
    mask[cy0:cy1, cx0:cx1] = found
    # keep the parts that hold a positive point (GrabCut may add stray blobs of the same colour)
    count, parts = cv2.connectedComponents(mask.astype(np.uint8))
    kept = {int(parts[round(p.y), round(p.x)]) for p in positives} - {0}
    mask = np.isin(parts, list(kept)) if count > 1 and kept else mask
    if not mask.any():
        raise SelectionError("no target pixels around the positive points")
    return mask


def decode_mask_png(data_b64: str, shape: tuple[int, int]) -> np.ndarray:
    """A painted mask sent as base64 PNG (RGBA): pixels with alpha > 0 and any colour are the
    target. Its size must be the frame's.

    :raises SelectionError: not base64, not a PNG, the wrong size, or empty.
    """
    if "," in data_b64 and data_b64.startswith("data:"):
        data_b64 = data_b64.split(",", 1)[1]
    if len(data_b64) > MAX_MASK_PNG_BYTES * 4 // 3 + 4:
        raise SelectionError(f"mask image is larger than {MAX_MASK_PNG_BYTES // 1024 // 1024} MB")
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SelectionError("mask_png is not base64") from None
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise SelectionError("mask_png is not a PNG image")
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SelectionError("mask_png cannot be decoded")
    if image.shape[:2] != tuple(shape):
        raise SelectionError(
            f"mask is {image.shape[1]}x{image.shape[0]} but the frame is {shape[1]}x{shape[0]}"
        )
    if image.ndim == 2:
        mask = image > 0
    elif image.shape[2] == 4:
        mask = (image[:, :, 3] > 0) & (image[:, :, :3].max(axis=2) > 0)
    else:
        mask = image.max(axis=2) > 0
    if not mask.any():
        raise SelectionError("the painted mask is empty")
    return mask


def label_image(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """uint16 label image with target ``i + 1`` on ``masks[i]`` (later masks win overlaps).

    :raises SelectionError: when a target ends up with no pixel (covered by later ones).
    """
    labels = np.zeros(shape, np.uint16)
    for index, mask in enumerate(masks):
        labels[mask] = index + 1
    present = set(np.unique(labels).tolist())
    hidden = [i + 1 for i in range(len(masks)) if i + 1 not in present]
    if hidden:
        raise SelectionError(f"targets {hidden} are completely covered by later targets")
    return labels
