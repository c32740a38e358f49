"""Keep tracking when the camera changes resolution mid-stream (no ROS).

The engine works on one frame size per stream and refuses frames of another size. A camera that
switches resolution (a driver restart, a new mode) would otherwise stop the node cold until
someone called ``~/reset`` and lost every target. :class:`ResolutionAdapter` wraps the engine and

- while targets are tracked: scales each frame (and each label image given with a request) to the
  size the stream started with, runs the engine there, and scales the result back to the camera's
  new size, so ids, classes and memory are kept; the change is announced once;
- while nothing is tracked: restarts the stream at the new size (``engine.reset()`` loses nothing).

Frames: RGB ``uint8`` ``(H, W, 3)``; label images: integer ``(H, W)``; see :mod:`vos_ros.types`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np

from vos_ros.click_prompt import ClickPrompt
from vos_ros.types import FrameResult, TargetResult


class ResolutionAdapter:
    """The engine API (``step``, ``add_targets``, ``add_click_targets``, ``remove_targets``,
    ``reset``, ``target_ids``, ``next_free_id``, ``class_of``, ``segments_clicks``,
    ``backend_name``) with frames of any size.

    :param engine: a :class:`vos_ros.engine.VosEngine` (or anything with the same API).
    :param on_change: called with one line of text when frames start being scaled.
    """

    def __init__(self, engine: Any, on_change: Callable[[str], None] = lambda text: None) -> None:
        self.engine = engine
        self._on_change = on_change
        self._stream_hw: tuple[int, int] | None = None  # (H, W) the engine's stream runs at
        self._announced: tuple[int, int] | None = None  # last camera size announced

    # -- pass-through -------------------------------------------------------------------------
    @property
    def target_ids(self) -> list[int]:
        return self.engine.target_ids

    @property
    def backend_name(self) -> str:
        return getattr(self.engine, "backend_name", "")

    @property
    def stream_size(self) -> tuple[int, int] | None:
        """``(H, W)`` the engine currently works at; None before the first frame."""
        return self._stream_hw

    @property
    def segments_clicks(self) -> bool:
        return bool(getattr(self.engine, "segments_clicks", False))

    def next_free_id(self) -> int:
        return self.engine.next_free_id()

    def class_of(self, target_id: int) -> str:
        return self.engine.class_of(target_id)

    def remove_targets(self, ids: Iterable[int]) -> list[int]:
        return self.engine.remove_targets(ids)

    def reset(self) -> None:
        self.engine.reset()
        self._stream_hw = None
        self._announced = None

    # -- size-aware calls ---------------------------------------------------------------------
    def step(self, frame_rgb: np.ndarray, prompt: Any = None) -> FrameResult:
        """``engine.step`` on ``frame_rgb`` of any size; the result is at ``frame_rgb``'s size."""
        hw = _hw(frame_rgb)
        engine_hw = self._engine_size_for(hw)
        if engine_hw == hw:
            return self.engine.step(frame_rgb, prompt)
        if prompt is not None:
            prompt = dataclasses.replace(
                prompt, label_image=_resize_labels(prompt.label_image, engine_hw)
            )
        result = self.engine.step(_resize_frame(frame_rgb, engine_hw), prompt)
        return rescale_result(result, hw)

    def add_targets(self, frame_rgb: np.ndarray, label_image: np.ndarray, classes=None) -> list:
        """``engine.add_targets`` with a frame (and label image of its size) of any size."""
        hw = _hw(frame_rgb)
        engine_hw = self._engine_size_for(hw)
        if engine_hw != hw and getattr(label_image, "shape", None) == hw:
            frame_rgb = _resize_frame(frame_rgb, engine_hw)
            label_image = _resize_labels(label_image, engine_hw)
        return self.engine.add_targets(frame_rgb, label_image, classes)

    def add_click_targets(self, frame_rgb: np.ndarray, prompts: dict, classes=None) -> list:
        """``engine.add_click_targets`` with a frame of any size (clicks and boxes scaled)."""
        hw = _hw(frame_rgb)
        engine_hw = self._engine_size_for(hw)
        if engine_hw != hw:
            frame_rgb = _resize_frame(frame_rgb, engine_hw)
            prompts = {i: _scale_clicks(p, hw, engine_hw) for i, p in prompts.items()}
        return self.engine.add_click_targets(frame_rgb, prompts, classes)

    def _engine_size_for(self, hw: tuple[int, int]) -> tuple[int, int]:
        """The size a frame of size ``hw`` is given to the engine at."""
        if self._stream_hw is None or hw == self._stream_hw:
            self._stream_hw = hw
            return hw
        if not self.engine.target_ids:
            self.engine.reset()  # nothing tracked: start the stream over at the new size
            self._stream_hw, self._announced = hw, None
            return hw
        if self._announced != hw:
            self._announced = hw
            (h0, w0), (h1, w1) = self._stream_hw, hw
            self._on_change(
                f"camera resolution changed from {w0}x{h0} to {w1}x{h1} while tracking "
                f"{sorted(self.engine.target_ids)}: frames are scaled to {w0}x{h0} for the engine "
                f"and results back to {w1}x{h1} (call ~/reset to restart at the new size)"
            )
        return self._stream_hw


def rescale_result(result: FrameResult, hw: tuple[int, int]) -> FrameResult:
    """``result`` scaled to ``hw = (H, W)``: label image by nearest neighbour, masks and boxes
    recomputed from it (so they stay consistent and never overlap), probabilities bilinear."""
    height, width = hw
    labels = cv2.resize(result.label_image, (width, height), interpolation=cv2.INTER_NEAREST)
    targets = []
    for target in result.targets:
        mask = labels == target.target_id
        box = _mask_box(mask)
        prob = target.prob
        if isinstance(prob, np.ndarray) and prob.ndim == 2 and prob.size:
            prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
        visible = bool(target.visible) and box != (0, 0, 0, 0)
        targets.append(
            TargetResult(
                target_id=target.target_id,
                class_label=target.class_label,
                prob=prob,
                mask=mask if visible else np.zeros(hw, bool),
                box=box if visible else (0, 0, 0, 0),
                score=target.score,
                visible=visible,
            )
        )
    return FrameResult(
        frame_index=result.frame_index,
        targets=targets,
        label_image=labels,
        timings_ms=dict(result.timings_ms),
    )


def _hw(frame: Any) -> tuple[int, int]:
    shape = getattr(frame, "shape", None)
    if shape is None or len(shape) < 2:
        raise ValueError(f"frame must be an (H, W, 3) array, got shape {shape}")
    return int(shape[0]), int(shape[1])


def _resize_frame(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    height, width = hw
    shrink = height * width < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def _scale_clicks(prompt: ClickPrompt, hw: tuple[int, int], to_hw: tuple[int, int]) -> ClickPrompt:
    """Clicks and box given on a frame of ``hw`` in pixels of a frame of ``to_hw``."""
    sy, sx = to_hw[0] / hw[0], to_hw[1] / hw[1]
    points = tuple((x * sx, y * sy) for x, y in prompt.points)
    box = prompt.box
    if box is not None:
        box = (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))
    return ClickPrompt(points, prompt.labels, box)


def _resize_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    height, width = hw
    as_u16 = np.asarray(labels).astype(np.uint16, copy=False)  # OpenCV resizes uint16, not int64
    return cv2.resize(as_u16, (width, height), interpolation=cv2.INTER_NEAREST)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight ``(x0, y0, x1, y1)`` box (exclusive ends) of a bool mask; zeros when empty."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0 or h == 0:
        return (0, 0, 0, 0)
    return (int(x), int(y), int(x + w), int(y + h))
