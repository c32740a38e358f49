"""Inference backends behind one interface (:class:`~vos_ros.engine.backends.base.Backend`)."""

import os

# PyTorch's CPU threads (OpenMP) busy-wait between parallel regions by default. On a small
# machine shared with other processes that spinning takes the cores the other thread needs:
# on the 2-core development machine under load, the torch CPU backend took 518 ms per 854x480
# frame with spinning and 35 ms without (docs/benchmarks.md, "Profiling"). OpenMP reads this
# when torch is first imported, which happens in this package; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vos_ros.engine.backends.base import Backend, BackendError

__all__ = ["Backend", "BackendError"]
