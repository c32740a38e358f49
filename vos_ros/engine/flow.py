"""Cheap dense optical flow (OpenCV DIS) to carry the previous masks to the current frame.

DIS ("dense inverse search", Kroeger et al., ECCV 2016) with the ``ultrafast`` preset takes well
under a millisecond at 144x256 on one CPU core. The flow is computed *backwards* (current frame ->
previous frame) so the previous mask can be pulled with :func:`cv2.remap`: every current pixel
looks up where it came from, which leaves no holes.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def to_gray(rgb: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> gray uint8 at ``size_wh`` (resized first: fewer pixels)."""
    if (rgb.shape[1], rgb.shape[0]) != size_wh:
        rgb = cv2.resize(rgb, size_wh, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class Motion:
    """One flow run between two frames: sampling maps that pull earlier maps onto the later one.

    Pulling (backward warping) was measured against pushing masks along the forward flow on
    four DAVIS validation clips: J 0.48 vs 0.34 with the flow fallback, so pulling it is.
    """

    def __init__(
        self,
        sampling: tuple[np.ndarray, np.ndarray],
        grid: tuple[np.ndarray, np.ndarray],
        forward: Callable[[], np.ndarray] | None = None,
    ) -> None:
        """:param forward: runs the flow the other way (earlier frame -> later frame), ``(h, w,
        2)`` in map pixels; only called when :meth:`round_trip_error` is asked for."""
        self.sampling = sampling
        self._grid = grid
        self._forward = forward
        self._displacement: np.ndarray | None = None
        self._round_trip: np.ndarray | None = None

    def round_trip_error(self) -> np.ndarray | None:
        """``(h, w)`` float32, map pixels: how far following the flow back to the earlier frame
        and forward again lands from where it started. Near 0 where both flows agree; large
        where the pixel was hidden on the earlier frame (it was just uncovered), so the flow
        had nothing to match it with. None without a forward flow; computed once."""
        if self._forward is None:
            return None
        if self._round_trip is None:
            # The forward flow at each pixel's position on the earlier frame ...
            trip = cv2.remap(
                self._forward(), *self.sampling, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            # ... plus the backward displacement that took it there.
            back = self.displacement()
            trip[..., 0] += back[0]
            trip[..., 1] += back[1]
            self._round_trip = np.hypot(trip[..., 0], trip[..., 1])
        return self._round_trip

    def apply(self, maps_chw: np.ndarray) -> np.ndarray:
        return FlowWarper.warp(maps_chw, self.sampling)

    def displacement(self) -> np.ndarray:
        """``[2, h, w]`` float32 at map resolution: how far (x, then y), in map pixels, each
        pixel of the later frame was in the earlier one. Computed once; do not modify it."""
        if self._displacement is None:
            self._displacement = np.stack(
                [self.sampling[0] - self._grid[0], self.sampling[1] - self._grid[1]]
            )
        return self._displacement


class FlowWarper:
    """Backward flow between consecutive gray frames and warping of per-target maps.

    :param preset: ``ultrafast`` | ``fast`` | ``medium``.
    :param flow_wh: ``(width, height)`` the flow is computed at.
    :param map_wh: ``(width, height)`` of the maps to warp (flow is resized and rescaled to it).
    """

    def __init__(self, preset: str, flow_wh: tuple[int, int], map_wh: tuple[int, int]) -> None:
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
        self.flow_wh = flow_wh
        self.map_wh = map_wh
        w, h = map_wh
        self._grid_x, self._grid_y = np.meshgrid(
            np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
        )
        self._scale = (w / flow_wh[0], h / flow_wh[1])
        self._prev_gray: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_gray = None

    @property
    def previous_gray(self) -> np.ndarray | None:
        return self._prev_gray

    def flow_between(
        self, gray: np.ndarray, reference: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sampling maps ``(map_x, map_y)`` at map resolution that pull ``reference``-frame
        content onto ``gray``'s frame (both gray uint8 at ``flow_wh``)."""
        flow = self._map_flow(gray, reference)
        return self._grid_x + flow[..., 0], self._grid_y + flow[..., 1]

    def _map_flow(self, gray: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """``(h, w, 2)`` float32 at map resolution, in map pixels: how far each pixel of
        ``gray`` moved to reach ``reference`` (one DIS run)."""
        flow = self._dis.calc(gray, reference, None)  # [h, w, 2]: gray pixel -> reference pixel
        if (flow.shape[1], flow.shape[0]) != self.map_wh:
            flow = cv2.resize(flow, self.map_wh, interpolation=cv2.INTER_LINEAR)
        if self._scale != (1.0, 1.0):  # the fallback's flow runs at its map size: scale 1
            flow[..., 0] *= self._scale[0]
            flow[..., 1] *= self._scale[1]
        return flow

    def advance(self, gray: np.ndarray, with_motion: bool = True) -> Motion | None:
        """Motion from the previous frame to ``gray`` (``None`` on the first frame, or when
        ``with_motion`` is False: nothing to carry, no flow run); ``gray`` becomes the previous
        frame."""
        motion = None
        if with_motion and self._prev_gray is not None:
            motion = self.motion(gray, self._prev_gray)
        self._prev_gray = gray
        return motion

    def motion(self, gray: np.ndarray, reference: np.ndarray) -> Motion:
        """How to carry maps from ``reference``'s frame to ``gray``'s (one DIS run; a second
        one, the other way, only if the round trip is asked for)."""
        return Motion(
            self.flow_between(gray, reference),
            (self._grid_x, self._grid_y),
            lambda: self._map_flow(reference, gray),
        )

    @staticmethod
    def warp(maps_chw: np.ndarray, sampling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Warp ``[N, h, w]`` float32 maps with sampling maps from :meth:`flow_between`;
        pixels pulled from outside the frame become 0 (the target left)."""
        out = np.empty_like(maps_chw)
        map_x, map_y = sampling
        for i in range(maps_chw.shape[0]):
            cv2.remap(
                maps_chw[i],
                map_x,
                map_y,
                cv2.INTER_LINEAR,
                dst=out[i],
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
        return out
