"""A short fault-injection soak across real processes (the long one: docs/reliability.md).

The node runs as the launch file starts it (with failing inference injected by
``vos_ros.benchmark.faulty_node``); frames include every kind of bad frame, services are called at
random. Nothing may crash, no permanent target may be lost, every service answer must be right.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ros_harness import require_ros

require_ros()

from vos_ros.benchmark.fault_soak import (  # noqa: E402
    BAD_FRAME_KINDS,
    _rss_growth,
    fault_soak_block,
    run_fault_soak,
)


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_short_soak_with_faults_keeps_the_node_and_its_targets(tmp_path):
    result = run_fault_soak(
        seconds=15.0,
        rate=10.0,
        size=(160, 120),
        bad_every=3,
        backend_error_every=6,
        service_hz=4.0,
        log_dir=tmp_path,
        progress=lambda text: None,
    )
    summary = {k: v for k, v in result.items() if k not in ("samples", "set_initial_mask")}
    assert not result.get("error"), summary
    assert result["crashes"] == 0 and result["node_exit_code"] == 0, summary
    assert result["targets_lost"] == 0 and result["final_tracked"][:2] == [1, 2], summary
    # RSS every second and the stamp-to-output latency are recorded and reported; RSS growth
    # needs the 20 s warm-up, so this 15 s run leaves it out rather than guess.
    samples = result["samples"]
    assert 12 <= len(samples) <= 16, samples  # one a second
    times = [s["t_s"] for s in samples]
    assert times == sorted(times) and 0.5 <= times[0] <= 2.0 and times[-1] <= 15.5, times
    rss = np.array([s["rss_mib"] for s in samples])
    assert (rss > 20).all() and (rss < 4096).all(), rss  # a real process's RSS, in MiB
    assert rss.max() < 1.5 * rss.min(), rss  # no runaway growth within the run
    assert result["rss"] == _rss_growth(samples) == {}, result["rss"]
    latency = result["latency_ms"]
    assert latency["n"] > 20, latency
    figures = [latency[k] for k in ("min", "p5", "median", "p95", "max")]
    assert all(math.isfinite(v) for v in figures) and figures == sorted(figures), latency
    assert latency["median"] > 0 and latency["p95"] < 10_000, latency
    block = fault_soak_block(result)
    assert f"median {latency['median']:.1f} ms, p95 {latency['p95']:.1f} ms" in block, block
    assert "RSS" not in block, block
    assert result["outputs_checked"] > 20 and result["outputs_missing_a_target"] == 0, summary
    assert result["wrong_service_answers"] == 0 and result["internal_service_errors"] == 0, summary
    assert result["unexpected_errors_in_log"] == 0 and result["tracebacks_in_log"] == 0, summary
    assert result["injected_failures"] and result["injected_failures"] > 0, summary
    assert all(result["bad_frames_sent"][kind] > 0 for kind in BAD_FRAME_KINDS), summary
    assert result["resolution_notices"] >= 1, summary  # tracked through, announced
    assert result["diagnostics"]["error_periods"] >= 1, summary
    # Service calls must not stall image intake (rclpy's MultiThreadedExecutor lost runs of
    # frames after them); the few frames lost are ones replaced while a callback ran.
    published, received = result["frames_published"], result["frames_received"]
    print(f"frames published {published}, received {received}")
    assert received >= 0.9 * published, summary
    refused = sum(o["refused"] for o in result["service_calls"].values())
    assert refused > 5, summary


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_target_changes_do_not_stall_image_intake(tmp_path):
    """VGA frames at 30 Hz with a target added or removed every 1.5 s: the node must keep taking
    frames. With rclpy's MultiThreadedExecutor the node lost a third of them here (runs of up to
    2 s after a service call); with the single-threaded one 5-8 % while the soak runs. Counted
    from the player's start it was 14-15 %, and 15.01 % once in CI: that figure includes the
    frames sent while the node started (slower, and sometimes restarted, on a loaded machine),
    which says nothing about the node's intake, so the bound applies to the soak's window."""
    from vos_ros.benchmark.soak import run_soak

    result = run_soak(
        "onnxruntime",
        str(Path(__file__).resolve().parents[1] / "models" / "protonet-s"),
        (854, 480),
        minutes=0.35,
        rate=30.0,
        change_every=1.5,
        log_dir=tmp_path,
        progress=lambda text: None,
    )
    analysis = result["analysis"]
    summary = {k: v for k, v in analysis.items() if k != "windows"}
    assert not result.get("error"), result["error"]
    events = result["events"]
    assert len(events) >= 10 and all(e["success"] for e in events), events
    assert analysis["frames_published"] > 500, summary
    assert analysis["window_frames_sent"] > 400, summary
    print(f"input loss while the soak ran {analysis['input_loss']:.3f}", summary)
    assert analysis["input_loss"] < 0.15, summary
