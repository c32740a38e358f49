"""Frame-by-frame accumulation of every score the report holds.

A :class:`DatasetScorer` collects, over all sequences: DAVIS J and F per object and frame, the
per-class confusion matrix, per-instance IoU, box-centre trajectories and timings. Each sequence is
fed through :meth:`DatasetScorer.sequence`, one frame at a time, in the order the frames were shown.

Which frames count (the semi-supervised protocol):

- J, F and per-instance IoU of an object start on the frame after the one where it first appears
  (its ground truth is given on that frame); for objects present on the first frame this is the
  official "first frame dropped". The last frame of a finished sequence is dropped as well.
- The confusion matrix counts every frame except each sequence's first one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vos_ros.evaluation.confusion import ConfusionMatrix, DecodedLabels, InstanceIoU
from vos_ros.evaluation.davis_metrics import ObjectSeries, boundary_f_measure, region_iou


def box_centre(mask: np.ndarray) -> tuple[float, float] | None:
    """Centre ``(x, y)`` of a mask's bounding box in pixels, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return ((cols[0] + cols[-1] + 1) / 2.0, (rows[0] + rows[-1] + 1) / 2.0)


@dataclass
class Trajectory:
    """Box centres of one ground-truth object and of its predicted target, frame by frame."""

    frames: list[int] = field(default_factory=list)
    gt: list[tuple[float, float] | None] = field(default_factory=list)
    pred: list[tuple[float, float] | None] = field(default_factory=list)


@dataclass
class SequenceInfo:
    """Book-keeping of one sequence: how far it got and why it stopped early, if it did."""

    name: str
    total_frames: int | None
    frames_seen: int = 0
    complete: bool = False
    error: str | None = None
    object_classes: dict[int, str] = field(default_factory=dict)
    prompts: str = "ground truth"  # or "recorded": the bag's recorded prompts were replayed
    seconds: float | None = None  # wall time of the whole clip (open, run, score)
    worker: str | None = None  # host:pid of the Ray worker that scored it (None: this process)


class SequenceScorer:
    """Scores one sequence; obtained from :meth:`DatasetScorer.sequence`."""

    def __init__(self, owner: DatasetScorer, info: SequenceInfo, bound_th: float) -> None:
        self._owner = owner
        self.info = info
        self._bound_th = bound_th
        self._first_frame: int | None = None
        self._appeared: dict[int, int] = {}  # gt key -> frame of first appearance
        self.objects: dict[int, ObjectSeries] = {}
        self.instances: dict[int, InstanceIoU] = {}
        self.trajectories: dict[int, Trajectory] = {}
        self._last_frame: int | None = None

    def add_frame(
        self,
        frame_index: int,
        gt: DecodedLabels | None,
        pred_label: np.ndarray,
        pred_classes: Mapping[int, str],
        target_of: Mapping[int, int] | None = None,
    ) -> None:
        """Score one frame.

        :param frame_index: position of the frame in the sequence (0-based, increasing).
        :param gt: the decoded ground truth, or None when this frame has none (then only the frame
            count moves on).
        :param pred_label: ``(H, W)`` predicted label image, pixel = target id, 0 = background.
        :param pred_classes: class name of each predicted target id.
        :param target_of: target id tracking each ground-truth key; identity when None (prediction
            PNGs that use the ground-truth ids).
        """
        self.info.frames_seen += 1
        if gt is None:
            return
        if pred_label.shape != gt.instances.shape:
            raise ValueError(
                f"{self.info.name} frame {frame_index}: prediction is "
                f"{pred_label.shape[1]}x{pred_label.shape[0]} but the ground truth is "
                f"{gt.instances.shape[1]}x{gt.instances.shape[0]} (width x height)"
            )
        if self._first_frame is None:
            self._first_frame = frame_index
        self._last_frame = frame_index
        for key, name in gt.instance_classes.items():
            if key not in self._appeared:
                self._appeared[key] = frame_index
                self.info.object_classes[key] = name
                self.objects[key] = ObjectSeries(self.info.name, key, [], [], [])
                self.instances[key] = InstanceIoU(self.info.name, key, name)
                self.trajectories[key] = Trajectory()

        confusion = self._owner.confusion
        if frame_index != self._first_frame:
            gt_cls = confusion.class_image(gt.instances, gt.instance_classes)
            if gt.stuff_image is not None and gt.stuff_classes:
                stuff = confusion.class_image(gt.stuff_image, gt.stuff_classes)
                gt_cls = np.where(stuff > 0, stuff, gt_cls)
            pred_cls = confusion.class_image(pred_label, pred_classes)
            confusion.add(gt_cls, pred_cls, gt.ignore)

        void = gt.ignore if gt.ignore.any() else None
        for key, first in self._appeared.items():
            target = key if target_of is None else target_of.get(key)
            gt_mask = gt.instances == key
            pred_mask = pred_label == target if target is not None else np.zeros_like(gt_mask)
            traj = self.trajectories[key]
            traj.frames.append(frame_index)
            traj.gt.append(box_centre(gt_mask))
            traj.pred.append(box_centre(pred_mask))
            if frame_index <= first:
                continue
            obj = self.objects[key]
            obj.frames.append(frame_index)
            obj.j.append(region_iou(gt_mask, pred_mask, void))
            obj.f.append(boundary_f_measure(gt_mask, pred_mask, void, self._bound_th))
            self.instances[key].add(gt_mask, pred_mask, gt.ignore)

    def finish(self, complete: bool = True, error: str | None = None) -> None:
        """Close the sequence; a finished one drops its last frame from J, F and instance IoU."""
        self.info.complete = complete and error is None
        self.info.error = error
        if self.info.complete and self._last_frame is not None:
            for key, obj in self.objects.items():
                if obj.frames and obj.frames[-1] == self._last_frame:
                    obj.frames.pop()
                    obj.j.pop()
                    obj.f.pop()
                    self.instances[key].drop_last()


