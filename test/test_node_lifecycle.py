"""Lifecycle of vos_node across processes, driven through lifecycle_msgs services.

Transitions in order work and create / release the node's topics and services; transitions out
of order are refused (an error, not a crash); an invalid parameter makes configure fail with a
message naming it; bad input (wrong encodings, sizes, stamps, boxes, ids) never takes the node
down and never costs it its targets.
"""

from __future__ import annotations

import numpy as np
import pytest
from ros_harness import RosClient, isolated_env, node_process, ns_to_time, require_ros

require_ros()

NODE = "/vos_node"


@pytest.mark.ros
@pytest.mark.timeout(240)
def test_transitions_in_and_out_of_order(tmp_path):
    from lifecycle_msgs.msg import Transition
    from std_srvs.srv import Trigger

    env = isolated_env()
    node = node_process(tmp_path, env, parameters={"autostart": False})
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            ros.wait_for_node(node, NODE)

            def state() -> str:
                return ros.lifecycle_state(NODE, 30.0, node.log)

            def change(transition: int) -> bool:
                return ros.change_state(NODE, transition, node.log)

            def image_subscribers() -> int:
                ros.spin_for(0.3)
                return ros.node.count_subscribers("/camera/image_raw")

            assert state() == "unconfigured"  # autostart:=false waits for a manager
            assert not change(Transition.TRANSITION_ACTIVATE)  # out of order
            assert not change(Transition.TRANSITION_DEACTIVATE)
            assert state() == "unconfigured"

            assert change(Transition.TRANSITION_CONFIGURE)
            assert state() == "inactive"
            assert not change(Transition.TRANSITION_CONFIGURE)  # already configured
            assert image_subscribers() == 0

            assert change(Transition.TRANSITION_ACTIVATE)
            assert state() == "active"
            ros.spin_until(lambda: image_subscribers() == 1, 10.0, "image subscription")
            reset = ros.call(Trigger, f"{NODE}/reset", Trigger.Request())
            assert reset.success, reset.message
            assert not change(Transition.TRANSITION_CLEANUP)  # must deactivate first
            assert state() == "active"

            assert change(Transition.TRANSITION_DEACTIVATE)
            assert state() == "inactive"
            ros.spin_until(lambda: image_subscribers() == 0, 10.0, "subscription released")
            assert f"{NODE}/reset" not in dict(ros.node.get_service_names_and_types())

            assert change(Transition.TRANSITION_ACTIVATE)  # re-activation works
            assert change(Transition.TRANSITION_DEACTIVATE)
            assert change(Transition.TRANSITION_CLEANUP)
            assert state() == "unconfigured"
            assert change(Transition.TRANSITION_CONFIGURE)  # configure again after cleanup
            assert change(Transition.TRANSITION_ACTIVATE)
            assert change(Transition.TRANSITION_ACTIVE_SHUTDOWN)
            assert state() == "finalized"
            assert not change(Transition.TRANSITION_CONFIGURE)
            assert node.alive(), node.log()
    finally:
        exit_code = node.stop()
    assert exit_code == 0, node.log()


@pytest.mark.ros
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("parameter", "value"),
    [("frame_buffer.size", 0), ("backend", "cuda9"), ("input.depth", 1.5)],
)
def test_invalid_parameter_fails_configure_naming_it(tmp_path, parameter, value):
    from diagnostic_msgs.msg import DiagnosticArray

    from vos_ros.ros.diagnostics import values_of

    env = isolated_env()
    node = node_process(tmp_path, env, parameters={parameter: value})
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            ros.wait_for_node(node, NODE)
            errors: list[str] = []
            ros.node.create_subscription(
                DiagnosticArray,
                "/diagnostics",
                lambda m: errors.extend(values_of(s)["last_error"] for s in m.status),
                10,
            )
            ros.spin_until(lambda: bool(errors), 30.0, "diagnostics", node.log)
            assert ros.lifecycle_state(NODE) == "unconfigured"  # autostart tried and failed
            assert parameter in errors[-1]
            assert node.alive()
    finally:
        node.stop()
    assert f"parameter '{parameter}'" in node.log()


