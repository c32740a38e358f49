"""The soak's RSS growth: a leak is found, the level of the current target count is not one."""

from __future__ import annotations

import pytest

from vos_ros.benchmark.soak import rss_growth

# RSS of the node with 1, 2 and 3 targets (MiB): buffers come and go with the targets.
LEVEL = {1: 430.0, 2: 436.0, 3: 442.0}


def _samples(targets_at, leak_per_sample: float = 0.0) -> list[dict]:
    return [
        {"t_s": float(i), "targets": n, "rss_mib": LEVEL[n] + leak_per_sample * i}
        for i, n in enumerate(targets_at)
    ]


def test_more_targets_at_the_end_is_not_growth() -> None:
    # Mostly 1 target early, mostly 3 late: the plain first-vs-last median would say +2.8 %.
    targets = [1] * 40 + [2] * 10 + [3] * 10 + [1] * 20 + [2] * 20 + [1] * 10 + [3] * 40
    result = rss_growth(_samples(targets))
    assert result["rss_growth"] == pytest.approx(0.0, abs=1e-9)


def test_a_leak_raises_every_level_and_is_reported() -> None:
    cycle = [1] * 5 + [2] * 5 + [3] * 5 + [2] * 5
    samples = _samples(cycle * 9, leak_per_sample=0.1)  # +18 MiB over 180 samples
    result = rss_growth(samples)
    assert 0.025 < result["rss_growth"] < 0.05
    assert result["rss_growth_targets"] in LEVEL


def test_without_a_common_target_count_all_samples_are_compared() -> None:
    samples = _samples([1] * 30 + [3] * 30)
    result = rss_growth(samples)
    assert "rss_growth_targets" not in result
    assert result["rss_growth"] == pytest.approx(LEVEL[3] / LEVEL[1] - 1.0)


def test_rss_parts_add_up_to_vmrss() -> None:
    import os

    from vos_ros.benchmark.ros_procs import rss_kib, rss_parts_kib

    parts = rss_parts_kib(os.getpid())
    assert set(parts) == {"anon", "file", "shmem"}
    assert parts["anon"] > 0 and parts["file"] > 0
    # two reads of a live process: equal up to the pages touched in between
    assert abs(sum(parts.values()) - rss_kib(os.getpid())) < 4096
    assert rss_parts_kib(2**22 + 12345) == {}  # no such process


def test_a_step_in_file_backed_pages_is_told_apart_from_the_heap() -> None:
    from vos_ros.benchmark.soak import analyze

    samples = []
    for i in range(120):
        n = [1, 2, 3, 2][(i // 5) % 4]
        anon = 300.0 + 3.0 * n
        files = 120.0 + (12.0 if i >= 70 else 0.0)  # a library path paged in once, at 70 s
        samples.append(
            {
                "t_s": float(i),
                "targets": n,
                "rss_mib": anon + files,
                "rss_anon_mib": anon,
                "rss_file_mib": files,
            }
        )
    kinds = analyze(samples, None, 120.0, {}, 0)["rss_by_kind"]
    assert kinds["anon"]["growth_mib"] == pytest.approx(0.0)
    assert kinds["file"]["growth_mib"] == pytest.approx(12.0)


def test_anonymous_memory_by_mapping_finds_the_main_heap() -> None:
    import os

    import numpy as np

    from vos_ros.benchmark.ros_procs import anon_by_mapping_kib, rss_parts_kib

    big = np.ones(64 << 20, np.uint8)  # above the mmap threshold: its own anonymous mapping
    parts = anon_by_mapping_kib(os.getpid())
    assert set(parts) == {"main_heap", "thread_arenas", "other_mmap"}
    assert parts["main_heap"] > 0
    assert parts["other_mmap"] >= big.nbytes // 1024
    assert sum(parts.values()) <= rss_parts_kib(os.getpid())["anon"] + 4096
    assert anon_by_mapping_kib(2**22 + 12345) == {}


def test_intake_loss_counts_only_the_frames_sent_while_the_soak_ran(tmp_path) -> None:
    from vos_ros.benchmark.ros_procs import player_progress, published_at
    from vos_ros.benchmark.soak import intake_loss

    # The player ran 10 s at 30 Hz before the node did; then the node took 27 of every 30 frames.
    log = tmp_path / "player.log"
    lines = [f"progress {t * 10**9} ns {30 * t} frames" for t in range(1, 31)]
    log.write_text("playing 60 frames back and forth at 30.0 Hz\n" + "\n".join(lines) + "\n")
    progress = player_progress(log)
    assert progress[0] == (10**9, 30) and len(progress) == 30
    assert published_at(progress, int(2.5e9)) == pytest.approx(75.0)
    assert published_at(progress, 0) is None and published_at(progress, 31 * 10**9) is None
    samples = [
        {"diag_ns": (10 + k) * 10**9 + 5 * 10**8, "received": 27 * k + 1} for k in range(1, 20)
    ]
    samples.insert(0, {"diag_ns": 0, "received": 0})  # before any diagnostics: left out
    result = intake_loss(samples, progress)
    assert result["window_frames_sent"] == 30 * 18 and result["window_frames_received"] == 27 * 18
    assert result["input_loss"] == pytest.approx(0.1)
    assert intake_loss(samples[:2], progress) == {}  # one pair is no window


def test_smaps_reads_are_timed_and_the_outputs_in_flight_compared() -> None:
    from vos_ros.benchmark.ros_procs import Arrival
    from vos_ros.benchmark.soak import smaps_read_cost

    ms = 1_000_000
    # reads at 1000-1004 ms and 1980-1983 ms; outputs published every 33 ms, 10 ms in flight,
    # 20 ms for the two whose flight covers a read
    samples = [{"t_s": 1.0, "smaps_read_ns": [1000 * ms, 1004 * ms]}, {"t_s": 2.0},
               {"t_s": 3.0, "smaps_read_ns": [1980 * ms, 1983 * ms]}]  # fmt: skip
    arrivals = []
    for k in range(90):
        stamp = k * 33 * ms
        hit = stamp <= 1004 * ms < stamp + 20 * ms or stamp <= 1983 * ms < stamp + 20 * ms
        arrivals.append(Arrival(stamp + (20 if hit else 10) * ms, stamp, k, 1))
    cost = smaps_read_cost(samples, arrivals)
    assert cost["reads"] == 2
    assert cost["read_ms"]["median"] == pytest.approx(3.5)
    assert cost["outputs_in_flight"] == 2
    assert cost["latency_in_flight_ms"]["median"] == pytest.approx(20.0)
    assert cost["latency_other_ms"]["median"] == pytest.approx(10.0)
    assert smaps_read_cost([{"t_s": 1.0}], arrivals) == {}


def test_the_soak_report_names_the_smaps_read_cost() -> None:
    from vos_ros.benchmark.soak import soak_block
    from vos_ros.benchmark.stats import summarize

    analysis = {
        "warmup_s": 60.0,
        "smaps_read": {
            "reads": 108,
            "read_ms": summarize([3.0, 4.0]),
            "outputs_in_flight": 110,
            "latency_in_flight_ms": summarize([20.0] * 3),
            "latency_other_ms": summarize([10.0] * 3),
        },
    }
    result = {"size": "854x480", "rate_hz": 30.0, "minutes": 10.0, "change_every_s": 5.0,
              "events": [], "analysis": analysis}  # fmt: skip
    line = next(x for x in soak_block(result).splitlines() if "smaps" in x)
    assert "3.5 ms median, 4.0 ms max" in line and "110 outputs in flight" in line
    assert "latency median 20.0 ms" in line and "against 10.0 ms" in line
