"""vos_ros.image_conversion against hand-built messages: every encoding, padding, byte order."""

from __future__ import annotations

import array
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos_ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    array_to_image_fields,
    image_to_array,
    to_rgb,
)

# Pixel (row r, column c) of the 2x3 test images, as the message bytes spell it out.
PIXEL_RGB = {
    (r, c): (10 * r + c, 100 + 10 * r + c, 200 + 10 * r + c) for r in (0, 1) for c in (0, 1, 2)
}
HEIGHT, WIDTH = 2, 3


def _rows(pixel_bytes, pad: int) -> bytes:
    """Message data for the 2x3 image: each row followed by `pad` garbage bytes."""
    data = b""
    for r in range(HEIGHT):
        data += b"".join(pixel_bytes(r, c) for c in range(WIDTH)) + b"\xee" * pad
    return data


# encoding -> (bytes of pixel (r, c) in the message, expected array element at (r, c))
CASES = {
    "rgb8": (lambda r, c: bytes(PIXEL_RGB[r, c]), lambda r, c: PIXEL_RGB[r, c]),
    "bgr8": (lambda r, c: bytes(PIXEL_RGB[r, c][::-1]), lambda r, c: PIXEL_RGB[r, c][::-1]),
    "rgba8": (lambda r, c: bytes((*PIXEL_RGB[r, c], 7)), lambda r, c: (*PIXEL_RGB[r, c], 7)),
    "bgra8": (
        lambda r, c: bytes((*PIXEL_RGB[r, c][::-1], 7)),
        lambda r, c: (*PIXEL_RGB[r, c][::-1], 7),
    ),
    "8UC3": (lambda r, c: bytes(PIXEL_RGB[r, c]), lambda r, c: PIXEL_RGB[r, c]),
    "8UC4": (lambda r, c: bytes((*PIXEL_RGB[r, c], 9)), lambda r, c: (*PIXEL_RGB[r, c], 9)),
    "mono8": (lambda r, c: bytes((40 * r + c,)), lambda r, c: 40 * r + c),
    "8UC1": (lambda r, c: bytes((40 * r + c,)), lambda r, c: 40 * r + c),
    "mono16": (
        lambda r, c: struct.pack("<H", 60000 - 1000 * r - c),
        lambda r, c: 60000 - 1000 * r - c,
    ),
    "16UC1": (lambda r, c: struct.pack("<H", 300 * r + c), lambda r, c: 300 * r + c),
    "32SC1": (
        lambda r, c: struct.pack("<i", -70000 * (r + 1) + c),
        lambda r, c: -70000 * (r + 1) + c,
    ),
    "32FC1": (lambda r, c: struct.pack("<f", r + c / 4), lambda r, c: r + c / 4),
}


def _expected(encoding: str) -> np.ndarray:
    info = ENCODINGS[encoding]
    _, value = CASES[encoding]
    out = np.array([[value(r, c) for c in range(WIDTH)] for r in range(HEIGHT)], dtype=info.dtype)
    return out


def test_every_encoding_has_a_case():
    assert set(CASES) == set(ENCODINGS)


