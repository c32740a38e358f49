"""The benchmark's child-process helpers: a wait that times out shows where the child hangs."""

from __future__ import annotations

import sys

import pytest

from vos_ros.benchmark.ros_procs import Child, wait_for

# Like vos_node's main(): every thread's stack on SIGUSR1, then hang in a named function.
HANGING_CHILD = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)
print("ready", flush=True)
def stuck_in_here():
    while True:
        time.sleep(0.05)
stuck_in_here()
"""


def _child(tmp_path, dumps_stacks: bool) -> Child:
    child = Child(
        "hanger", [sys.executable, "-c", HANGING_CHILD], {}, tmp_path, dumps_stacks=dumps_stacks
    )
    wait_for(lambda: "ready" in child.log_tail(), 30.0, "child start", [child])
    return child


def test_timed_out_wait_shows_the_stack_of_a_child_that_dumps_stacks(tmp_path) -> None:
    child = _child(tmp_path, dumps_stacks=True)
    try:
        with pytest.raises(RuntimeError) as failure:
            wait_for(lambda: False, 0.2, "output that never comes", [child])
        assert "output that never comes" in str(failure.value)
        assert "stuck_in_here" in str(failure.value)
        assert child.alive()  # SIGUSR1 only printed the stacks
    finally:
        child.stop()


def test_a_child_without_a_stack_handler_gets_no_signal(tmp_path) -> None:
    child = _child(tmp_path, dumps_stacks=False)
    try:
        with pytest.raises(RuntimeError) as failure:
            wait_for(lambda: False, 0.2, "output that never comes", [child])
        assert "stuck_in_here" not in str(failure.value)
        assert child.alive()
    finally:
        child.stop()


def test_a_wait_for_an_exit_that_never_comes_shows_the_log_and_stack(tmp_path) -> None:
    child = _child(tmp_path, dumps_stacks=True)
    try:
        with pytest.raises(RuntimeError) as failure:
            child.wait(0.2)
        text = str(failure.value)
        assert "hanger still running 0.2 s later" in text
        assert "ready" in text  # its log
        assert "stuck_in_here" in text  # where it hangs
        assert child.alive()
    finally:
        child.stop()


def test_a_wait_returns_the_exit_code(tmp_path) -> None:
    child = Child("quick", [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path)
    assert child.wait(30.0) == 3
    child.stop()


# Logs what the node logs once active, then idles like a node that never got a frame.
ACTIVE_CHILD = """
import sys, time
print("[INFO] [vos_node]: active: listening on /bench/image_raw", flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_node_that_never_connects_is_started_again(tmp_path) -> None:
    from vos_ros.benchmark.ros_procs import start_connected

    started: list[Child] = []

    def make(attempt: int) -> Child:
        child = Child(f"node_{attempt}", [sys.executable, "-c", ACTIVE_CHILD], {}, tmp_path)
        started.append(child)
        return child

    children: list[Child] = []
    try:
        # connected from the second attempt on: the first node is stopped and replaced
        child, attempt = start_connected(
            make,
            lambda: len(started) >= 2,
            children,
            what="output",
            start_timeout=30.0,
            connect_timeout=0.5,
            progress=lambda _: None,
        )
        assert attempt == 2 and child is started[1] and children == [child]
        assert not started[0].alive()
        with pytest.raises(RuntimeError, match="waiting for output"):
            start_connected(
                make,
                lambda: False,
                children,
                what="output",
                start_timeout=30.0,
                connect_timeout=0.2,
                attempts=2,
                progress=lambda _: None,
            )
        assert len(started) == 4
    finally:
        for child in started:
            child.stop()


def test_restart_runs_the_command_again_into_a_new_log(tmp_path) -> None:
    child = _child(tmp_path, dumps_stacks=False)
    try:
        first_pid, first_log = child.pid, child.log_path
        child.restart()
        wait_for(lambda: "ready" in child.log_tail(), 30.0, "second start", [child])
        assert child.starts == 2 and child.name == "hanger_2" and child.pid != first_pid
        assert child.log_path == tmp_path / "hanger_2.log"
        assert first_log.read_text().startswith("ready")  # the first start's log is kept
    finally:
        child.stop()
