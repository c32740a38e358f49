"""The node tests' wait for a node: a node process that runs but is never seen is started again."""

from __future__ import annotations

import sys

import pytest
from ros_harness import ManagedProcess, RosClient, isolated_env, require_ros

require_ros()

# Stands in for a node that never connects on its first start: the first start only sleeps, a
# later one (its marker file exists) brings up a lifecycle node with its get_state service.
CONNECTS_ON_SECOND_START = """
import sys, time
from pathlib import Path
marker = Path(sys.argv[1])
if not marker.exists():
    marker.touch()
    while True:
        time.sleep(0.05)
import rclpy
from rclpy.lifecycle import LifecycleNode
rclpy.init()
node = LifecycleNode("stand_in")
rclpy.spin(node)
"""


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_a_node_never_seen_is_started_again(tmp_path) -> None:
    env = isolated_env()
    command = [sys.executable, "-c", CONNECTS_ON_SECOND_START, str(tmp_path / "started")]
    process = ManagedProcess(command, env, tmp_path / "stand_in.log")
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            assert ros.wait_for_node(process, "/stand_in", connect_timeout=3.0) == 2
            assert ros.lifecycle_state("/stand_in") == "unconfigured"
            process.restart()  # the marker stays: every start from now on has the node
            with pytest.raises(pytest.fail.Exception, match="not seen 3 s after each of 3"):
                ros.wait_for_node(process, "/missing", connect_timeout=3.0)
    finally:
        process.stop()
    assert (tmp_path / "stand_in_2.log").exists()
