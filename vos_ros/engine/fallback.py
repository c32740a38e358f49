"""Training-free fallback: each target's previous mask carried to the new frame by optical flow.

It needs no model file, so the engine runs as soon as it is installed (``model="flow"``), and it
is the baseline a trained model must beat. The engine does the flow warping (the same warping the
network gets as its ``prev_mask`` guidance); this predictor returns the warped masks unchanged.
The engine feeds it hard masks (``binary_state``): re-thresholding every frame stops the bilinear
warp from blurring the masks away over a long video.

Limits, by construction: no appearance model, so a target that is fully occluded or leaves the
frame is lost (reported not visible) and is not found again; drift accumulates over time.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class FlowPredictor:
    """Predictor with the same interface as :class:`vos_ros.engine.predictor.NetworkPredictor`."""

    name = "flow"
    binary_state = True  # the engine keeps hard masks between frames
    uses_prior = False  # the warped mask is its own prior

    def __init__(self) -> None:
        self.timings_ms: dict[str, float] = {"memory": 0.0, "decoder": 0.0}

    def prepare(self, small_rgb: np.ndarray) -> None:
        return None

    def encode(self, prepared: Any) -> None:
        return None

    def predict(self, features: Any, ids: list[int], previous: np.ndarray) -> np.ndarray:
        """``previous``: ``[N, h, w]`` float32 warped masks -> the same maps as probabilities."""
        return previous

    def memorize(self, features: Any, target_id: int, prob: np.ndarray, mode: str) -> None:
        return None

    def forget(self, target_id: int) -> None:
        return None

    def reset(self) -> None:
        return None

    def memory_nbytes(self) -> int:
        return 0