@pytest.mark.parametrize("encoding", sorted(CASES))
@pytest.mark.parametrize("pad", [0, 1, 5])
def test_message_bytes_to_array(encoding, pad):
    pixel_bytes, _ = CASES[encoding]
    info = ENCODINGS[encoding]
    data = _rows(pixel_bytes, pad)
    step = WIDTH * info.pixel_bytes + pad
    got = image_to_array(encoding, HEIGHT, WIDTH, step, False, data)
    expected = _expected(encoding)
    assert got.dtype == info.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_array_to_fields_gives_the_message_bytes(encoding):
    pixel_bytes, _ = CASES[encoding]
    info = ENCODINGS[encoding]
    fields = array_to_image_fields(_expected(encoding), encoding)
    assert fields == {
        "height": HEIGHT,
        "width": WIDTH,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": WIDTH * info.pixel_bytes,
        "data": _rows(pixel_bytes, 0),
    }


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_round_trip_from_padded_message(encoding):
    pixel_bytes, _ = CASES[encoding]
    info = ENCODINGS[encoding]
    padded = image_to_array(
        encoding, HEIGHT, WIDTH, WIDTH * info.pixel_bytes + 3, 0, _rows(pixel_bytes, 3)
    )
    fields = array_to_image_fields(padded, encoding)
    assert fields["data"] == _rows(pixel_bytes, 0)
    again = image_to_array(**fields)
    np.testing.assert_array_equal(again, padded)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit(encoding):
    values = [[1, 258, 65535], [4660, 0, 43981]]
    data = b"".join(struct.pack(">H", v) for row in values for v in row)
    got = image_to_array(encoding, 2, 3, 6, True, data)
    assert got.dtype == np.uint16 and got.dtype.isnative
    np.testing.assert_array_equal(got, np.array(values, dtype=np.uint16))


def test_big_endian_with_padding_and_odd_step():
    # step 7: every second row starts on an odd byte address
    values = [[513, 1027, 2055], [3, 65280, 17]]
    data = b"".join(b"".join(struct.pack(">H", v) for v in row) + b"\x99" for row in values)
    got = image_to_array("mono16", 2, 3, 7, 1, data)
    np.testing.assert_array_equal(got, np.array(values, dtype=np.uint16))


def test_big_endian_array_written_in_host_order():
    values = np.array([[1, 258], [65535, 4660]], dtype=">u2")
    fields = array_to_image_fields(values, "mono16")
    assert fields["is_bigendian"] == 0
    assert fields["data"] == b"".join(struct.pack("<H", v) for v in (1, 258, 65535, 4660))


def test_big_endian_flag_ignored_for_8_bit():
    got = image_to_array("rgb8", 1, 1, 3, True, b"\x01\x02\x03")
    np.testing.assert_array_equal(got, [[[1, 2, 3]]])


def test_zero_copy_view_of_rclpy_style_buffer():
    data = array.array("B", range(12))  # rclpy stores uint8[] as array.array('B')
    got = image_to_array("rgb8", 2, 2, 6, 0, data)
    data[0] = 99
    assert got[0, 0, 0] == 99  # a view, not a copy
    np.testing.assert_array_equal(got[1, 1], [9, 10, 11])


def test_accepts_list_of_ints():
    got = image_to_array("mono8", 2, 2, 2, 0, [1, 2, 3, 4])
    np.testing.assert_array_equal(got, [[1, 2], [3, 4]])


def test_to_rgb_from_each_colour_encoding():
    rgb = _expected("rgb8")
    np.testing.assert_array_equal(to_rgb(_expected("rgb8"), "rgb8"), rgb)
    np.testing.assert_array_equal(to_rgb(_expected("bgr8"), "bgr8"), rgb)
    np.testing.assert_array_equal(to_rgb(_expected("rgba8"), "rgba8"), rgb)
    np.testing.assert_array_equal(to_rgb(_expected("bgra8"), "bgra8"), rgb)
    for encoding in ("bgr8", "bgra8", "rgba8"):
        assert to_rgb(_expected(encoding), encoding).flags.c_contiguous


