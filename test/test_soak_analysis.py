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
