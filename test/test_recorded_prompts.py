"""Bags that recorded what the node was given: the evaluator replays those prompts.

A synthetic bag is rewritten with an initial-mask topic (the ground truth of each object on the
frame where it first appears, as a user's ``~/set_initial_mask`` call would hold it) or with a
``~/prompts`` topic (detector boxes around those objects). Replaying the masks must give exactly
the ground-truth protocol's scores; replaying boxes runs GrabCut as the node does and still
follows every object; live mode replays them to the node too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vos_ros.bag_io import (
    CLASS_TOPIC,
    GT_TOPIC,
    IMAGE_TOPIC,
    INITIAL_MASK_TOPIC,
    PROMPT_TOPIC,
    bag_topics,
    image_array,
    image_message,
    project_typestore,
    read_messages,
    stamp_ns,
    write_messages,
)
from vos_ros.cli import main
from vos_ros.evaluation.clips import ClipFrame, RecordedPrompt
from vos_ros.evaluation.confusion import DecodedLabels
from vos_ros.evaluation.prompt_plan import PromptPlan, match_targets

FRAMES, WIDTH, HEIGHT = 24, 320, 240


@pytest.fixture(scope="module")
def synthetic_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("recorded") / "synthetic"
    args = ["make-bag", "--synthetic", "--frames", str(FRAMES), "--fps", "15"]
    args += ["--width", str(WIDTH), "--height", str(HEIGHT), "--seed", "0", "--out", str(bag)]
    assert main(args) == 0
    return bag


def _first_appearances(bag: Path) -> dict[int, tuple[int, np.ndarray]]:
    """stamp -> label image of the objects first seen on that frame (ids = ground-truth ids)."""
    seen: set[int] = set()
    out: dict[int, np.ndarray] = {}
    for _topic, _time, msg in read_messages(bag, [GT_TOPIC]):
        labels = np.asarray(image_array(msg), np.uint16)
        new = [int(i) for i in np.unique(labels) if i > 0 and int(i) not in seen]
        if new:
            out[stamp_ns(msg)] = np.where(np.isin(labels, new), labels, 0).astype(np.uint16)
            seen.update(new)
    return out


def _with_prompts(bag: Path, out: Path, kind: str, stamp_shift: int = 0) -> Path:
    """A copy of ``bag`` with the first appearances recorded as initial masks or as boxes."""
    store = project_typestore()
    topics = bag_topics(bag)
    prompts = _first_appearances(bag)
    (_, _, class_msg), *_ = read_messages(bag, [CLASS_TOPIC])
    classes = {int(k): v for k, v in json.loads(class_msg.data).items()}
    extra_topic = INITIAL_MASK_TOPIC if kind == "masks" else PROMPT_TOPIC
    extra_type = "sensor_msgs/msg/Image" if kind == "masks" else "vos_ros/msg/DetectionArray"
    topics = {**topics, extra_topic: extra_type}
    messages = []
    for topic, time_ns, msg in read_messages(bag):
        messages.append((topic, time_ns, msg))
        if topic != IMAGE_TOPIC or stamp_ns(msg) not in prompts:
            continue
        stamp = stamp_ns(msg) + stamp_shift
        labels = prompts[stamp_ns(msg)]
        if kind == "masks":
            prompt = image_message(store, labels, stamp, "mono16", "camera")
        else:
            header = image_message(store, labels, stamp, "mono16", "camera").header
            detections = []
            for target in (int(i) for i in np.unique(labels) if i > 0):
                ys, xs = np.nonzero(labels == target)
                x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                detections.append(
                    store.types["vos_ros/msg/Detection"](
                        id=0,
                        class_label=classes[target],  # a detector names what it found
                        score=1.0,
                        center_x=(x0 + x1) / 2.0,
                        center_y=(y0 + y1) / 2.0,
                        size_x=float(x1 - x0),
                        size_y=float(y1 - y0),
                    )
                )
            prompt = store.types["vos_ros/msg/DetectionArray"](header=header, detections=detections)
        messages.append((extra_topic, time_ns + 1, prompt))
    write_messages(out, topics, messages)
    return out


def _evaluate(bag: Path, json_path: Path, *extra: str) -> dict:
    code = main(["evaluate", "--bag", str(bag), "--json", str(json_path), "--no-progress", *extra])
    report = json.loads(json_path.read_text())
    report["exit_code"] = code
    return report


@pytest.fixture(scope="module")
def ground_truth_report(synthetic_bag, tmp_path_factory) -> dict:
    return _evaluate(synthetic_bag, tmp_path_factory.mktemp("gt") / "gt.json")


def test_replayed_initial_masks_equal_the_ground_truth_protocol(
    synthetic_bag, ground_truth_report, tmp_path
):
    bag = _with_prompts(synthetic_bag, tmp_path / "masks", "masks")
    report = _evaluate(bag, tmp_path / "masks.json")
    assert report["exit_code"] == 0
    seq = report["sequences"]["masks"]
    assert seq["prompts"] == "recorded" and seq["complete"]
    assert ground_truth_report["sequences"]["synthetic"]["prompts"] == "ground truth"
    # the recorded masks are the ground truth, so the scores are the ground-truth protocol's
    assert report["per_class_iou"] == pytest.approx(ground_truth_report["per_class_iou"], abs=1e-9)
    gt_global = ground_truth_report["davis"]["global"]
    assert report["davis"]["global"] == pytest.approx(gt_global, abs=1e-9)


def test_replayed_detector_boxes_follow_every_object(synthetic_bag, ground_truth_report, tmp_path):
    bag = _with_prompts(synthetic_bag, tmp_path / "boxes", "boxes")
    report = _evaluate(bag, tmp_path / "boxes.json")
    assert report["exit_code"] == 0
    assert report["sequences"]["boxes"]["prompts"] == "recorded"
    # every object was matched to the target made from its box and is followed well
    instances = report["per_instance_iou"]
    assert len(instances) == len(ground_truth_report["per_instance_iou"])
    assert all(entry["iou"] > 0.5 for entry in instances.values()), instances
    # GrabCut masks are not the ground truth: not the same numbers, but close
    assert report["per_class_iou"] != ground_truth_report["per_class_iou"]
    for name, iou in ground_truth_report["per_class_iou"].items():
        assert report["per_class_iou"][name] > iou - 0.25, name


def test_ground_truth_prompts_can_be_forced(synthetic_bag, ground_truth_report, tmp_path):
    bag = _with_prompts(synthetic_bag, tmp_path / "boxes", "boxes")
    report = _evaluate(bag, tmp_path / "forced.json", "--ground-truth-prompts")
    assert report["sequences"]["boxes"]["prompts"] == "ground truth"
    assert report["per_class_iou"] == pytest.approx(ground_truth_report["per_class_iou"], abs=1e-9)


def test_prompt_for_a_stamp_without_a_frame_is_named(synthetic_bag, tmp_path):
    bag = _with_prompts(synthetic_bag, tmp_path / "shifted", "masks", stamp_shift=7)
    report = _evaluate(bag, tmp_path / "shifted.json")
    assert report["exit_code"] != 0
    assert report["meta"]["partial"] is True
    assert "stamps without a camera frame" in report["sequences"]["shifted"]["error"]


def test_matching_is_one_to_one_by_overlap():
    instances = np.zeros((10, 10), np.int64)
    instances[0:5, 0:5] = 7
    instances[5:10, 5:10] = 9
    gt = DecodedLabels(instances, {7: "a", 9: "b"}, np.zeros((10, 10), bool))
    predicted = np.zeros((10, 10), np.uint16)
    predicted[0:5, 0:4] = 1  # mostly object 7
    predicted[5:10, 6:10] = 2  # mostly object 9
    predicted[0:2, 8:10] = 3  # on nothing: a false positive, unmatched
    assert match_targets(predicted, gt, [1, 2, 3], set()) == {1: 7, 2: 9}
    assert match_targets(predicted, gt, [1, 2], {7}) == {2: 9}  # 7 already followed


def test_recorded_ids_are_refused_when_already_tracked():
    plan = PromptPlan(recorded=True)
    image = np.zeros((8, 8, 3), np.uint8)
    labels = np.zeros((8, 8), np.uint16)
    labels[2:5, 2:5] = 1
    prompt = RecordedPrompt(label_image=labels, classes={1: "a"})
    frame = ClipFrame(0, "0", image, None, 1, recorded=prompt)
    made = plan.prompt(frame, lambda **kw: kw)
    assert made["classes"] == {1: "a"} and made["replace"] is False
    with pytest.raises(ValueError, match="gives ids \\[1\\] again"):
        plan.prompt(ClipFrame(1, "1", image, None, 2, recorded=prompt), lambda **kw: kw)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_live_mode_replays_recorded_prompts_like_offline(synthetic_bag, tmp_path):
    from ros_harness import isolated_env, require_ros

    require_ros()
    bag = _with_prompts(synthetic_bag, tmp_path / "masks", "masks")
    offline = _evaluate(bag, tmp_path / "offline.json")
    live_json = tmp_path / "live.json"
    command = [sys.executable, "-m", "vos_ros.cli", "evaluate", "--bag", str(bag), "--live"]
    command += ["--rate", "0.4", "--json", str(live_json), "--no-progress"]
    run = subprocess.run(
        command,
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    live = json.loads(live_json.read_text())
    assert live["sequences"]["masks"]["prompts"] == "recorded"
    assert live["timing"]["dropped_frames"] == 0
    for name, iou in offline["per_class_iou"].items():
        assert abs(live["per_class_iou"][name] - iou) <= 0.01, name
