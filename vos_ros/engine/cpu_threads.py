"""One BLAS thread for numpy in a process that runs the engine.

The engine's own numpy work is on small arrays (a memory write multiplies a 10 x 2304 weight
matrix with the 64 x 2304 key). numpy's OpenBLAS would split such a product over every core and
then wait for the helper thread: on a 2-core machine where ONNX Runtime, OpenCV or a background
adaptation hold the other core, that wait is a scheduler time slice (a memory write went from
0.19 to 8 ms), and the helper's busy-waiting afterwards takes a core from the next stage.
:mod:`threadpoolctl` sets the thread count of the BLAS libraries loaded in the process; ONNX
Runtime and PyTorch keep their own thread pools.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

_limited = False


def limit_blas_threads() -> None:
    """Limit every loaded BLAS library to one thread, for the rest of the process (idempotent)."""
    global _limited
    if not _limited:
        threadpool_limits(limits=1, user_api="blas")
        _limited = True
