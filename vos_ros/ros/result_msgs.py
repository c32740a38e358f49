"""Convert an engine :class:`~vos_ros.types.FrameResult` into the node's output messages.

Every output copies the header of the input image (stamp and frame_id), so consumers can match
outputs to camera frames and TF. Pixel data is written with ``ndarray.tobytes()``: filling
``Image.data`` element by element costs tens of milliseconds per VGA frame.
"""

from __future__ import annotations

import colorsys
import sys

import cv2
import numpy as np
from sensor_msgs.msg import Image, RegionOfInterest

from vos_ros.msg import Detection, DetectionArray, InstanceMask, InstanceMaskArray
from vos_ros.types import FrameResult, TargetResult

try:  # ROS distros ship vision_msgs; the PyPI wheels do not.
    from vision_msgs.msg import (
        BoundingBox2D,
        Detection2D,
        Detection2DArray,
        ObjectHypothesisWithPose,
    )

    HAVE_VISION_MSGS = True
except ImportError:
    HAVE_VISION_MSGS = False

_BIG_ENDIAN = sys.byteorder == "big"


def detections_type() -> type:
    """The message type of ``~/detections``: vision_msgs/Detection2DArray when installed."""
    return Detection2DArray if HAVE_VISION_MSGS else DetectionArray


def image_msg(header, array: np.ndarray, encoding: str) -> Image:
    """A ``sensor_msgs/Image`` holding ``array`` (C order, native byte order) with ``header``.

    :param array: ``(H, W)`` uint8 for mono8, ``(H, W)`` uint16 for mono16, ``(H, W, 3)`` uint8 for
        rgb8/bgr8.
    """
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(array.dtype.itemsize > 1 and _BIG_ENDIAN),
        step=array.strides[0] if height else width * array.dtype.itemsize,
        data=array.tobytes(),
    )


def instance_mask(target: TargetResult, header) -> InstanceMask:
    """One target as an ``InstanceMask``: mask cropped to its box (see InstanceMask.msg)."""
    msg = InstanceMask(
        id=int(target.target_id),
        class_label=target.class_label,
        score=float(target.score),
        visible=bool(target.visible),
    )
    x0, y0, x1, y1 = (int(v) for v in target.box)
    if target.visible and x1 > x0 and y1 > y0:
        msg.box = RegionOfInterest(x_offset=x0, y_offset=y0, height=y1 - y0, width=x1 - x0)
        crop = target.mask[y0:y1, x0:x1].astype(np.uint8) * np.uint8(255)
        msg.mask = image_msg(header, crop, "mono8")
    else:  # invisible: all-zero box and an empty mask, as the message documents
        msg.visible = False
        msg.mask = image_msg(header, np.zeros((0, 0), np.uint8), "mono8")
    return msg


def instance_mask_array(result: FrameResult, header) -> InstanceMaskArray:
    """All tracked targets of ``result``, sorted by id."""
    height, width = result.label_image.shape[:2]
    targets = sorted(result.targets, key=lambda t: t.target_id)
    return InstanceMaskArray(
        header=header,
        image_height=height,
        image_width=width,
        instances=[instance_mask(t, header) for t in targets],
    )


def label_image_msg(result: FrameResult, header, encoding: str = "auto") -> Image:
    """``result.label_image`` as mono8 (every id < 256, or ``encoding='mono8'``) or mono16.

    A forced mono8 with an id above 255 is published as mono16 instead: truncating ids would
    silently merge targets.
    """
    labels = result.label_image
    # Every pixel holds one of the result's target ids (or 0), so the largest id is known
    # without scanning the image (0.1-0.2 ms at 854x480).
    max_id = max((t.target_id for t in result.targets), default=0)
    use_mono8 = encoding != "mono16" and max_id <= 255
    if use_mono8:
        return image_msg(header, labels.astype(np.uint8), "mono8")
    return image_msg(header, labels.astype(np.uint16), "mono16")


def detections_msg(result: FrameResult, header):
    """Visible targets as ``vision_msgs/Detection2DArray`` or the project's ``DetectionArray``.

    Box geometry as in vision_msgs: center and full size in pixels, for ``box = (x0, y0, x1, y1)``
    with x1/y1 exclusive the center is ``((x0 + x1) / 2, (y0 + y1) / 2)``.
    """
    visible = [t for t in sorted(result.targets, key=lambda t: t.target_id) if t.visible]
    if HAVE_VISION_MSGS:
        return Detection2DArray(
            header=header, detections=[_detection2d(t, header) for t in visible]
        )
    detections = []
    for target in visible:
        x0, y0, x1, y1 = target.box
        detections.append(
            Detection(
                id=int(target.target_id),
                class_label=target.class_label,
                score=float(target.score),
                center_x=(x0 + x1) / 2.0,
                center_y=(y0 + y1) / 2.0,
                size_x=float(x1 - x0),
                size_y=float(y1 - y0),
            )
        )
    return DetectionArray(header=header, detections=detections)


def _detection2d(target: TargetResult, header):
    x0, y0, x1, y1 = target.box
    hypothesis = ObjectHypothesisWithPose()
    if hasattr(hypothesis, "hypothesis"):  # vision_msgs >= 3 (Galactic and later)
        hypothesis.hypothesis.class_id = target.class_label
        hypothesis.hypothesis.score = float(target.score)
    else:  # vision_msgs 2.x (Foxy)
        hypothesis.id = target.class_label
        hypothesis.score = float(target.score)
    bbox = BoundingBox2D(size_x=float(x1 - x0), size_y=float(y1 - y0))
    center = bbox.center
    point = center.position if hasattr(center, "position") else center  # 4.x vs 3.x layout
    point.x = (x0 + x1) / 2.0
    point.y = (y0 + y1) / 2.0
    return Detection2D(header=header, results=[hypothesis], bbox=bbox, id=str(target.target_id))


def target_color(target_id: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a target id (golden-ratio hue steps)."""
    hue = (target_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def overlay_image(frame_rgb: np.ndarray, result: FrameResult, alpha: float = 0.5) -> np.ndarray:
    """The frame with each visible target tinted in its colour, boxed and labelled (RGB uint8)."""
    out = frame_rgb.copy()
    for target in result.targets:
        if not target.visible:
            continue
        color = np.array(target_color(target.target_id), np.float32)
        pixels = out[target.mask].astype(np.float32)
        out[target.mask] = (pixels * (1.0 - alpha) + color * alpha).astype(np.uint8)
    for target in result.targets:
        if not target.visible:
            continue
        x0, y0, x1, y1 = target.box
        color = target_color(target.target_id)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), color, 2)
        text = f"{target.target_id} {target.class_label}".strip()
        cv2.putText(out, text, (x0 + 2, max(y0 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1)
    return out
