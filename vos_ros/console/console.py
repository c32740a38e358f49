"""The console's parts wired together: view, pairer, ROS bridge, offline jobs, target names."""

from __future__ import annotations

import os
import threading
from typing import Any

from vos_ros.console.live_view import FramePairer, LatestView
from vos_ros.console.offline_jobs import JobStore
from vos_ros.console.settings import ConsoleSettings


def use_node_transport() -> None:
    """Fast DDS's LARGE_DATA transport, as the launch file gives the node, unless this shell
    chose a transport: without it Fast DDS loses nearly every VGA image sent best-effort between
    processes (README, "DDS transports"). Read when the console's participant is created."""
    from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV

    key, value = FASTDDS_TRANSPORT_ENV
    if key not in os.environ and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        os.environ[key] = value


class Console:
    """Everything one ``vos-ros console`` server holds; :meth:`start` joins the ROS graph."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.view = LatestView()
        # Console-side names: the node has no rename service, so a rename lives here (and is
        # drawn in the view and listed), while the node keeps the class it was given.
        self.names: dict[int, str] = {}
        self.pairer = FramePairer(
            self.view, self.names, settings.jpeg_quality, settings.pair_wait_max_s
        )
        self.jobs = JobStore(settings.max_offline_frames, settings.model)
        self.bridge: Any = None
        self._ids_lock = threading.Lock()
        self._highest_id = 0

    def start(self) -> None:
        from vos_ros.ros.console_bridge import RosBridge

        self.pairer.start()
        use_node_transport()
        self.bridge = RosBridge(self.pairer, self.settings.node, self.settings.domain_id)

    def close(self) -> None:
        """Leave the ROS graph, stop drawing, remove the uploads (safe to call twice)."""
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        self.pairer.stop()
        self.jobs.close()

    def next_target_id(self) -> int:
        """An id for a mask the console sends: above every id seen or given out so far (the
        node never reuses ids within a stream, so ids it removed are skipped too)."""
        latest = self.pairer.latest_instances
        seen = [t.target_id for t in latest.targets] if latest is not None else []
        status = self.bridge.status.values.get("target_ids", "") if self.bridge else ""
        seen += [int(v) for v in status.split() if v.isdigit()]
        with self._ids_lock:
            self._highest_id = max([self._highest_id, *seen]) + 1
            return self._highest_id

    def note_ids(self, ids: list[int]) -> None:
        with self._ids_lock:
            self._highest_id = max([self._highest_id, *ids])
