"""End to end across processes: camera clip in, targets chosen by service, masks out, IoU vs GT.

A player process publishes a synthetic clip with exact ground truth (vos_ros.synthetic: a person
and a car that cross, a ball that leaves the frame and comes back, an animal that appears a
third of the way in). The node runs in its own process, started as the launch file starts it.
The test (a third process) selects the first three targets with ~/set_initial_mask on a buffered
frame, adds the animal with ~/add_objects from its ground-truth box mid-stream, removes the car
with ~/remove_objects, and checks every ~/instances, ~/label_image and ~/detections message: stamps
and frame_id equal to the input's, ids and classes as requested, and mean IoU against ground truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from ros_harness import (
    RosClient,
    isolated_env,
    node_process,
    ns_to_time,
    player_process,
    require_ros,
    stamp_ns,
)

require_ros()

WIDTH, HEIGHT, FRAMES, FPS = 640, 480, 60, 10.0
SEED = 0
NODE = "/vos_node"
MIN_MEAN_IOU = 0.8
ADD_AT_FRAME = 30  # object 4 starts at FRAMES // 3 = 20; add it once it is well inside
REMOVE_AT_FRAME = 45
REMOVED_ID = 2


def _scene():
    from vos_ros.synthetic import SceneConfig, generate

    config = SceneConfig(width=WIDTH, height=HEIGHT, frames=FRAMES, objects=4, seed=SEED, fps=FPS)
    scene = generate(config)
    frames = {f.stamp_ns: f for f in scene.frames()}
    return scene, frames


def _label_array(msg) -> np.ndarray:
    from vos_ros.ros.image_msgs import msg_to_array

    return msg_to_array(msg).astype(np.uint16)


def _expected_ids(stamp: int, events, period_ns: int) -> set[int] | None:
    """Ids the node must report on the frame ``stamp`` (None while a request is in flight).

    ``events``: ``(newest output before the call, newest output at the response, ids after)``.
    """
    expected: set[int] | None = set()
    for called, done, ids_after in events:
        if stamp <= called:
            return expected
        if stamp <= done + period_ns:
            return None
        expected = ids_after
    return expected


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_node_tracks_selected_targets_across_processes(tmp_path):
    from sensor_msgs.msg import Image, RegionOfInterest

    from vos_ros.msg import DetectionArray, InstanceMaskArray
    from vos_ros.ros.image_msgs import array_to_msg
    from vos_ros.ros.result_msgs import detections_type
    from vos_ros.srv import AddObjects, RemoveObjects, SetInitialMask

    scene, gt_frames = _scene()
    first_stamp = min(gt_frames)
    env = isolated_env()
    domain = int(env["ROS_DOMAIN_ID"])
    node = node_process(tmp_path, env)
    player = None
    try:
        with RosClient(domain) as ros:
            ros.wait_for_node(node, NODE)
            assert ros.lifecycle_state(NODE, 60.0, node.log) in ("inactive", "active")
            ros.spin_until(
                lambda: ros.lifecycle_state(NODE) == "active", 60.0, "node active", node.log
            )
            instances: dict[int, InstanceMaskArray] = {}
            labels: dict[int, Image] = {}
            detections: dict[int, DetectionArray] = {}
            ros.node.create_subscription(
                InstanceMaskArray,
                f"{NODE}/instances",
                lambda m: instances.__setitem__(stamp_ns(m.header.stamp), m),
                50,
            )
            ros.node.create_subscription(
                Image,
                f"{NODE}/label_image",
                lambda m: labels.__setitem__(stamp_ns(m.header.stamp), m),
                50,
            )
            ros.node.create_subscription(
                detections_type(),
                f"{NODE}/detections",
                lambda m: detections.__setitem__(stamp_ns(m.header.stamp), m),
                50,
            )
            player = player_process(
                tmp_path,
                env,
                "--width",
                str(WIDTH),
                "--height",
                str(HEIGHT),
                "--frames",
                str(FRAMES),
                "--fps",
                str(FPS),
                "--rate",
                str(FPS),
                "--seed",
                str(SEED),
            )

            def index(stamp: int) -> int:
                return round((stamp - first_stamp) * FPS / 1e9)

            def fail_text() -> str:
                newest = {
                    name: index(max(outputs)) if outputs else None
                    for name, outputs in (
                        ("instances", instances),
                        ("label_image", labels),
                        ("detections", detections),
                    )
                }
                return (
                    f"newest output frame per topic: {newest}\n"
                    f"node log:\n{node.log()}\nplayer log:\n{player.log()}"
                )

            # 1. initial mask: ground truth of ids 1-3 on the first frame the node has output
            ros.spin_until(lambda: bool(labels), 120.0, "first ~/label_image", fail_text)
            init_stamp = min(labels)
            gt0 = gt_frames[init_stamp].label.copy()
            gt0[gt0 > 3] = 0
            request = SetInitialMask.Request(
                label_image=array_to_msg(gt0.astype(np.uint8), "mono8"),
                ids=[1, 2, 3],
                class_labels=[scene.class_map[i] for i in (1, 2, 3)],
                stamp=ns_to_time(init_stamp),
                replace=True,
            )
            set_called = max(labels)
            response = ros.call(SetInitialMask, f"{NODE}/set_initial_mask", request)
            assert response.success, response.message
            assert list(response.tracked_ids) == [1, 2, 3]
            set_done = max(labels)

            # 2. add the animal from its ground-truth box on a buffered frame, mid-stream
            ros.spin_until(
                lambda: max(labels) >= first_stamp + ADD_AT_FRAME * 1e9 / FPS,
                60.0,
                f"output of frame {ADD_AT_FRAME}",
                fail_text,
            )
            add_stamp = max(labels)
            ys, xs = np.nonzero(gt_frames[add_stamp].label == 4)
            box = RegionOfInterest(
                x_offset=int(xs.min()),
                y_offset=int(ys.min()),
                width=int(xs.max() - xs.min() + 1),
                height=int(ys.max() - ys.min() + 1),
            )
            add_called = max(labels)
            response = ros.call(
                AddObjects,
                f"{NODE}/add_objects",
                AddObjects.Request(
                    stamp=ns_to_time(add_stamp), boxes=[box], class_labels=[scene.class_map[4]]
                ),
            )
            assert response.success, response.message
            assert list(response.new_ids) == [4]  # next free id after 1-3
            assert list(response.tracked_ids) == [1, 2, 3, 4]
            add_done = max(labels)

            # 3. remove the car
            ros.spin_until(
                lambda: max(labels) >= first_stamp + REMOVE_AT_FRAME * 1e9 / FPS,
                60.0,
                f"output of frame {REMOVE_AT_FRAME}",
                fail_text,
            )
            remove_called = max(labels)
            response = ros.call(
                RemoveObjects, f"{NODE}/remove_objects", RemoveObjects.Request(ids=[REMOVED_ID, 99])
            )
            assert response.success, response.message
            assert list(response.removed_ids) == [REMOVED_ID]
            assert list(response.tracked_ids) == [1, 3, 4]
            assert "99" in response.message  # unknown ids are named
            remove_done = max(labels)

            assert player.wait(60.0) == 0, fail_text()
            last = max(gt_frames)
            ros.spin_until(
                lambda: last in labels and last in instances and last in detections,
                30.0,
                "outputs of the last frame",
                fail_text,
            )
            ros.spin_for(0.5)
    finally:
        if player is not None:
            player.stop()
        exit_code = node.stop()
    assert exit_code == 0, node.log()

    # -- stamps: every output belongs to an input frame, and the three topics agree
    assert set(labels) <= set(gt_frames)
    assert set(instances) == set(labels) == set(detections)
    for stamp in labels:
        assert labels[stamp].header.frame_id == "camera"
        assert instances[stamp].header.frame_id == "camera"
        assert detections[stamp].header.frame_id == "camera"
        assert (instances[stamp].image_width, instances[stamp].image_height) == (WIDTH, HEIGHT)

    # -- ids and classes over time. A request lands between two frames; outputs received before
    # the call show the old ids, outputs of frames after the response + one in-flight frame the new.
    period_ns = round(1e9 / FPS)
    events = [
        (set_called, set_done, {1, 2, 3}),
        (add_called, add_done, {1, 2, 3, 4}),
        (remove_called, remove_done, {1, 3, 4}),
    ]
    per_frame_ious: dict[int, list[float]] = {1: [], 2: [], 3: [], 4: []}
    for stamp in sorted(labels):
        ids = [inst.id for inst in instances[stamp].instances]
        assert ids == sorted(ids)
        for inst in instances[stamp].instances:
            assert inst.class_label == scene.class_map[inst.id]
            assert inst.mask.header.stamp == instances[stamp].header.stamp
        expected = _expected_ids(stamp, events, period_ns)
        if expected is not None:
            assert set(ids) == expected, f"frame {index(stamp)}: ids {ids}, expected {expected}"
        label = _label_array(labels[stamp])
        gt = gt_frames[stamp].label
        for inst in instances[stamp].instances:
            # the mask and box in ~/instances are the label image's pixels of that id
            region = label[
                inst.box.y_offset : inst.box.y_offset + inst.box.height,
                inst.box.x_offset : inst.box.x_offset + inst.box.width,
            ]
            if inst.visible:
                from vos_ros.ros.image_msgs import msg_to_array

                assert np.array_equal(msg_to_array(inst.mask) > 0, region == inst.id)
            if stamp in (init_stamp, add_stamp):
                continue  # the frame a target was given on is ground truth by definition
            per_frame_ious[inst.id].append(_iou(label == inst.id, gt == inst.id))
        visible = {int(d.id) for d in detections[stamp].detections}  # str in vision_msgs
        assert visible == {i.id for i in instances[stamp].instances if i.visible}

    all_ious = [v for values in per_frame_ious.values() for v in values]
    mean_iou = float(np.mean(all_ious))
    summary = ", ".join(
        f"id {i}: {np.mean(v):.3f} over {len(v)} frames" for i, v in per_frame_ious.items() if v
    )
    print(f"outputs for {len(labels)}/{FRAMES} frames; mean IoU {mean_iou:.3f} ({summary})")
    assert len(labels) >= FRAMES * 0.7, "the node skipped too many frames at 10 Hz"
    assert per_frame_ious[4], "the added target never appeared in the outputs"
    assert mean_iou >= MIN_MEAN_IOU, f"mean IoU {mean_iou:.3f} < {MIN_MEAN_IOU} ({summary})"
