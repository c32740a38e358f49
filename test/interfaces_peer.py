"""The second process of test_interfaces.py: another ROS 2 node using the generated types.

Subscribes to an InstanceMaskArray topic and prints the first message it receives, field by
field, as one JSON line; then calls a SetInitialMask service with a fixed request and prints the
response as a JSON line. Exits 0 when both worked, 1 on timeout.

Usage: python interfaces_peer.py TOPIC SERVICE TIMEOUT_S
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from vos_ros.msg import InstanceMaskArray
from vos_ros.ros.image_msgs import array_to_msg
from vos_ros.srv import SetInitialMask

# The request this process sends; test_interfaces.py checks that it arrives unchanged.
LABELS = np.array([[0, 0, 3, 3, 0], [0, 7, 7, 3, 0], [0, 0, 0, 0, 300], [7, 0, 0, 0, 0]], np.uint16)
REQUEST_IDS = [3, 7, 300]
REQUEST_CLASSES = ["cup", "dog", "person"]
REQUEST_STAMP = (1_700_000_123, 456_789)


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def describe(msg: InstanceMaskArray) -> dict:
    instances = []
    for inst in msg.instances:
        data = bytes(inst.mask.data)
        instances.append(
            {
                "id": inst.id,
                "class_label": inst.class_label,
                "score": inst.score,
                "visible": inst.visible,
                "box": [inst.box.x_offset, inst.box.y_offset, inst.box.width, inst.box.height],
                "box_do_rectify": inst.box.do_rectify,
                "mask_header": [
                    inst.mask.header.stamp.sec,
                    inst.mask.header.stamp.nanosec,
                    inst.mask.header.frame_id,
                ],
                "mask_encoding": inst.mask.encoding,
                "mask_size": [inst.mask.height, inst.mask.width, inst.mask.step],
                "mask_is_bigendian": inst.mask.is_bigendian,
                "mask_sha256": hashlib.sha256(data).hexdigest(),
                "mask_len": len(data),
            }
        )
    return {
        "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
        "frame_id": msg.header.frame_id,
        "image_size": [msg.image_height, msg.image_width],
        "instances": instances,
    }


def main(topic: str, service: str, timeout_s: float) -> int:
    rclpy.init()
    node = Node("vos_ros_interfaces_peer")
    received: list[InstanceMaskArray] = []
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(InstanceMaskArray, topic, received.append, qos)
    client = node.create_client(SetInitialMask, service)
    deadline = time.monotonic() + timeout_s
    try:
        emit("ready")
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not received:
            emit("error", what=f"no InstanceMaskArray on {topic} within {timeout_s} s")
            return 1
        emit("masks", **describe(received[0]))

        if not client.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic())):
            emit("error", what=f"service {service} not available")
            return 1
        request = SetInitialMask.Request()
        request.label_image = array_to_msg(LABELS, "mono16")
        request.label_image.header.frame_id = "camera_optical"
        request.ids = REQUEST_IDS
        request.class_labels = REQUEST_CLASSES
        request.stamp = Time(sec=REQUEST_STAMP[0], nanosec=REQUEST_STAMP[1])
        request.replace = True
        future = client.call_async(request)
        while not future.done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not future.done():
            emit("error", what=f"no response from {service}")
            return 1
        response = future.result()
        emit(
            "response",
            success=response.success,
            message=response.message,
            tracked_ids=list(response.tracked_ids),
        )
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
