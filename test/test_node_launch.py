"""The launch file and the plain-Python start of the node share one wiring.

``launch/vos.launch.py`` takes its arguments from ``vos_ros.ros.launch_config``; where launch_ros
is importable (ROS distros) the first test loads the launch description and compares. Everywhere,
the second test starts two namespaced nodes (two cameras) with ``node_command`` (the launch file's
parameters, parameter file and remappings) and checks the result from another process: topics,
parameters, use_sim_time and stamps.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ros_harness import RosClient, isolated_env, node_process, ns_to_time, require_ros, stamp_ns

from vos_ros.engine.model_paths import DEFAULT_MODEL
from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV, LAUNCH_ARGUMENTS, node_command

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "vos.launch.py"


def test_launch_file_reads_its_arguments_from_launch_config():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "vos_ros.ros.launch_config"
        for alias in node.names
    }
    assert {"LAUNCH_ARGUMENTS", "FASTDDS_TRANSPORT_ENV"} <= imported
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and hasattr(n.func, "id")}
    assert "eval" not in calls and "exec" not in calls


def test_launch_description_matches_launch_config(monkeypatch):
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (no PyPI wheel; ROS distros ship it)")
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable

    key, _ = FASTDDS_TRANSPORT_ENV
    monkeypatch.delenv(key, raising=False)
    spec = importlib.util.spec_from_file_location("vos_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {a.name: a for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert list(declared) == [arg.name for arg in LAUNCH_ARGUMENTS]
    for arg in LAUNCH_ARGUMENTS:
        assert declared[arg.name].description == arg.description
        default = "".join(s.perform(None) for s in declared[arg.name].default_value)
        assert default == arg.default
    assert any(isinstance(a, SetEnvironmentVariable) for a in description.entities)


def test_node_command_mirrors_the_launch_file(tmp_path):
    command = node_command({"namespace": "front", "image": "/front/image_raw"}, tmp_path)
    assert command[1:3] == ["-m", "vos_ros.ros.node"]
    assert "__ns:=/front" in command
    assert "image:=/front/image_raw" in command
    assert "image/compressed:=/front/image_raw/compressed" in command
    files = [command[i + 1] for i, part in enumerate(command) if part == "--params-file"]
    assert files[0].endswith("config/vos.yaml") and Path(files[0]).is_file()
    assert "use_sim_time: false" in Path(files[1]).read_text()
    with pytest.raises(ValueError, match="use_sim_time"):
        node_command({"use_sim_time": "yes"}, tmp_path)
    with pytest.raises(ValueError, match="unknown launch argument"):
        node_command({"camera": "x"}, tmp_path)


@pytest.mark.ros
@pytest.mark.timeout(240)
def test_two_cameras_two_namespaced_nodes(tmp_path):
    require_ros()
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python
    from rclpy.qos import qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from vos_ros.ros.image_msgs import array_to_msg

    env = isolated_env()
    nodes = {
        ns: node_process(
            tmp_path,
            env,
            {"namespace": ns, "image": f"/{ns}/color/image_raw", "use_sim_time": sim},
            name=ns,
        )
        for ns, sim in (("front", "true"), ("rear", "false"))
    }
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:

            def logs() -> str:
                return "\n".join(n.log() for n in nodes.values())

            for ns, node in nodes.items():
                ros.wait_for_node(node, f"/{ns}/vos_node")
            clock = ros.node.create_publisher(Clock, "/clock", 10)
            sim_now = ns_to_time(1234 * 1_000_000_000)
            ros.node.create_timer(0.05, lambda: clock.publish(Clock(clock=sim_now)))
            for ns in nodes:
                name = f"/{ns}/vos_node"
                ros.spin_until(
                    lambda name=name: ros.lifecycle_state(name) == "active", 60.0, name, logs
                )
                ros.spin_until(
                    lambda ns=ns: ros.node.count_subscribers(f"/{ns}/color/image_raw") == 1,
                    20.0,
                    f"{ns} subscription",
                    logs,
                )
                response = ros.call(
                    GetParameters,
                    f"{name}/get_parameters",
                    GetParameters.Request(
                        names=["model", "backend", "use_sim_time", "frame_buffer.size"]
                    ),
                )
                values = [parameter_value_to_python(v) for v in response.values]
                assert values[:2] == [DEFAULT_MODEL, "auto"]
                assert values[2] is (ns == "front")
                assert values[3] == 30  # from config/vos.yaml

            # outputs copy the input header; the sim-time node stamps diagnostics from /clock
            from diagnostic_msgs.msg import DiagnosticArray

            outputs: dict[str, Image] = {}
            diagnostics: dict[str, int] = {}
            for ns in nodes:
                ros.node.create_subscription(
                    Image,
                    f"/{ns}/vos_node/label_image",
                    lambda m, ns=ns: outputs.__setitem__(ns, m),
                    10,
                )
            ros.node.create_subscription(
                DiagnosticArray,
                "/diagnostics",
                lambda m: diagnostics.update(
                    {s.hardware_id: stamp_ns(m.header.stamp) for s in m.status}
                ),
                10,
            )
            frame = array_to_msg(np.full((48, 64, 3), 90, np.uint8), "rgb8")
            frame.header.frame_id = "cam"
            frame.header.stamp = ns_to_time(77_000_000_123)
            cameras = {
                ns: ros.node.create_publisher(
                    Image, f"/{ns}/color/image_raw", qos_profile_sensor_data
                )
                for ns in nodes
            }

            def all_outputs() -> bool:
                for publisher in cameras.values():
                    publisher.publish(frame)
                return len(outputs) == len(nodes)

            ros.spin_until(all_outputs, 30.0, "outputs of both nodes", logs)
            for message in outputs.values():
                assert stamp_ns(message.header.stamp) == 77_000_000_123
                assert message.header.frame_id == "cam"
            ros.spin_until(
                lambda: (
                    diagnostics.get("/front/vos_node") == 1234 * 1_000_000_000
                    and "/rear/vos_node" in diagnostics
                ),
                20.0,
                "sim-time diagnostics stamp",
                logs,
            )
            assert abs(diagnostics["/rear/vos_node"] / 1e9 - 1234) > 1e6  # wall clock
    finally:
        exit_codes = [n.stop() for n in nodes.values()]
    assert exit_codes == [0, 0], "\n".join(n.log() for n in nodes.values())
