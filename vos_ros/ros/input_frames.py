"""Decode the node's inputs: camera images to RGB frames, label images to uint16 ids.

Every function raises ``ValueError`` with a message that names what is wrong (encoding, size,
data length), which the node turns into a throttled log line or a service error.
"""

from __future__ import annotations

import cv2
import numpy as np

from vos_ros.ros.image_msgs import msg_to_array

# Encodings a camera frame may arrive in, and how to turn the array into RGB.
_TO_RGB = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}
FRAME_ENCODINGS = tuple(_TO_RGB)
LABEL_ENCODINGS = ("mono8", "mono16", "8UC1", "16UC1")
# The engine cannot start a stream on frames with a side below 8 pixels; refusing them here keeps
# a service request on such a frame from failing half-way (after replace=true removed targets).
MIN_FRAME_SIDE = 8


def check_frame_size(width: int, height: int, max_pixels: int | None = None) -> None:
    """Refuse frames that are empty, thinner than :data:`MIN_FRAME_SIDE` or above ``max_pixels``.

    :raises ValueError: naming the size and the limit.
    """
    if width == 0 or height == 0:
        raise ValueError(f"empty image ({width}x{height})")
    if min(width, height) < MIN_FRAME_SIDE:
        raise ValueError(
            f"image is {width}x{height}; both sides must be at least {MIN_FRAME_SIDE} pixels"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"image is {width}x{height} ({width * height} pixels), above "
            f"input.max_pixels = {max_pixels}"
        )


def frame_from_image(msg, max_pixels: int | None = None) -> np.ndarray:
    """``sensor_msgs/Image`` -> RGB ``uint8`` ``(H, W, 3)`` (C-contiguous).

    The size is checked (:func:`check_frame_size`) before any pixel is touched.

    :raises ValueError: for an encoding other than :data:`FRAME_ENCODINGS`, an empty, too small or
        too large image, or data that does not match height, step and encoding.
    """
    if msg.encoding not in _TO_RGB:
        raise ValueError(
            f"unsupported image encoding {msg.encoding!r}; expected one of "
            f"{', '.join(FRAME_ENCODINGS)}"
        )
    check_frame_size(int(msg.width), int(msg.height), max_pixels)
    array = msg_to_array(msg)
    code = _TO_RGB[msg.encoding]
    if code is None:
        return np.ascontiguousarray(array)
    return cv2.cvtColor(array, code)


def frame_from_compressed(msg, max_pixels: int | None = None) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) -> RGB ``uint8`` ``(H, W, 3)``.

    The size is only known after decoding; OpenCV's own limit (``CV_IO_MAX_IMAGE_PIXELS``, 2^30 by
    default) bounds the work before :func:`check_frame_size` runs.

    :raises ValueError: when the data is empty, OpenCV cannot decode it, or the decoded image is
        too small or too large.
    """
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if data.size == 0:
        raise ValueError("empty compressed image")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(
            f"cannot decode compressed image (format {msg.format!r}, {data.size} bytes)"
        )
    check_frame_size(bgr.shape[1], bgr.shape[0], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def labels_from_image(msg) -> np.ndarray:
    """Label image (mono8 / mono16 / 8UC1 / 16UC1) -> ``uint16`` ``(H, W)``; 0 = background.

    :raises ValueError: for another encoding, an empty image or inconsistent data.
    """
    if msg.encoding not in LABEL_ENCODINGS:
        raise ValueError(
            f"label image encoding must be one of {', '.join(LABEL_ENCODINGS)}, "
            f"got {msg.encoding!r}"
        )
    if msg.height == 0 or msg.width == 0:
        raise ValueError(f"empty label image ({msg.width}x{msg.height})")
    array = msg_to_array(msg)
    if array.ndim != 2:
        raise ValueError(f"label image must have one channel, got shape {array.shape}")
    return array.astype(np.uint16)
