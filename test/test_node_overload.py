"""Overload across processes: a 60 Hz camera feeding an engine that needs 40 ms per frame.

The node must keep working on the newest frame: its own latency (receipt to publish, 95th
percentile, from /diagnostics) stays below twice the engine's per-frame time (95th percentile);
end-to-end latency (camera stamp to output received by a subscriber in another process) stays
below that plus the two DDS hops; the frames it could not take are counted as dropped on
/diagnostics.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ros_harness import ManagedProcess, RosClient, isolated_env, player_process, require_ros

require_ros()

NODE = "/vos_node"
RATE_HZ = 60.0
SECONDS = 8
MIN_STEP_MS = 40.0  # the engine's time per frame, whatever the machine: 2.4 input frames
SLOW_NODE = Path(__file__).with_name("slow_node.py")
TRANSPORT_ALLOWANCE_MS = 15.0  # two DDS hops of the latency, with room for a loaded machine


def _slow_node_process(tmp_path: Path, env: dict[str, str]) -> ManagedProcess:
    """The node as the launch file starts it, with every engine step padded to MIN_STEP_MS."""
    from vos_ros.ros.launch_config import node_command

    command = node_command(None, tmp_path / "node_params", python=sys.executable)
    ros_args = command[command.index("--ros-args") :]
    return ManagedProcess(
        [sys.executable, str(SLOW_NODE), "--min-step-ms", str(MIN_STEP_MS), "--", *ros_args],
        env,
        tmp_path / "node.log",
    )


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_latency_stays_bounded_and_drops_are_reported(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, RegionOfInterest

    from vos_ros.ros.diagnostics import values_of
    from vos_ros.srv import AddObjects

    env = isolated_env()
    # A real engine's speed depends on the machine (13-30 ms per VGA frame on 2-core CPUs, so
    # on a quiet one it keeps up with 60 Hz): the padded engine is slower than the camera always.
    node = _slow_node_process(tmp_path, env)
    player = None
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            ros.wait_for_node(node, NODE)
            ros.spin_until(
                lambda: ros.lifecycle_state(NODE) == "active", 60.0, "node active", node.log
            )
            latencies: list[tuple[float, float]] = []  # (receive time, latency ms)
            diagnostics: list[dict[str, str]] = []

            def on_label(msg: Image) -> None:
                now = time.time()
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                latencies.append((now, (now - stamp) * 1e3))

            ros.node.create_subscription(Image, f"{NODE}/label_image", on_label, 10)
            ros.node.create_subscription(
                DiagnosticArray,
                "/diagnostics",
                lambda m: diagnostics.extend(
                    values_of(s) for s in m.status if s.hardware_id == NODE
                ),
                10,
            )
            frames = int(RATE_HZ * 2)
            player = player_process(
                tmp_path, env, "--frames", str(frames), "--rate", str(RATE_HZ),
                "--loops", str(SECONDS // 2), "--wall-stamps",
            )  # fmt: skip

            def graph() -> str:  # what this process sees of the other two
                topic = "/camera/image_raw"
                return (
                    f"{topic}: {ros.node.count_publishers(topic)} publisher(s), "
                    f"{ros.node.count_subscribers(topic)} subscriber(s); {NODE}/label_image: "
                    f"{ros.node.count_publishers(NODE + '/label_image')} publisher(s)"
                )

            ros.spin_until(
                lambda: bool(latencies),
                60.0,
                "first output",
                lambda: f"{graph()}\nnode:\n{node.stacks()}\nplayer:\n{player.stacks()}",
            )
            boxes = [
                RegionOfInterest(x_offset=60, y_offset=250, width=140, height=150),
                RegionOfInterest(x_offset=400, y_offset=260, width=160, height=140),
            ]
            response = ros.call(
                AddObjects,
                f"{NODE}/add_objects",
                AddObjects.Request(boxes=boxes, class_labels=["person", "car"]),
            )
            assert response.success, response.message
            tracking_since = time.time() + 1.0  # let the first tracked frames pass
            ros.spin_until(
                lambda: not player.alive(),
                120.0,
                "end of the clip",
                lambda: f"player:\n{player.stacks()}\nnode:\n{node.stacks()}",
            )
            assert player.wait(1.0) == 0, player.log()
            ros.spin_for(2.5)  # last outputs and a diagnostics period
    finally:
        if player is not None:
            player.stop()
        node.stop()

    measured = np.array([lat for received, lat in latencies if received > tracking_since])
    status = diagnostics[-1]
    engine_ms = float(status["engine_mean_ms"])
    received = int(status["frames_received"])
    dropped = int(status["frames_dropped"])
    processed = int(status["frames_processed"])
    p95 = float(np.percentile(measured, 95))
    print(
        f"engine {engine_ms:.1f} ms/frame; end-to-end latency p50 "
        f"{np.percentile(measured, 50):.1f} ms, p95 {p95:.1f} ms over {measured.size} outputs; "
        f"received {received}, processed {processed}, dropped {dropped}; node-internal latency "
        f"p95 {status['latency_p95_ms']} ms, engine p95 {status['engine_p95_ms']} ms, "
        f"input {status['input_hz']} Hz"
    )
    assert measured.size > 50
    assert engine_ms > 1e3 / RATE_HZ, "the engine is not slower than the input: no overload"
    # With only the newest frame kept, the worst case is a frame that arrives just after the
    # engine started: it waits one engine time, takes one, and crosses DDS twice (image in,
    # result out; 4-6 ms on this machine, more under load). Same percentile on both sides: on
    # a shared 2-core machine the engine's own time varies. A queue would push latency far
    # beyond this, growing with every frame.
    engine_p95 = float(status["engine_p95_ms"])
    # The node's own part of it, without DDS: no allowance. At 60 Hz a frame waits at most about
    # one input period, so quiet runs give ~59 ms against 2 x 41 ms; with three CPU-bound
    # processes beside it on 2 cores, 114.5 ms against 2 x 83.1 ms.
    node_p95 = float(status["latency_p95_ms"])
    assert node_p95 < 2.0 * engine_p95, (
        f"node latency p95 {node_p95:.1f} ms >= 2 x engine p95 {engine_p95:.1f} ms"
    )
    bound = 2.0 * engine_p95 + TRANSPORT_ALLOWANCE_MS
    assert p95 < bound, (
        f"latency p95 {p95:.1f} ms >= 2 x engine p95 {engine_p95:.1f} ms + "
        f"{TRANSPORT_ALLOWANCE_MS:.0f} ms transport"
    )
    assert dropped > 0
    assert received >= processed + dropped  # every frame is processed, dropped or in flight
    assert received - processed - dropped <= 2
