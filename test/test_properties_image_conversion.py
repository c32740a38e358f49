"""Property-based tests of image conversion: any message fields either convert exactly or raise
the documented error (``ImageConversionError`` / ``ValueError``), never anything else.

Profiles: see test/hypothesis_profiles.py (``HYPOTHESIS_PROFILE=long`` for the long run).
"""

from __future__ import annotations

import sys

import cv2
import hypothesis_profiles  # noqa: F401 - loads the settings profile
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos_ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    array_to_image_fields,
    image_to_array,
    to_rgb,
)

HOST_BIG = sys.byteorder == "big"
KNOWN = sorted(ENCODINGS)
# Unknown names next to the known ones: typos, other ROS encodings, empty, non-ASCII.
ODD_ENCODINGS = ["", "RGB8", "yuv422", "bayer_rggb8", "16SC1", "64FC1", "rgb8 ", "rgb16", "ü8"]


@st.composite
def message_fields(draw):
    """Image fields around the valid region: sizes, steps and data lengths a little off or right."""
    encoding = draw(st.sampled_from(KNOWN + ODD_ENCODINGS))
    pixel = ENCODINGS[encoding].pixel_bytes if encoding in ENCODINGS else draw(st.integers(1, 8))
    height = draw(st.integers(0, 12))
    width = draw(st.integers(0, 12))
    row = width * pixel
    step = draw(st.one_of(st.just(row), st.integers(0, row + 9)))
    length = draw(st.one_of(st.just(step * height), st.integers(0, step * height + 20)))
    data = draw(st.binary(min_size=length, max_size=length))
    data_type = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "list"]))
    if data_type == "bytearray":
        data = bytearray(data)
    elif data_type == "memoryview":
        data = memoryview(data)
    elif data_type == "list":
        data = list(data)
    big = draw(st.sampled_from([0, 1, True, False, 2]))
    return encoding, height, width, step, big, data


@given(message_fields())
def test_any_message_fields_convert_or_raise_the_documented_error(fields):
    encoding, height, width, step, big, data = fields
    valid = (
        encoding in ENCODINGS
        and height > 0
        and width > 0
        and step >= width * ENCODINGS[encoding].pixel_bytes
        and len(bytes(data)) == step * height
    )
    try:
        array = image_to_array(encoding, height, width, step, big, data)
    except ImageConversionError as exc:
        assert not valid, f"valid fields refused: {exc}"
        assert str(exc)  # a message for the log line / service error
        return
    assert valid, "invalid fields accepted"
    info = ENCODINGS[encoding]
    expected_shape = (height, width) if info.channels == 1 else (height, width, info.channels)
    assert array.shape == expected_shape
    assert array.dtype == info.dtype  # always the host's byte order
    # Pixel (0, 0) read by hand from the first bytes.
    first = np.frombuffer(
        bytes(data)[: info.pixel_bytes], info.dtype.newbyteorder(">" if big else "<")
    )
    np.testing.assert_array_equal(array.reshape(height, width, -1)[0, 0], first)


@st.composite
def arrays_for_encoding(draw):
    encoding = draw(st.sampled_from(KNOWN))
    info = ENCODINGS[encoding]
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    count = height * width * info.channels
    raw = draw(
        st.binary(min_size=count * info.dtype.itemsize, max_size=count * info.dtype.itemsize)
    )
    order = draw(st.sampled_from(["=", ">", "<"]))
    values = np.frombuffer(raw, info.dtype).copy()
    if info.dtype.kind == "f":
        values = np.nan_to_num(values)
    array = values.reshape(height, width, info.channels).astype(info.dtype.newbyteorder(order))
    if info.channels == 1 and draw(st.booleans()):
        array = array[:, :, 0]
    if draw(st.booleans()):  # a non-contiguous view (every other column of a wider array)
        wide = np.repeat(array, 2, axis=1)
        array = wide[:, ::2]
    return encoding, array


