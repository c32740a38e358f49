"""Target registry: permanent target ids, their class labels and their tensor slots.

A target id is what users see (label value k in label images, ``TargetResult.target_id``); a
slot is the target's index along the batch axis of the per-target arrays the engine keeps. Ids
never change while a target lives; slots are compacted when a target is removed. Ids are never
reused within a stream (until :meth:`TargetRegistry.clear`), so a late detection added with
``next_free_id()`` cannot be confused with a target that was removed earlier.
"""

from __future__ import annotations

from vos_ros.engine.config import EngineError

MAX_TARGET_ID = 65535  # label images are uint16


class TargetError(EngineError):
    """Bad target id or too many targets."""


class TargetRegistry:
    """Ordered ids (slot order) and class labels of the live targets."""

    def __init__(self, max_targets: int) -> None:
        self._max_targets = max_targets
        self._ids: list[int] = []
        self._classes: dict[int, str] = {}
        self._highest_used = 0

    @property
    def ids(self) -> list[int]:
        """Live target ids in slot order (a copy)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._classes

    def slot(self, target_id: int) -> int:
        try:
            return self._ids.index(target_id)
        except ValueError:
            raise TargetError(f"unknown target id {target_id}; live ids: {self._ids}") from None

    def class_label(self, target_id: int) -> str:
        return self._classes[target_id]

    def next_free_id(self) -> int:
        """Smallest id above every id used since the last clear (ids are never reused)."""
        return self._highest_used + 1

    def add(self, target_id: int, class_label: str) -> int:
        """Register a new target at the last slot; returns the slot."""
        check_target_id(target_id)
        if target_id in self._classes:
            raise TargetError(f"target id {target_id} is already tracked")
        if len(self._ids) >= self._max_targets:
            raise TargetError(
                f"cannot add target {target_id}: already tracking {len(self._ids)} targets "
                f"(max_targets={self._max_targets})"
            )
        self._ids.append(target_id)
        self._classes[target_id] = str(class_label)
        self._highest_used = max(self._highest_used, target_id)
        return len(self._ids) - 1

    def set_class(self, target_id: int, class_label: str) -> None:
        if target_id not in self._classes:
            raise TargetError(f"unknown target id {target_id}")
        self._classes[target_id] = str(class_label)

    def remove(self, target_id: int) -> int:
        """Forget a target; returns the slot it had (later slots shift down by one)."""
        slot = self.slot(target_id)
        del self._ids[slot]
        del self._classes[target_id]
        return slot

    def clear(self) -> None:
        self._ids.clear()
        self._classes.clear()
        self._highest_used = 0


def check_target_id(target_id: object) -> int:
    """Return ``target_id`` as an int or raise :class:`TargetError` when it is not in 1..65535."""
    if isinstance(target_id, bool) or not isinstance(target_id, int):
        try:
            as_int = int(target_id)  # numpy integers
        except (TypeError, ValueError):
            raise TargetError(f"target ids must be integers, got {target_id!r}") from None
        if as_int != target_id:
            raise TargetError(f"target ids must be integers, got {target_id!r}")
        target_id = as_int
    if not 1 <= target_id <= MAX_TARGET_ID:
        raise TargetError(f"target ids must be in 1..{MAX_TARGET_ID}, got {target_id}")
    return target_id
