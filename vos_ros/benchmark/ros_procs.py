"""Processes and an in-process client for the node benchmarks (needs rclpy + vos_ros.msg/srv).

Every run gets its own random ``ROS_DOMAIN_ID`` so that other ROS programs on the machine cannot
cross-talk, and ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (shared memory for large images between
processes, as the launch file sets). Children are stopped with SIGINT, then killed.

Frames carry their clip index in ``header.frame_id`` (``bench/<index>``, see
:mod:`vos_ros.benchmark.frame_player`); the node copies the header to its outputs, so the client
knows which ground-truth frame an output belongs to and can name its stamp in service requests.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.ros.launch_config import (
    FASTDDS_TRANSPORT_ENV,
    NODE_ACTIVE_LOG,
    node_command,
    random_domain_id,
)
from vos_ros.ros.services import stamp_to_ns

NS_PER_S = 1_000_000_000
FRAME_ID_PREFIX = "bench/"
IMAGE_TOPIC = "/bench/image_raw"

# Node parameters for each benchmark backend name (see engine_bench.BACKEND_SPECS).
NODE_BACKEND_PARAMETERS: dict[str, dict[str, object]] = {
    "flow": {},
    "onnxruntime": {"engine.device": "cpu"},
    "onnxruntime-cuda": {"engine.device": "cuda"},
    "torch": {"engine.device": "cpu"},
    "torch-cuda": {"engine.device": "cuda", "engine.precision": "fp16"},
    "tensorrt": {"engine.device": "cuda", "engine.precision": "fp16"},
}


# The Fast DDS settings a participant reads when it is created.
FASTDDS_ENV_KEYS = ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")


def isolated_env(
    domain_id: int | None = None,
    profile: str | Path | None = None,
    transports: str | None = None,
) -> dict[str, str]:
    """This environment with a fresh ROS domain (``domain_id`` or a random one) and the node's
    Fast DDS transport (:data:`FASTDDS_TRANSPORT_ENV`), another ``FASTDDS_BUILTIN_TRANSPORTS``
    value ``transports``, or the Fast DDS XML ``profile`` instead."""
    if profile and transports:
        raise ValueError("give a Fast DDS XML profile or builtin transports, not both")
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random_domain_id())
    key, value = FASTDDS_TRANSPORT_ENV
    if profile:
        env.pop(key, None)
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(profile).resolve())
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        env[key] = transports or value
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    return env


def transport_label(profile: str | Path | None, transports: str | None = None) -> str:
    """How :func:`isolated_env` set up Fast DDS, for benchmark records."""
    if profile:
        return f"Fast DDS profile {profile}"
    key, value = FASTDDS_TRANSPORT_ENV
    return f"{key}={transports or value}"


class Child:
    """A child process with its output in a log file; stopped (and killed if needed) on exit
    from a ``with`` block. The test harness's node and player processes are this class too.

    :param dumps_stacks: the child prints every thread's stack on SIGUSR1 (``vos_node`` and the
        camera players do), so a wait that times out can show where it hangs.
    :param cwd: working directory of the child (None: this process's).
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        dumps_stacks: bool = False,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.dumps_stacks = dumps_stacks
        self.starts = 0
        self._base_name, self._env, self._log_dir, self._cwd = name, env, Path(log_dir), cwd
        self._spawn()

    def _spawn(self) -> None:
        self.starts += 1
        if self.starts > 1:
            self.name = f"{self._base_name}_{self.starts}"
        self.log_path = self._log_dir / f"{self.name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.command, env=self._env, cwd=self._cwd, stdout=self._log, stderr=subprocess.STDOUT
        )

    def restart(self) -> None:
        """Stop the child and run its command again; start n logs to ``<name>_<n>.log``, so
        the earlier logs stay for the record."""
        self.stop()
        self._spawn()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def dump_stacks(self) -> bool:
        """Ask the child to print its threads' stacks into its log; False if it cannot."""
        if not (self.dumps_stacks and self.alive()):
            return False
        self.process.send_signal(signal.SIGUSR1)
        return True

    def log(self) -> str:
        """The whole log so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stacks(self) -> str:
        """The log after asking the child for its threads' stacks (the failure text of a wait
        that timed out)."""
        if self.dump_stacks():
            time.sleep(1.0)
        return self.log()

    def wait(self, timeout: float) -> int:
        """The child's exit code once it exits.

        :raises RuntimeError: the child still runs after ``timeout`` s; the text holds its log
            and, when it can print them, its threads' stacks (where it hangs on its way out).
        """
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log = self.stacks()
            tail = "\n".join(log.splitlines()[-120:])
            raise RuntimeError(f"{self.name} still running {timeout:g} s later:\n{tail}") from None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (clean rclpy shutdown), then SIGKILL after ``timeout`` (with a stack dump
        first when the child can print one); returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                if self.dump_stacks():
                    time.sleep(1.0)
                self.process.kill()
                self.process.wait(5)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def player_command(clip_path: Path, rate: float, topic: str = IMAGE_TOPIC) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vos_ros.benchmark.frame_player",
        "--clip",
        str(clip_path),
        "--rate",
        str(rate),
        "--topic",
        topic,
    ]


def _read_log(log_path: Path) -> str:
    try:
        return Path(log_path).read_text(errors="replace")
    except OSError:
        return ""


def player_published(log_path: Path) -> int | None:
    """Frames the player published, from the line it prints on exit (None if it has not)."""
    found = re.findall(r"published (\d+) frames", _read_log(log_path))
    return int(found[-1]) if found else None


def player_progress(log_path: Path) -> list[tuple[int, int]]:
    """(wall-clock ns, frames published so far) pairs the player prints once a second."""
    pairs = re.findall(r"progress (\d+) ns (\d+) frames", _read_log(log_path))
    return [(int(t), int(n)) for t, n in pairs]


def published_at(progress: list[tuple[int, int]], t_ns: int) -> float | None:
    """Frames the player had published at ``t_ns`` (interpolated); None outside its lines."""
    if len(progress) < 2 or not progress[0][0] <= t_ns <= progress[-1][0]:
        return None
    times, counts = zip(*progress, strict=True)
    return float(np.interp(t_ns, times, counts))


def passthrough_command(topic: str = IMAGE_TOPIC) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vos_ros.benchmark.passthrough_node",
        "--ros-args",
        "-r",
        f"image:={topic}",
    ]


def vos_node_command(
    backend: str, model: str, threads: int, params_dir: Path, topic: str = IMAGE_TOPIC
) -> list[str]:
    """The node's command line as the launch file builds it, for benchmark backend ``backend``."""
    overrides = {"image": topic, "model": model if backend != "flow" else "flow"}
    if backend != "flow":
        overrides["backend"] = backend.split("-")[0]
    extra = {"engine.threads": threads, **NODE_BACKEND_PARAMETERS[backend]}
    return node_command(overrides, params_dir, extra, python=sys.executable)


