"""The soak's RSS analysis: a leak is found, the level of the current target count is not one;
the trend over every sample sees through step activations and a few dozen samples per load."""

from __future__ import annotations

import numpy as np
import pytest

from vos_ros.benchmark.soak_rss import rss_analysis, rss_checks, rss_growth

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
    # how many samples of that target count each third held (60 samples a third)
    count = result["rss_growth_targets"]
    thirds = ((cycle * 9)[:60], (cycle * 9)[-60:])
    per_third = [sum(n == count for n in third) for third in thirds]
    assert result["rss_samples"] == per_third


def test_the_floor_ignores_step_activations_and_still_finds_a_leak() -> None:
    # A slow model: every sample lands somewhere in a step, 0 to 500 MiB of activations on top.
    cycle = [1] * 5 + [2] * 5 + [3] * 5 + [2] * 5
    samples = _samples(cycle * 9)
    spikes = [0.0, 480.0, 120.0, 300.0, 60.0, 500.0, 10.0]
    for i, sample in enumerate(samples):
        # more of the large activations late in the soak: the medians say growth
        sample["rss_mib"] += spikes[i % len(spikes)] * (1.0 if i > 120 else 0.3)
    assert rss_growth(samples)["rss_growth"] > 0.05
    assert rss_growth(samples, quantile=0.1)["rss_growth"] == pytest.approx(0.0, abs=0.01)
    leaking = _samples(cycle * 9, leak_per_sample=0.1)
    for i, sample in enumerate(leaking):
        sample["rss_mib"] += spikes[i % len(spikes)]
    assert 0.02 < rss_growth(leaking, quantile=0.1)["rss_growth"] < 0.06


def test_without_a_common_target_count_all_samples_are_compared() -> None:
    samples = _samples([1] * 30 + [3] * 30)
    result = rss_growth(samples)
    assert "rss_growth_targets" not in result
    assert result["rss_growth"] == pytest.approx(LEVEL[3] / LEVEL[1] - 1.0)
    assert result["rss_samples"] == [20, 20]


