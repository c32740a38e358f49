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
