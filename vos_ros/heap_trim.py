"""Hand freed heap memory back to the operating system (glibc ``malloc_trim``).

Why: the node allocates frame-sized buffers whose sizes change with the number of targets
(N + 1 probability maps, GrabCut work arrays on ``~/add_objects``). glibc serves many of them
from its heap arenas and keeps the freed pages, so the resident size ratchets up by a few
percent over the first minutes of a run with targets coming and going, although nothing leaks.
``malloc_trim(0)`` releases those free pages; called every few seconds between frames it costs
about a millisecond. On a C library without ``malloc_trim`` (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def heap_trim_available() -> bool:
    return _MALLOC_TRIM is not None


def trim_heap() -> bool:
    """``malloc_trim(0)`` now; False where the C library has none."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def resident_mib() -> float | None:
    """This process's resident set size in MiB (``/proc/self/statm``; None without procfs)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` at most once per ``period_s`` (0 = never), and reads the
    resident size right after each trim (``resident_mib``): the memory the process keeps
    between frames, without a step's short-lived buffers, which is what a leak raises."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if period_s < 0:
            raise ValueError(f"period_s must be >= 0, got {period_s}")
        self.period_s = period_s
        self._clock = clock
        self._last = clock()
        self.trims = 0
        self.last_ms = 0.0
        self.resident_mib: float | None = None

    def maybe_trim(self) -> bool:
        """Trim if the period has passed; True when a trim ran."""
        if self.period_s == 0 or _MALLOC_TRIM is None:
            return False
        now = self._clock()
        if now - self._last < self.period_s:
            return False
        self._last = now
        start = time.perf_counter()
        trim_heap()
        self.last_ms = (time.perf_counter() - start) * 1e3
        self.trims += 1
        self.resident_mib = resident_mib()
        return True