def _status_kib(pid: int, fields: dict[str, str]) -> dict[str, int]:
    """The KiB values of ``fields`` (``/proc/<pid>/status`` name -> key) of process ``pid``;
    empty when the process is gone."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in fields:
                    values[fields[name]] = int(rest.split()[0])
    except OSError:
        return {}
    return values


def rss_kib(pid: int) -> int | None:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` of /proc/<pid>/status)."""
    return _status_kib(pid, {"VmRSS": "rss"}).get("rss")


def rss_parts_kib(pid: int) -> dict[str, int]:
    """Resident memory of ``pid`` by kind, in KiB: ``anon``, ``file`` and ``shmem``.

    ``VmRSS`` is their sum. The split tells a heap that grows (``anon``) from library code and
    mapped files paged in the first time a rarely used path runs (``file``), which is not a leak.
    Empty when the process is gone.
    """
    return _status_kib(pid, {"RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"})


@dataclass
class Arrival:
    """One ``~/instances`` message as the client saw it."""

    arrival_ns: int  # wall clock at the callback
    stamp_ns: int  # header stamp = the player's wall clock at publish
    index: int  # clip frame index from frame_id, -1 when absent
    instances: int  # number of InstanceMask entries

    @property
    def latency_ms(self) -> float:
        return (self.arrival_ns - self.stamp_ns) / 1e6


@dataclass
class TopicLog:
    """Thread-safe list of arrivals on one topic."""

    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, arrival: Arrival) -> None:
        with self.lock:
            self.arrivals.append(arrival)

    def between(self, start_ns: int, end_ns: int) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if start_ns <= a.arrival_ns < end_ns]

    def recent(self, count: int) -> list[Arrival]:
        """The last ``count`` arrivals, newest first."""
        with self.lock:
            return self.arrivals[-count:][::-1]

    def latest(self) -> Arrival | None:
        with self.lock:
            return self.arrivals[-1] if self.arrivals else None

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


