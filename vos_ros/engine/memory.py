"""Per-target memory of prototypes with a fixed budget, so cost and RAM stay flat.

Each target keeps
- *permanent* entries: the annotated frame(s), kept for good (at most ``permanent_size``; when
  full, a newer annotation overwrites the latest one and the first stays), and
- *recent* entries: a ring of ``ring_size`` slots, written every ``every`` frames.

An entry is not a frame but the target's prototypes computed from that frame with
:func:`vos_ros.model.contract.frame_prototypes`: two ``[PROTOS_PER_FRAME, KEY_DIM]`` arrays
(foreground, background). All storage is preallocated, so memory never grows with time.

:meth:`MemoryBank.gather` returns the decoder inputs ``proto_fg``/``proto_bg`` ``[N, P, KEY_DIM]``.
Targets with fewer entries than the fullest one are padded by repeating their own entries
cyclically (their annotated frame first), so every target has the same P without inventing data.
The gathered arrays are cached and rebuilt only when some memory changed.
"""

from __future__ import annotations

import numpy as np

from vos_ros.model.contract import KEY_DIM, PROTOS_PER_FRAME


class TargetMemory:
    """Prototypes of one target: permanent entries + a ring of recent ones."""

    def __init__(self, permanent_size: int, ring_size: int, key_dim: int = KEY_DIM) -> None:
        self.permanent_size = permanent_size
        self.ring_size = ring_size
        shape = (PROTOS_PER_FRAME, key_dim)
        self._perm_fg = np.zeros((permanent_size, *shape), np.float32)
        self._perm_bg = np.zeros((permanent_size, *shape), np.float32)
        self._ring_fg = np.zeros((ring_size, *shape), np.float32)
        self._ring_bg = np.zeros((ring_size, *shape), np.float32)
        self._n_perm = 0
        self._n_ring = 0
        self._ring_next = 0
        self.version = 0  # bumped on every change; lets the bank cache gathered arrays

    @property
    def num_entries(self) -> int:
        return self._n_perm + self._n_ring

    def add_permanent(self, fg: np.ndarray, bg: np.ndarray, replace: bool = False) -> None:
        """Keep an annotated frame's prototypes; ``replace`` drops all earlier entries first."""
        if replace:
            self._n_perm = 0
            self._n_ring = 0
            self._ring_next = 0
        if self._n_perm == self.permanent_size:
            # Full: the newest annotation overwrites the latest one, so the first annotation
            # stays whenever permanent_size > 1.
            self._n_perm -= 1
        self._perm_fg[self._n_perm] = fg
        self._perm_bg[self._n_perm] = bg
        self._n_perm += 1
        self.version += 1

    def add_recent(self, fg: np.ndarray, bg: np.ndarray) -> None:
        """Write into the ring, overwriting the oldest recent entry when full."""
        self._ring_fg[self._ring_next] = fg
        self._ring_bg[self._ring_next] = bg
        self._ring_next = (self._ring_next + 1) % self.ring_size
        self._n_ring = min(self._n_ring + 1, self.ring_size)
        self.version += 1

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fg, bg)``, each ``[E, PROTOS_PER_FRAME, KEY_DIM]``: permanent first, then recent."""
        fg = np.concatenate([self._perm_fg[: self._n_perm], self._ring_fg[: self._n_ring]])
        bg = np.concatenate([self._perm_bg[: self._n_perm], self._ring_bg[: self._n_ring]])
        return fg, bg

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._perm_fg, self._perm_bg, self._ring_fg, self._ring_bg))


class MemoryBank:
    """The memories of all live targets, keyed by target id."""

    def __init__(self, permanent_size: int, ring_size: int, every: int) -> None:
        self.permanent_size = permanent_size
        self.ring_size = ring_size
        self.every = every
        self._memories: dict[int, TargetMemory] = {}
        self._cache_key: tuple | None = None
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._memories

    def get(self, target_id: int) -> TargetMemory:
        memory = self._memories.get(target_id)
        if memory is None:
            memory = TargetMemory(self.permanent_size, self.ring_size)
            self._memories[target_id] = memory
        return memory

    def remove(self, target_id: int) -> None:
        self._memories.pop(target_id, None)

    def clear(self) -> None:
        self._memories.clear()
        self._cache_key = None
        self._cache = None

    def max_entries(self) -> int:
        """Most entries one target can hold: the P budget is this times ``PROTOS_PER_FRAME``."""
        return self.permanent_size + self.ring_size

    def due(self, frame_index: int) -> bool:
        """Whether frame ``frame_index`` (counted from the first annotation) enters the memory."""
        return frame_index > 0 and frame_index % self.every == 0

    def gather(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Decoder inputs ``proto_fg, proto_bg``: ``[N, P, KEY_DIM]`` float32, C-contiguous.

        :raises KeyError: when a target has no memory entry yet (the engine always writes one
            when a target is added, so this signals a bug, not bad input).
        """
        key = tuple((i, self._memories[i].version) for i in ids)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        per_target = [self._memories[i].entries() for i in ids]
        counts = [fg.shape[0] for fg, _ in per_target]
        if min(counts, default=1) == 0:
            empty = [i for i, c in zip(ids, counts, strict=False) if c == 0]
            raise KeyError(f"targets {empty} have no memory entry")
        n_entries = max(counts, default=1)
        fgs, bgs = [], []
        for fg, bg in per_target:
            take = np.arange(n_entries) % fg.shape[0]  # cyclic padding with the target's own data
            fgs.append(fg[take].reshape(-1, fg.shape[-1]))
            bgs.append(bg[take].reshape(-1, bg.shape[-1]))
        if fgs:
            proto_fg = np.ascontiguousarray(np.stack(fgs), dtype=np.float32)
            proto_bg = np.ascontiguousarray(np.stack(bgs), dtype=np.float32)
        else:
            proto_fg = np.zeros((0, PROTOS_PER_FRAME, KEY_DIM), np.float32)
            proto_bg = proto_fg
        self._cache_key = key
        self._cache = (proto_fg, proto_bg)
        return self._cache

    def nbytes(self) -> int:
        return sum(m.nbytes() for m in self._memories.values())
