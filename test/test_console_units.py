"""The console's ROS-free parts: upload typing, masks from drawings, frame/mask pairing."""

from __future__ import annotations

import asyncio
import base64
import time

import cv2
import numpy as np
import pytest

from vos_ros.console.live_view import (
    CameraFrame,
    FramePairer,
    InstancesView,
    LatestView,
    TargetView,
    draw_targets,
)
from vos_ros.console.selections import (
    Point,
    SelectionError,
    box_mask,
    decode_mask_png,
    label_image,
    points_mask,
)
from vos_ros.console.uploads import UploadError, sniff_kind, store_upload


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured background with a red disc (the target)."""
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 120, (120, 160, 3), dtype=np.uint8)
    truth = np.zeros((120, 160), np.uint8)
    cv2.circle(truth, (70, 60), 22, 1, -1)
    frame[truth > 0] = (220, 30, 30)
    return frame, truth > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_upload_type_from_content_only():
    assert sniff_kind(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00") == "mp4"
    assert sniff_kind(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(7)) == "webm"
    assert sniff_kind(b"\x89MCAP0\r\n" + bytes(8)) == "mcap"
    assert sniff_kind(b"SQLite format 3\x00") == "db3"
    for head in (b"", b"GIF89a" + bytes(10), b"PK\x03\x04" + bytes(12), b"<html>" + bytes(10)):
        with pytest.raises(UploadError) as refused:
            sniff_kind(head)
        assert refused.value.status == 415


def test_store_upload_limit_leaves_nothing(tmp_path):
    async def chunks(parts):
        for part in parts:
            yield part

    stored = asyncio.run(store_upload(chunks([b"\x1a\x45\xdf\xa3", bytes(40)]), tmp_path, 100))
    assert stored.name == "upload.webm" and stored.stat().st_size == 44
    stored.unlink()
    with pytest.raises(UploadError) as refused:
        asyncio.run(
            store_upload(chunks([b"\x1a\x45\xdf\xa3" + bytes(60), bytes(60)]), tmp_path, 100)
        )
    assert refused.value.status == 413
    assert list(tmp_path.iterdir()) == []


def test_masks_from_box_points_and_painting():
    frame, truth = _scene()
    assert _iou(box_mask(frame, (44, 34, 97, 87)), truth) > 0.8
    points = [Point(70, 60), Point(60, 55), Point(20, 20, positive=False)]
    assert _iou(points_mask(frame, points), truth) > 0.8
    with pytest.raises(SelectionError, match="positive point"):
        points_mask(frame, [Point(5, 5, positive=False)])
    with pytest.raises(SelectionError, match="outside"):
        points_mask(frame, [Point(500, 5)])

    painted = np.zeros((120, 160, 4), np.uint8)
    painted[truth] = (255, 255, 255, 255)
    png = base64.b64encode(cv2.imencode(".png", painted)[1].tobytes()).decode()
    assert np.array_equal(decode_mask_png("data:image/png;base64," + png, (120, 160)), truth)
    with pytest.raises(SelectionError, match="but the frame is"):
        decode_mask_png(png, (240, 320))
    with pytest.raises(SelectionError, match="not a PNG"):
        decode_mask_png(base64.b64encode(b"GIF89a...").decode(), (120, 160))
    with pytest.raises(SelectionError, match="not base64"):
        decode_mask_png("@@@", (120, 160))

    second = np.zeros_like(truth)
    second[:10, :10] = True
    labels = label_image([truth, second], truth.shape)
    assert set(np.unique(labels)) == {0, 1, 2}
    with pytest.raises(SelectionError, match="covered"):
        label_image([second, truth | second], truth.shape)


def test_draw_targets_tints_boxes_and_labels_inside_the_box_only():
    frame = np.full((100, 120, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:25] = True
    target = TargetView(3, "cup", 0.9, True, (10, 20, 30, 20), mask)
    hidden = TargetView(4, "dog", 0.0, False, (0, 0, 0, 0), None)
    drawn = draw_targets(frame, [target, hidden], {3: "my cup"})
    assert not np.array_equal(drawn[30, 25], frame[30, 25])  # tinted mask pixel
    assert np.array_equal(drawn[95, 115], frame[95, 115])  # untouched elsewhere
    assert np.array_equal(frame, np.full((100, 120, 3), 100, np.uint8))  # input kept


def test_pairer_draws_each_frame_with_its_own_masks_newest_only():
    view = LatestView()
    pairer = FramePairer(view, {}, pair_wait_max_s=0.2)
    pairer.start()
    try:
        image = np.zeros((40, 60, 3), np.uint8)

        def frame(stamp: int) -> CameraFrame:
            return CameraFrame(stamp, lambda: image, time.time())

        def masks(stamp: int) -> InstancesView:
            m = np.ones((4, 4), bool)
            return InstancesView(stamp, [TargetView(1, "a", 1.0, True, (1, 1, 4, 4), m)])

        # no masks ever seen: drawn at once, without waiting
        pairer.put_frame(frame(1))
        _wait(lambda: view.frame is not None and view.frame.stamp_ns == 1)
        assert not view.frame.header["masks_exact"]
        # masks that come a little after their frame: the frame waits for them
        pairer.put_instances(masks(1))  # teaches the pairer how late masks come
        pairer.put_frame(frame(2))
        time.sleep(0.01)
        pairer.put_instances(masks(2))
        _wait(lambda: view.frame.stamp_ns == 2)
        assert view.frame.header["masks_exact"]
        # a frame whose masks never come: drawn after the wait with the newest older masks
        pairer.put_frame(frame(3))
        _wait(lambda: view.frame.stamp_ns == 3, timeout=1.0)
        header = view.frame.header
        assert not header["masks_exact"] and header["masks_stamp_ms"] == 2 / 1e6
        # the console keeps recent frames for target selection, and a pinned one longer
        assert pairer.pin(3) and pairer.frame_at(3) is not None and not pairer.pin(99)
    finally:
        pairer.stop()


def test_latest_view_hands_out_only_the_newest():
    from vos_ros.console.live_view import ViewFrame

    view = LatestView()

    async def scenario():
        assert await view.newer_than(0, timeout=0.05) is None
        for version in (1, 2, 3):
            view.publish(ViewFrame(version, version, b"jpg", {}))
        newest = await view.newer_than(0, timeout=0.05)
        assert newest.version == 3  # 1 and 2 were never queued
        assert await view.newer_than(3, timeout=0.05) is None

    asyncio.run(scenario())


def _wait(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_one_click_masks_on_the_synthetic_scene():
    """One positive click near the middle of each object of the synthetic scene: the mean IoU
    of the console's GrabCut masks (README, "Web console", quotes it)."""
    from vos_ros.synthetic import SceneConfig, generate

    scene = generate(SceneConfig(width=320, height=240, frames=60, objects=4, seed=0, fps=15))
    ious = []
    for frame in list(scene.frames())[::15]:
        for object_id in (int(v) for v in np.unique(frame.label) if v > 0):
            truth = frame.label == object_id
            if truth.sum() < 100:
                continue
            ys, xs = np.nonzero(truth)
            inside = np.argmin((xs - np.median(xs)) ** 2 + (ys - np.median(ys)) ** 2)
            mask = points_mask(frame.image, [Point(float(xs[inside]), float(ys[inside]))])
            ious.append(_iou(mask, truth))
    assert len(ious) == 13
    assert 0.75 < np.mean(ious) < 0.85  # 0.81 when measured