@given(arrays_for_encoding())
def test_arrays_of_any_byte_order_and_layout_round_trip(case):
    encoding, array = case
    fields = array_to_image_fields(array, encoding)
    assert fields["step"] * fields["height"] == len(fields["data"])
    assert fields["is_bigendian"] == int(HOST_BIG and ENCODINGS[encoding].dtype.itemsize > 1)
    back = image_to_array(**fields)
    expected = array.reshape(back.shape) if array.ndim != back.ndim else array
    np.testing.assert_array_equal(back, expected)


@given(
    st.sampled_from(KNOWN + ODD_ENCODINGS),
    st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.int8, bool]),
    st.lists(st.integers(0, 6), min_size=1, max_size=4),
)
def test_to_rgb_gives_rgb_uint8_or_the_documented_error(encoding, dtype, shape):
    array = np.zeros(shape, dtype)
    try:
        rgb = to_rgb(array, encoding)
    except ImageConversionError as exc:
        assert str(exc)
        return
    height, width = shape[:2]
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous and height > 0 and width > 0


# -- the node's decoders (need the sensor_msgs wheel) -------------------------------------------


def _ros_input_frames():
    pytest.importorskip("sensor_msgs")
    from vos_ros.ros import input_frames

    return input_frames


@given(message_fields(), st.integers(64, 400))
def test_frame_decoder_gives_rgb_frames_or_value_errors(fields, max_pixels):
    input_frames = _ros_input_frames()
    from sensor_msgs.msg import Image

    encoding, height, width, step, big, data = fields
    msg = Image(
        encoding=encoding, height=height, width=width, step=step, is_bigendian=int(bool(big))
    )
    msg.data = bytes(data)
    try:
        frame = input_frames.frame_from_image(msg, max_pixels=max_pixels)
    except ValueError as exc:
        assert str(exc)
        return
    assert encoding in input_frames.FRAME_ENCODINGS
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    assert min(height, width) >= input_frames.MIN_FRAME_SIDE and height * width <= max_pixels
    if encoding == "rgb8":
        expected = image_to_array(encoding, height, width, step, big, bytes(data))
        np.testing.assert_array_equal(frame, expected)


@given(message_fields())
def test_label_decoder_gives_uint16_ids_or_value_errors(fields):
    input_frames = _ros_input_frames()
    from sensor_msgs.msg import Image

    encoding, height, width, step, big, data = fields
    msg = Image(
        encoding=encoding, height=height, width=width, step=step, is_bigendian=int(bool(big))
    )
    msg.data = bytes(data)
    try:
        labels = input_frames.labels_from_image(msg)
    except ValueError as exc:
        assert str(exc)
        return
    assert encoding in input_frames.LABEL_ENCODINGS
    assert labels.shape == (height, width) and labels.dtype == np.uint16


@st.composite
def compressed_payloads(draw):
    """Real PNG/JPEG files, damaged ones (cut, flipped bytes) and random bytes."""
    kind = draw(st.sampled_from(["png", "jpeg", "cut", "flipped", "random", "empty"]))
    if kind in ("random", "empty"):
        size = 0 if kind == "empty" else draw(st.integers(1, 300))
        return kind, draw(st.binary(min_size=size, max_size=size)), None
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png" if kind != "jpeg" else ".jpg", image)
    assert ok
    data = encoded.tobytes()
    if kind == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flipped":
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]
    return kind, data, (height, width)


@given(compressed_payloads(), st.sampled_from(["png", "jpeg", "", "rgb8; jpeg compressed bgr8"]))
def test_compressed_decoder_decodes_or_raises_value_error(payload, fmt):
    input_frames = _ros_input_frames()
    from sensor_msgs.msg import CompressedImage

    kind, data, size = payload
    msg = CompressedImage(format=fmt)
    msg.data = data
    try:
        frame = input_frames.frame_from_compressed(msg, max_pixels=1_000)
    except ValueError as exc:
        assert str(exc)
        if kind in ("png", "jpeg"):  # intact files fail only for their size
            assert min(size) < input_frames.MIN_FRAME_SIDE or size[0] * size[1] > 1_000
        return
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.shape[0] * frame.shape[1] <= 1_000
    if kind in ("png", "jpeg"):
        assert frame.shape[:2] == size
