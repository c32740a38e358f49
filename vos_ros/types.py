"""Plain data types shared by the engine, the evaluator and the ROS adapters (no ROS, no torch).

Pixel conventions used everywhere in the core:
- frames are RGB ``uint8`` arrays of shape ``(H, W, 3)``, C-contiguous;
- label images are ``uint16`` (or ``uint8``) arrays of shape ``(H, W)``: 0 = background,
  k > 0 = target k;
- boxes are ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TargetResult:
    """The engine's answer for one target on one frame."""

    target_id: int
    class_label: str
    prob: np.ndarray  # float32 (H, W) in [0, 1], after soft aggregation
    mask: np.ndarray  # bool (H, W); masks of different targets never overlap
    box: Box  # (0, 0, 0, 0) when the target is not visible
    score: float  # confidence in [0, 1]
    visible: bool  # False while the target is out of frame or occluded (still tracked)


@dataclass
class FrameResult:
    """Everything the engine produced for one frame."""

    frame_index: int
    targets: list[TargetResult]
    label_image: np.ndarray  # uint16 (H, W): pixel = target id, 0 = background
    # stage name -> milliseconds; "adapt" only on a frame that ran online adaptation
    timings_ms: dict[str, float] = field(default_factory=dict)