class BenchClient:
    """An rclpy context + node spinning in a background thread, on the benchmark's domain."""

    def __init__(self, env: dict[str, str], name: str = "bench_client") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        # Fast DDS reads the transport when the participant is created.
        for key in FASTDDS_ENV_KEYS:
            if key in env:
                os.environ[key] = env[key]
            else:
                os.environ.pop(key, None)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.logs: dict[str, TopicLog] = {}
        self.diagnostics: dict[str, dict[str, str]] = {}  # status name prefix -> values
        self._diag_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="bench_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def watch_instances(self, topic: str) -> TopicLog:
        """Record every ``InstanceMaskArray`` on ``topic`` (reliable, as the node publishes)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from vos_ros.msg import InstanceMaskArray

        log = TopicLog()
        self.logs[topic] = log

        def callback(msg) -> None:
            arrival = time.time_ns()
            frame_id = msg.header.frame_id
            index = (
                int(frame_id[len(FRAME_ID_PREFIX) :])
                if frame_id.startswith(FRAME_ID_PREFIX)
                else -1
            )
            log.add(Arrival(arrival, stamp_to_ns(msg.header.stamp), index, len(msg.instances)))

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(InstanceMaskArray, topic, callback, qos)
        return log

    def watch_diagnostics(self) -> None:
        """Keep the latest ``/diagnostics`` values of every status, keyed by status name."""
        from diagnostic_msgs.msg import DiagnosticArray

        def callback(msg) -> None:
            with self._diag_lock:
                for status in msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    values["_received_ns"] = str(time.time_ns())
                    self.diagnostics[status.name] = values

        self.node.create_subscription(DiagnosticArray, "/diagnostics", callback, 10)

    def diagnostics_of(self, name_prefix: str) -> dict[str, str]:
        with self._diag_lock:
            for name, values in self.diagnostics.items():
                if name.startswith(name_prefix):
                    return dict(values)
        return {}

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        """Call service ``name`` (waiting for it to appear); raises TimeoutError."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} did not appear within {timeout:.0f} s")
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            if not done.wait(timeout):
                raise TimeoutError(f"no response from {name} within {timeout:.0f} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(5)
        from vos_ros.ros.teardown import shutdown_executor

        shutdown_executor(self.executor)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, children: list[Child] = ()
) -> None:
    """Poll ``predicate`` until true; raise RuntimeError naming ``what`` (with child logs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for child in children:
            if not child.alive():
                raise RuntimeError(
                    f"{child.name} exited (code {child.process.returncode}) while waiting for "
                    f"{what}:\n{child.log_tail()}"
                )
        if time.monotonic() > deadline:
            dumped = [c.name for c in children if c.dump_stacks()]
            if dumped:
                time.sleep(1.0)  # let the stack dumps reach the logs
            tails = "\n".join(
                f"--- {c.name}:\n{c.log_tail(120 if c.name in dumped else 30)}" for c in children
            )
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(0.1)


def start_connected(
    make_child: Callable[[int], Child],
    connected: Callable[[], bool],
    children: list[Child],
    *,
    what: str,
    start_timeout: float,
    connect_timeout: float = 30.0,
    attempts: int = 3,
    progress: Callable[[str], None] = print,
) -> tuple[Child, int]:
    """Start a node with :func:`make_child` until ``connected()`` holds; returns it and the attempt.

    Why: with Fast DDS's LARGE_DATA transports a participant that joins a running graph now and
    then never connects to some of the others over TCP (docs/benchmarks.md, "Known limits"); the
    process itself runs normally. A node that logged :data:`NODE_ACTIVE_LOG` but shows no
    ``what`` within ``connect_timeout`` is stopped and started again, at most ``attempts`` times.

    :param make_child: attempt number (1, 2, ...) -> a freshly started :class:`Child`.
    :raises RuntimeError: as :func:`wait_for`, when the last attempt fails.
    """
    for attempt in range(1, attempts + 1):
        child = make_child(attempt)
        children.append(child)
        wait_for(
            lambda log=child.log: NODE_ACTIVE_LOG in log(),
            start_timeout,
            f"{child.name} active",
            children,
        )
        try:
            wait_for(connected, connect_timeout, what, children)
            return child, attempt
        except RuntimeError as exc:
            if attempt == attempts or not child.alive():
                raise
            progress(
                f"{child.name} active but no {what} after {connect_timeout:.0f} s "
                f"(attempt {attempt}): starting it again\n{str(exc).splitlines()[0]}"
            )
            child.stop()
            children.remove(child)
    raise AssertionError("unreachable")


def node_children(
    command: list[str], env: dict[str, str], log_dir: Path, name: str = "vos_node"
) -> Callable[[int], Child]:
    """:func:`start_connected`'s ``make_child`` for ``command``: attempt n logs to
    ``<name>.log``, later attempts to ``<name>_<n>.log``."""

    def make(attempt: int) -> Child:
        label = name if attempt == 1 else f"{name}_{attempt}"
        return Child(label, command, env, log_dir, dumps_stacks=True)

    return make


def label_image_msg(labels: np.ndarray) -> Any:
    """A mono8 / mono16 ``sensor_msgs/Image`` of a label image."""
    from std_msgs.msg import Header

    from vos_ros.ros.result_msgs import image_msg

    if int(labels.max(initial=0)) <= 255:
        return image_msg(Header(), labels.astype(np.uint8), "mono8")
    return image_msg(Header(), labels.astype(np.uint16), "mono16")


def ns_to_time(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)
