"""Synthetic multi-target clips: paste an object from another sequence over a training clip.

The training data has one object per clip, but the product tracks several targets that cross and
occlude each other. Pasting a second object (cut out with its mask, with its own motion, moving
across the first one, in front of it or behind it) gives clips with two targets, so the network
learns not to jump onto a nearby object and to give up pixels that another target covers.
"""

from __future__ import annotations

import cv2
import numpy as np

from vos_ros.model.augment import random_clip_geometry, random_photometric
from vos_ros.model.data import Sequence, sample_clip_indices

MIN_FIRST_FRAME_FRACTION = 0.003  # a target must cover this much of the first frame to be used
MAX_TRIES = 1000  # clips drawn before giving up (only objects far too small never pass)


def _translate(images: np.ndarray, dx: float, dy: float, nearest: bool) -> np.ndarray:
    h, w = images.shape[:2]
    mat = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(images, mat, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)


def paste_object(
    rng: np.random.Generator,
    frames: np.ndarray,
    masks: np.ndarray,
    donor_frames: np.ndarray,
    donor_masks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite the donor's object over a clip, moving across it.

    :param frames: uint8 ``[L, H, W, 3]``; ``masks``: uint8 ``[L, H, W]`` (binary) of the clip's
        own target; donor arrays have the same shapes.
    :returns: ``(frames, targets)``: the composited clip and uint8 ``[2, L, H, W]`` binary masks
        (0 = the original object, 1 = the pasted one), never overlapping.
    """
    length, h, w = masks.shape
    # Start on one side, move towards the other: the two objects cross during the clip.
    start = rng.uniform(0.15, 0.4, 2) * [w, h] * rng.choice([-1, 1], 2)
    velocity = -start * rng.uniform(0.5, 1.5) / max(length - 1, 1)
    in_front = bool(rng.random() < 0.7)
    out_frames = np.empty_like(frames)
    own = np.empty_like(masks)
    pasted = np.empty_like(masks)
    for t in range(length):
        dx, dy = start + velocity * t
        dm = _translate(donor_masks[t], dx, dy, nearest=True)
        df = _translate(donor_frames[t], dx, dy, nearest=False)
        if not in_front:
            dm = dm * (1 - masks[t])
        # Feathered alpha hides the cut-out's hard edge (real boundaries are slightly blurred).
        alpha = cv2.GaussianBlur(dm.astype(np.float32), (0, 0), 0.8)[..., None]
        out_frames[t] = np.clip(df * alpha + frames[t] * (1 - alpha), 0, 255).astype(np.uint8)
        pasted[t] = dm
        own[t] = masks[t] * (1 - dm)
    return out_frames, np.stack([own, pasted])


def make_training_clip(
    rng: np.random.Generator,
    sequences: list[Sequence],
    length: int,
    max_gap: int,
    out_hw: tuple[int, int],
    paste_prob: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented training clip with one or two targets.

    :returns: ``(frames, targets)``: uint8 ``[L, H, W, 3]`` RGB and uint8 ``[K, L, H, W]`` binary
        masks, K in {1, 2}; every target is visible on the first frame.
    """
    min_area = MIN_FIRST_FRAME_FRACTION * out_hw[0] * out_hw[1]
    for _ in range(MAX_TRIES):
        seq_index = int(rng.integers(len(sequences)))
        seq = sequences[seq_index]
        idx = sample_clip_indices(rng, seq, length, max_gap)
        frames, masks = random_clip_geometry(rng, seq.frames[idx], seq.masks[idx], out_hw)
        if masks[0].sum() < min_area:
            continue
        targets = masks[None]
        if rng.random() < paste_prob and len(sequences) > 1:
            donor_index = int(rng.integers(len(sequences) - 1))
            donor = sequences[donor_index + (donor_index >= seq_index)]
            didx = sample_clip_indices(rng, donor, length, max_gap)
            dframes, dmasks = random_clip_geometry(
                rng, donor.frames[didx], donor.masks[didx], out_hw, scale_range=(0.35, 0.9)
            )
            dframes = random_photometric(rng, dframes)
            frames, targets = paste_object(rng, frames, masks, dframes, dmasks)
            keep = [k for k in range(len(targets)) if targets[k, 0].sum() >= min_area]
            if not keep:
                continue
            targets = targets[keep]
        return random_photometric(rng, frames), targets
    raise ValueError(
        f"no clip with a target covering {MIN_FIRST_FRAME_FRACTION:.1%} of its first frame in "
        f"{MAX_TRIES} tries: the objects are too small for {out_hw[1]}x{out_hw[0]} crops"
    )
