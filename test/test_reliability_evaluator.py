"""``vos-ros evaluate --bag`` on damaged bags: a clear message, and a partial report with what
could be scored (the reader-level cases are in test_bag_io.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vos_ros.bag_io import BagFrame, image_message, project_typestore, write_bag
from vos_ros.cli import main

pytest.importorskip("rosbags")


def _frames(n: int, h: int = 48, w: int = 64) -> list[BagFrame]:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        label = np.zeros((h, w), np.uint16)
        label[8 + i % 5 : 24 + i % 5, 10:30] = 1
        frames.append(
            BagFrame(rng.integers(0, 255, (h, w, 3), np.uint8), label, 10**9 + i * 66_666_667)
        )
    return frames


def _evaluate(bag: Path, report: Path, *extra: str) -> int:
    command = ["evaluate", "--bag", str(bag), "--model", "flow", "--json", str(report)]
    return main([*command, "--no-progress", *extra])


@pytest.mark.timeout(300)
def test_truncated_bag_gives_a_partial_report(tmp_path, capsys):
    write_bag(tmp_path / "full", _frames(40, 120, 160))  # several 1 MiB chunks
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    (mcap,) = (tmp_path / "cut").glob("*.mcap")
    with open(mcap, "r+b") as handle:
        handle.truncate(int(os.path.getsize(mcap) * 0.6))
    code = _evaluate(tmp_path / "cut", tmp_path / "r.json")
    assert code == 2
    assert "truncated or damaged" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"]
    (sequence,) = report["sequences"].values()
    assert sequence["complete"] is False
    assert 0 < report["timing"]["frames"] < 40


@pytest.mark.timeout(120)
def test_ground_truth_of_another_size_gives_a_partial_report(tmp_path, capsys):
    from rosbags.rosbag2 import Writer

    store = project_typestore()
    frames = _frames(6)
    with Writer(tmp_path / "bag", version=9) as writer:
        images = writer.add_connection(
            "/camera/image_raw", "sensor_msgs/msg/Image", typestore=store
        )
        truth = writer.add_connection(
            "/camera/ground_truth", "sensor_msgs/msg/Image", typestore=store
        )
        for i, frame in enumerate(frames):
            label = frame.label if i < 4 else frame.label[:, :-1]  # frames 4, 5: one column short
            image = image_message(store, frame.image, frame.stamp_ns, "rgb8", "camera")
            gt = image_message(store, label, frame.stamp_ns, "mono16", "camera")
            writer.write(
                images, frame.stamp_ns, store.serialize_cdr(image, "sensor_msgs/msg/Image")
            )
            writer.write(truth, frame.stamp_ns, store.serialize_cdr(gt, "sensor_msgs/msg/Image"))
    code = _evaluate(tmp_path / "bag", tmp_path / "r.json", "--class-topic", "")
    assert code == 2
    assert "image is 64x48 but its ground truth is 63x48" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"] and report["timing"]["frames"] == 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("topic_flag", "message"),
    [("--image-topic", "/nope"), ("--gt-topic", "no ground-truth topic '/nope'")],
)
def test_missing_topics_are_named_and_nothing_is_written(tmp_path, capsys, topic_flag, message):
    write_bag(tmp_path / "bag", _frames(3))
    assert _evaluate(tmp_path / "bag", tmp_path / "r.json", topic_flag, "/nope") == 2
    err = capsys.readouterr().err
    assert message in err and "/camera/image_raw" in err  # says what the bag has
    assert not (tmp_path / "r.json").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["not a bag", "empty file"])
def test_corrupt_bags_end_with_a_clear_message(tmp_path, capsys, damage):
    bag = tmp_path / "junk.mcap"
    bag.write_bytes(b"this is not an mcap file at all" if damage == "not a bag" else b"")
    assert _evaluate(bag, tmp_path / "r.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "cannot open bag" in err and bag.name in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.timeout(60)
def test_corrupt_bag_metadata_falls_back_to_the_data_and_says_so(tmp_path, capsys):
    bag = tmp_path / "bag"
    write_bag(bag, _frames(3))
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed")
    assert _evaluate(bag, tmp_path / "r.json") == 2
    err = capsys.readouterr().err
    assert "truncated or damaged" in err and "metadata.yaml" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"] and report["timing"]["frames"] == 3
