"""Step 8 of the engine's frame (see :mod:`vos_ros.engine.engine`): the aggregated
probabilities at mask resolution become the frame's result at the input resolution: one
upsampling, an argmax into a label image, and per target its mask, box, score and visibility.
The hot path of every frame with many pixels: each step does the least full-resolution work."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from vos_ros.engine.aggregation import (
    Region,
    argmax_channels,
    mask_box,
    region_mask,
    winning_regions,
)
from vos_ros.types import FrameResult, TargetResult


def frame_result(
    agg: np.ndarray,
    ids: list[int],
    visible: np.ndarray,
    scores: np.ndarray,
    prompt_masks: dict[int, np.ndarray],
    input_hw: tuple[int, int],
    class_label: Callable[[int], str],
    frame_index: int,
) -> FrameResult:
    """Upsample once, argmax, and build the per-target results at the input resolution.

    :param agg: ``[N + 1, mh, mw]`` aggregated probabilities (background first) of the N
        targets ``ids`` in slot order, with their ``visible`` flags and ``scores``.
    :param prompt_masks: ``{id: (H, W) bool}`` annotations of this frame, taken exactly.
    :param class_label: a target id's class label.
    """
    h, w = input_hw
    n = len(ids)
    full = np.empty((n + 1, h, w), np.float32)
    regions: list[Region | None] | None = None
    if n == 1:
        # Two channels that sum to 1 (bilinear upsampling keeps that): the target wins where
        # it is above 0.5, so the background channel is never upsampled (one full-size
        # resize less on the most common frame).
        cv2.resize(agg[1], (w, h), dst=full[1], interpolation=cv2.INTER_LINEAR)
        index = np.empty((h, w), np.uint8)
        np.greater(full[1], np.float32(0.5), out=index, casting="unsafe")
    else:
        for c in range(n + 1):
            cv2.resize(agg[c], (w, h), dst=full[c], interpolation=cv2.INTER_LINEAR)
        # With several targets each one is compared only where it can win (exact, and ~N
        # times less full-resolution work when the targets are small).
        regions = winning_regions(agg, (h, w))
        index = argmax_channels(full, regions=regions)
    if prompt_masks:
        for target_id, mask in prompt_masks.items():
            slot = ids.index(target_id)
            index[index == slot + 1] = 0
            index[mask] = slot + 1
            full[slot + 1] = mask
            if regions is not None:  # a prompt may cover pixels outside the region
                regions[slot] = None
    # index -> target id; targets that are not visible are shown as background. cv2.LUT on
    # the uint8 index is ~5x faster than numpy fancy indexing (max_targets ≤ 255).
    if n and bool(np.all(visible)) and ids == list(range(1, n + 1)):
        label_image = index.astype(np.uint16)  # ids 1..n in slot order: cheaper than a LUT
    else:
        lut = np.zeros(256, np.uint16)
        lut[1 : n + 1][visible] = np.asarray(ids, np.uint16)[visible]
        label_image = cv2.LUT(index, lut) if n else np.zeros((h, w), np.uint16)
    targets = []
    for slot, target_id in enumerate(ids):
        if visible[slot]:
            if n == 1:  # the index is already its 0/1 mask
                mask = index.view(bool)
                box = mask_box(mask)
            else:  # a target's pixels all lie in its winning region
                mask, box = region_mask(index, slot + 1, regions[slot])
        else:
            mask = np.zeros((h, w), bool)
            box = (0, 0, 0, 0)
        targets.append(
            TargetResult(
                target_id=target_id,
                class_label=class_label(target_id),
                prob=full[slot + 1],
                mask=mask,
                box=box,
                score=float(scores[slot]),
                visible=bool(visible[slot]) and box != (0, 0, 0, 0),
            )
        )
    return FrameResult(frame_index=frame_index, targets=targets, label_image=label_image)
