"""The common shape of an evaluation input: a named clip yielding frames with ground truth.

DAVIS folders (:mod:`vos_ros.evaluation.davis_folder`) and bags (:mod:`vos_ros.bag_io`) are both
read as clips, so the runner and the scorer never care where the frames came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vos_ros.evaluation.confusion import DecodedLabels


@dataclass
class RecordedPrompt:
    """What a bag recorded as given to the node on one frame.

    :ivar label_image: uint16 ``(H, W)`` target ids of an initial mask (0 = none), or None.
    :ivar classes: class of each id of ``label_image``.
    :ivar boxes: detector boxes ``(x0, y0, x1, y1)`` in pixels (x1/y1 exclusive).
    :ivar box_classes: class label of each box.
    """

    label_image: np.ndarray | None = None
    classes: dict[int, str] = field(default_factory=dict)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    box_classes: list[str] = field(default_factory=list)

    def merge(self, other: RecordedPrompt) -> None:
        """Add another recording of the same frame (later label images win where they overlap)."""
        if other.label_image is not None:
            if self.label_image is None:
                self.label_image = other.label_image.copy()
            else:
                self.label_image = np.where(
                    other.label_image > 0, other.label_image, self.label_image
                ).astype(np.uint16)
            self.classes.update(other.classes)
        self.boxes += other.boxes
        self.box_classes += other.box_classes


@dataclass
class ClipFrame:
    """One frame of a clip.

    :ivar index: 0-based position in the clip.
    :ivar name: a stable frame name (file stem, or the stamp for bags).
    :ivar image: RGB ``uint8`` ``(H, W, 3)``, or None when the clip was opened without images.
    :ivar gt: the decoded ground truth, or None when this frame has none.
    :ivar stamp_ns: capture time (bags), None for folders.
    :ivar recorded: what the bag recorded as given to the node on this frame (initial masks,
        detector boxes), or None.
    """

    index: int
    name: str
    image: np.ndarray | None
    gt: DecodedLabels | None
    stamp_ns: int | None = None
    recorded: RecordedPrompt | None = None


class Clip(Protocol):
    """A sequence to evaluate. A clip may also have ``has_recorded_prompts = True``: its frames
    then carry the prompts to replay (``ClipFrame.recorded``) instead of the ground-truth
    protocol (:mod:`vos_ros.evaluation.prompt_plan`)."""

    name: str

    def __len__(self) -> int: ...

    def frames(self) -> Iterator[ClipFrame]: ...


@dataclass
class LimitedClip:
    """The first ``limit`` frames of a clip."""

    inner: Clip
    limit: int

    @property
    def name(self) -> str:
        return self.inner.name

    def __len__(self) -> int:
        return min(len(self.inner), self.limit)

    def frames(self) -> Iterator[ClipFrame]:
        for frame in self.inner.frames():
            if frame.index >= self.limit:
                return
            yield frame