def _slow_model_samples(minutes: int, leak_per_sample: float = 0.0) -> list[dict]:
    """A model slower than the sampling: every sample lands somewhere in a step, with 0 to
    500 MiB of activations on top (seeded); targets change every 60 s (1, 2, 3, 2, ...)."""
    rng = np.random.default_rng(5)
    samples = []
    for i in range(60, 60 * minutes):
        n = [1, 2, 3, 2][(i // 60) % 4]
        spike = float(rng.choice([0.0, 10.0, 60.0, 120.0, 300.0, 480.0, 500.0]))
        rss = LEVEL[n] + spike + leak_per_sample * i
        samples.append({"t_s": float(i), "targets": n, "rss_mib": rss})
    return samples


def test_the_trend_of_every_sample_is_flat_without_a_leak() -> None:
    analysis = rss_analysis(_slow_model_samples(30))
    windows = analysis["rss_windows"]
    assert len(windows) == 6 and sum(w["samples"] for w in windows) == 60 * 29
    assert all(1.5 < w["mean_targets"] < 2.5 for w in windows)
    assert abs(analysis["rss_trend"]["median_growth"]) < 0.01
    assert abs(analysis["rss_trend"]["floor_growth"]) < 0.01
    (trend,) = [c for c in rss_checks(analysis) if c["target"].startswith("RSS trend")]
    assert trend["met"] and "6 windows of 290 to 290 samples" in trend["measured"]


def test_the_trend_finds_a_leak_the_windows_share() -> None:
    # +0.02 MiB a second: +35 MiB over the 29 minutes, about 5 % of the floor
    analysis = rss_analysis(_slow_model_samples(30, leak_per_sample=0.02))
    trend = analysis["rss_trend"]
    assert 0.03 < trend["floor_growth"] < 0.10 and 0.02 < trend["median_growth"] < 0.08
    (check,) = [c for c in rss_checks(analysis) if c["target"].startswith("RSS trend")]
    assert not check["met"]


def test_the_report_lists_the_windows_and_the_trend_check() -> None:
    from vos_ros.benchmark.soak import soak_block, soak_checks

    analysis = rss_analysis(_slow_model_samples(10))
    result = {
        "size": "854x480",
        "rate_hz": 5.0,
        "minutes": 10,
        "change_every_s": 60.0,
        "analysis": analysis,
        "checks": soak_checks(analysis),
    }
    block = soak_block(result)
    assert "- RSS per window, median / 10th percentile MiB (mean target count): " in block
    assert block.count(" min: ") == 3
    assert "RSS trend ≤ 2% over the soak" in block


def test_a_short_soak_has_three_windows_and_a_soak_record_is_analysed_again(tmp_path) -> None:
    import json

    from vos_ros.benchmark.soak_rss import main

    assert len(rss_analysis(_slow_model_samples(10))["rss_windows"]) == 3
    record = tmp_path / "soak.json"
    record.write_text(json.dumps({"minutes": 10, "samples": _slow_model_samples(10)}))
    assert main([str(record)]) == 0
    record.write_text(json.dumps({"minutes": 1, "samples": _slow_model_samples(1)[:5]}))
    assert main([str(record)]) == 1


def _with_trims(samples: list[dict], leak_per_trim: float = 0.0) -> list[dict]:
    """The node's reading after a heap trim every 10 s, as the soak copies it from the
    node's /diagnostics into each sample (the latest one until the next trim)."""
    reading = None
    for sample in samples:
        t = int(sample["t_s"])
        if t % 10 == 0:
            trims = t // 10
            reading = (trims, LEVEL[sample["targets"]] + leak_per_trim * trims, sample["targets"])
        if reading is not None:
            sample["heap_trims"], sample["resident_after_trim_mib"], sample["targets_at_trim"] = (
                reading
            )
    return samples


def test_after_trim_readings_are_taken_once_per_trim() -> None:
    from vos_ros.benchmark.soak_rss import trim_readings

    samples = _with_trims(_slow_model_samples(3))
    samples[30]["resident_after_trim_mib"] = float("nan")  # not readable: that trim is skipped
    readings = trim_readings(samples[5:])  # the first sample seen of trim 6 is t = 65 s
    assert [r["t_s"] for r in readings[:3]] == [65.0, 70.0, 80.0]
    assert len(readings) == 12  # 12 trims in t = 65..179 s
    assert all(r["rss_mib"] == LEVEL[r["targets"]] for r in readings)


def test_after_trim_readings_see_a_small_leak_through_step_activations() -> None:
    flat = rss_analysis(_with_trims(_slow_model_samples(10)))
    assert flat["rss_after_trim"]["growth"] == pytest.approx(0.0, abs=1e-9)
    assert flat["rss_after_trim"]["readings"] == 54  # one per 10 s from t = 60 s
    (check,) = [c for c in rss_checks(flat) if c["target"].startswith("RSS after the node")]
    assert check["met"] and "line through windows +0.00%" in check["measured"]
    # +0.3 MiB a trim: +16 MiB over 9 minutes, below the samples' activations of up to 500 MiB
    leaking = rss_analysis(_with_trims(_slow_model_samples(10), leak_per_trim=0.3))
    assert 0.02 < leaking["rss_after_trim"]["growth"] < 0.04
    (check,) = [c for c in rss_checks(leaking) if c["target"].startswith("RSS after the node")]
    assert not check["met"]
    # a soak of a node without these diagnostics values has no such view
    assert "rss_after_trim" not in rss_analysis(_slow_model_samples(10))


def test_the_plot_draws_the_after_trim_readings(tmp_path) -> None:
    from vos_ros.benchmark.soak import plot_soak

    samples = _with_trims(_slow_model_samples(3))
    for sample in samples:
        sample.update(latency_median_ms=2000.0, latency_p95_ms=3000.0, output_hz=0.5)
    plot_soak(samples, [{"t_s": 120.0, "action": "add"}], tmp_path / "soak.png")
    assert (tmp_path / "soak.png").read_bytes().startswith(b"\x89PNG")


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
