"""The annotated frames behind every target's permanent memory, kept so that the memory can be
computed again with another encoder (an adapted network swapped in mid-stream).

The log mirrors :class:`vos_ros.engine.memory.TargetMemory`'s permanent slots exactly: a
``replace`` annotation starts a target's list again, and a full list overwrites its newest
entry, so replaying the log rebuilds the same entries. Frames are stored once at the processing
size, however many targets they annotate.
"""

from __future__ import annotations

import itertools

import numpy as np


class AnnotationLog:
    def __init__(self, permanent_size: int) -> None:
        self.permanent_size = permanent_size
        self._entries: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        self._order = itertools.count()

    def record(self, small_rgb: np.ndarray, masks: dict[int, np.ndarray], mode: str) -> None:
        """``masks``: target id -> ``(mh, mw)`` float32 mask on ``small_rgb``; ``mode`` as in
        :meth:`NetworkPredictor.memorize` (``permanent`` or ``replace``)."""
        order = next(self._order)
        for target_id, mask in masks.items():
            entries = self._entries.setdefault(target_id, [])
            if mode == "replace":
                entries.clear()
            entry = (order, small_rgb, mask)
            if len(entries) == self.permanent_size:
                entries[-1] = entry
            else:
                entries.append(entry)

    def forget(self, target_id: int) -> None:
        self._entries.pop(target_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def frames(self, ids: list[int]) -> list[tuple[np.ndarray, list[tuple[int, np.ndarray]]]]:
        """Every frame annotating ``ids``, oldest first, with its ``(target id, mask)`` pairs;
        replayed in this order each target gets its entries back in their original order."""
        by_order: dict[int, tuple[np.ndarray, list[tuple[int, np.ndarray]]]] = {}
        for target_id in ids:
            for order, small, mask in self._entries.get(target_id, []):
                by_order.setdefault(order, (small, []))[1].append((target_id, mask))
        return [by_order[k] for k in sorted(by_order)]
