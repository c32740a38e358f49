"""Edge-aware smoothing of probability maps: the gray-guided filter of He, Sun and Tang (2010).

Within every ``(2r+1)^2`` window the output is a linear function of the guide image, fitted to the
input by least squares with regularisation ``eps``: where the guide is flat the output is the
local mean (noise is smoothed away); across a strong guide edge the output may step, so a soft
mask edge that the flow blurred snaps onto the image edge. Everything is box filters, so the cost
is a few passes over the window and independent of ``r``.
"""

from __future__ import annotations

import cv2
import numpy as np


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Filter ``src`` guided by ``guide``.

    :param guide: ``(h, w)`` float32, gray image scaled to [0, 1].
    :param src: ``(h, w)`` float32 map to smooth (e.g. a probability).
    :param radius: window radius in pixels (>= 1).
    :param eps: regularisation; larger = smoother, less edge-preserving (in guide units squared).
    :returns: ``(h, w)`` float32 (may leave [0, 1] slightly; clip if needed).
    """
    if guide.shape != src.shape:
        raise ValueError(f"guide {guide.shape} and src {src.shape} must have the same shape")
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    mean_i = mean(guide)
    mean_p = mean(src)
    cov_ip = mean(guide * src) - mean_i * mean_p
    var_i = mean(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return mean(a) * guide + mean(b)
