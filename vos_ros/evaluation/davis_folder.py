"""Read DAVIS-layout folders: frames, annotations, class maps and prediction PNGs.

Layout::

    ROOT/JPEGImages/<res>/<seq>/00000.jpg ...     RGB frames (res = 480p or Full-Resolution)
    ROOT/Annotations/<res>/<seq>/00000.png ...    palette/grey PNG, pixel = object id (0: none)
    ROOT/classes.json                             optional: {"<seq>": {"<id>": "<class>"}}

Annotations may exist for every frame or only some (frames without a PNG have no ground truth).
Prediction folders use the same per-sequence layout: ``PRED/<seq>/<frame>.png``.

Like the official DAVIS 2017 evaluator, the value 255 in an annotation is read as background unless
``ignore_value`` says otherwise (the official code maps 255 to 0 before scoring).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vos_ros.evaluation.clips import ClipFrame
from vos_ros.evaluation.confusion import decode_instance_labels

RESOLUTIONS = ("480p", "Full-Resolution")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_CLASS = "object"
DAVIS_VOID = 255


def read_label_png(path: Path) -> np.ndarray:
    """Read a label PNG as an ``(H, W)`` integer image of ids (palette indices for ``P`` images).

    :raises ValueError: for colour PNGs, which hold no ids.
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.array(img)
    except OSError as exc:
        raise ValueError(f"cannot read label image {path}: {exc}") from exc
    if mode in ("P", "L", "1"):
        return arr.astype(np.uint8)
    if mode.startswith("I"):
        return arr.astype(np.int64)
    raise ValueError(
        f"{path}: label PNGs must be palette (P) or grey images of ids, not mode {mode!r}"
    )


