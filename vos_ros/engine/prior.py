"""Localization prior: a target is expected near where it was.

For a visible target, the box around its (flow-warped) previous mask is enlarged by
``scale`` (1.25 by default, about its centre). Outside that box, responses weaker than
``keep_prob`` are set to zero: weak blobs of similar appearance elsewhere (a distractor, another
instance of the same class) are dropped, while a confident response far away (a fast jump the
flow missed) survives. Targets that are not visible get no prior, so they can be found again
anywhere in the frame.
"""

from __future__ import annotations

import cv2
import numpy as np


def enlarged_box(mask: np.ndarray, scale: float) -> tuple[int, int, int, int] | None:
    """Box ``(x0, y0, x1, y1)`` (exclusive ends) around ``mask > 0.5`` enlarged ``scale`` times
    about its centre and clipped to the map; ``None`` when the mask is empty.

    :param mask: ``[h, w]`` float32 soft mask.
    """
    # cv2.boundingRect on the thresholded mask: several times faster than numpy's row/column
    # scans, and it runs twice per target and frame (window and prior).
    bx, by, bw, bh = cv2.boundingRect((mask > 0.5).view(np.uint8))
    if bw == 0 or bh == 0:
        return None
    x0, y0, x1, y1 = float(bx), float(by), float(bx + bw), float(by + bh)
    grow_y = (y1 - y0) * (scale - 1.0) / 2.0
    grow_x = (x1 - x0) * (scale - 1.0) / 2.0
    h, w = mask.shape
    return (
        max(0, int(np.floor(x0 - grow_x))),
        max(0, int(np.floor(y0 - grow_y))),
        min(w, int(np.ceil(x1 + grow_x))),
        min(h, int(np.ceil(y1 + grow_y))),
    )


def apply_box_prior(
    probs: np.ndarray, previous: np.ndarray, active: np.ndarray, scale: float, keep_prob: float
) -> None:
    """Zero weak responses outside each active target's enlarged previous box, in place.

    :param probs: ``[N, h, w]`` float32 current probabilities (modified).
    :param previous: ``[N, h, w]`` float32 previous (warped) masks at the same resolution.
    :param active: ``[N]`` bool, which targets get the prior (visible ones).
    """
    for i in np.flatnonzero(active):
        box = enlarged_box(previous[i], scale)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        outside = np.ones(probs.shape[1:], bool)
        outside[y0:y1, x0:x1] = False
        outside &= probs[i] < keep_prob
        probs[i][outside] = 0.0
