"""The console's own rclpy node: finds vos nodes, watches the selected one, calls its services.

It runs in its own rclpy context on a background thread (the web server's event loop stays free).
Camera frames come from the topic the selected node itself subscribes to (read from the graph),
masks from its ``~/instances``, status from ``/diagnostics`` (the entry whose hardware id is the
node's name). Everything it receives goes to a :class:`~vos_ros.console.live_view.FramePairer`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point as GeometryPoint
from rcl_interfaces.srv import GetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_srvs.srv import Trigger

from vos_ros.console.live_view import CameraFrame, FramePairer, InstancesView, TargetView
from vos_ros.msg import InstanceMaskArray
from vos_ros.ros.image_msgs import array_to_msg, msg_to_array
from vos_ros.ros.input_frames import frame_from_compressed, frame_from_image
from vos_ros.ros.teardown import shutdown_executor
from vos_ros.srv import AddObjects, AddPoints, RemoveObjects, SetInitialMask

NS_PER_S = 1_000_000_000
INSTANCES_TYPE = "vos_ros/msg/InstanceMaskArray"
IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}
SERVICE_TIMEOUT_S = 10.0


class NodeUnavailableError(RuntimeError):
    """The selected node does not answer (not running, not active, or none selected)."""


class RequestRefusedError(ValueError):
    """The node answered ``success: false``; the text is its message."""


@dataclass
class NodeStatus:
    """The selected node's latest ``/diagnostics`` entry."""

    level: int = -1
    message: str = "no /diagnostics from this node yet"
    values: dict[str, str] = field(default_factory=dict)
    received: float = 0.0


def split_name(full_name: str) -> tuple[str, str]:
    """``/ns/vos_node`` -> (``vos_node``, ``/ns``)."""
    namespace, _, name = full_name.rpartition("/")
    return name, namespace or "/"


def to_time(stamp_ns: int) -> Time:
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