def write_label_png(path: Path, label: np.ndarray) -> None:
    """Write an ``(H, W)`` label image as a DAVIS palette PNG (ids < 256) or a 16-bit grey PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if int(label.max(initial=0)) < 256:
        img = Image.fromarray(label.astype(np.uint8), mode="P")
        img.putpalette(davis_palette().flatten().tolist())
        img.save(path)
    else:
        cv2.imwrite(str(path), label.astype(np.uint16))


def davis_palette(n: int = 256) -> np.ndarray:
    """The standard DAVIS/PASCAL colour palette: ``(n, 3)`` uint8, index 0 black, 1 red, 2 green."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)``."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_class_map(path: Path) -> dict[str, dict[int, str]]:
    """Read ``classes.json``: ``{"<seq>": {"<id>": "<class>"}}``; ``_``-keys are comments."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read class map {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping sequence -> {{id: class}}")
    out: dict[str, dict[int, str]] = {}
    for seq, ids in data.items():
        if seq.startswith("_"):
            continue
        if not isinstance(ids, dict):
            raise ValueError(f"{path}: entry {seq!r} must map object ids to class names")
        try:
            out[seq] = {int(k): str(v) for k, v in ids.items()}
        except ValueError as exc:
            raise ValueError(f"{path}: entry {seq!r} has a non-integer object id") from exc
    return out


@dataclass
class DavisClip:
    """One sequence of a DAVIS folder, read lazily frame by frame."""

    name: str
    frame_paths: list[Path]
    annotation_paths: dict[str, Path]  # frame stem -> PNG
    class_map: dict[int, str]
    load_images: bool = True
    ignore_value: int | None = None

    def __len__(self) -> int:
        return len(self.frame_paths)

    def frames(self) -> Iterator[ClipFrame]:
        """Yield every frame in order, with its decoded ground truth where an annotation exists."""
        for index, path in enumerate(self.frame_paths):
            stem = path.stem
            gt = None
            ann = self.annotation_paths.get(stem)
            if ann is not None:
                gt = self.read_gt(ann)
            image = read_rgb(path) if self.load_images else None
            if image is not None and gt is not None and image.shape[:2] != gt.instances.shape:
                raise ValueError(
                    f"{self.name} frame {stem}: image is {image.shape[1]}x{image.shape[0]} but its "
                    f"annotation {ann} is {gt.instances.shape[1]}x{gt.instances.shape[0]}"
                )
            yield ClipFrame(index, stem, image, gt)

    def read_gt(self, path: Path):
        label = read_label_png(path)
        if self.ignore_value is None and label.dtype == np.uint8:
            label = np.where(label == DAVIS_VOID, 0, label).astype(np.uint8)
        return decode_instance_labels(label, self.class_map, self.ignore_value, DEFAULT_CLASS)


class DavisFolder:
    """A DAVIS-layout root folder.

    :param root: folder holding ``JPEGImages`` and ``Annotations``.
    :param resolution: ``480p`` or ``Full-Resolution``; the first one present when None.
    :param classes_file: class map JSON; ``ROOT/classes.json`` when None and present.
    """

    def __init__(
        self,
        root: Path | str,
        resolution: str | None = None,
        classes_file: Path | str | None = None,
        ignore_value: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"DAVIS folder not found: {self.root}")
        if resolution is None:
            found = [r for r in RESOLUTIONS if (self.root / "Annotations" / r).is_dir()]
            if not found:
                raise ValueError(
                    f"{self.root}: no Annotations/480p or Annotations/Full-Resolution folder "
                    "(expected the DAVIS layout JPEGImages/<res>/<seq>, Annotations/<res>/<seq>)"
                )
            resolution = found[0]
        elif resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
        self.resolution = resolution
        self.image_dir = self.root / "JPEGImages" / resolution
        self.annotation_dir = self.root / "Annotations" / resolution
        if not self.annotation_dir.is_dir():
            raise ValueError(f"{self.root}: missing folder Annotations/{resolution}")
        default_classes = self.root / "classes.json"
        if classes_file is not None:
            self.classes = load_class_map(Path(classes_file))
        elif default_classes.is_file():
            self.classes = load_class_map(default_classes)
        else:
            self.classes = {}
        self.ignore_value = ignore_value

    def sequences(self) -> list[str]:
        """Sequence names that have annotations, sorted."""
        return sorted(p.name for p in self.annotation_dir.iterdir() if p.is_dir())

    def select(self, names: list[str] | None) -> list[str]:
        """Check a user's sequence list against the folder (all sequences when None)."""
        available = self.sequences()
        if not names:
            return available
        missing = [n for n in names if n not in available]
        if missing:
            raise ValueError(
                f"unknown sequence(s) {', '.join(missing)} in {self.annotation_dir}; "
                f"available: {', '.join(available)}"
            )
        return list(names)

    def clip(self, name: str, load_images: bool = True) -> DavisClip:
        """Open one sequence. Frames come from JPEGImages; without images, from the annotations."""
        ann_dir = self.annotation_dir / name
        if not ann_dir.is_dir():
            raise ValueError(f"no annotations for sequence {name!r} in {self.annotation_dir}")
        annotations = {p.stem: p for p in sorted(ann_dir.glob("*.png"))}
        img_dir = self.image_dir / name
        frames = (
            sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if img_dir.is_dir()
            else []
        )
        if not frames:
            if load_images:
                raise ValueError(f"no frames for sequence {name!r} in {img_dir}")
            frames = list(annotations.values())
        return DavisClip(
            name, frames, annotations, self.classes.get(name, {}), load_images, self.ignore_value
        )


class PredictionFolder:
    """Prediction PNGs in DAVIS layout: ``ROOT/<seq>/<frame>.png``, pixel = object id."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"prediction folder not found: {self.root}")

    def sequences(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def path(self, sequence: str, frame: str) -> Path:
        return self.root / sequence / f"{frame}.png"

    def read(self, sequence: str, frame: str) -> np.ndarray | None:
        """The prediction of one frame, or None when its PNG is missing."""
        path = self.path(sequence, frame)
        if not path.is_file():
            return None
        return read_label_png(path)


def classes_for(predicted_ids: Mapping[int, str] | None, label: np.ndarray) -> dict[int, str]:
    """Class name of every id in a prediction, from the ground-truth class map (default class)."""
    names = predicted_ids or {}
    return {int(v): names.get(int(v), DEFAULT_CLASS) for v in np.unique(label) if v > 0}
