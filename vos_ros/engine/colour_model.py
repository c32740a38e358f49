"""Per-target colour model of the flow fallback: foreground / background histograms in CIELAB.

Why CIELAB: distances in it follow perceived colour differences, and lightness sits in one
channel, so it gets coarser bins than the two chroma channels (shading and lighting changes move
lightness much more than chroma). Each pixel's colour is quantised once per frame into one of
:data:`NUM_BINS` bins (:func:`quantize`); every target keeps a foreground and a background
histogram over these bins, and the colour evidence of a pixel is the log-likelihood ratio
``log(fg[bin] / bg[bin])`` (:meth:`ColourModel.log_ratio`), read from a per-target table.

Each histogram mixes an *anchor*, taken from the annotated frame and kept for good, with a
*recent* part refreshed from confident frames (as the network's memory keeps the annotation plus
recent frames): the anchor stops a slow drift of the model onto the background, the recent part
follows lighting and pose changes. The background histogram mixes the target's surroundings
(a ring around its mask: what it must be told apart from right now) with the whole rest of the
frame (everything it could be confused with after a jump, or when it is searched for after it
was lost).
"""

from __future__ import annotations

import cv2
import numpy as np

L_BINS = 8
AB_BINS = 16
NUM_BINS = L_BINS * AB_BINS * AB_BINS
# a* and b* of natural colours rarely leave 64..192 (of 0..255 in 8-bit Lab); the outer ranges
# go to the end bins, so the chroma bins are 8 levels wide where colours actually are.
_AB_LO, _AB_HI = 64, 192


def _channel_lut(bins: int, lo: int, hi: int, stride: int) -> np.ndarray:
    levels = np.clip(np.arange(256), lo, hi - 1)
    return ((levels - lo) * bins // (hi - lo) * stride).astype(np.uint16)


_LUT_L = _channel_lut(L_BINS, 0, 256, AB_BINS * AB_BINS)
_LUT_A = _channel_lut(AB_BINS, _AB_LO, _AB_HI, AB_BINS)
_LUT_B = _channel_lut(AB_BINS, _AB_LO, _AB_HI, 1)


def quantize(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` -> colour bin index ``(h, w)`` uint16 in ``[0, NUM_BINS)``."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    bins = _LUT_L[lab[..., 0]]
    bins += _LUT_A[lab[..., 1]]
    bins += _LUT_B[lab[..., 2]]
    return bins


def _smooth(hist: np.ndarray) -> np.ndarray:
    """Blur a histogram with a [1, 2, 1] / 4 kernel along each of the three colour axes, so a
    colour next to a seen one counts as (almost) seen: lighting and JPEG noise shift colours by
    a bin now and then."""
    cube = hist.reshape(L_BINS, AB_BINS, AB_BINS)
    for axis in range(3):
        padded = np.concatenate([cube.take([0], axis), cube, cube.take([-1], axis)], axis=axis)
        n = cube.shape[axis]
        cube = (
            padded.take(range(0, n), axis)
            + 2.0 * padded.take(range(1, n + 1), axis)
            + padded.take(range(2, n + 2), axis)
        ) / 4.0
    return cube.reshape(-1)


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = float(counts.sum())
    return counts / total if total > 0 else np.full(NUM_BINS, 1.0 / NUM_BINS)


def region_histograms(
    bins: np.ndarray, mask: np.ndarray, ring_px: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Normalised colour histograms ``(fg, ring, rest)`` of a target on one frame, or None when
    the mask has no pixel.

    :param bins: ``(h, w)`` uint16 from :func:`quantize`.
    :param mask: ``(h, w)`` target mask (> 0.5 is the target).
    :param ring_px: width of the surrounding ring, in pixels.
    """
    inside = mask > 0.5
    if not inside.any():
        return None
    flat = bins.ravel()
    fg = np.bincount(flat[inside.ravel()], minlength=NUM_BINS).astype(np.float64)
    size = 2 * ring_px + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    ring = cv2.dilate(inside.view(np.uint8), kernel).view(bool) & ~inside
    ring_hist = np.bincount(flat[ring.ravel()], minlength=NUM_BINS).astype(np.float64)
    everything = np.bincount(flat, minlength=NUM_BINS).astype(np.float64)
    rest = everything - fg
    return _normalised(fg), _normalised(ring_hist), _normalised(rest)


class ColourModel:
    """Foreground / background colour histograms of one target.

    :param anchor_weight: share of the annotated frame's histograms in the model (the rest is
        the running average of recent confident frames).
    :param ring_weight: share of the ring around the target in the background histogram (the
        rest is the whole frame outside the target).
    """

    def __init__(self, anchor_weight: float, ring_weight: float) -> None:
        self.anchor_weight = anchor_weight
        self.ring_weight = ring_weight
        self._anchor: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._recent: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.reference_area = 0.0  # target pixels on the annotated frame (mask resolution)
        self._tables: dict[str, np.ndarray] = {}

    @property
    def ready(self) -> bool:
        return self._anchor is not None

    def annotate(self, bins: np.ndarray, mask: np.ndarray, ring_px: int) -> None:
        """(Re)start the model from an annotated frame (drops everything learned before)."""
        hists = region_histograms(bins, mask, ring_px)
        if hists is None:
            return
        self._anchor = hists
        self._recent = hists
        self.reference_area = float((mask > 0.5).sum())
        self._tables.clear()

    def update(self, bins: np.ndarray, mask: np.ndarray, ring_px: int, rate: float) -> None:
        """Blend a confident frame into the recent part (exponential average with ``rate``)."""
        if self._recent is None:
            self.annotate(bins, mask, ring_px)
            return
        hists = region_histograms(bins, mask, ring_px)
        if hists is None:
            return
        self._recent = tuple(
            (1.0 - rate) * old + rate * new for old, new in zip(self._recent, hists, strict=True)
        )
        self._tables.clear()

    def log_ratio(self, local: bool) -> np.ndarray:
        """Per-bin ``log(fg / bg)``, ``[NUM_BINS]`` float32.

        :param local: True: the background is the ring + rest mixture (tracking near the last
            position); False: the rest of the frame only (searching the whole frame).
        """
        key = "local" if local else "global"
        table = self._tables.get(key)
        if table is not None:
            return table
        if self._anchor is None or self._recent is None:
            raise ValueError("the colour model has no annotation yet")
        a = self.anchor_weight
        fg, ring, rest = (
            a * x + (1.0 - a) * y for x, y in zip(self._anchor, self._recent, strict=True)
        )
        bg = self.ring_weight * ring + (1.0 - self.ring_weight) * rest if local else rest
        # Additive smoothing: a colour seen by neither histogram is neutral, not infinitely sure.
        floor = 0.1 / NUM_BINS
        table = np.log((_smooth(fg) + floor) / (_smooth(bg) + floor)).astype(np.float32)
        self._tables[key] = table
        return table
