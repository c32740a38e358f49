"""What the user drew on a frame, turned into target masks (no ROS).

- a box: :mod:`vos_ros.box_prompt` (GrabCut inside the box), exactly as the node does for
  ``~/add_objects``;
- a painted or outlined mask: a PNG the page drew at the frame's resolution (any non-transparent,
  non-black pixel is the target);
- positive/negative points: on the live page they go to the node's ``~/add_points``; on the
  offline page (no node) they become a mask here as the node makes one for a model family
  without a prompt encoder (:func:`vos_ros.click_prompt.grabcut_click_mask`). With a sam2
  model the offline page sends boxes and points through its prompt encoder instead
  (:meth:`vos_ros.console.offline_jobs.JobStore.prompt_encoder`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import cv2
import numpy as np

from vos_ros.box_prompt import BoxError, boxes_to_label_image
from vos_ros.click_prompt import ClickError, ClickPrompt, grabcut_click_mask, validate_click_prompt

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
    """A bool mask from clicked points, as the node makes one for a family without a prompt
    encoder (:func:`vos_ros.click_prompt.grabcut_click_mask`).

    :raises SelectionError: without a positive point, with a point outside the frame, or when
        GrabCut keeps nothing around the positive points.
    """
    prompt = ClickPrompt(tuple((p.x, p.y) for p in points), tuple(int(p.positive) for p in points))
    try:
        prompt = validate_click_prompt(prompt, frame_rgb.shape[:2])
        if not prompt.positives:
            raise ClickError("give at least one positive point (on the target)")
        return grabcut_click_mask(frame_rgb, prompt, iterations)
    except ClickError as exc:
        raise SelectionError(str(exc)) from None


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
