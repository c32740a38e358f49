"""Live mode, the evaluator's ROS side (rclpy): image and /clock publishers, the subscription
to the node's ``~/instances``, and clients of its services.

Imported only by a live run: the rest of the evaluation package works without ROS.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vos_ros.evaluation.live_node import LiveError, LiveSettings
from vos_ros.image_conversion import array_to_image_fields


class RosEndpoints:
    """rclpy context, node, publishers, subscription and service clients of the evaluator.

    Single-threaded: callbacks run only inside :meth:`spin` / :meth:`spin_until`, in this thread.
    """

    def __init__(
        self, domain_id: int, settings: LiveSettings, on_output: Callable[[Any], None]
    ) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rclpy.signals import SignalHandlerOptions
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger

        from vos_ros.msg import InstanceMaskArray
        from vos_ros.srv import SetInitialMask

        self._settings = settings
        self.context = Context()
        # No rclpy signal handlers: Ctrl-C must raise KeyboardInterrupt here, so that the
        # evaluator stops playing and still writes the report of what was scored.
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node(f"vos_ros_evaluator_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        node_path = settings.node_path
        self.output_topic = f"{node_path}/instances"
        # Camera-like QoS, as a driver (or `ros2 bag play` of a camera topic) publishes.
        self._image_pub = self.node.create_publisher(
            Image, settings.image_topic, qos_profile_sensor_data
        )
        self._clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        # The node's outputs are reliable; a deep queue so that none is lost on our side.
        output_qos = QoSProfile(
            depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
        )
        self._output_sub = self.node.create_subscription(
            InstanceMaskArray, self.output_topic, on_output, output_qos
        )
        self._set_mask = self.node.create_client(SetInitialMask, f"{node_path}/set_initial_mask")
        self._reset = self.node.create_client(Trigger, f"{node_path}/reset")
        self._types = {"Image": Image, "Clock": Clock, "SetInitialMask": SetInitialMask}
        self._trigger = Trigger

    def domain_is_busy(self) -> bool:
        """True when other ROS nodes show up on this domain within a moment."""
        own = self.node.get_name()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            self.spin(0.05)
            names = [n for n, _ in self.node.get_node_names_and_namespaces() if n != own]
            if names:
                return True
        return False

    def missing_connections(self) -> list[str]:
        """What is not connected yet between us and the node (empty = ready)."""
        path = self._settings.node_path
        missing = []
        if not self._set_mask.service_is_ready():
            missing.append(f"service {path}/set_initial_mask")
        if not self._reset.service_is_ready():
            missing.append(f"service {path}/reset")
        if self._output_sub.get_publisher_count() == 0:
            missing.append(f"publisher of {self.output_topic}")
        if self._image_pub.get_subscription_count() == 0:
            missing.append(f"subscriber of {self._settings.image_topic}")
        return missing

    def output_publisher_count(self) -> int:
        return self._output_sub.get_publisher_count()

    def spin(self, seconds: float) -> None:
        self.executor.spin_once(timeout_sec=max(0.0, seconds))

    def spin_until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Run callbacks until ``predicate()`` holds or ``deadline`` (perf_counter) passes."""
        while not predicate():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(remaining, 0.01))
        return True

    def image_message(self, image: np.ndarray, stamp_ns: int) -> Any:
        msg = self._types["Image"](**array_to_image_fields(image, "rgb8"))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = "camera"
        return msg

    def publish_image(self, message: Any) -> None:
        self._image_pub.publish(message)

    def publish_clock(self, stamp_ns: int) -> None:
        msg = self._types["Clock"]()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
        self._clock_pub.publish(msg)

    def _call(self, client: Any, request: Any, what: str, timeout_s: float) -> Any:
        deadline = time.perf_counter() + timeout_s
        if not self.spin_until(client.service_is_ready, deadline):
            raise LiveError(f"service {what} is not available (waited {timeout_s:.0f} s)")
        future = client.call_async(request)
        if not self.spin_until(future.done, deadline):
            client.remove_pending_request(future)
            raise LiveError(f"no response from {what} within {timeout_s:.0f} s")
        if future.exception() is not None:
            raise LiveError(f"{what} failed: {future.exception()}")
        return future.result()

    def call_set_initial_mask(
        self,
        label_image: np.ndarray,
        classes: dict[int, str],
        stamp_ns: int,
        replace: bool,
        timeout_s: float,
    ) -> tuple[bool, str]:
        srv = self._types["SetInitialMask"]
        request = srv.Request()
        request.label_image = self._types["Image"](
            **array_to_image_fields(np.ascontiguousarray(label_image, np.uint16), "mono16")
        )
        request.label_image.header.stamp.sec, request.label_image.header.stamp.nanosec = divmod(
            stamp_ns, 1_000_000_000
        )
        ids = sorted(classes)
        request.ids = ids
        request.class_labels = [classes[i] for i in ids]
        request.stamp.sec, request.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        request.replace = replace
        what = f"{self._settings.node_path}/set_initial_mask"
        response = self._call(self._set_mask, request, what, timeout_s)
        return bool(response.success), str(response.message)

    def call_reset(self, timeout_s: float) -> None:
        what = f"{self._settings.node_path}/reset"
        response = self._call(self._reset, self._trigger.Request(), what, timeout_s)
        if not response.success:
            raise LiveError(f"{what} failed: {response.message}")

    def close(self) -> None:
        import rclpy

        from vos_ros.ros.teardown import shutdown_executor

        shutdown_executor(self.executor)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