class RosBridge:
    """rclpy side of the console. Thread-safe: the web handlers call it from worker threads."""

    def __init__(
        self, pairer: FramePairer, node_name: str | None = None, domain_id: int | None = None
    ) -> None:
        self._pairer = pairer
        self._wanted = node_name
        self._lock = threading.RLock()
        self.context = Context()
        # no rclpy signal handlers: the web server owns Ctrl-C / SIGTERM and shuts down in order
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node("vos_console", context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self.selected: str | None = None
        self.camera_topic: str | None = None
        self.status = NodeStatus()
        self._subs: list[Any] = []
        self._camera_sub: Any = None
        self._clients: dict[str, Any] = {}
        self._buffer_size: int | None = None
        self._frames_seen: list[float] = []
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, QoSProfile(depth=10)
        )
        self.node.create_timer(1.0, self._refresh)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="console_ros", daemon=True)
        self._thread.start()

    # -- graph ------------------------------------------------------------------------------------

    def vos_nodes(self) -> list[str]:
        """Full names of the vos nodes in the graph (those publishing ``~/instances``)."""
        suffix = "/instances"
        return sorted(
            name[: -len(suffix)]
            for name, types in self.node.get_topic_names_and_types()
            if name.endswith(suffix) and INSTANCES_TYPE in types
        )

    def select(self, full_name: str) -> None:
        """Watch ``full_name`` from now on (frames, masks, status, services)."""
        if not full_name.startswith("/") or any(c.isspace() for c in full_name):
            raise ValueError(f"not a full node name: {full_name!r}")
        with self._lock:
            self._wanted = full_name
            if full_name == self.selected:
                return
            self._unsubscribe()
            self._pairer.clear()
            self.selected = full_name
            self.status = NodeStatus()
            self._buffer_size = None
            qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
            self._subs.append(
                self.node.create_subscription(
                    InstanceMaskArray, f"{full_name}/instances", self._on_instances, qos
                )
            )
            self._clients = {
                "add_objects": self.node.create_client(AddObjects, f"{full_name}/add_objects"),
                "add_points": self.node.create_client(AddPoints, f"{full_name}/add_points"),
                "set_initial_mask": self.node.create_client(
                    SetInitialMask, f"{full_name}/set_initial_mask"
                ),
                "remove_objects": self.node.create_client(
                    RemoveObjects, f"{full_name}/remove_objects"
                ),
                "reset": self.node.create_client(Trigger, f"{full_name}/reset"),
                "get_parameters": self.node.create_client(
                    GetParameters, f"{full_name}/get_parameters"
                ),
            }
            self._subscribe_camera()

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        if self._camera_sub is not None:
            self.node.destroy_subscription(self._camera_sub)
            self._camera_sub = None
        self.camera_topic = None
        for client in self._clients.values():
            self.node.destroy_client(client)
        self._clients = {}

    def _subscribe_camera(self) -> None:
        """Subscribe to the image topic the selected node subscribes to (once it is in the
        graph; retried every second until then)."""
        name, namespace = split_name(self.selected or "")
        try:
            topics = self.node.get_subscriber_names_and_types_by_node(name, namespace)
        except Exception:  # the node is not (yet) in the graph
            return
        for topic, types in topics:
            for type_name in types:
                msg_type = IMAGE_TYPES.get(type_name)
                if msg_type is None:
                    continue
                self._camera_sub = self.node.create_subscription(
                    msg_type, topic, self._on_camera, qos_profile_sensor_data
                )
                self.camera_topic = topic
                return

    def _refresh(self) -> None:
        with self._lock:
            if self.selected is None:
                nodes = self.vos_nodes()
                if self._wanted in nodes or (self._wanted is None and nodes):
                    self.select(self._wanted or nodes[0])
                return
            if self._camera_sub is None:
                self._subscribe_camera()
            if self._buffer_size is None and self._clients["get_parameters"].service_is_ready():
                future = self._clients["get_parameters"].call_async(
                    GetParameters.Request(names=["frame_buffer.size"])
                )
                future.add_done_callback(self._on_parameters)

    def _on_parameters(self, future) -> None:
        result = future.result()
        if result is not None and result.values:
            self._buffer_size = int(result.values[0].integer_value) or None

    # -- callbacks --------------------------------------------------------------------------------

    def _on_camera(self, msg) -> None:
        stamp_ns = int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)
        decode = frame_from_compressed if isinstance(msg, CompressedImage) else frame_from_image
        now = time.monotonic()
        self._frames_seen = [t for t in self._frames_seen if now - t < 2.0] + [now]
        self._pairer.put_frame(
            CameraFrame(stamp_ns, lambda: decode(msg), time.time(), msg.header.frame_id)
        )

    def _on_instances(self, msg) -> None:
        stamp_ns = int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)
        targets = []
        for inst in msg.instances:
            box = inst.box
            mask = None
            if inst.visible and inst.mask.height and inst.mask.width:
                mask = np.asarray(msg_to_array(inst.mask)) > 0
            targets.append(
                TargetView(
                    int(inst.id),
                    str(inst.class_label),
                    float(inst.score),
                    bool(inst.visible),
                    (int(box.x_offset), int(box.y_offset), int(box.width), int(box.height)),
                    mask,
                )
            )
        self._pairer.put_instances(InstancesView(stamp_ns, targets))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if self.selected and status.hardware_id == self.selected:
                self.status = NodeStatus(
                    level=int.from_bytes(bytes(status.level), "little")
                    if isinstance(status.level, bytes | bytearray)
                    else int(status.level),
                    message=str(status.message),
                    values={kv.key: kv.value for kv in status.values},
                    received=time.monotonic(),
                )

    # -- state for the page -----------------------------------------------------------------------

    def camera_hz(self) -> float:
        times = self._frames_seen
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    def buffer_seconds(self) -> float | None:
        """How long a paused frame stays in the node's buffer (frame_buffer.size / input rate)."""
        rate = float(self.status.values.get("input_hz", "0") or 0.0)
        if self._buffer_size is None or rate <= 0:
            return None
        return self._buffer_size / rate

    @property
    def buffer_size(self) -> int | None:
        return self._buffer_size

    # -- services ---------------------------------------------------------------------------------

    def add_box(self, stamp_ns: int, box: tuple[int, int, int, int], class_label: str):
        """``~/add_objects`` with one box ``(x0, y0, x1, y1)`` on the frame ``stamp_ns``."""
        x0, y0, x1, y1 = box
        request = AddObjects.Request(
            stamp=to_time(stamp_ns),
            boxes=[RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)],
            class_labels=[class_label],
        )
        return self._call("add_objects", request)

    def add_points(self, stamp_ns: int, points: list[tuple[float, float, bool]], class_label: str):
        """``~/add_points``: one new target from ``(x, y, positive)`` clicks on ``stamp_ns``."""
        request = AddPoints.Request(
            stamp=to_time(stamp_ns),
            points=[GeometryPoint(x=float(x), y=float(y)) for x, y, _ in points],
            labels=[int(positive) for _, _, positive in points],
            class_label=class_label,
        )
        return self._call("add_points", request)

    def set_mask(self, stamp_ns: int, mask: np.ndarray, target_id: int, class_label: str):
        """``~/set_initial_mask`` (replace=false) with one target ``target_id`` where ``mask``."""
        labels = np.zeros(mask.shape, np.uint8 if target_id < 256 else np.uint16)
        labels[mask] = target_id
        encoding = "mono8" if target_id < 256 else "mono16"
        request = SetInitialMask.Request(
            label_image=array_to_msg(labels, encoding),
            ids=[int(target_id)],
            class_labels=[class_label],
            stamp=to_time(stamp_ns),
            replace=False,
        )
        return self._call("set_initial_mask", request)

    def remove(self, ids: list[int]):
        return self._call("remove_objects", RemoveObjects.Request(ids=[int(i) for i in ids]))

    def reset(self):
        return self._call("reset", Trigger.Request())

    def _call(self, service: str, request) -> Any:
        with self._lock:
            client = self._clients.get(service)
            node = self.selected
        if client is None:
            raise NodeUnavailableError("no vos node selected (none found in the graph yet)")
        if not client.wait_for_service(timeout_sec=2.0):
            raise NodeUnavailableError(
                f"{node} offers no ~/{service} service: is it running and active?"
            )
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(SERVICE_TIMEOUT_S):
            future.cancel()
            raise NodeUnavailableError(
                f"{node} did not answer ~/{service} in {SERVICE_TIMEOUT_S:.0f} s"
            )
        response = future.result()
        if not response.success:
            raise RequestRefusedError(response.message)
        return response

    # -- life -------------------------------------------------------------------------------------

    def _spin(self) -> None:
        while self._running and self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception:  # one bad message must not end the console's ROS side
                if not self.context.ok():
                    return

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5.0)
        shutdown_executor(self._executor)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
