"""Write an evaluation clip (DAVIS sequence, synthetic scene) as a rosbag2 bag (``make-bag``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_ros.bag_io import BagFrame, write_bag
from vos_ros.evaluation.clips import Clip
from vos_ros.evaluation.confusion import PANOPTIC_DIVISOR
from vos_ros.evaluation.davis_folder import DEFAULT_CLASS


@dataclass(frozen=True)
class BagExportOptions:
    """How to write the bag (topics, rate, label encoding)."""

    fps: float = 15.0
    storage: str = "mcap"
    gt_encoding: str = "instance"  # instance | panoptic
    gt_image_encoding: str | None = None  # default: mono16 (instance), 32SC1 (panoptic)
    image_topic: str = "/camera/image_raw"
    gt_topic: str = "/camera/ground_truth"
    class_topic: str | None = "/camera/ground_truth/classes"
    max_frames: int | None = None
    start_ns: int = 1_000_000_000


def clip_class_map(clip: Clip) -> dict[int, str]:
    """The class of each object id a clip knows about (DAVIS classes.json, synthetic scene)."""
    mapping = getattr(clip, "class_map", None)
    if mapping is None and hasattr(clip, "scene"):
        mapping = clip.scene.class_map
    return {int(k): str(v) for k, v in (mapping or {}).items()}


def panoptic_class_ids(class_map: Mapping[int, str]) -> dict[str, int]:
    """Class name -> class id (1-based, alphabetical; the default class included)."""
    names = sorted(set(class_map.values()) | {DEFAULT_CLASS})
    return {name: i + 1 for i, name in enumerate(names)}


def export_clip(clip: Clip, out: Path | str, options: BagExportOptions | None = None) -> int:
    """Write ``clip`` to the new bag ``out``; returns the number of frames written.

    Frame i gets the stamp ``start_ns + i / fps``. With the panoptic encoding, a pixel of instance
    k of class c becomes ``class_id(c) * 1000 + k`` and the class topic maps class ids to names.
    """
    opts = options or BagExportOptions()
    if opts.fps <= 0:
        raise ValueError(f"fps must be positive, got {opts.fps}")
    if opts.gt_encoding not in ("instance", "panoptic"):
        raise ValueError(f"gt_encoding must be instance or panoptic, got {opts.gt_encoding!r}")
    classes = clip_class_map(clip)
    if opts.gt_encoding == "panoptic":
        class_ids = panoptic_class_ids(classes)
        topic_map = {cid: name for name, cid in class_ids.items()}
        image_encoding = opts.gt_image_encoding or "32SC1"
    else:
        class_ids = {}
        topic_map = classes
        image_encoding = opts.gt_image_encoding or "mono16"
    period_ns = 1e9 / opts.fps

    def frames() -> Iterator[BagFrame]:
        for frame in clip.frames():
            if opts.max_frames is not None and frame.index >= opts.max_frames:
                return
            if frame.image is None:
                raise ValueError(f"{clip.name} frame {frame.name} has no image")
            label = None
            if frame.gt is not None:
                label = _encode(
                    frame.gt.instances,
                    frame.gt.instance_classes,
                    class_ids,
                    opts.gt_encoding,
                    image_encoding,
                )
            stamp = opts.start_ns + round(frame.index * period_ns)
            yield BagFrame(frame.image, label, stamp)

    return write_bag(
        out,
        frames(),
        storage=opts.storage,
        image_topic=opts.image_topic,
        gt_topic=opts.gt_topic,
        class_topic=opts.class_topic,
        gt_encoding=image_encoding,
        class_map=topic_map,
    )


def _encode(
    instances: np.ndarray,
    instance_classes: Mapping[int, str],
    class_ids: Mapping[str, int],
    encoding: str,
    image_encoding: str,
) -> np.ndarray:
    """Label image in the bag's encoding, checked against the range of its ROS pixel type."""
    if encoding == "panoptic":
        out = np.zeros(instances.shape, np.int64)
        for key, name in instance_classes.items():
            if key >= PANOPTIC_DIVISOR:
                raise ValueError(f"instance id {key} does not fit class*{PANOPTIC_DIVISOR}+id")
            out[instances == key] = (
                class_ids.get(name, class_ids[DEFAULT_CLASS]) * PANOPTIC_DIVISOR + key
            )
    else:
        out = instances.astype(np.int64)
    limit = {"mono8": 255, "mono16": 65534, "16UC1": 65534, "32SC1": 2**31 - 1}[image_encoding]
    if out.size and int(out.max()) > limit:
        raise ValueError(
            f"label value {int(out.max())} does not fit {image_encoding}; "
            "choose a wider --gt-image-encoding"
        )
    return out
