"""Summaries of timing samples and a description of the machine a benchmark ran on."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence

import numpy as np


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Median and spread of ``values`` (milliseconds, fps, ...).

    :returns: ``n``, ``median``, ``p5``, ``p95``, ``q25``, ``q75`` (IQR = q75 - q25), ``mean``,
        ``min``, ``max``; all values NaN-free floats (0.0 when ``values`` is empty, ``n`` = 0).
    """
    arr = np.asarray(values, np.float64)
    if arr.size == 0:
        keys = ("median", "p5", "p95", "q25", "q75", "mean", "min", "max")
        return {"n": 0, **dict.fromkeys(keys, 0.0)}
    p5, q25, median, q75, p95 = np.percentile(arr, [5, 25, 50, 75, 95])
    return {
        "n": int(arr.size),
        "median": float(median),
        "p5": float(p5),
        "p95": float(p95),
        "q25": float(q25),
        "q75": float(q75),
        "mean": float(arr.mean()),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The first CUDA GPU's name, or None (torch not installed or no GPU)."""
    import vos_ros.engine.backends  # noqa: F401 - sets the OpenMP policy before torch loads

    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def machine_info(label: str | None = None) -> dict[str, object]:
    """What ran the benchmark; ``label`` is a free-text name (e.g. "2-core dev machine")."""
    gpu = gpu_name()
    cores = os.cpu_count() or 0
    auto_label = f"{cores}-core {cpu_model()}, " + (f"GPU {gpu}" if gpu else "no GPU")
    return {
        "label": label or auto_label,
        "cpu": cpu_model(),
        "cores": cores,
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def today() -> str:
    return datetime.date.today().isoformat()


def fmt_spread(summary: dict[str, float | int], digits: int = 1) -> str:
    """``median [p5–p95]`` as text for tables."""
    if not summary.get("n"):
        return "–"
    return (
        f"{summary['median']:.{digits}f} [{summary['p5']:.{digits}f}–{summary['p95']:.{digits}f}]"
    )
