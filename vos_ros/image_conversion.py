"""Exact conversion between ``sensor_msgs/Image`` fields and numpy arrays (no ROS, numpy only).

The functions take and return the message *fields* (encoding, height, width, step, is_bigendian,
data) rather than a message, so they work with rclpy messages, rosbags messages and plain bytes;
:mod:`vos_ros.ros.image_msgs` wraps them for rclpy. Where a ROS distro provides ``cv_bridge`` the
results are the same arrays; PyPI's ``cv-bridge`` is ROS 1 code that fails with numpy 2, hence
this module.

Array shapes: ``(H, W)`` for one-channel encodings, ``(H, W, C)`` otherwise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


class ImageConversionError(ValueError):
    """An image message or array that cannot be converted (bad encoding, size, step or data)."""


@dataclass(frozen=True)
class Encoding:
    """Pixel layout of one ``sensor_msgs/Image`` encoding."""

    dtype: np.dtype  # one channel, native byte order
    channels: int
    order: str | None  # channel order for colour conversion ("RGB", "BGRA", "L", ...) or None

    @property
    def pixel_bytes(self) -> int:
        return self.dtype.itemsize * self.channels


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(np.dtype(np.uint8), 3, "RGB"),
    "bgr8": Encoding(np.dtype(np.uint8), 3, "BGR"),
    "rgba8": Encoding(np.dtype(np.uint8), 4, "RGBA"),
    "bgra8": Encoding(np.dtype(np.uint8), 4, "BGRA"),
    "mono8": Encoding(np.dtype(np.uint8), 1, "L"),
    "mono16": Encoding(np.dtype(np.uint16), 1, "L16"),
    # OpenCV-style encodings carry no colour meaning: to_rgb refuses the multi-channel ones.
    "8UC1": Encoding(np.dtype(np.uint8), 1, "L"),
    "8UC3": Encoding(np.dtype(np.uint8), 3, None),
    "8UC4": Encoding(np.dtype(np.uint8), 4, None),
    "16UC1": Encoding(np.dtype(np.uint16), 1, "L16"),
    "32SC1": Encoding(np.dtype(np.int32), 1, None),
    "32FC1": Encoding(np.dtype(np.float32), 1, None),
}

_HOST_IS_BIGENDIAN = sys.byteorder == "big"


def encoding_info(encoding: str) -> Encoding:
    """The layout of ``encoding``; raises ImageConversionError for unsupported encodings."""
    try:
        return ENCODINGS[encoding]
    except KeyError:
        supported = ", ".join(ENCODINGS)
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {supported}"
        ) from None


def image_to_array(
    encoding: str, height: int, width: int, step: int, is_bigendian: int | bool, data: Any
) -> np.ndarray:
    """The pixels of an image message as an array of shape (H, W) or (H, W, C).

    ``data`` is anything with the buffer protocol (bytes, bytearray, ``array.array('B')`` as in
    rclpy messages, memoryview) or a sequence of ints. Row padding (``step`` larger than a row)
    is skipped. The result is a view of ``data`` without copying whenever the byte order is the
    host's; it is then read-only if ``data`` is (e.g. bytes): copy it before writing. Multi-byte
    pixels in the other byte order are converted to the host's order (a copy).
    """
    info = encoding_info(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"{encoding} image has zero size: {width}x{height}")
    row_bytes = width * info.pixel_bytes
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than one row of {width} {encoding} pixels ({row_bytes} bytes)"
        )
    try:
        buffer = memoryview(data).cast("B")
    except TypeError:  # a list or tuple of ints
        buffer = memoryview(bytes(data))
    expected = step * height
    if buffer.nbytes != expected:
        raise ImageConversionError(
            f"{encoding} image {width}x{height} with step {step} needs {expected} data bytes "
            f"(step * height), got {buffer.nbytes}"
        )
    swap = info.dtype.itemsize > 1 and bool(is_bigendian) != _HOST_IS_BIGENDIAN
    dtype = info.dtype.newbyteorder("S") if swap else info.dtype
    # A strided view: rows start every `step` bytes, padding bytes are never read.
    pixels = np.ndarray(
        shape=(height, width, info.channels),
        dtype=dtype,
        buffer=buffer,
        strides=(step, info.pixel_bytes, info.dtype.itemsize),
    )
    if swap:
        pixels = pixels.astype(info.dtype)  # values are kept, bytes reordered into a new array
    return pixels[:, :, 0] if info.channels == 1 else pixels


def _check_array(array: np.ndarray, info: Encoding, encoding: str) -> np.ndarray:
    """``array`` as (H, W, C) after checking dtype and shape against the encoding."""
    if not isinstance(array, np.ndarray):
        raise ImageConversionError(f"expected a numpy array, got {type(array).__name__}")
    if array.dtype.kind != info.dtype.kind or array.dtype.itemsize != info.dtype.itemsize:
        raise ImageConversionError(
            f"{encoding} needs dtype {info.dtype.name}, got {array.dtype.name}"
        )
    if array.ndim == 2 and info.channels == 1:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] != info.channels:
        want = "(H, W)" if info.channels == 1 else f"(H, W, {info.channels})"
        raise ImageConversionError(f"{encoding} needs shape {want}, got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageConversionError(f"{encoding} image has zero size: shape {array.shape}")
    return array


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """A C-contiguous RGB ``uint8`` array of shape (H, W, 3) from an image array.

    Accepts rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8 / 8UC1 (grey copied to all three
    channels) and mono16 / 16UC1 (the high byte, i.e. ``value >> 8``). The result is ``array``
    itself when it already is C-contiguous RGB.
    """
    info = encoding_info(encoding)
    if info.order is None:
        raise ImageConversionError(
            f"{encoding} has no colour meaning; convert it to rgb8/bgr8/mono8 first"
        )
    pixels = _check_array(array, info, encoding)
    if info.order == "L16":
        pixels = (pixels >> 8).astype(np.uint8)
    if info.order in ("L", "L16"):
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if info.order in ("BGR", "BGRA"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """The ``sensor_msgs/Image`` fields (height, width, encoding, is_bigendian, step, data).

    ``array`` has shape (H, W) or (H, W, 1) for one-channel encodings and (H, W, C) otherwise,
    with the encoding's dtype (any byte order). Rows are written without padding
    (``step = W * C * itemsize``), in the host's byte order. ``data`` is ``bytes``: assigning bytes
    to an rclpy ``Image.data`` takes under 1 ms for a 640x480 RGB frame, assigning a numpy array
    converts it element by element (about 70 ms).
    """
    info = encoding_info(encoding)
    pixels = _check_array(array, info, encoding)
    if pixels.dtype.byteorder not in ("=", "|"):
        pixels = pixels.astype(info.dtype)  # same values in the host's byte order
    height, width = pixels.shape[:2]
    return {
        "height": int(height),
        "width": int(width),
        "encoding": encoding,
        "is_bigendian": int(_HOST_IS_BIGENDIAN and info.dtype.itemsize > 1),
        "step": int(width * info.pixel_bytes),
        "data": pixels.tobytes(order="C"),
    }
