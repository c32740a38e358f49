"""A pass-through node: the ROS part of ``vos_node`` without the engine.

It subscribes to ``image`` with the same QoS as ``vos_node`` (sensor data), converts each image to
an RGB array exactly as the node does, and publishes an empty ``InstanceMaskArray`` with the
input's header on ``~/instances``. The node benchmark runs it in the same harness as the real node:
its stamp-to-arrival latency is the cost of the transport and conversion alone, which gives the
node's ROS overhead as a ratio measured in the same run.

    python -m vos_ros.benchmark.passthrough_node --ros-args -r image:=/camera/image_raw
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from vos_ros.msg import InstanceMaskArray
    from vos_ros.ros.input_frames import frame_from_image

    class PassthroughNode(Node):
        def __init__(self) -> None:
            super().__init__("passthrough_node")
            output_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
            self._publisher = self.create_publisher(InstanceMaskArray, "~/instances", output_qos)
            self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data)

        def _on_image(self, msg: Image) -> None:
            frame = frame_from_image(msg)
            self._publisher.publish(
                InstanceMaskArray(
                    header=msg.header,
                    image_height=frame.shape[0],
                    image_width=frame.shape[1],
                    instances=[],
                )
            )

    rclpy.init(args=args)
    node = PassthroughNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
