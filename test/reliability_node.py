"""An in-process ``VosNode`` for the reliability tests: frames go straight into the image
callback, services are called through the node's own (guarded) callbacks, and the outputs and
``/diagnostics`` are captured instead of published. No DDS peer is involved, so the tests are
fast and do not depend on discovery; the cross-process paths have their own tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from vos_ros.ros.diagnostics import values_of
from vos_ros.ros.launch_config import random_domain_id


class Capture:
    """Stands in for a publisher: keeps what would have been published."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def publish(self, msg: Any) -> None:
        self.messages.append(msg)

    def get_subscription_count(self) -> int:
        return 1  # so the node also computes the overlay


class InProcessNode:
    """A configured and activated node in its own rclpy context (call :meth:`close`)."""

    OUTPUTS = ("_instances_pub", "_label_pub", "_detections_pub", "_overlay_pub")

    def __init__(
        self,
        parameters: dict[str, Any] | None = None,
        engine_factory: Callable | None = None,
        activate: bool = True,
    ) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.parameter import Parameter

        from vos_ros.ros.node import VosNode

        self.context = Context()
        rclpy.init(context=self.context, domain_id=random_domain_id())
        values = {"autostart": False, "warmup": False, "log_throttle_s": 0.1, **(parameters or {})}
        self.node = VosNode(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
            engine_factory=engine_factory,
        )
        self.diagnostics = Capture()
        self._real_diagnostics = self.node._diagnostics_pub
        self.node._diagnostics_pub = self.diagnostics
        self.outputs: dict[str, Capture] = {}
        self._real_outputs: dict[str, Any] = {}
        self.fed = 0
        if activate:
            assert self.configure(), self.status()
            self.activate()

    # -- lifecycle ---------------------------------------------------------------------------
    def configure(self) -> bool:
        from rclpy.lifecycle import TransitionCallbackReturn

        return self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS

    def activate(self) -> None:
        self.node.trigger_activate()
        for name in self.OUTPUTS:  # capture outputs; the real publishers are put back on release
            self._real_outputs[name] = getattr(self.node, name)
            self.outputs[name] = Capture()
            setattr(self.node, name, self.outputs[name])

    def deactivate(self) -> None:
        self._restore_outputs()
        self.node.trigger_deactivate()

    def cleanup(self) -> None:
        self.node.trigger_cleanup()

    def _restore_outputs(self) -> None:
        for name, publisher in self._real_outputs.items():
            setattr(self.node, name, publisher)
        self._real_outputs = {}

    def close(self) -> None:
        import rclpy

        self._restore_outputs()
        self.node._diagnostics_pub = self._real_diagnostics
        self.node._release_all()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    # -- frames -------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        snapshot = self.node._stats.snapshot()
        return snapshot.processed, snapshot.failed

    def feed(self, msg: Any, stamp_s: float | None = None, timeout: float = 30.0) -> str:
        """Hand ``msg`` to the image callback and wait until it was processed or refused.

        :returns: ``"processed"`` or ``"failed"``.
        """
        from vos_ros.benchmark.ros_procs import ns_to_time

        self.fed += 1
        if stamp_s is None:
            stamp_s = float(self.fed)
        msg.header.stamp = ns_to_time(int(stamp_s * 1e9))
        before = self.counts()
        self.node._image_cb(msg)
        deadline = time.monotonic() + timeout
        while self.counts() == before:
            if time.monotonic() > deadline:
                pytest.fail(f"frame {self.fed} neither processed nor refused in {timeout:.0f} s")
            time.sleep(0.005)
        return "processed" if self.counts()[0] > before[0] else "failed"

    def last_label_image(self) -> np.ndarray:
        from vos_ros.ros.image_msgs import msg_to_array

        return np.array(msg_to_array(self.outputs["_label_pub"].messages[-1]))

    # -- services -----------------------------------------------------------------------------
    def call(self, name: str, request: Any) -> Any:
        """Call service ``~/<name>`` through the node's registered (guarded) callback."""
        for service in self.node._target_srvs:
            if service.srv_name.endswith("/" + name):
                return service.callback(request, service.srv_type.Response())
        raise KeyError(f"no service {name}; is the node active?")

    @property
    def tracked(self) -> list[int]:
        engine = self.node._engine
        return sorted(engine.target_ids) if engine is not None else []

    # -- diagnostics --------------------------------------------------------------------------
    def status(self) -> tuple[int, str, dict[str, str]]:
        """``(level, message, values)`` of the status the node publishes now."""
        self.node._publish_diagnostics()
        status = self.diagnostics.messages[-1].status[0]
        return status.level[0], status.message, values_of(status)
