"""FrameBuffer: newest-N frames keyed by stamp, with errors that name the buffered range."""

from __future__ import annotations

import pytest

from vos_ros.frame_buffer import FrameBuffer, FrameNotBufferedError, format_stamp


def test_keeps_the_newest_frames_and_finds_them_by_stamp():
    buffer: FrameBuffer[str] = FrameBuffer(capacity=3)
    for i in range(5):
        buffer.put(1_000_000_000 + i * 100_000_000, f"frame{i}")
    assert len(buffer) == 3
    assert buffer.get(1_300_000_000) == (1_300_000_000, "frame3")
    assert buffer.latest() == (1_400_000_000, "frame4")
    assert buffer.stamp_range() == (1_200_000_000, 1_400_000_000)


def test_missing_stamp_names_the_buffered_range():
    buffer: FrameBuffer[str] = FrameBuffer(capacity=2)
    buffer.put(1_000_000_000, "a")
    buffer.put(1_100_000_000, "b")
    with pytest.raises(FrameNotBufferedError) as info:
        buffer.get(900_000_000)
    text = str(info.value)
    assert "0.900000000" in text and "1.000000000" in text and "1.100000000" in text


def test_empty_buffer_says_no_frame_yet():
    buffer: FrameBuffer[str] = FrameBuffer(capacity=2)
    with pytest.raises(FrameNotBufferedError, match="no frame received yet"):
        buffer.latest()
    with pytest.raises(FrameNotBufferedError, match="no frame received yet"):
        buffer.get(5)
    assert buffer.stamp_range() is None


def test_tolerance_matches_the_nearest_frame():
    buffer: FrameBuffer[str] = FrameBuffer(capacity=4, tolerance_ns=5_000_000)
    buffer.put(1_000_000_000, "a")
    buffer.put(1_033_000_000, "b")
    assert buffer.get(1_031_000_000) == (1_033_000_000, "b")
    with pytest.raises(FrameNotBufferedError):
        buffer.get(1_016_000_000)


def test_repeated_stamp_replaces_and_bad_arguments_fail():
    buffer: FrameBuffer[str] = FrameBuffer(capacity=2)
    buffer.put(7, "old")
    buffer.put(7, "new")
    assert len(buffer) == 1 and buffer.get(7) == (7, "new")
    with pytest.raises(ValueError, match="capacity"):
        FrameBuffer(capacity=0)
    with pytest.raises(ValueError, match="tolerance"):
        FrameBuffer(capacity=1, tolerance_ns=-1)
    assert format_stamp(12_000_000_007) == "12.000000007"
