"""Overload across processes: a 60 Hz camera feeding an engine that needs ~30 ms per frame.

The node must keep working on the newest frame: end-to-end latency (camera stamp to output
received by a subscriber in another process, 95th percentile) stays below twice the engine's own
per-frame time (95th percentile), and the frames it could not take are counted as dropped on
/diagnostics.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_harness import RosClient, isolated_env, node_process, player_process, require_ros

require_ros()

NODE = "/vos_node"
RATE_HZ = 60.0
SECONDS = 8


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_latency_stays_bounded_and_drops_are_reported(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, RegionOfInterest

    from vos_ros.ros.diagnostics import values_of
    from vos_ros.srv import AddObjects

    env = isolated_env()
    # The "medium" optical-flow preset makes the engine slower than the 60 Hz input on this
    # machine class (about 30 ms per VGA frame on a 2-core CPU).
    node = node_process(tmp_path, env, parameters={"engine.flow_preset": "medium"})
    player = None
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            ros.spin_until(
                lambda: ros.lifecycle_state(NODE) == "active", 60.0, "node active", node.log()
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
            ros.spin_until(lambda: bool(latencies), 60.0, "first output", node.log())
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
    # Same percentile on both sides: on a shared 2-core machine the engine's own time varies
    # (its p95 is about twice its mean), and a queue would push latency far beyond either.
    engine_p95 = float(status["engine_p95_ms"])
    assert p95 < 2.0 * engine_p95, f"latency p95 {p95:.1f} ms >= 2 x engine p95 {engine_p95:.1f} ms"
    assert dropped > 0
    assert received >= processed + dropped  # every frame is processed, dropped or in flight
    assert received - processed - dropped <= 2