@dataclass
class Timing:
    """Per-frame processing latencies (ms) and dropped frames."""

    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    dropped_frames: int = 0
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, latency_ms: float, stages: Mapping[str, float] | None = None) -> None:
        self.latencies_ms.append(latency_ms)
        for name, value in (stages or {}).items():
            self.stages_ms.setdefault(name, []).append(float(value))

    def extend(self, other: Timing) -> None:
        """Append another run's frames after these (a merged run keeps the frames' order)."""
        self.latencies_ms.extend(other.latencies_ms)
        self.wall_s += other.wall_s
        self.dropped_frames += other.dropped_frames
        for name, values in other.stages_ms.items():
            self.stages_ms.setdefault(name, []).extend(values)

    def summary(self) -> dict:
        """``{"frames", "fps", "latency_ms": {mean, p50, p95, p99, max}, "dropped_frames",
        "stages_ms": {stage: mean}, "per_frame_ms": [...]}``."""
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        n = int(lat.size)
        if n:
            pct = {f"p{q}": float(np.percentile(lat, q)) for q in (50, 95, 99)}
            latency = {"mean": float(lat.mean()), **pct, "max": float(lat.max())}
        else:
            latency = {
                "mean": math.nan,
                "p50": math.nan,
                "p95": math.nan,
                "p99": math.nan,
                "max": math.nan,
            }
        busy_s = float(lat.sum()) / 1000.0
        wall = self.wall_s if self.wall_s > 0 else busy_s
        return {
            "frames": n,
            "fps": n / wall if wall > 0 else math.nan,
            "latency_ms": latency,
            "dropped_frames": int(self.dropped_frames),
            "stages_ms": {k: float(np.mean(v)) for k, v in self.stages_ms.items()},
            "per_frame_ms": [round(float(v), 3) for v in lat],
        }


class DatasetScorer:
    """Everything scored so far over all sequences; turned into a report by ``report.py``."""

    def __init__(self, bound_th: float = 0.008) -> None:
        self.bound_th = bound_th
        self.confusion = ConfusionMatrix()
        self.sequences: list[SequenceScorer] = []
        self.timing = Timing()

    def sequence(self, name: str, total_frames: int | None = None) -> SequenceScorer:
        """Start scoring a new sequence (names must be unique)."""
        if any(s.info.name == name for s in self.sequences):
            raise ValueError(f"sequence {name!r} was already scored")
        scorer = SequenceScorer(self, SequenceInfo(name, total_frames), self.bound_th)
        self.sequences.append(scorer)
        return scorer

    def merge(self, other: DatasetScorer) -> None:
        """Take over everything ``other`` scored, after what this one holds: confusion counts
        are added by class name, sequences and frame timings appended in order."""
        for seq in other.sequences:
            if any(s.info.name == seq.info.name for s in self.sequences):
                raise ValueError(f"sequence {seq.info.name!r} was already scored")
        self.confusion.merge(other.confusion)
        for seq in other.sequences:
            seq._owner = self
            self.sequences.append(seq)
        self.timing.extend(other.timing)

    def object_series(self) -> list[ObjectSeries]:
        return [obj for s in self.sequences for obj in s.objects.values()]

    @property
    def frames_scored(self) -> int:
        return sum(s.info.frames_seen for s in self.sequences)
