"""Synthetic video clips with exact instance ground truth, for tests and the demo.

A scene is a textured, slowly panning background (sky, ground, static clutter) with textured objects
of several classes (person, car, ball, animal) that move, rotate, occlude each other, cross paths,
leave the frame and come back, and appear partway through the clip. Frames get lighting flicker,
shading and sensor noise so that they are not flat colours: appearance and optical flow both carry
information, as in real footage. Everything is drawn from one seed, so a clip is reproducible.

Use :func:`generate` for frames + label images, :func:`synthetic_clip` for an evaluation clip, and
:func:`write_davis_folder` to save a clip in DAVIS layout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vos_ros.evaluation.clips import ClipFrame
from vos_ros.evaluation.confusion import decode_instance_labels

CLASSES = ("person", "car", "ball", "animal")
_PALETTE = {
    "person": [(200, 60, 50), (40, 90, 180), (230, 180, 40), (60, 150, 70)],
    "car": [(210, 210, 220), (180, 30, 30), (30, 60, 140), (240, 200, 0)],
    "ball": [(250, 120, 0), (240, 240, 240), (200, 30, 120)],
    "animal": [(140, 90, 50), (90, 70, 60), (200, 170, 120)],
}


@dataclass(frozen=True)
class SceneConfig:
    """What to generate. Sizes are in pixels, times in frames."""

    width: int = 320
    height: int = 240
    frames: int = 48
    objects: int = 4
    seed: int = 0
    fps: float = 15.0
    noise_sigma: float = 3.0  # sensor noise, grey levels
    pan_pixels: float = 0.6  # background pan per frame


@dataclass
class _Object:
    object_id: int
    class_label: str
    sprite: np.ndarray  # (h, w, 3) float32 RGB
    alpha: np.ndarray  # (h, w) float32 in {0, 1}
    depth: int  # larger = nearer (drawn later)
    start: int  # first frame it exists
    pos: np.ndarray  # centre (x, y) at its start frame
    vel: np.ndarray  # pixels per frame
    wobble: tuple[float, float, float]  # amplitude (px), angular speed, phase
    spin: float  # degrees per frame
    margin: float  # bounce when the centre passes this far outside (+) / inside (-) the frame
    scale_rate: float  # relative size change per frame (approaching / receding)


@dataclass
class SyntheticFrame:
    """One generated frame: RGB ``uint8 (H, W, 3)`` and its label image ``uint16 (H, W)``."""

    index: int
    image: np.ndarray
    label: np.ndarray
    stamp_ns: int


@dataclass
class SyntheticScene:
    """A generated scene: its config, the class of each object id, and a frame iterator."""

    config: SceneConfig
    class_map: dict[int, str]
    start_frames: dict[int, int]
    objects: list[_Object] = field(repr=False)
    background: np.ndarray = field(repr=False)  # (H, W + pan, 3) float32

    def frames(self) -> Iterator[SyntheticFrame]:
        """Render every frame in order (deterministic: the same scene renders the same pixels)."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed + 7919)  # per-frame noise, independent of layout
        period_ns = round(1e9 / cfg.fps)
        for t in range(cfg.frames):
            image, label = self._render(t, rng)
            yield SyntheticFrame(t, image, label, 1_000_000_000 + t * period_ns)

    def _render(self, t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        off = t * cfg.pan_pixels
        x0 = int(off)
        frac = off - x0
        bg = self.background[:, x0 : x0 + cfg.width + 1]
        canvas = (1 - frac) * bg[:, :-1] + frac * bg[:, 1:]  # sub-pixel pan
        label = np.zeros((cfg.height, cfg.width), dtype=np.uint16)
        for obj in sorted(self.objects, key=lambda o: o.depth):
            if t < obj.start:
                continue
            centre, angle, scale = _pose(obj, t - obj.start, cfg.width, cfg.height)
            h, w = obj.alpha.shape
            matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
            matrix[:, 2] += centre - np.array([w / 2.0, h / 2.0])
            size = (cfg.width, cfg.height)
            alpha = cv2.warpAffine(obj.alpha, matrix, size, flags=cv2.INTER_LINEAR)
            sprite = cv2.warpAffine(obj.sprite, matrix, size, flags=cv2.INTER_LINEAR)
            canvas = canvas * (1 - alpha[:, :, None]) + sprite * alpha[:, :, None]
            label[alpha >= 0.5] = obj.object_id
        gain = 1.0 + 0.04 * math.sin(t * 0.37) + rng.normal(0, 0.01)  # lighting flicker
        canvas = canvas * gain + rng.normal(0, cfg.noise_sigma, canvas.shape)
        image = np.clip(canvas, 0, 255).astype(np.uint8)
        return image, label


def _pose(obj: _Object, dt: int, width: int, height: int) -> tuple[np.ndarray, float, float]:
    """Centre, rotation (degrees) and scale of an object ``dt`` frames after it appeared."""
    amp, omega, phase = obj.wobble
    raw = obj.pos + obj.vel * dt
    centre = np.array(
        [
            _bounce(raw[0], -obj.margin, width + obj.margin),
            _bounce(raw[1], -obj.margin, height + obj.margin),
        ]
    )
    centre[1] += amp * math.sin(omega * dt + phase)
    scale = max(0.5, 1.0 + obj.scale_rate * dt)
    return centre, obj.spin * dt, scale


def _bounce(x: float, lo: float, hi: float) -> float:
    """Reflect a coordinate back and forth between lo and hi (a triangle wave)."""
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2.0
    u = (x - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise in [0, 1], ``(h, w)`` float32."""
    out = np.zeros((h, w), np.float32)
    total = 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells + 1, int(cells * w / max(h, 1)) + 2)).astype(np.float32)
        layer = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        weight = 0.5**o
        out += weight * layer
        total += weight
    out /= total
    return (out - out.min()) / max(float(out.max() - out.min()), 1e-6)


def _background(rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    """Sky over textured ground with static clutter, wide enough for the whole pan."""
    w = cfg.width + math.ceil(cfg.pan_pixels * cfg.frames) + 2
    h = cfg.height
    horizon = int(h * rng.uniform(0.3, 0.45))
    img = np.zeros((h, w, 3), np.float32)
    sky_top, sky_bottom = np.array([90, 140, 210.0]), np.array([190, 210, 235.0])
    ramp = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    clouds = _smooth_noise(rng, horizon, w, 3)[:, :, None]
    img[:horizon] = (1 - ramp) * sky_top + ramp * sky_bottom + 35 * (clouds - 0.5)
    ground_colours = [
        np.array([95, 120, 60.0]),
        np.array([120, 110, 95.0]),
        np.array([80, 80, 85.0]),
    ]
    base = ground_colours[rng.integers(len(ground_colours))]
    noise = _smooth_noise(rng, h - horizon, w, 5)[:, :, None]
    fine = rng.normal(0, 6, (h - horizon, w, 1)).astype(np.float32)
    depth = np.linspace(0.8, 1.15, h - horizon, dtype=np.float32)[:, None, None]
    img[horizon:] = base * (0.7 + 0.6 * noise) * depth + fine
    # static clutter: buildings on the horizon and stones / bushes on the ground
    for _ in range(int(rng.integers(4, 8))):
        bw, bh = int(rng.uniform(0.05, 0.15) * w), int(rng.uniform(0.1, 0.3) * h)
        bx = int(rng.uniform(0, w - bw))
        colour = rng.uniform(70, 170, 3)
        top = max(0, horizon - bh)
        shade = _smooth_noise(rng, horizon - top, bw, 2)[:, :, None] if horizon > top else None
        if shade is not None:
            img[top:horizon, bx : bx + bw] = colour * (0.8 + 0.3 * shade)
            for wy in range(top + 4, horizon - 4, 9):  # windows
                img[wy : wy + 4, bx + 3 : bx + bw - 3 : 7] *= 0.55
    for _ in range(int(rng.integers(6, 12))):
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(horizon + 10, h))
        axes = (int(rng.uniform(4, 18)), int(rng.uniform(3, 10)))
        colour = tuple(float(c) for c in base * rng.uniform(0.5, 1.3))
        cv2.ellipse(
            img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA
        )
    return img


def _sprite(
    rng: np.random.Generator, class_label: str, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """A textured, shaded object sprite: RGB float32 ``(h, w, 3)`` and alpha ``(h, w)``."""
    s = size
    if class_label == "person":
        w, h = int(0.9 * s), int(2.4 * s)
    elif class_label == "car":
        w, h = int(2.2 * s), int(1.1 * s)
    elif class_label == "animal":
        w, h = int(1.8 * s), int(1.2 * s)
    else:
        w = h = int(s)
    pad = 4
    sw, sh = w + 2 * pad, h + 2 * pad
    mask = np.zeros((sh, sw), np.uint8)
    accent = np.zeros((sh, sw), np.uint8)  # second colour regions (wheels, head, stripes)
    if class_label == "person":
        cx = sw // 2
        head_r = max(2, int(0.22 * s))
        cv2.circle(mask, (cx, pad + head_r), head_r, 1, -1, cv2.LINE_AA)
        cv2.circle(accent, (cx, pad + head_r), head_r, 1, -1)
        cv2.ellipse(
            mask,
            (cx, pad + 2 * head_r + int(0.5 * s)),
            (int(0.4 * s), int(0.6 * s)),
            0,
            0,
            360,
            1,
            -1,
            cv2.LINE_AA,
        )
        leg_top = pad + 2 * head_r + int(0.9 * s)
        for dx in (-int(0.18 * s), int(0.18 * s)):
            cv2.line(
                mask,
                (cx + dx, leg_top),
                (cx + 2 * dx, sh - pad - 1),
                1,
                max(2, int(0.18 * s)),
                cv2.LINE_AA,
            )
            cv2.line(
                accent,
                (cx + dx, leg_top + 2),
                (cx + 2 * dx, sh - pad - 1),
                1,
                max(2, int(0.18 * s)),
            )
    elif class_label == "car":
        body_top = pad + int(0.4 * h)
        cv2.rectangle(mask, (pad, body_top), (sw - pad - 1, sh - pad - int(0.2 * h)), 1, -1)
        cabin = np.array(
            [
                [pad + int(0.25 * w), body_top],
                [pad + int(0.35 * w), pad],
                [pad + int(0.7 * w), pad],
                [pad + int(0.8 * w), body_top],
            ],
            np.int32,
        )
        cv2.fillPoly(mask, [cabin], 1, cv2.LINE_AA)
        cv2.fillPoly(accent, [cabin + np.array([[3, 2], [3, 3], [-3, 3], [-3, 2]])], 1)
        r = max(3, int(0.2 * h))
        for wx in (pad + int(0.22 * w), pad + int(0.78 * w)):
            cv2.circle(mask, (wx, sh - pad - r), r, 1, -1, cv2.LINE_AA)
            cv2.circle(accent, (wx, sh - pad - r), r, 1, -1)
    elif class_label == "animal":
        cv2.ellipse(
            mask,
            (sw // 2, pad + int(0.45 * h)),
            (int(0.38 * w), int(0.25 * h)),
            0,
            0,
            360,
            1,
            -1,
            cv2.LINE_AA,
        )
        hr = max(3, int(0.18 * h))
        cv2.circle(mask, (pad + int(0.88 * w), pad + hr), hr, 1, -1, cv2.LINE_AA)
        cv2.line(
            mask,
            (pad + int(0.8 * w), pad + int(0.3 * h)),
            (pad + int(0.75 * w), pad + int(0.45 * h)),
            1,
            max(2, hr),
            cv2.LINE_AA,
        )
        for lx in (0.2, 0.35, 0.65, 0.8):
            cv2.line(
                mask,
                (pad + int(lx * w), pad + int(0.55 * h)),
                (pad + int(lx * w), sh - pad - 1),
                1,
                max(2, int(0.07 * w)),
                cv2.LINE_AA,
            )
        cv2.line(
            mask,
            (pad + int(0.13 * w), pad + int(0.4 * h)),
            (pad, pad + int(0.15 * h)),
            1,
            2,
            cv2.LINE_AA,
        )
    else:  # ball with stripes
        cv2.circle(mask, (sw // 2, sh // 2), w // 2, 1, -1, cv2.LINE_AA)
        yy, xx = np.mgrid[0:sh, 0:sw]
        accent[:] = (np.sin((xx + 0.6 * yy) * (6.0 / max(w, 1))) > 0.3).astype(np.uint8)
    colours = _PALETTE[class_label]
    base = np.array(colours[rng.integers(len(colours))], np.float32)
    second = base * 0.35 if class_label != "ball" else np.array([30, 30, 40], np.float32)
    texture = _smooth_noise(rng, sh, sw, 3)[:, :, None]
    grain = rng.normal(0, 7, (sh, sw, 1)).astype(np.float32)
    rgb = np.where(accent[:, :, None] > 0, second, base) * (0.75 + 0.5 * texture) + grain
    # shading: lit from the top-left, darker towards the outline
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    rim = np.clip(dist / max(2.0, 0.15 * s), 0, 1)[:, :, None]
    light = np.linspace(1.15, 0.8, sh, dtype=np.float32)[:, None, None]
    rgb = rgb * (0.6 + 0.4 * rim) * light
    return np.clip(rgb, 0, 255).astype(np.float32), mask.astype(np.float32)


def generate(config: SceneConfig | None = None) -> SyntheticScene:
    """Lay out a scene from its config (see the module docstring for what it contains).

    The first objects play fixed roles so every clip with >= 4 objects tests the hard cases:
    1 and 2 cross paths (2 passes in front of 1), 3 leaves the frame and re-enters, 4 appears a
    third of the way into the clip. Further objects move at random.
    """
    cfg = config or SceneConfig()
    if cfg.width < 64 or cfg.height < 48:
        raise ValueError(f"synthetic frames must be at least 64x48, got {cfg.width}x{cfg.height}")
    if cfg.frames < 1 or cfg.objects < 0:
        raise ValueError("need at least one frame and a non-negative object count")
    rng = np.random.default_rng(cfg.seed)
    width, height = cfg.width, cfg.height
    unit = min(width, height) / 6.5
    objects: list[_Object] = []
    class_map: dict[int, str] = {}
    for i in range(cfg.objects):
        oid = i + 1
        role = i if i < 4 else 4
        cls = CLASSES[i % len(CLASSES)] if i < 4 else CLASSES[int(rng.integers(len(CLASSES)))]
        size = unit * rng.uniform(0.9, 1.3)
        sprite, alpha = _sprite(rng, cls, size)
        start, margin, spin = 0, -max(alpha.shape) / 2.0, 0.0
        speed = rng.uniform(0.007, 0.009) * width  # pixels per frame: a few px, as at 15-30 fps
        ground_y = rng.uniform(0.6, 0.8) * height
        if role == 0:  # walks right
            pos, vel = np.array([0.3 * width, ground_y]), np.array([speed, 0.0])
        elif role == 1:  # drives left across object 1, in front of it
            pos, vel = (
                np.array([0.75 * width, ground_y + 0.05 * height]),
                np.array([-1.3 * speed, 0.0]),
            )
        elif role == 2:  # rolls out of the frame and back in
            pos = np.array([0.85 * width, 0.5 * height])
            vel = np.array([2.5 * speed, -0.3 * speed])
            margin = max(alpha.shape) * 1.2
            spin = -4.0
        elif role == 3:  # appears partway through
            start = max(1, cfg.frames // 3)
            pos = np.array([rng.uniform(0.3, 0.6) * width, rng.uniform(0.55, 0.7) * height])
            vel = np.array([-0.8 * speed, 0.2 * speed])
        else:
            pos = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.4, 0.85) * height])
            angle = rng.uniform(0, 2 * math.pi)
            vel = speed * np.array([math.cos(angle), 0.4 * math.sin(angle)])
            start = int(rng.integers(0, max(1, cfg.frames // 2)))
        wobble = (rng.uniform(0.5, 2.0), rng.uniform(0.2, 0.5), rng.uniform(0, 2 * math.pi))
        depth = {0: 1, 1: 3, 2: 2, 3: 4}.get(role, 5 + i)
        objects.append(
            _Object(
                oid,
                cls,
                sprite,
                alpha,
                depth,
                start,
                pos,
                vel,
                wobble,
                spin,
                margin,
                float(rng.uniform(-0.003, 0.004)),
            )
        )
        class_map[oid] = cls
    starts = {o.object_id: o.start for o in objects}
    return SyntheticScene(cfg, class_map, starts, objects, _background(rng, cfg))


@dataclass
class SyntheticClip:
    """A synthetic scene as an evaluation clip (frames + decoded ground truth)."""

    config: SceneConfig
    name: str = "synthetic"

    def __post_init__(self) -> None:
        self.scene = generate(self.config)

    def __len__(self) -> int:
        return self.config.frames

    def frames(self) -> Iterator[ClipFrame]:
        for f in self.scene.frames():
            gt = decode_instance_labels(f.label, self.scene.class_map)
            yield ClipFrame(f.index, f"{f.index:05d}", f.image, gt, f.stamp_ns)


def synthetic_clip(config: SceneConfig | None = None, name: str = "synthetic") -> SyntheticClip:
    """Shorthand for :class:`SyntheticClip`."""
    return SyntheticClip(config or SceneConfig(), name)


def write_davis_folder(
    root: Path | str, scene: SyntheticScene, sequence: str = "synthetic"
) -> Path:
    """Save a scene in DAVIS layout (JPEGImages/480p, Annotations/480p, classes.json).

    Frames are stored as lossless PNG under the JPEGImages folder name (DAVIS readers accept it).
    """
    from vos_ros.evaluation.davis_folder import write_label_png

    root = Path(root)
    img_dir = root / "JPEGImages" / "480p" / sequence
    ann_dir = root / "Annotations" / "480p" / sequence
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    for f in scene.frames():
        cv2.imwrite(str(img_dir / f"{f.index:05d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        write_label_png(ann_dir / f"{f.index:05d}.png", f.label)
    classes_path = root / "classes.json"
    classes = json.loads(classes_path.read_text()) if classes_path.is_file() else {}
    classes[sequence] = {str(k): v for k, v in scene.class_map.items()}
    classes_path.write_text(json.dumps(classes, indent=1) + "\n")
    return root
