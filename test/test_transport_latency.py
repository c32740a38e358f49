"""``python -m vos_ros.benchmark.transport_latency``: frames cross two processes with each
transport setting, and the table reports what was measured (docs/benchmarks.md, "Unfragmented
frames")."""

from __future__ import annotations

import json
from pathlib import Path

from ros_harness import require_ros

from vos_ros.benchmark.transport_latency import DEFAULT, main, noise_clip, resolve, table
from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV


def test_default_means_the_launch_files_setting():
    assert resolve(DEFAULT) == FASTDDS_TRANSPORT_ENV[1]
    assert resolve("LARGE_DATA") == "LARGE_DATA"
    clip = noise_clip(64, 48, frames=3)
    assert clip.frames.shape == (3, 48, 64, 3) and clip.labels.shape == (3, 48, 64)


def test_table_takes_the_median_of_the_rounds_and_shows_failed_cases():
    def record(round_: int, median: float | None, frames: int = 300) -> dict:
        latency = {"median": median, "p95": median + 1} if median is not None else None
        return {
            "round": round_, "transports": "LARGE_DATA", "publisher_transports": "LARGE_DATA",
            "size": "854x480", "megabytes": 1.23, "frames": frames, "expected_frames": 300,
            **({"latency_ms": latency} if latency else {}),
        }  # fmt: skip

    text = table({"records": [record(0, 4.0), record(1, 3.0), record(2, 5.0)]})
    assert "| 854x480 | 1.23 | 300/300/300 of 300 | 4.00 [4.00, 3.00, 5.00] | 5.00 |" in text
    failed = table({"records": [record(0, None, frames=0)]})
    assert "| 0 | – | – |" in failed


def test_frames_cross_processes_with_both_settings(tmp_path, capsys):
    require_ros()
    out = tmp_path / "transport.json"
    # Fast DDS sizes its socket buffers to max_msg_size: stay within the kernel's limits
    limits = [int(Path(f"/proc/sys/net/core/{n}_max").read_text()) for n in ("rmem", "wmem")]
    whole = "LARGE_DATA?max_msg_size=" + ("2MB" if min(limits) >= 2_000_000 else "60KB")
    args = ["--sizes", "320x240", "--transports", f"{DEFAULT},{whole}", "--rounds", "1",
            "--seconds", "1", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    records = json.loads(out.read_text())["records"]
    assert [r["transports"] for r in records] == [FASTDDS_TRANSPORT_ENV[1], whole]
    for r in records:
        # best effort on one host: nearly every frame of the measured second arrives
        assert r["frames"] >= 0.8 * r["expected_frames"]
        assert 0 < r["latency_ms"]["median"] < 1000
    assert "| `LARGE_DATA` | `LARGE_DATA` | 320x240 |" in capsys.readouterr().out
