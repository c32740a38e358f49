"""Uploaded files read as evaluation clips (:class:`vos_ros.evaluation.clips.Clip`).

A video becomes a clip without ground truth; a bag with the evaluator's ground-truth topic is read
by :class:`vos_ros.bag_io.BagClip` (so the evaluator scores it), a bag without it by its image
topic alone. The user's first-frame targets ride on the first frame as a recorded prompt, which
the evaluator's prompt plan replays (and, with ground truth, matches to the objects).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vos_ros.bag_io import GT_TOPIC, IMAGE_TOPIC, BagClip, bag_topics, frame_rgb, read_messages
from vos_ros.evaluation.clips import Clip, ClipFrame, LimitedClip, RecordedPrompt

IMAGE_TYPE = "sensor_msgs/msg/Image"
CLIP_NAME = "upload"


@dataclass
class ClipInfo:
    """What the page shows about an upload before it runs."""

    kind: str  # mp4, webm, mcap, db3
    frames: int
    width: int
    height: int
    fps: float
    has_ground_truth: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class VideoClip:
    """An MP4/WebM file (OpenCV) as a clip without ground truth, cut to ``limit`` frames."""

    path: Path
    limit: int
    name: str = CLIP_NAME

    def __post_init__(self) -> None:
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise ValueError("the video cannot be opened (unsupported codec or damaged file)")
            self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
            count = 0  # counted by decoding: WebM files often carry no frame count
            while count < self.limit and capture.grab():
                count += 1
        finally:
            capture.release()
        if count == 0:
            raise ValueError("the video holds no frame that can be decoded")
        self._count = count

    def __len__(self) -> int:
        return self._count

    def frames(self) -> Iterator[ClipFrame]:
        capture = cv2.VideoCapture(str(self.path))
        try:
            for index in range(self._count):
                ok, bgr = capture.read()
                if not ok:
                    return
                yield ClipFrame(index, f"{index:05d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None)
        finally:
            capture.release()


@dataclass
class BagImagesClip:
    """A bag's image topic as a clip without ground truth, cut to ``limit`` frames."""

    path: Path
    image_topic: str
    count: int
    name: str = CLIP_NAME

    def __len__(self) -> int:
        return self.count

    def frames(self) -> Iterator[ClipFrame]:
        from vos_ros.bag_io import stamp_ns

        for index, (_topic, _time, msg) in enumerate(read_messages(self.path, [self.image_topic])):
            if index >= self.count:
                return
            image = frame_rgb(msg, self.image_topic)
            yield ClipFrame(index, str(stamp_ns(msg)), image, None, stamp_ns(msg))


@dataclass
class PromptedClip:
    """A clip whose first frame carries the user's targets as a recorded prompt."""

    inner: Clip
    label_image: np.ndarray
    classes: dict[int, str]
    has_recorded_prompts: bool = True

    @property
    def name(self) -> str:
        return self.inner.name

    def __len__(self) -> int:
        return len(self.inner)

    def frames(self) -> Iterator[ClipFrame]:
        for frame in self.inner.frames():
            frame.recorded = (
                RecordedPrompt(label_image=self.label_image, classes=dict(self.classes))
                if frame.index == 0
                else None
            )
            yield frame


def open_upload(path: Path, kind: str, limit: int) -> tuple[Clip, bool, list[str]]:
    """The clip of an upload, whether it has ground truth, and notes for the page.

    :raises ValueError: the file cannot be read as its type.
    """
    notes: list[str] = []
    if kind in ("mp4", "webm"):
        clip: Clip = VideoClip(path, limit)
        return clip, False, notes
    topics = bag_topics(path)
    images = [t for t, ty in sorted(topics.items()) if ty == IMAGE_TYPE and t != GT_TOPIC]
    if not images:
        raise ValueError(
            "the bag has no image topic (sensor_msgs/msg/Image); it has: "
            + (", ".join(sorted(topics)) or "no topics")
        )
    image_topic = IMAGE_TOPIC if IMAGE_TOPIC in images else images[0]
    if len(images) > 1:
        notes.append(f"several image topics; using {image_topic}")
    if topics.get(GT_TOPIC) == IMAGE_TYPE:
        bag = BagClip(path, image_topic=image_topic, use_recorded_prompts=False, name=CLIP_NAME)
        return LimitedClip(bag, limit), True, notes
    from vos_ros.bag_io import message_counts

    count = min(message_counts(path).get(image_topic, 0), limit)
    if count == 0:
        raise ValueError(f"the bag has no message on {image_topic}")
    notes.append(f"no ground truth on {GT_TOPIC}: no evaluation report, only the tracking")
    return BagImagesClip(path, image_topic, count), False, notes


def first_frame(clip: Clip) -> ClipFrame:
    for frame in clip.frames():
        if frame.image is None:
            break
        return frame
    raise ValueError("the upload holds no readable frame")