def test_to_rgb_from_grey():
    mono8 = np.array([[0, 7], [128, 255]], dtype=np.uint8)
    expected = np.stack([mono8] * 3, axis=2)
    np.testing.assert_array_equal(to_rgb(mono8, "mono8"), expected)
    np.testing.assert_array_equal(to_rgb(mono8, "8UC1"), expected)
    mono16 = np.array([[0, 7 * 256 + 255], [128 * 256, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(to_rgb(mono16, "mono16"), expected)
    assert to_rgb(mono16, "16UC1").dtype == np.uint8


def test_to_rgb_of_padded_view_is_contiguous():
    pixel_bytes, _ = CASES["bgr8"]
    view = image_to_array("bgr8", HEIGHT, WIDTH, WIDTH * 3 + 2, 0, _rows(pixel_bytes, 2))
    rgb = to_rgb(view, "bgr8")
    assert rgb.flags.c_contiguous and rgb.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(rgb, _expected("rgb8"))


@pytest.mark.parametrize("encoding", ["8UC3", "8UC4", "32SC1", "32FC1"])
def test_to_rgb_refuses_encodings_without_colour(encoding):
    with pytest.raises(ImageConversionError, match="no colour meaning"):
        to_rgb(_expected(encoding), encoding)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("yuv422", 2, 2, 4, 0, b"\0" * 8), "unsupported image encoding 'yuv422'"),
        (("rgb8", 0, 2, 6, 0, b""), "zero size"),
        (("rgb8", 2, 0, 6, 0, b"\0" * 12), "zero size"),
        (("rgb8", 2, 2, 5, 0, b"\0" * 10), "step 5 is smaller than one row"),
        (("mono16", 2, 2, 3, 0, b"\0" * 6), "step 3 is smaller than one row"),
        (("rgb8", 2, 2, 6, 0, b"\0" * 11), "needs 12 data bytes"),
        (("rgb8", 2, 2, 6, 0, b"\0" * 13), "got 13"),
        (("mono8", 2, 2, 3, 0, b"\0" * 4), "needs 6 data bytes"),
    ],
)
def test_bad_messages_raise_clear_errors(args, message):
    with pytest.raises(ImageConversionError, match=message):
        image_to_array(*args)


@pytest.mark.parametrize(
    ("array", "encoding", "message"),
    [
        (np.zeros((2, 2, 3), np.float32), "rgb8", "needs dtype uint8, got float32"),
        (np.zeros((2, 2), np.uint8), "rgb8", r"needs shape \(H, W, 3\)"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", r"needs shape \(H, W\)"),
        (np.zeros((2, 2), np.uint8), "mono16", "needs dtype uint16"),
        (np.zeros((0, 2), np.uint8), "mono8", "zero size"),
        (np.zeros((2, 2), np.uint8), "bayer_rggb8", "unsupported image encoding"),
        ([[1, 2]], "mono8", "expected a numpy array"),
    ],
)
def test_bad_arrays_raise_clear_errors(array, encoding, message):
    with pytest.raises(ImageConversionError, match=message):
        array_to_image_fields(array, encoding)


def test_errors_are_value_errors():
    assert issubclass(ImageConversionError, ValueError)


@st.composite
def _images(draw):
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    info = ENCODINGS[encoding]
    height = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    pad = draw(st.integers(0, 5))
    big_endian = draw(st.booleans())
    n = height * width * info.channels
    raw = draw(st.binary(min_size=n * info.dtype.itemsize, max_size=n * info.dtype.itemsize))
    values = np.frombuffer(raw, dtype=info.dtype).reshape(height, width, info.channels)
    if info.dtype.kind == "f":
        values = np.nan_to_num(values)  # NaN != NaN would fail the comparison, not the code
    return encoding, values, pad, big_endian


@settings(max_examples=200, deadline=None)
@given(_images())
def test_property_message_built_pixel_by_pixel_reads_back(image):
    encoding, values, pad, big_endian = image
    info = ENCODINGS[encoding]
    height, width, channels = values.shape
    order = ">" if big_endian else "<"
    code = {"u1": "B", "u2": "H", "i4": "i", "f4": "f"}[f"{info.dtype.kind}{info.dtype.itemsize}"]
    data = b""
    for row in values:
        data += (
            b"".join(struct.pack(order + code, v.item()) for v in row.reshape(-1)) + b"\x5a" * pad
        )
    step = width * info.pixel_bytes + pad
    got = image_to_array(encoding, height, width, step, big_endian, data)
    expected = values[:, :, 0] if channels == 1 else values
    np.testing.assert_array_equal(got, expected)
    fields = array_to_image_fields(got, encoding)
    np.testing.assert_array_equal(image_to_array(**fields), expected)
