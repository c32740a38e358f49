"""Decoder windows: run each visible target's decoder on the region around it, not the frame.

The decoder is the per-target part of the network (the encoder runs once per frame), so its cost
grows with every target, and on a whole frame most of that work is spent far from the target,
where the box prior (:mod:`vos_ros.engine.prior`) throws the weak responses away anyway. A
visible target is decoded on a window around its (flow-warped) previous mask: the mask's box
enlarged ``scale`` times about its centre, at least ``min_fraction`` of the frame on each side,
aligned to the key grid (1/8 of the processing size = every second mask pixel). Its probability
outside the window is 0. A lost target (empty previous mask) and a target whose window would
cover most of the frame are decoded on the whole frame, together in one batched run.

Trade-off: a target that jumps farther than its window in one frame loses the part outside it;
when it is lost entirely it is searched for in the whole frame on the next frame.
"""

from __future__ import annotations

import numpy as np

from vos_ros.engine.prior import enlarged_box
from vos_ros.model.contract import KEY_STRIDE, SKIP_STRIDE

# mask pixels per key pixel: windows start and end on the key grid so that the cropped key
# (1/8) and f4 / prev_mask (1/4) cover the same region
GRID = KEY_STRIDE // SKIP_STRIDE
# a window bigger than this share of the frame is not worth its own decoder run
MAX_AREA_FRACTION = 0.6

Window = tuple[int, int, int, int]  # (x0, y0, x1, y1) at mask resolution, exclusive ends


def _align_span(lo: float, hi: float, size: int, min_len: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` to ``min_len`` about its centre, keep it inside ``[0, size)`` and snap
    both ends outwards to multiples of GRID."""
    length = max(hi - lo, float(min_len))
    centre = (lo + hi) / 2.0
    lo = min(max(0.0, centre - length / 2.0), max(0.0, size - length))
    hi = min(float(size), lo + length)
    a = int(np.floor(lo / GRID)) * GRID
    b = min(size, int(np.ceil(hi / GRID)) * GRID)
    return a, b


def decoder_window(previous: np.ndarray, scale: float, min_fraction: float) -> Window | None:
    """Window of one target, or ``None`` to decode it on the whole frame.

    :param previous: ``[h, w]`` float32 previous (warped) soft mask at mask resolution; h and w
        are multiples of GRID (the engine's mask maps always are).
    :param scale: box enlargement (> 1).
    :param min_fraction: smallest window side as a share of the frame side.
    """
    h, w = previous.shape
    box = enlarged_box(previous, scale)
    if box is None:
        return None  # lost: search everywhere
    x0, y0, x1, y1 = box
    wx0, wx1 = _align_span(x0, x1, w, int(np.ceil(min_fraction * w)))
    wy0, wy1 = _align_span(y0, y1, h, int(np.ceil(min_fraction * h)))
    if (wx1 - wx0) * (wy1 - wy0) > MAX_AREA_FRACTION * h * w:
        return None
    return (wx0, wy0, wx1, wy1)


def target_windows(
    previous: np.ndarray, visible: np.ndarray, scale: float, min_fraction: float
) -> list[Window | None]:
    """:func:`decoder_window` of every target; ``None`` for targets that are not visible.

    :param previous: ``[N, h, w]`` previous masks; ``visible``: ``[N]`` bool.
    """
    return [
        decoder_window(previous[i], scale, min_fraction) if visible[i] else None
        for i in range(previous.shape[0])
    ]
