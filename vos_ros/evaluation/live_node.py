"""Live mode, the node's side: settings, the ROS domain, and the node in its own process.

No ROS import here: the node is a child process started from a command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vos_ros.engine.model_paths import DEFAULT_MODEL
from vos_ros.ros.launch_config import (
    NODE_ACTIVE_LOG,
    NODE_NAME,
    node_command,
    random_domain_id,
)

LOG_TAIL_CHARS = 3000


class LiveError(ValueError):
    """The live run cannot go on: the node did not come up, died, or refused a request."""


@dataclass
class LiveSettings:
    """How to reach the node and how to play the bag.

    :ivar rate: playback speed as a multiple of the recorded rate (0.5 = half speed).
    :ivar namespace: namespace of the node (``""`` = none).
    :ivar node_name: the node's name (``vos_node`` unless started under another name).
    :ivar start_node: start the node (``node_command`` or the default command) or use a running one.
    :ivar node_command: command line that starts the node; default: as ``vos.launch.py`` with
        ``model``, ``backend``, the image topic and ``use_sim_time:=true``.
    :ivar model, backend, threads: for the default command.
    :ivar image_topic: the topic the frames are published on (the bag's image topic).
    :ivar domain_id: ROS domain; None = ``ROS_DOMAIN_ID`` from the environment, else a free one.
    :ivar log_path: where the started node's output goes.
    :ivar startup_timeout_s: how long the node may take to offer its services (each start).
    :ivar connect_timeout_s: a node started here that logged "active" but is not connected to
        this process this long after is started again (see :class:`LivePlayer`) ...
    :ivar node_starts: ... at most this many starts in all.
    :ivar request_timeout_s: how long a service call may take.
    :ivar output_timeout_s: how long to wait for the output of a prompt frame, and for late
        outputs after the last frame.
    """

    rate: float = 1.0
    namespace: str = ""
    node_name: str = NODE_NAME
    start_node: bool = True
    node_command: list[str] | None = None
    model: str = DEFAULT_MODEL
    backend: str = "auto"
    threads: int = 0
    image_topic: str = "/camera/image_raw"
    domain_id: int | None = None
    log_path: Path | None = None
    startup_timeout_s: float = 60.0
    connect_timeout_s: float = 30.0
    node_starts: int = 3
    request_timeout_s: float = 20.0
    output_timeout_s: float = 5.0

    @property
    def node_path(self) -> str:
        """Fully qualified node name, e.g. ``/vos_node`` or ``/front/vos_node``."""
        namespace = self.namespace.strip("/")
        return f"/{namespace}/{self.node_name}" if namespace else f"/{self.node_name}"


def ros_domain_id(settings: LiveSettings) -> tuple[int, bool]:
    """``(domain id, chosen here)``: the setting, else ``ROS_DOMAIN_ID``, else a random id.

    A random id is only a candidate: :class:`LivePlayer` checks that nobody else is on it.
    """
    if settings.domain_id is not None:
        return settings.domain_id, False
    text = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if text:
        try:
            return int(text), False
        except ValueError:
            raise LiveError(f"ROS_DOMAIN_ID={text!r} is not a number") from None
    return random_domain_id(), True


def default_node_command(settings: LiveSettings, parameters_dir: Path) -> list[str]:
    """The node command line ``vos.launch.py`` amounts to, for these settings."""
    overrides = {
        "image": settings.image_topic,
        "model": settings.model,
        "backend": settings.backend,
        "use_sim_time": "true",
        "namespace": settings.namespace,
    }
    extra: dict[str, object] = {}
    if settings.threads:
        extra["engine.threads"] = settings.threads
    return node_command(overrides, parameters_dir, extra or None)


class NodeProcess:
    """The node in its own process (own session, so a terminal Ctrl-C reaches only us).

    Output goes to ``log_path``. :meth:`stop` sends SIGINT (a clean rclpy shutdown) and escalates to
    SIGTERM and SIGKILL when the process does not exit in time.
    """

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.starts = 0
        self._env = env
        self._first_log = Path(log_path)
        self._first_log.parent.mkdir(parents=True, exist_ok=True)
        self._spawn()

    def _spawn(self) -> None:
        self.starts += 1
        first = self._first_log
        self.log_path = (
            first
            if self.starts == 1
            else first.with_name(f"{first.stem}_{self.starts}{first.suffix}")
        )
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self._env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise LiveError(f"cannot start the node ({self.command[0]}): {exc}") from exc

    def restart(self) -> None:
        """Stop the node and start it again; start n logs to ``<log stem>_<n><suffix>``."""
        self.stop()
        self._spawn()

    def logged_active(self) -> bool:
        """Whether the node has logged that it is active (:data:`NODE_ACTIVE_LOG`)."""
        return NODE_ACTIVE_LOG in self.log_tail(chars=1 << 20)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the node's output (for error messages)."""
        if not self._log.closed:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Stop the node; returns its exit status."""
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0)):
            if not self.alive():
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        if self.alive():
            self.process.kill()
            self.process.wait(5.0)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode
