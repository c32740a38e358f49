"""Training data: DAVIS-layout sequences loaded once into RAM at a training resolution.

Decoding ~2,000 JPEGs takes a while on a small machine, so the resized frames and masks are cached
as one ``.npz`` (uncompressed, loads in seconds) in a git-ignored cache folder. The cache name
holds the size and the sequence list, so changing either builds a new cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Sequence:
    """One video: ``frames`` uint8 ``[T, H, W, 3]`` RGB, ``masks`` uint8 ``[T, H, W]`` in {0, 1}."""

    name: str
    frames: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def list_sequences(data_dir: Path) -> list[str]:
    """Sequence names of a DAVIS-layout folder (``ImageSets/2016/train.txt``, else every folder).

    :raises ValueError: when the folder is not DAVIS-layout.
    """
    image_root = data_dir / "JPEGImages" / "480p"
    if not image_root.is_dir():
        raise ValueError(f"{data_dir} is not a DAVIS-layout folder: {image_root} is missing")
    listing = data_dir / "ImageSets" / "2016" / "train.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in image_root.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"no sequences found in {data_dir}")
    return names


# frame files, as the evaluator reads them (synthetic folders are PNG)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _load_sequence(data_dir: Path, name: str, width: int, height: int) -> Sequence:
    image_dir = data_dir / "JPEGImages" / "480p" / name
    mask_dir = data_dir / "Annotations" / "480p" / name
    frame_files = sorted(f for f in image_dir.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not frame_files:
        raise ValueError(f"sequence {name}: no frames in {image_dir}")
    frames, masks = [], []
    for frame_file in frame_files:
        mask_file = mask_dir / (frame_file.stem + ".png")
        bgr = cv2.imread(str(frame_file), cv2.IMREAD_COLOR)
        label = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
        if bgr is None or label is None:
            raise ValueError(f"sequence {name}: cannot read {frame_file} or {mask_file}")
        if label.ndim == 3:  # palette PNGs may decode to colour on some builds: any colour = object
            label = label.max(axis=2)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
        mask = (label > 0).astype(np.uint8)
        masks.append(cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST))
    return Sequence(name, np.stack(frames), np.stack(masks))


def load_training_set(
    data_dir: str | Path,
    width: int,
    height: int,
    cache_dir: str | Path | None = None,
    only: list[str] | None = None,
) -> list[Sequence]:
    """The sequences of ``data_dir`` (all, or the ``only`` ones) resized to ``width`` x ``height``
    (cached in ``cache_dir``).

    :raises ValueError: when ``only`` names a sequence the folder does not have.
    """
    data_dir = Path(data_dir)
    names = list_sequences(data_dir)
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"{data_dir} has no sequence(s) {', '.join(unknown)}")
        names = [name for name in names if name in set(only)]
    cache_file = None
    if cache_dir is not None:
        listing = "\n".join([str(data_dir.resolve()), *names]).encode()
        digest = hashlib.sha1(listing).hexdigest()[:10]
        cache_file = Path(cache_dir) / f"{data_dir.name}-{width}x{height}-{digest}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as cached:
                offsets = cached["offsets"]
                frames, masks = cached["frames"], cached["masks"]
                return [
                    Sequence(str(n), frames[a:b], masks[a:b])
                    for n, a, b in zip(cached["names"], offsets[:-1], offsets[1:], strict=True)
                ]
    sequences = [_load_sequence(data_dir, name, width, height) for name in names]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0] + [len(s) for s in sequences])
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            names=np.array(names),
            offsets=offsets,
            frames=np.concatenate([s.frames for s in sequences]),
            masks=np.concatenate([s.masks for s in sequences]),
        )
        tmp.replace(cache_file)
    return sequences


def sample_clip_indices(
    rng: np.random.Generator, sequence: Sequence, length: int, max_gap: int
) -> list[int]:
    """Frame indices of a clip: the first frame has a visible object; gaps of 1..max_gap frames;
    played backwards half of the time (the motion statistics are symmetric)."""
    visible = np.flatnonzero(sequence.masks.reshape(len(sequence), -1).max(axis=1) > 0)
    for _ in range(20):
        gaps = rng.integers(1, max_gap + 1, size=length - 1)
        span = int(gaps.sum())
        if span >= len(sequence):
            gaps = np.ones(length - 1, dtype=int)
            span = length - 1
        backwards = bool(rng.random() < 0.5)
        start = int(rng.choice(visible))
        step = -1 if backwards else 1
        indices = [start, *(start + step * np.cumsum(gaps)).tolist()]
        if min(indices) >= 0 and max(indices) < len(sequence):
            return [int(i) for i in indices]
    # Fallback: consecutive frames forward from the first visible frame that fits.
    start = int(visible[visible + length - 1 < len(sequence)][0]) if len(visible) else 0
    return list(range(start, start + length))
