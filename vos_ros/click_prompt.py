"""Clicks and a box for one target, as a user gives them on a frame (no ROS).

A :class:`ClickPrompt` holds positive points (on the target), negative points (not on it) and
an optional box, in pixels of the frame they were clicked on. Model families with a prompt
encoder (SAM 2) take it as it is; for the others :func:`grabcut_click_mask` makes the target's
mask the way :mod:`vos_ros.box_prompt` makes one from a box: GrabCut, seeded with the points
(positive points sure foreground, negative ones sure background) inside a region that may hold
the target (the box, or the area around the positive points; outside it, background).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vos_ros.box_prompt import BoxError, grabcut_box_mask, validate_boxes

POSITIVE = 1
NEGATIVE = 0
# Seeds are discs this fraction of the frame's short side (points are clicked, not pixels).
_SEED_RADIUS_FRACTION = 0.012
# Without a box, the region that may hold the target reaches this fraction of the short side
# beyond the positive points.
_REACH_FRACTION = 0.2


class ClickError(ValueError):
    """Clicks or a box that cannot become a target (outside the frame, bad label, nothing given)."""


@dataclass(frozen=True)
class ClickPrompt:
    """One target's clicks and box.

    :param points: ``(x, y)`` click positions in pixels.
    :param labels: per point, :data:`POSITIVE` (1) or :data:`NEGATIVE` (0).
    :param box: ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive, or None.
    """

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[int, int, int, int] | None = None

    @property
    def positives(self) -> list[tuple[float, float]]:
        return [p for p, label in zip(self.points, self.labels, strict=True) if label == POSITIVE]


def validate_click_prompt(prompt: ClickPrompt, image_shape: tuple[int, int]) -> ClickPrompt:
    """Check ``prompt`` against a frame of ``image_shape = (H, W)``; returns it with its box
    clipped to the frame and rounded to pixels (see :func:`vos_ros.box_prompt.validate_boxes`).

    :raises ClickError: naming what is wrong.
    """
    height, width = image_shape
    if len(prompt.points) != len(prompt.labels):
        raise ClickError(
            f"got {len(prompt.points)} points but {len(prompt.labels)} labels; give one label "
            "per point"
        )
    for index, (point, label) in enumerate(zip(prompt.points, prompt.labels, strict=True)):
        if label not in (POSITIVE, NEGATIVE):
            raise ClickError(f"point {index}: label {label} is neither 1 (target) nor 0 (not)")
        if len(point) != 2 or not all(np.isfinite(v) for v in point):
            raise ClickError(f"point {index}: expected finite (x, y), got {tuple(point)}")
        x, y = point
        if not (0 <= x < width and 0 <= y < height):
            raise ClickError(
                f"point {index}: ({x:g}, {y:g}) lies outside the {width}x{height} frame"
            )
    box = None
    if prompt.box is not None:
        try:
            (box,) = validate_boxes([prompt.box], image_shape)
        except BoxError as exc:
            raise ClickError(str(exc)) from None
    if box is None and not prompt.positives:
        raise ClickError("give a box or at least one positive point (on the target)")
    points = tuple((float(x), float(y)) for x, y in prompt.points)
    return ClickPrompt(points, tuple(int(v) for v in prompt.labels), box)


def grabcut_click_mask(
    frame_rgb: np.ndarray, prompt: ClickPrompt, iterations: int = 5
) -> np.ndarray:
    """A bool ``(H, W)`` mask from a validated ``prompt`` by GrabCut (families without a prompt
    encoder). A box alone is the node's box prompt (the filled box when GrabCut finds nothing).

    :raises ClickError: when nothing is left around the positive points.
    """
    height, width = frame_rgb.shape[:2]
    if not prompt.points:
        mask = grabcut_box_mask(frame_rgb, prompt.box, iterations)
        if mask is None:
            x0, y0, x1, y1 = prompt.box
            mask = np.zeros((height, width), bool)
            mask[y0:y1, x0:x1] = True
        return mask
    short = min(height, width)
    x0, y0, x1, y1 = _region(prompt, (height, width))
    # GrabCut only carves background out of what it may keep: the box, or around the clicks
    seeds = np.full((height, width), cv2.GC_BGD, np.uint8)
    seeds[y0:y1, x0:x1] = cv2.GC_PR_FGD
    radius = max(2, round(_SEED_RADIUS_FRACTION * short))
    # negative clicks first: where discs overlap, a click on the target wins, so each
    # positive click is in the mask whatever else was clicked
    clicks = sorted(zip(prompt.points, prompt.labels, strict=True), key=lambda c: c[1])
    for (x, y), label in clicks:
        value = cv2.GC_FGD if label == POSITIVE else cv2.GC_BGD
        cv2.circle(seeds, (round(x), round(y)), radius, int(value), -1)
    # GrabCut on a crop with some background around the region, as the box prompt does
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
    positives = prompt.positives
    if positives:  # keep the parts that hold a positive point (GrabCut adds same-colour blobs)
        count, parts = cv2.connectedComponents(mask.astype(np.uint8))
        kept = {int(parts[round(y), round(x)]) for x, y in positives} - {0}
        mask = np.isin(parts, list(kept)) if count > 1 and kept else mask
    if not mask.any():
        raise ClickError("GrabCut finds no target pixels in the box; click on the target")
    return mask


def _region(prompt: ClickPrompt, image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box that may hold the target: the given box, or the area around the positive
    clicks; widened to take in positive clicks outside the box."""
    positives = prompt.positives
    if prompt.box is None:
        return _region_around(positives, image_shape)
    x0, y0, x1, y1 = prompt.box
    for x, y in positives:
        x0, y0 = min(x0, int(x)), min(y0, int(y))
        x1, y1 = max(x1, int(x) + 1), max(y1, int(y) + 1)
    return x0, y0, x1, y1


def _region_around(
    points: list[tuple[float, float]], image_shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The box that may hold the target when only clicks are given: the positive points'
    bounding box widened by a fifth of the frame's short side. More positive points widen it."""
    height, width = image_shape
    reach = round(_REACH_FRACTION * min(height, width))
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = max(0, int(min(xs)) - reach), min(width, int(max(xs)) + reach + 1)
    y0, y1 = max(0, int(min(ys)) - reach), min(height, int(max(ys)) + reach + 1)
    return x0, y0, x1, y1
