"""Per-class IoU from one confusion matrix over a whole data set, and per-instance IoU.

Ground truth comes in one of two label encodings, both decoded here to the same form
(:class:`DecodedLabels`: an instance-key image, a class name per instance key, and an ignore mask):

- ``instance``: pixel value k > 0 is instance k, 0 is background; a separate class map gives the
  class name of each instance id (DAVIS ``classes.json``, or an option);
- ``panoptic``: pixel value ``class_id * divisor + instance`` (the driving-dataset convention,
  divisor 1000). Values below the divisor are a class without instances (a "stuff" or crowd region):
  they count for per-class IoU but are not targets. 0 is background. One value (65535 by default) is
  "ignore" and is left out of every score.

Per-class IoU = TP / (TP + FP + FN) per class, summed over every scored pixel of every frame of
every sequence (one matrix, not a mean of per-frame IoUs). Background is a class of the matrix too;
it is reported apart from the object classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

BACKGROUND = "background"
DEFAULT_IGNORE = 65535
PANOPTIC_DIVISOR = 1000
ENCODINGS = ("instance", "panoptic")


@dataclass
class DecodedLabels:
    """One ground-truth frame in the common form.

    :ivar instances: ``(H, W)`` int64; 0 = background or a region without instances, k > 0 = the
        instance key (the raw id for ``instance``, ``class*divisor+instance`` for ``panoptic``).
    :ivar instance_classes: class name of each instance key present in the frame.
    :ivar ignore: ``(H, W)`` bool, True where the pixel is not scored.
    :ivar stuff_image: ``(H, W)`` int64 or None; k > 0 marks a class region without instances
        (``panoptic`` values below the divisor), named in ``stuff_classes``.
    """

    instances: np.ndarray
    instance_classes: dict[int, str]
    ignore: np.ndarray
    stuff_image: np.ndarray | None = None
    stuff_classes: dict[int, str] = field(default_factory=dict)


def _class_name(class_names: Mapping[int, str] | None, class_id: int) -> str:
    if class_names and class_id in class_names:
        return class_names[class_id]
    return f"class_{class_id}"


def decode_instance_labels(
    label: np.ndarray,
    class_map: Mapping[int, str] | None = None,
    ignore_value: int | None = None,
    default_class: str = "object",
) -> DecodedLabels:
    """Decode an instance-id label image (mono8/mono16) with a class map (instance id -> name).

    :param label: ``(H, W)`` unsigned integer image, k > 0 = instance k.
    :param class_map: class name of each instance id; ids missing from it get ``default_class``.
    :param ignore_value: pixel value that is not scored (e.g. 255 in 8-bit DAVIS-style masks).
    """
    if label.ndim != 2:
        raise ValueError(f"label image must be 2-D (H, W), got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label image must hold integers, got dtype {label.dtype}")
    inst = label.astype(np.int64)
    ignore = inst == ignore_value if ignore_value is not None else np.zeros(label.shape, dtype=bool)
    inst[ignore] = 0
    ids = [int(v) for v in np.unique(inst) if v > 0]
    class_map = class_map or {}
    classes = {k: class_map.get(k, default_class) for k in ids}
    return DecodedLabels(inst, classes, ignore)


def decode_panoptic_labels(
    label: np.ndarray,
    class_names: Mapping[int, str] | None = None,
    divisor: int = PANOPTIC_DIVISOR,
    ignore_value: int | None = DEFAULT_IGNORE,
) -> DecodedLabels:
    """Decode a ``class*divisor + instance`` image (mono16 / 32SC1).

    :param label: ``(H, W)`` integer image.
    :param class_names: class id -> name; unknown ids are called ``class_<id>``.
    """
    if label.ndim != 2:
        raise ValueError(f"label image must be 2-D (H, W), got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label image must hold integers, got dtype {label.dtype}")
    raw = label.astype(np.int64)
    ignore = raw == ignore_value if ignore_value is not None else np.zeros(raw.shape, dtype=bool)
    raw = np.where(ignore, 0, raw)
    instances = np.where(raw >= divisor, raw, 0)
    stuff = np.where((raw > 0) & (raw < divisor), raw, 0)
    inst_classes = {
        int(v): _class_name(class_names, int(v) // divisor) for v in np.unique(instances) if v > 0
    }
    stuff_classes = {int(v): _class_name(class_names, int(v)) for v in np.unique(stuff) if v > 0}
    return DecodedLabels(instances, inst_classes, ignore, stuff, stuff_classes)


def decode_labels(
    label: np.ndarray,
    encoding: str,
    class_map: Mapping[int, str] | None = None,
    ignore_value: int | None = None,
    divisor: int = PANOPTIC_DIVISOR,
) -> DecodedLabels:
    """Decode a ground-truth label image in either encoding (see the module docstring)."""
    if encoding == "instance":
        return decode_instance_labels(label, class_map, ignore_value)
    if encoding == "panoptic":
        ignore = DEFAULT_IGNORE if ignore_value is None else ignore_value
        return decode_panoptic_labels(label, class_map, divisor, ignore)
    raise ValueError(f"unknown label encoding {encoding!r}; expected one of {ENCODINGS}")


class ConfusionMatrix:
    """A growing (gt class x predicted class) pixel-count matrix; class 0 is background."""

    def __init__(self) -> None:
        self.names: list[str] = [BACKGROUND]
        self._index: dict[str, int] = {BACKGROUND: 0}
        self.matrix = np.zeros((1, 1), dtype=np.int64)

    def class_index(self, name: str) -> int:
        """Index of a class name, adding it (and growing the matrix) on first use."""
        idx = self._index.get(name)
        if idx is None:
            idx = len(self.names)
            self.names.append(name)
            self._index[name] = idx
            grown = np.zeros((idx + 1, idx + 1), dtype=np.int64)
            grown[:idx, :idx] = self.matrix
            self.matrix = grown
        return idx

    def class_image(
        self, label: np.ndarray, classes: Mapping[int, str], what: str = "label"
    ) -> np.ndarray:
        """Map a label image (pixel = id) to class indices; ids without a class are background.

        :param label: ``(H, W)`` integer image.
        :param classes: class name of each id.
        """
        out = np.zeros(label.shape, dtype=np.int64)
        for value, name in classes.items():
            if value > 0:
                out[label == value] = self.class_index(name)
        return out

    def add(self, gt_classes: np.ndarray, pred_classes: np.ndarray, ignore: np.ndarray) -> None:
        """Count one frame: ``(H, W)`` class-index images from :meth:`class_image`, bool ignore."""
        if gt_classes.shape != pred_classes.shape or gt_classes.shape != ignore.shape:
            raise ValueError(
                f"confusion update: shapes differ, gt {gt_classes.shape}, "
                f"prediction {pred_classes.shape}, ignore {ignore.shape}"
            )
        keep = ~ignore
        n = len(self.names)
        codes = gt_classes[keep] * n + pred_classes[keep]
        self.matrix += np.bincount(codes, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts, matched by class name (each has its own class order)."""
        idx = [self.class_index(name) for name in other.names]
        self.matrix[np.ix_(idx, idx)] += other.matrix

    def counts(self) -> dict[str, dict[str, int]]:
        """Per class: true positives, false positives, false negatives (pixels)."""
        tp = np.diag(self.matrix)
        fp = self.matrix.sum(axis=0) - tp
        fn = self.matrix.sum(axis=1) - tp
        return {
            name: {"tp": int(tp[i]), "fp": int(fp[i]), "fn": int(fn[i])}
            for i, name in enumerate(self.names)
        }

    def iou(self) -> dict[str, float]:
        """IoU = TP / (TP + FP + FN) per class; classes with no pixel anywhere are left out."""
        out: dict[str, float] = {}
        for name, c in self.counts().items():
            denom = c["tp"] + c["fp"] + c["fn"]
            if denom > 0:
                out[name] = c["tp"] / denom
        return out


@dataclass
class InstanceIoU:
    """Intersection and union pixel counts of one ground-truth instance, frame by frame.

    The sequence IoU is sum(intersection) / sum(union): frames weigh by the object's size.
    """

    sequence: str
    instance: int
    class_label: str
    intersections: list[int] = field(default_factory=list)
    unions: list[int] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.unions)

    @property
    def iou(self) -> float:
        union = sum(self.unions)
        return sum(self.intersections) / union if union else float("nan")

    def add(self, gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray) -> None:
        """Count one frame: ``(H, W)`` bool masks of the instance and of its predicted target."""
        keep = ~ignore
        self.intersections.append(int(np.count_nonzero(gt & pred & keep)))
        self.unions.append(int(np.count_nonzero((gt | pred) & keep)))

    def drop_last(self) -> None:
        """Forget the last counted frame (the protocol does not score a sequence's last frame)."""
        if self.unions:
            self.intersections.pop()
            self.unions.pop()
