"""What callers hand the engine, checked: RGB frames, label images with their class maps, and
the ``Prompt`` that carries ground truth for a frame. Every problem is an :class:`InputError`
naming what is wrong; nothing in the engine changes before these checks pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vos_ros.engine.config import EngineError
from vos_ros.engine.targets import check_target_id


class InputError(EngineError):
    """A frame, label image or class map given to the engine is malformed."""


@dataclass(frozen=True)
class Prompt:
    """Ground truth for some targets on the frame it is given with.

    :param label_image: ``(H, W)`` integer array at the frame's size; pixel value k > 0 = target k.
    :param classes: target id -> class label; ids without an entry get ``"object"``.
    :param replace: ids that are already tracked are re-initialised from this mask (their
        memory is dropped) when True; when False, a tracked id in the prompt is an error.
    """

    label_image: np.ndarray
    classes: dict[int, str] = field(default_factory=dict)
    replace: bool = False


def check_rgb_frame(frame: object) -> np.ndarray:
    """``frame`` when it is an ``(H, W, 3)`` uint8 array."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        raise InputError(f"frame must be an (H, W, 3) RGB uint8 array, got shape {shape}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8, got {frame.dtype}")
    return frame


def parse_label_image(
    label_image: object, classes: object, hw: tuple[int, int]
) -> dict[int, np.ndarray]:
    """``{target id: bool (H, W) mask}`` from a label image of a frame of size ``hw``, with its
    class map ``{id: label}`` checked against it."""
    if not isinstance(label_image, np.ndarray) or label_image.ndim != 2:
        shape = getattr(label_image, "shape", None)
        raise InputError(f"label_image must be an (H, W) integer array, got shape {shape}")
    if not np.issubdtype(label_image.dtype, np.integer):
        raise InputError(f"label_image must have an integer dtype, got {label_image.dtype}")
    if label_image.shape != hw:
        raise InputError(
            f"label_image is {label_image.shape[1]}x{label_image.shape[0]} but the frame is "
            f"{hw[1]}x{hw[0]}"
        )
    if not isinstance(classes, dict):
        raise InputError(f"classes must be a dict {{id: label}}, got {type(classes).__name__}")
    if label_image.size and (label_image.min() < 0 or label_image.max() > 65535):
        raise InputError("label_image values must be in 0..65535")
    counts = np.bincount(label_image.ravel().astype(np.intp, copy=False))
    ids = [int(i) for i in np.flatnonzero(counts) if i > 0]
    for key in classes:
        check_target_id(key)
        if int(key) not in ids:
            raise InputError(f"classes names target {key}, which has no pixel in label_image")
    return {i: label_image == i for i in ids}
