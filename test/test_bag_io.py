"""rosbag2 bags (MCAP and sqlite3): round trips, encodings, the project's message types, and
clear errors for malformed bags."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vos_ros.bag_io import (
    BagClip,
    BagError,
    BagFrame,
    bag_topics,
    frame_rgb,
    image_array,
    image_message,
    project_typestore,
    read_messages,
    write_bag,
    write_messages,
)


def _frames(n: int = 6, h: int = 24, w: int = 32) -> list[BagFrame]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        label = np.zeros((h, w), np.uint16)
        label[2 + i : 10 + i, 3:12] = 1
        label[12:20, 15 + i : 25 + i] = 2
        out.append(
            BagFrame(
                rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
                label,
                1_000_000_000 + i * 66_666_667,
            )
        )
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_frames_labels_and_class_map(tmp_path: Path, storage: str):
    frames = _frames()
    assert write_bag(tmp_path / "bag", frames, storage=storage, class_map={1: "cat", 2: "dog"}) == 6
    clip = BagClip(tmp_path / "bag")
    got = list(clip.frames())
    assert len(clip) == len(got) == 6
    for src, frame in zip(frames, got, strict=True):
        assert np.array_equal(frame.image, src.image)
        assert np.array_equal(frame.gt.instances, src.label)
        assert frame.stamp_ns == src.stamp_ns
    assert got[0].gt.instance_classes == {1: "cat", 2: "dog"}


def test_image_encodings_decode_to_rgb_and_labels():
    store = project_typestore()
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgr_msg = image_message(store, rgb[:, :, ::-1], 5, "bgr8", "cam")
    assert np.array_equal(frame_rgb(bgr_msg), rgb)
    mono = image_message(store, rgb[:, :, 0], 5, "mono8", "cam")
    assert frame_rgb(mono).shape == (2, 3, 3)
    pan = np.array([[26001, 65535]], np.int32)
    assert np.array_equal(image_array(image_message(store, pan, 0, "32SC1", "c")), pan)
    m16 = np.array([[1, 300]], np.uint16)
    assert np.array_equal(image_array(image_message(store, m16, 0, "mono16", "c")), m16)


def test_panoptic_ground_truth_with_ignore(tmp_path: Path):
    frames = _frames(3)
    for f in frames:
        pan = np.where(f.label == 1, 26001, np.where(f.label == 2, 24002, 0)).astype(np.int32)
        pan[0, :] = 65535
        f.label = pan
    write_bag(tmp_path / "bag", frames, gt_encoding="32SC1", class_map={26: "car", 24: "person"})
    got = list(BagClip(tmp_path / "bag", gt_encoding="panoptic").frames())
    assert got[0].gt.instance_classes == {26001: "car", 24002: "person"}
    assert got[0].gt.ignore[0].all() and not got[0].gt.ignore[1:].any()


def test_project_message_types_round_trip(tmp_path: Path):
    store = project_typestore()
    if "vos_ros/msg/InstanceMaskArray" not in store.types:
        pytest.skip("msg/InstanceMaskArray.msg is not in this checkout")
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"
    )
    mask = image_message(store, np.full((2, 2), 255, np.uint8), 1_000_000_002, "mono8", "cam")
    roi = types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=3, y_offset=4, height=2, width=2, do_rectify=False
    )
    inst = types["vos_ros/msg/InstanceMask"](
        id=7, class_label="cat", score=0.9, visible=True, box=roi, mask=mask
    )
    arr = types["vos_ros/msg/InstanceMaskArray"](
        header=header, image_height=10, image_width=12, instances=[inst]
    )
    write_messages(
        tmp_path / "out",
        {"/vos/instances": "vos_ros/msg/InstanceMaskArray"},
        [("/vos/instances", 1_000_000_002, arr)],
    )
    ((topic, _, msg),) = list(read_messages(tmp_path / "out"))
    assert topic == "/vos/instances"
    assert msg.instances[0].id == 7 and msg.instances[0].class_label == "cat"
    assert np.array_equal(image_array(msg.instances[0].mask), np.full((2, 2), 255, np.uint8))


def test_missing_topic_is_named_with_what_the_bag_has(tmp_path: Path):
    write_bag(tmp_path / "bag", _frames(2))
    with pytest.raises(BagError, match=r"no ground-truth topic '/gt'.*/camera/image_raw"):
        BagClip(tmp_path / "bag", gt_topic="/gt")


def test_wrong_label_encoding_is_explained(tmp_path: Path):
    frames = _frames(2)
    write_bag(tmp_path / "bag", frames, gt_encoding="32SC1")
    with pytest.raises(BagError, match="instance encoding needs one of"):
        list(BagClip(tmp_path / "bag", gt_encoding="instance").frames())


def test_size_mismatch_between_image_and_ground_truth(tmp_path: Path):
    store = project_typestore()
    from rosbags.rosbag2 import Writer

    with Writer(tmp_path / "bag", version=9) as writer:
        ic = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        gc = writer.add_connection("/camera/ground_truth", "sensor_msgs/msg/Image", typestore=store)
        img = image_message(store, np.zeros((10, 12, 3), np.uint8), 1, "rgb8", "c")
        lab = image_message(store, np.zeros((10, 11), np.uint16), 1, "mono16", "c")
        writer.write(ic, 1, store.serialize_cdr(img, "sensor_msgs/msg/Image"))
        writer.write(gc, 1, store.serialize_cdr(lab, "sensor_msgs/msg/Image"))
    with pytest.raises(BagError, match="image is 12x10 but its ground truth is 11x10"):
        list(BagClip(tmp_path / "bag").frames())


def test_truncated_mcap_yields_the_readable_frames_then_fails(tmp_path: Path):
    frames = _frames(40, 120, 160)  # several 1 MiB chunks
    write_bag(tmp_path / "full", frames)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    (mcap,) = (tmp_path / "cut").glob("*.mcap")
    with open(mcap, "r+b") as f:
        f.truncate(int(os.path.getsize(mcap) * 0.6))
    assert "/camera/image_raw" in bag_topics(tmp_path / "cut")
    got = []
    with pytest.raises(BagError, match="truncated or damaged"):
        for frame in BagClip(tmp_path / "cut").frames():
            got.append(frame)
    assert 0 < len(got) < 40
    assert np.array_equal(got[-1].image, frames[len(got) - 1].image)


def test_not_a_bag(tmp_path: Path):
    (tmp_path / "junk.mcap").write_bytes(b"not an mcap file")
    with pytest.raises(BagError, match="cannot open bag"):
        bag_topics(tmp_path / "junk.mcap")
