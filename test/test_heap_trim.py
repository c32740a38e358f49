"""HeapTrimmer: trims at most once per period, never with period 0, rejects negative periods,
reads the resident size after each trim."""

from __future__ import annotations

import os

import pytest

from vos_ros.benchmark.ros_procs import rss_kib
from vos_ros.heap_trim import HeapTrimmer, heap_trim_available, resident_mib


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_once_per_period():
    clock = FakeClock()
    trimmer = HeapTrimmer(10.0, clock=clock)
    assert not trimmer.maybe_trim()  # the period starts at construction
    clock.now += 10.0
    assert trimmer.maybe_trim() is heap_trim_available()
    assert not trimmer.maybe_trim()  # same instant: not again
    clock.now += 9.9
    assert not trimmer.maybe_trim()
    clock.now += 0.2
    assert trimmer.maybe_trim() is heap_trim_available()
    assert trimmer.trims == (2 if heap_trim_available() else 0)


def test_period_zero_never_trims():
    clock = FakeClock()
    trimmer = HeapTrimmer(0.0, clock=clock)
    clock.now += 1e6
    assert not trimmer.maybe_trim() and trimmer.trims == 0


def test_negative_period_is_refused():
    with pytest.raises(ValueError, match="period_s"):
        HeapTrimmer(-1.0)


def _status_rss_mib() -> float:
    """The kernel's VmRSS of this process, read as the soak reads the node's."""
    return rss_kib(os.getpid()) / 1024


@pytest.mark.skipif(not heap_trim_available(), reason="no malloc_trim in this C library")
def test_resident_size_read_after_each_trim():
    clock = FakeClock()
    trimmer = HeapTrimmer(10.0, clock=clock)
    assert trimmer.resident_mib is None  # no trim yet
    clock.now += 10.0
    assert trimmer.maybe_trim()
    # the same figure as the kernel's VmRSS (pages touched in between move it a little)
    assert trimmer.resident_mib == pytest.approx(_status_rss_mib(), abs=2.0)
    assert resident_mib() == pytest.approx(_status_rss_mib(), abs=2.0)
