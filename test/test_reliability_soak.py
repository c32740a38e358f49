"""A short fault-injection soak across real processes (the long one: docs/reliability.md).

The node runs as the launch file starts it (with failing inference injected by
``vos_ros.benchmark.faulty_node``); frames include every kind of bad frame, services are called at
random. Nothing may crash, no permanent target may be lost, every service answer must be right.
"""

from __future__ import annotations

import pytest
from ros_harness import require_ros

require_ros()

from vos_ros.benchmark.fault_soak import BAD_FRAME_KINDS, run_fault_soak  # noqa: E402


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
    assert result["outputs_checked"] > 20 and result["outputs_missing_a_target"] == 0, summary
    assert result["wrong_service_answers"] == 0 and result["internal_service_errors"] == 0, summary
    assert result["unexpected_errors_in_log"] == 0 and result["tracebacks_in_log"] == 0, summary
    assert result["injected_failures"] and result["injected_failures"] > 0, summary
    assert all(result["bad_frames_sent"][kind] > 0 for kind in BAD_FRAME_KINDS), summary
    assert result["resolution_notices"] >= 1, summary  # tracked through, announced
    assert result["diagnostics"]["error_periods"] >= 1, summary
    refused = sum(o["refused"] for o in result["service_calls"].values())
    assert refused > 5, summary
