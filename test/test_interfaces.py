"""The generated vos_ros interfaces work between two processes over DDS.

This process publishes an InstanceMaskArray and serves SetInitialMask; a second Python process
(test/interfaces_peer.py) subscribes, reports what it received field by field, and calls the
service with a request that this process checks field by field.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vos_ros.ros.interfaces import InterfacesNotBuiltError, msg_type, require_interfaces, srv_type
from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV, random_domain_id

require_interfaces()  # fail loudly (not skip) when the interfaces were not built

import rclpy  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from vos_ros.msg import InstanceMask, InstanceMaskArray  # noqa: E402
from vos_ros.ros.image_msgs import array_to_msg, msg_to_array  # noqa: E402
from vos_ros.srv import SetInitialMask  # noqa: E402

pytestmark = pytest.mark.ros

PEER = Path(__file__).with_name("interfaces_peer.py")
TIMEOUT_S = 60.0  # generous: discovery on a loaded 2-core machine can take several seconds
STAMP = (1_700_000_000, 123_456_789)
FRAME_ID = "camera_optical"
IMAGE_H, IMAGE_W = 480, 854


def _expected_instances() -> list[dict]:
    """Three targets: a small crop, a full-frame mask (large message), and an invisible one."""
    rng = np.random.default_rng(7)
    small = (rng.random((20, 30)) > 0.5).astype(np.uint8) * 255
    full = (rng.random((IMAGE_H, IMAGE_W)) > 0.5).astype(np.uint8) * 255
    return [
        {"id": 1, "class_label": "cup", "score": 0.875, "visible": True, "box": (5, 40, 30, 20),
         "mask": small},
        {"id": 2, "class_label": "person", "score": 0.5, "visible": True,
         "box": (0, 0, IMAGE_W, IMAGE_H), "mask": full},
        {"id": 9, "class_label": "", "score": 0.0, "visible": False, "box": (0, 0, 0, 0),
         "mask": np.zeros((0, 0), np.uint8)},
    ]  # fmt: skip


def _build_message() -> InstanceMaskArray:
    header = Header(stamp=Time(sec=STAMP[0], nanosec=STAMP[1]), frame_id=FRAME_ID)
    msg = InstanceMaskArray(header=header, image_height=IMAGE_H, image_width=IMAGE_W)
    for spec in _expected_instances():
        x, y, w, h = spec["box"]
        inst = InstanceMask(
            id=spec["id"],
            class_label=spec["class_label"],
            score=spec["score"],
            visible=spec["visible"],
            box=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
        )
        if spec["mask"].size:
            inst.mask = array_to_msg(spec["mask"], "mono8", header)
        else:  # an empty image: nothing to convert, only the header and encoding
            inst.mask.header = header
            inst.mask.encoding = "mono8"
        msg.instances.append(inst)
    return msg


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _next_event(lines: queue.Queue, spin, deadline: float) -> dict:
    """The next JSON event from the peer, spinning this process's node while waiting."""
    while time.monotonic() < deadline:
        spin()
        try:
            line = lines.get_nowait()
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("the peer process ended without the expected output")
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no output from the peer process within {TIMEOUT_S} s")


@pytest.fixture
def ros_env(monkeypatch):
    """An isolated DDS domain for this test and its peer (unless the caller chose one)."""
    key, value = FASTDDS_TRANSPORT_ENV
    monkeypatch.setenv(key, os.environ.get(key, value))
    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", str(random_domain_id())))
    return dict(os.environ)


