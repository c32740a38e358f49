"""A short ring buffer of recent frames keyed by their timestamp (no ROS).

Target-selection requests (a mask drawn on a frame, boxes from a detector) usually arrive a little
after the frame they were made on. The node keeps the last few frames so such a request can be
applied to the exact frame it refers to, identified by its stamp in integer nanoseconds.

Items are stored as given (the node stores the raw image messages and decodes only the one a
request asks for, so the camera callback stays O(1)).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")

NS_PER_S = 1_000_000_000


class FrameNotBufferedError(ValueError):
    """The requested stamp is not in the buffer (too old, never received, or nothing buffered)."""


def format_stamp(stamp_ns: int) -> str:
    """``sec.nanosec`` text for a stamp in nanoseconds, as ROS tools print stamps."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return f"{sec}.{nanosec:09d}"


class FrameBuffer(Generic[T]):
    """Thread-safe ring buffer of the ``capacity`` most recent items, keyed by stamp (ns).

    :param capacity: how many items to keep (>= 1); the oldest is evicted first.
    :param tolerance_ns: a lookup matches the nearest buffered stamp within this distance
        (0 = exact match only).
    """

    def __init__(self, capacity: int, tolerance_ns: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        self._capacity = capacity
        self._tolerance_ns = tolerance_ns
        self._items: OrderedDict[int, T] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, stamp_ns: int, item: T) -> None:
        """Store ``item`` under ``stamp_ns``; a repeated stamp replaces the older item."""
        with self._lock:
            self._items.pop(stamp_ns, None)
            self._items[stamp_ns] = item
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, stamp_ns: int) -> tuple[int, T]:
        """The buffered ``(stamp_ns, item)`` for ``stamp_ns`` (nearest within the tolerance).

        :raises FrameNotBufferedError: naming the buffered stamp range when there is no match.
        """
        with self._lock:
            if stamp_ns in self._items:
                return stamp_ns, self._items[stamp_ns]
            if self._items and self._tolerance_ns > 0:
                nearest = min(self._items, key=lambda s: abs(s - stamp_ns))
                if abs(nearest - stamp_ns) <= self._tolerance_ns:
                    return nearest, self._items[nearest]
            raise FrameNotBufferedError(self._missing_message(stamp_ns))

    def latest(self) -> tuple[int, T]:
        """The most recently stored ``(stamp_ns, item)``.

        :raises FrameNotBufferedError: when nothing has been buffered yet.
        """
        with self._lock:
            if not self._items:
                raise FrameNotBufferedError("no frame received yet: wait for the first image")
            stamp = next(reversed(self._items))
            return stamp, self._items[stamp]

    def stamp_range(self) -> tuple[int, int] | None:
        """``(oldest, newest)`` buffered stamps in ns, or None when empty."""
        with self._lock:
            if not self._items:
                return None
            return min(self._items), max(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _missing_message(self, stamp_ns: int) -> str:
        # called with the lock held
        if not self._items:
            return (
                f"frame with stamp {format_stamp(stamp_ns)} is not buffered: no frame received yet"
            )
        oldest, newest = min(self._items), max(self._items)
        return (
            f"frame with stamp {format_stamp(stamp_ns)} is not buffered; the buffer holds "
            f"{len(self._items)} frames from {format_stamp(oldest)} to {format_stamp(newest)}"
        )
