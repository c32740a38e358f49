"""Helpers for the node tests: real processes, an isolated DDS domain, bounded waits.

Every test gets its own random ``ROS_DOMAIN_ID`` (10..200) so parallel runs and other ROS
programs on the machine cannot cross-talk, and ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` so VGA
images survive best-effort QoS between processes. Processes are killed when a test fails.
Each test waits for its node with :meth:`RosClient.wait_for_node`: a node that runs but is
never seen is started again (the LARGE_DATA connect failure of docs/benchmarks.md, "Known limits").
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vos_ros.benchmark.ros_procs import Child
from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
PLAYER = Path(__file__).with_name("clip_player.py")


def require_ros() -> None:
    """Skip the calling test module unless rclpy and the generated interfaces import."""
    pytest.importorskip("rclpy")
    try:
        import vos_ros.msg
        import vos_ros.srv  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"generated vos_ros interfaces are not built ({exc}); run scripts/setup.sh")


def isolated_env(domain_id: int | None = None) -> dict[str, str]:
    """The benchmarks' isolated environment (fresh ROS domain, LARGE_DATA transport), with one
    OpenMP thread per child unless the caller set it."""
    from vos_ros.benchmark.ros_procs import isolated_env as bench_env

    env = bench_env(domain_id)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class ManagedProcess(Child):
    """A node or player process of the tests (:class:`vos_ros.benchmark.ros_procs.Child`): run
    from the repository root, log at ``log_path``, stacks printed on SIGUSR1."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        if log_path.suffix != ".log":
            raise ValueError(f"log files end in .log: {log_path}")
        super().__init__(
            log_path.stem, command, env, log_path.parent, dumps_stacks=True, cwd=REPO_ROOT
        )


def node_process(
    tmp_path: Path,
    env: dict[str, str],
    launch_overrides: dict[str, str] | None = None,
    parameters: dict[str, object] | None = None,
    name: str = "node",
) -> ManagedProcess:
    """Start ``vos_node`` exactly as the launch file would, plus extra (typed) parameters."""
    from vos_ros.ros.launch_config import node_command

    command = node_command(
        launch_overrides, tmp_path / f"{name}_params", parameters, python=sys.executable
    )
    return ManagedProcess(command, env, tmp_path / f"{name}.log")


def player_process(tmp_path: Path, env: dict[str, str], *args: str) -> ManagedProcess:
    """Start ``test/clip_player.py`` with ``args`` (see its --help)."""
    return ManagedProcess([sys.executable, str(PLAYER), *args], env, tmp_path / "player.log")


_ABANDONED_CLIENTS: list[RosClient] = []

# The text of a failed wait, or a function that makes it when the wait fails (so child logs
# show what happened during the wait).
FailText = str | Callable[[], str]


class RosClient:
    """An rclpy context + node + executor in the test process, on the test's domain."""

    def __init__(self, domain_id: int, name: str = "test_client") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        # Fast DDS reads the transport when the participant is created: this process must use
        # the same LARGE_DATA transport as the node to discover it.
        key, value = FASTDDS_TRANSPORT_ENV
        os.environ[key] = value
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        what: str,
        on_fail: FailText = "",
    ) -> None:
        """Process callbacks until ``predicate()`` holds; fail the test after ``timeout`` s
        with ``on_fail``'s text."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                text = on_fail() if callable(on_fail) else on_fail
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{text}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_node(
        self,
        process: Child,
        node_name: str,
        *,
        connect_timeout: float = 30.0,
        attempts: int = 3,
    ) -> int:
        """Wait until this client sees ``node_name``'s ``get_state`` service; returns the start
        that it came from (1, 2, ...).

        Why: with LARGE_DATA a participant now and then never connects to the running ones over
        TCP (docs/benchmarks.md, "Known limits"), and the node stays invisible although it runs.
        A node process still running but unseen ``connect_timeout`` s after its start is
        started again (:meth:`Child.restart`, a new log), at most ``attempts`` starts, as the
        benchmarks do (:func:`vos_ros.benchmark.ros_procs.start_connected`).
        """
        from lifecycle_msgs.srv import GetState

        client = self.node.create_client(GetState, f"{node_name}/get_state")

        def seen_in_time() -> bool:
            while not client.service_is_ready():
                if not process.alive():
                    pytest.fail(
                        f"{process.name} exited (code {process.process.returncode}) before "
                        f"{node_name} was seen:\n{process.log()}"
                    )
                if time.monotonic() - process.started > connect_timeout:
                    return False
                self.executor.spin_once(timeout_sec=0.05)
            return True

        try:
            while not seen_in_time():
                if process.starts >= attempts:
                    pytest.fail(
                        f"{node_name} not seen {connect_timeout:.0f} s after each of "
                        f"{process.starts} starts\n{process.stacks()}"
                    )
                print(
                    f"{node_name} running but not seen after {connect_timeout:.0f} s "
                    f"(start {process.starts}): starting it again",
                    file=sys.stderr,
                )
                process.restart()
            return process.starts
        finally:
            self.node.destroy_client(client)

    def call(self, srv_type, name: str, request, timeout: float = 20.0, on_fail: FailText = ""):
        """Call a service (waiting for it to appear) and return the response."""
        client = self.node.create_client(srv_type, name)
        try:
            self.spin_until(client.service_is_ready, timeout, f"service {name}", on_fail)
            future = client.call_async(request)
            self.spin_until(future.done, timeout, f"response of {name}", on_fail)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def lifecycle_state(self, node_name: str, timeout: float = 20.0, on_fail: FailText = "") -> str:
        from lifecycle_msgs.srv import GetState

        response = self.call(
            GetState, f"{node_name}/get_state", GetState.Request(), timeout, on_fail
        )
        return response.current_state.label

    def change_state(self, node_name: str, transition_id: int, on_fail: FailText = "") -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{node_name}/change_state", request, 60.0, on_fail).success

    def close(self, timeout: float = 20.0) -> None:
        """Shut the client down. Destroying a Fast DDS participant now and then hangs inside
        rmw (the camera players met it too; cause unknown): the teardown runs on a daemon
        thread, and after ``timeout`` the test goes on without it (its processes are stopped
        by their own ``finally``); the hung client is kept referenced so nothing frees it."""
        import rclpy

        from vos_ros.ros.teardown import shutdown_executor

        def teardown() -> None:
            shutdown_executor(self.executor)
            self.node.destroy_node()
            rclpy.shutdown(context=self.context)

        worker = threading.Thread(target=teardown, name="ros-client-teardown", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _ABANDONED_CLIENTS.append(self)
            print(
                f"RosClient teardown still hanging after {timeout:.0f} s; left behind",
                file=sys.stderr,
            )

    def __enter__(self) -> RosClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
