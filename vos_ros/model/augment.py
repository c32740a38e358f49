"""Clip augmentation (numpy/OpenCV): geometry, photometry, and previous-mask perturbation.

Geometry is one random affine per clip (scale, rotation, shear, flip, crop placed around the
object) plus a small random drift per frame, so the clip also shows extra camera motion. Colour
jitter is per clip with a little per-frame variation (lighting changes). ``perturb_prev_mask``
turns a mask into the kind of imperfect previous mask the engine feeds the decoder at run time
(the last prediction, warped by optical flow): shifted, too big or too small, with parts missing
or extra blobs, and soft edges.
"""

from __future__ import annotations

import cv2
import numpy as np


def _affine(scale: float, angle_deg: float, shear: float, flip: bool, center, target) -> np.ndarray:
    """2x3 matrix mapping ``center`` (source) to ``target`` (destination) after the transform."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lin = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    if flip:
        lin = lin @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    offset = np.asarray(target, float) - lin @ np.asarray(center, float)
    return np.hstack([lin, offset[:, None]]).astype(np.float32)


def _object_center(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(masks[0])
    if len(ys) == 0:
        h, w = masks.shape[1:]
        return np.array([w / 2, h / 2])
    return np.array([xs.mean(), ys.mean()]) + rng.normal(0, 1, 2) * [xs.std(), ys.std()] * 0.5


def random_clip_geometry(
    rng: np.random.Generator,
    frames: np.ndarray,
    masks: np.ndarray,
    out_hw: tuple[int, int],
    scale_range: tuple[float, float] = (0.55, 1.1),
    drift: float = 0.015,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a clip to ``out_hw`` with one random affine plus a per-frame drift.

    :param frames: uint8 ``[L, H, W, 3]``; ``masks``: uint8 ``[L, H, W]`` (values are labels).
    :returns: ``(frames, masks)`` at ``[L, oh, ow, 3]`` and ``[L, oh, ow]``.
    """
    oh, ow = out_hw
    scale = float(np.exp(rng.uniform(*np.log(scale_range))))
    angle = float(rng.normal(0, 6))
    shear = float(rng.normal(0, 0.05))
    flip = bool(rng.random() < 0.5)
    center = _object_center(masks, rng)
    target = np.array([ow / 2, oh / 2])
    out_f, out_m = [], []
    for t in range(len(frames)):
        # Drift grows along the clip: extra camera motion on top of the real one.
        jitter = rng.normal(0, drift, 2) * [ow, oh] * t
        s = scale * float(np.exp(rng.normal(0, drift) * t))
        m = _affine(s, angle + float(rng.normal(0, 2)) * t, shear, flip, center, target + jitter)
        out_f.append(
            cv2.warpAffine(
                frames[t], m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        )
        out_m.append(
            cv2.warpAffine(
                masks[t], m, (ow, oh), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
            )
        )
    return np.stack(out_f), np.stack(out_m)


def _rgb_to_hsv_shift(img: np.ndarray, hue: float, sat: float) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180.0
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def random_photometric(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """Colour jitter (brightness, contrast, saturation, hue), blur and noise on a clip.

    :param frames: uint8 ``[L, H, W, 3]`` RGB. Returns the same shape and dtype.
    """
    hue = float(rng.uniform(-8, 8))
    sat = float(rng.uniform(0.7, 1.3))
    contrast = float(rng.uniform(0.7, 1.3))
    brightness = float(rng.uniform(-25, 25))
    blur_sigma = float(rng.uniform(0.3, 1.5)) if rng.random() < 0.3 else 0.0
    noise = float(rng.uniform(0, 6)) if rng.random() < 0.3 else 0.0
    out = []
    for frame in frames:
        img = _rgb_to_hsv_shift(frame, hue, sat) if (hue or sat != 1.0) else frame
        gain = contrast * float(np.exp(rng.normal(0, 0.03)))
        bias = brightness + float(rng.normal(0, 3))
        img = img.astype(np.float32)
        img = (img - img.mean()) * gain + img.mean() + bias
        if blur_sigma:
            img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
        if noise:
            img = img + rng.normal(0, noise, img.shape).astype(np.float32)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _random_blob(
    rng: np.random.Generator, shape: tuple[int, int], center, radius: float
) -> np.ndarray:
    blob = np.zeros(shape, np.uint8)
    axes = (
        max(1, int(radius * rng.uniform(0.5, 1.5))),
        max(1, int(radius * rng.uniform(0.5, 1.5))),
    )
    cv2.ellipse(
        blob, (int(center[0]), int(center[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1
    )
    return blob


def perturb_prev_mask(
    rng: np.random.Generator, mask: np.ndarray, strength: float = 1.0
) -> np.ndarray:
    """An imperfect, soft version of ``mask`` like the previous mask the engine feeds at run time.

    :param mask: ``[H, W]`` uint8/bool/float (binary). Returns float32 ``[H, W]`` in [0, 1].
    :param strength: scales every error (shift, scale, dilation, missing parts, extra blobs);
        small values mimic a good previous prediction, 1 a poor one.
    """
    h, w = mask.shape
    m = (mask > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return np.zeros((h, w), np.float32)
    size = float(np.sqrt(len(ys)))
    # Misalignment: flow warping is never exact (shift, small scale and rotation).
    if rng.random() < 0.7:
        c = np.array([xs.mean(), ys.mean()])
        shift = rng.normal(0, 0.06 * strength, 2) * size
        zoom = float(np.exp(rng.normal(0, 0.06 * strength)))
        mat = _affine(zoom, float(rng.normal(0, 4 * strength)), 0.0, False, c, c + shift)
        m = cv2.warpAffine(m, mat, (w, h), flags=cv2.INTER_NEAREST)
    # Too big or too small.
    radius = int(abs(rng.normal(0, 0.04 * strength)) * size) + 1
    if rng.random() < 0.5:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        m = cv2.dilate(m, kernel) if rng.random() < 0.5 else cv2.erode(m, kernel)
    # Missing parts and spurious blobs (drift onto the background, partial occlusion).
    n_holes = int(rng.integers(0, 3)) if rng.random() < strength else 0
    for _ in range(n_holes):
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            break
        i = int(rng.integers(len(ys)))
        m = m * (1 - _random_blob(rng, (h, w), (xs[i], ys[i]), size * rng.uniform(0.1, 0.35)))
    n_blobs = int(rng.integers(0, 2)) if rng.random() < strength else 0
    for _ in range(n_blobs):
        ys, xs = np.nonzero(mask > 0.5)
        i = int(rng.integers(len(ys)))
        offset = rng.normal(0, 0.6, 2) * size
        center = (xs[i] + offset[0], ys[i] + offset[1])
        m = np.maximum(m, _random_blob(rng, (h, w), center, size * 0.15))
    soft = m.astype(np.float32)
    sigma = float(rng.uniform(0.5, 3.0))
    return np.clip(cv2.GaussianBlur(soft, (0, 0), sigma), 0.0, 1.0)


def backward_flow_sampling(
    rgb: np.ndarray, reference_rgb: np.ndarray, map_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps ``(map_x, map_y)`` at ``map_hw`` that pull ``reference_rgb``'s content onto
    ``rgb``'s frame: DIS (ultrafast) backward flow at half resolution. The shipped weights were
    trained with this; the engine now computes the flow at the mask resolution (a quarter),
    which scores the same on the training and validation splits.

    :param rgb: uint8 ``[H, W, 3]`` current frame; ``reference_rgb`` the previous one.
    """
    h, w = rgb.shape[:2]
    half = (w // 2, h // 2)

    def gray(img: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(
            cv2.resize(img, half, interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2GRAY
        )

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    flow = dis.calc(gray(rgb), gray(reference_rgb), None)
    mh, mw = map_hw
    flow = cv2.resize(flow, (mw, mh), interpolation=cv2.INTER_LINEAR)
    grid_x, grid_y = np.meshgrid(np.arange(mw, dtype=np.float32), np.arange(mh, dtype=np.float32))
    return grid_x + flow[..., 0] * (mw / half[0]), grid_y + flow[..., 1] * (mh / half[1])


def warp_with_sampling(prob: np.ndarray, sampling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Pull a float32 ``[h, w]`` map along :func:`backward_flow_sampling` maps (outside = 0)."""
    map_x, map_y = sampling
    return cv2.remap(
        prob.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
