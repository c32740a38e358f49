"""Benchmark clips: synthetic frames with exact labels, looped back and forth for long runs.

A synthetic scene (:mod:`vos_ros.synthetic`) lets objects enter partway through the clip, so the
clip starts at the first frame where all ``targets`` objects are present: the prompt on that
frame gives the engine exactly ``targets`` targets. Long runs play the clip forwards and then
backwards (ping-pong) so that motion stays continuous at the turning points.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_ros.types import Box

CLIP_SEED = 0
_MAX_LEAD_FRAMES = 60  # objects enter within this many frames in the synthetic scenes


@dataclass
class BenchClip:
    """Frames and labels of one clip.

    :param frames: ``[T, H, W, 3]`` uint8 RGB.
    :param labels: ``[T, H, W]`` uint16, pixel = object id (0 = background).
    :param classes: object id -> class label.
    """

    frames: np.ndarray
    labels: np.ndarray
    classes: dict[int, str]

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size_wh(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def index(self, step: int) -> int:
        """Clip frame shown at playback step ``step`` (ping-pong: 0..T-1, T-2..1, 0..)."""
        n = len(self)
        if n == 1:
            return 0
        period = 2 * (n - 1)
        k = step % period
        return k if k < n else period - k

    def boxes(self, index: int) -> dict[int, Box]:
        """Tight box ``(x0, y0, x1, y1)`` of every object visible on frame ``index``."""
        labels = self.labels[index]
        out: dict[int, Box] = {}
        for object_id in np.unique(labels):
            if object_id == 0:
                continue
            ys, xs = np.nonzero(labels == object_id)
            out[int(object_id)] = (
                int(xs.min()),
                int(ys.min()),
                int(xs.max()) + 1,
                int(ys.max()) + 1,
            )
        return out

    def with_targets(self, count: int) -> BenchClip:
        """The same frames with only objects ``1..count`` labelled (the others are scenery)."""
        if count >= len(self.classes):
            return self
        labels = np.where(self.labels <= count, self.labels, 0).astype(np.uint16)
        classes = {i: c for i, c in self.classes.items() if i <= count}
        return BenchClip(self.frames, labels, classes)

    def save(self, path: Path) -> None:
        """Write the clip as one uncompressed ``.npz`` (for a player process to load)."""
        ids = np.array(sorted(self.classes), np.int64)
        names = np.array([self.classes[i] for i in ids.tolist()])
        np.savez(path, frames=self.frames, labels=self.labels, class_ids=ids, class_names=names)

    @classmethod
    def load(cls, path: Path) -> BenchClip:
        with np.load(path) as data:
            classes = {
                int(i): str(n)
                for i, n in zip(
                    data["class_ids"].tolist(), data["class_names"].tolist(), strict=True
                )
            }
            return cls(data["frames"], data["labels"], classes)


def make_clip(width: int, height: int, targets: int, length: int = 40) -> BenchClip:
    """A clip of ``length`` frames at ``width`` x ``height`` whose first frame shows all
    ``targets`` objects (ids 1..targets)."""
    from vos_ros.synthetic import SceneConfig, generate

    if targets < 1:
        raise ValueError(f"targets must be at least 1, got {targets}")
    if length < 2:
        raise ValueError(f"clip length must be at least 2 frames, got {length}")
    scene = generate(
        SceneConfig(
            width=width,
            height=height,
            frames=length + _MAX_LEAD_FRAMES,
            objects=targets,
            seed=CLIP_SEED,
        )
    )
    frames, labels = [], []
    for frame in scene.frames():
        if not frames and len(np.unique(frame.label)) - 1 < targets:
            continue  # not every object has entered yet
        frames.append(frame.image)
        labels.append(frame.label.astype(np.uint16))
        if len(frames) == length:
            break
    if len(frames) < length:
        raise ValueError(
            f"the synthetic scene never shows {targets} objects at once; use fewer targets"
        )
    classes = {i: scene.class_map.get(i, "object") for i in range(1, targets + 1)}
    return BenchClip(np.stack(frames), np.stack(labels), classes)


def size_list(text: str) -> list[tuple[int, int]]:
    """``854x480,1280x720`` as [(854, 480), (1280, 720)]: an argparse ``type`` of the benchmark
    commands (a clear error for a malformed or tiny size)."""
    sizes = []
    for item in text.split(","):
        try:
            width, height = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"sizes must look like 854x480,1280x720; got {item!r}"
            ) from None
        if width < 32 or height < 32:
            raise argparse.ArgumentTypeError(f"size {item} is too small (at least 32x32)")
        sizes.append((width, height))
    return sizes