def test_interfaces_between_two_processes(ros_env, tmp_path):
    suffix = f"{os.getpid()}_{random.randrange(1 << 30)}"
    topic, service = f"/vos_test/masks_{suffix}", f"/vos_test/set_initial_mask_{suffix}"
    requests: list[SetInitialMask.Request] = []

    def handle(request, response):
        requests.append(request)
        response.success = True
        response.message = "targets set"
        response.tracked_ids = sorted(int(i) for i in request.ids)
        return response

    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("vos_ros_interfaces_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(InstanceMaskArray, topic, qos)
    node.create_service(SetInitialMask, service, handle)
    message = _build_message()

    peer = subprocess.Popen(
        [sys.executable, str(PEER), topic, service, str(TIMEOUT_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ros_env,
        cwd=tmp_path,  # also checks that vos_ros.msg imports outside the checkout
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(peer.stdout, lines), daemon=True).start()
    last_publish = 0.0

    def spin() -> None:
        nonlocal last_publish
        executor.spin_once(timeout_sec=0.05)
        # Publish until the peer has it: the peer may join the domain late.
        if not received_masks and time.monotonic() - last_publish > 0.5:
            publisher.publish(message)
            last_publish = time.monotonic()

    received_masks: list[dict] = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        assert _next_event(lines, spin, deadline)["event"] == "ready"
        event = _next_event(lines, spin, deadline)
        assert event["event"] == "masks", event
        received_masks.append(event)
        event = _next_event(lines, spin, deadline)
        assert event["event"] == "response", event
        response = event
        assert peer.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    # What the peer received, field by field.
    got = received_masks[0]
    assert got["stamp"] == list(STAMP)
    assert got["frame_id"] == FRAME_ID
    assert got["image_size"] == [IMAGE_H, IMAGE_W]
    expected = _expected_instances()
    assert [i["id"] for i in got["instances"]] == [e["id"] for e in expected]
    for inst, spec in zip(got["instances"], expected, strict=True):
        assert inst["class_label"] == spec["class_label"]
        assert inst["score"] == pytest.approx(spec["score"])  # exact in float32 for these values
        assert inst["visible"] is spec["visible"]
        assert inst["box"] == list(spec["box"])
        assert inst["box_do_rectify"] is False
        assert inst["mask_header"] == [*STAMP, FRAME_ID]
        assert inst["mask_encoding"] == "mono8"
        height, width = spec["mask"].shape
        assert inst["mask_size"] == [height, width, width]
        assert inst["mask_is_bigendian"] == 0
        assert inst["mask_len"] == spec["mask"].size
        assert inst["mask_sha256"] == hashlib.sha256(spec["mask"].tobytes()).hexdigest()

    # What this process's service received from the peer, field by field.
    assert len(requests) == 1
    request = requests[0]
    labels = np.array(
        [[0, 0, 3, 3, 0], [0, 7, 7, 3, 0], [0, 0, 0, 0, 300], [7, 0, 0, 0, 0]], np.uint16
    )
    assert request.label_image.encoding == "mono16"
    assert (request.label_image.height, request.label_image.width) == labels.shape
    assert request.label_image.step == 10
    assert request.label_image.header.frame_id == FRAME_ID
    np.testing.assert_array_equal(msg_to_array(request.label_image), labels)
    assert list(request.ids) == [3, 7, 300]
    assert list(request.class_labels) == ["cup", "dog", "person"]
    assert (request.stamp.sec, request.stamp.nanosec) == (1_700_000_123, 456_789)
    assert request.replace is True

    # And the response the peer got back.
    assert response["success"] is True
    assert response["message"] == "targets set"
    assert response["tracked_ids"] == [3, 7, 300]


def test_interface_lookup_helpers():
    assert msg_type("InstanceMaskArray") is InstanceMaskArray
    assert srv_type("SetInitialMask") is SetInitialMask
    for name in ("InstanceMask", "Detection", "DetectionArray"):
        assert msg_type(name).__name__ == name
    for name in ("AddObjects", "AddPoints", "RemoveObjects"):
        assert srv_type(name).__name__ == name
    with pytest.raises(InterfacesNotBuiltError, match="has no 'NoSuchMsg'"):
        msg_type("NoSuchMsg")
    with pytest.raises(ValueError, match="'msg' or 'srv'"):
        from vos_ros.ros.interfaces import _module

        _module("action")


def test_message_defaults_and_field_types():
    """The IDL as other nodes see it: field names, types and the documented defaults."""
    inst = InstanceMask()
    assert (inst.id, inst.class_label, inst.score, inst.visible) == (0, "", 0.0, False)
    assert inst.get_fields_and_field_types() == {
        "id": "uint32",
        "class_label": "string",
        "score": "float",
        "visible": "boolean",
        "box": "sensor_msgs/RegionOfInterest",
        "mask": "sensor_msgs/Image",
    }
    assert InstanceMaskArray.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "image_height": "uint32",
        "image_width": "uint32",
        "instances": "sequence<vos_ros/InstanceMask>",
    }
    assert SetInitialMask.Request.get_fields_and_field_types() == {
        "label_image": "sensor_msgs/Image",
        "ids": "sequence<uint32>",
        "class_labels": "sequence<string>",
        "stamp": "builtin_interfaces/Time",
        "replace": "boolean",
    }
    assert SetInitialMask.Response.get_fields_and_field_types() == {
        "success": "boolean",
        "message": "string",
        "tracked_ids": "sequence<uint32>",
    }