@pytest.mark.ros
@pytest.mark.timeout(240)
def test_bad_input_never_takes_the_node_down(tmp_path):
    from geometry_msgs.msg import Point
    from lifecycle_msgs.msg import Transition
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, RegionOfInterest

    from vos_ros.msg import Detection, DetectionArray, InstanceMaskArray
    from vos_ros.ros.image_msgs import array_to_msg
    from vos_ros.srv import AddObjects, AddPoints, RemoveObjects, SetInitialMask

    env = isolated_env()
    node = node_process(tmp_path, env, parameters={"log_throttle_s": 1.0})
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            ros.wait_for_node(node, NODE)
            ros.spin_until(
                lambda: ros.lifecycle_state(NODE) == "active", 60.0, "node active", node.log
            )
            camera = ros.node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
            outputs: list[Image] = []
            ros.node.create_subscription(Image, f"{NODE}/label_image", outputs.append, 10)
            ros.spin_until(lambda: camera.get_subscription_count() > 0, 20.0, "node subscribed")

            # before any frame: a clear error
            empty_labels = array_to_msg(np.zeros((48, 64), np.uint8), "mono8")
            response = ros.call(
                SetInitialMask,
                f"{NODE}/set_initial_mask",
                SetInitialMask.Request(label_image=empty_labels, replace=True),
            )
            assert not response.success and "no frame received yet" in response.message

            rng = np.random.default_rng(0)
            frame = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
            good = array_to_msg(frame, "rgb8")
            good.header.frame_id = "camera"

            def publish(msg: Image, sec: int) -> None:
                msg.header.stamp = ns_to_time(sec * 1_000_000_000)
                camera.publish(msg)

            publish(good, 1)
            ros.spin_until(lambda: bool(outputs), 20.0, "first output", node.log)
            labels = np.zeros((96, 128), np.uint8)
            labels[20:60, 30:80] = 1
            response = ros.call(
                SetInitialMask,
                f"{NODE}/set_initial_mask",
                SetInitialMask.Request(
                    label_image=array_to_msg(labels, "mono8"),
                    ids=[1],
                    class_labels=["box"],
                    stamp=ns_to_time(1_000_000_000),
                    replace=True,
                ),
            )
            assert response.success, response.message

            # bad frames: unknown encoding, empty, truncated data, another size
            bad_encoding = array_to_msg(frame, "rgb8")
            bad_encoding.encoding = "yuv422_yuy2_nonsense"
            truncated = array_to_msg(frame, "rgb8")
            truncated.data = bytes(truncated.data)[:1000]
            other_size = array_to_msg(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8), "rgb8")
            for sec, msg in enumerate([bad_encoding, Image(), truncated, other_size], start=2):
                publish(msg, sec)
                ros.spin_for(0.2)

            count = len(outputs)
            publish(good, 10)  # the newest frame (stamp 0 in requests) is a good one again
            ros.spin_until(lambda: len(outputs) > count, 20.0, "output after bad input", node.log)

            # bad requests
            calls = [
                (  # stamp not buffered: the error names the buffered range
                    SetInitialMask,
                    "set_initial_mask",
                    SetInitialMask.Request(
                        label_image=array_to_msg(labels, "mono8"),
                        ids=[2],
                        class_labels=["x"],
                        stamp=ns_to_time(999_000_000_000),
                    ),
                    "1.000000000",
                ),
                (  # wrong size
                    SetInitialMask,
                    "set_initial_mask",
                    SetInitialMask.Request(label_image=empty_labels, replace=True),
                    "48",
                ),
                (  # wrong encoding
                    SetInitialMask,
                    "set_initial_mask",
                    SetInitialMask.Request(label_image=good),
                    "encoding",
                ),
                (  # id already tracked
                    SetInitialMask,
                    "set_initial_mask",
                    SetInitialMask.Request(
                        label_image=array_to_msg(labels, "mono8"), ids=[1], class_labels=["x"]
                    ),
                    "already tracked",
                ),
                (  # box outside the image
                    AddObjects,
                    "add_objects",
                    AddObjects.Request(
                        boxes=[RegionOfInterest(x_offset=500, y_offset=10, width=20, height=20)]
                    ),
                    "outside",
                ),
                (  # a click outside the image
                    AddPoints,
                    "add_points",
                    AddPoints.Request(points=[Point(x=500.0, y=10.0)], labels=[1]),
                    "outside",
                ),
                (  # zero-size box
                    AddObjects,
                    "add_objects",
                    AddObjects.Request(boxes=[RegionOfInterest(x_offset=5, y_offset=5)]),
                    "size",
                ),
                (  # labels that do not pair with boxes
                    AddObjects,
                    "add_objects",
                    AddObjects.Request(
                        boxes=[RegionOfInterest(x_offset=5, y_offset=5, width=9, height=9)],
                        class_labels=["a", "b"],
                    ),
                    "class labels",
                ),
                (RemoveObjects, "remove_objects", RemoveObjects.Request(ids=[]), "no ids"),
            ]
            for srv_type, name, request, expected_text in calls:
                response = ros.call(srv_type, f"{NODE}/{name}", request)
                assert not response.success, (name, response.message)
                assert expected_text in response.message, (name, response.message)
                assert list(response.tracked_ids) == [1], (name, response.message)

            # still running, still tracking, still producing outputs
            count = len(outputs)
            publish(good, 20)
            ros.spin_until(lambda: len(outputs) > count, 20.0, "output after bad input", node.log)
            assert ros.lifecycle_state(NODE) == "active"
            assert node.alive()

            # a detector's boxes on ~/prompts become a target; ~/overlay flows once subscribed
            instances: list[InstanceMaskArray] = []
            overlays: list[Image] = []
            ros.node.create_subscription(
                InstanceMaskArray, f"{NODE}/instances", instances.append, 10
            )
            ros.node.create_subscription(Image, f"{NODE}/overlay", overlays.append, 10)
            prompts = ros.node.create_publisher(DetectionArray, f"{NODE}/prompts", 10)
            ros.spin_until(lambda: prompts.get_subscription_count() > 0, 20.0, "prompts subscriber")
            detection = Detection(class_label="cup", center_x=100.0, center_y=70.0)
            detection.size_x, detection.size_y = 30.0, 20.0
            prompt = DetectionArray(detections=[detection])
            prompt.header.stamp = ns_to_time(20 * 1_000_000_000)
            prompts.publish(prompt)

            def tracked_cup() -> bool:
                publish(good, 21 + len(overlays))
                ros.spin_for(0.1)
                return any(
                    {(i.id, i.class_label) for i in m.instances} == {(1, "box"), (2, "cup")}
                    for m in instances
                ) and bool(overlays)

            ros.spin_until(tracked_cup, 20.0, "prompted target and overlay", node.log)
            assert overlays[-1].encoding == "rgb8" and overlays[-1].header.frame_id == "camera"
            assert ros.change_state(NODE, Transition.TRANSITION_DEACTIVATE)
    finally:
        exit_code = node.stop()
    assert exit_code == 0, node.log()
    log = node.log()
    assert "unsupported image encoding" in log
    assert "frame size changed" in log or "frame skipped" in log
