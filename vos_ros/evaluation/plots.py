"""PNG plots of a report (matplotlib, Agg backend: no display needed).

- ``class_iou.png``: per-class IoU bars;
- ``per_frame_j.png``: J of every object frame by frame (where tracking fails, and when);
- ``latency.png``: histogram of per-frame latency with p50/p95/p99 marks;
- ``trajectory_<seq>.png``: box-centre x and y over time, ground truth vs prediction.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DPI = 80


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_class_iou(report: dict[str, Any], path: Path) -> Path | None:
    """Horizontal bars of per-class IoU (background last, grey)."""
    items = sorted(report["per_class_iou"].items(), key=lambda kv: kv[1] or 0.0)
    if report.get("background_iou") is not None:
        items = [("background", report["background_iou"]), *items]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(items) + 1.2))
    names = [k for k, _ in items]
    values = [v or 0.0 for _, v in items]
    colours = ["0.7" if n == "background" else "tab:blue" for n in names]
    bars = ax.barh(names, values, color=colours)
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            min(value + 0.01, 0.9),
            bar.get_y() + bar.get_height() / 2,
            f"{value:.3f}",
            va="center",
            fontsize=9,
        )
    mean = report.get("mean_class_iou")
    title = "Per-class IoU"
    if mean is not None:
        ax.axvline(mean, color="tab:red", linestyle="--", linewidth=1)
        title += f" (dashed: mean over object classes, {mean:.3f})"
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU = TP / (TP + FP + FN)")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_per_frame_j(report: dict[str, Any], path: Path) -> Path | None:
    """J per frame, one line per object."""
    per_frame = report["davis"]["per_frame"]
    if not per_frame:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.6))
    colours = plt.get_cmap("tab20").colors
    for i, (name, series) in enumerate(per_frame.items()):
        j = [v if v is not None else float("nan") for v in series["J"]]
        ax.plot(series["frames"], j, linewidth=1.2, label=name, color=colours[i % len(colours)])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("J (region IoU)")
    ax.set_title("Per-frame J of each object")
    if len(per_frame) <= 20:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_latency(report: dict[str, Any], path: Path) -> Path | None:
    """Histogram of per-frame latency, with the percentile marks of the report."""
    timing = report["timing"]
    latencies_ms = [v for v in timing.get("per_frame_ms") or [] if v is not None]
    if not latencies_ms:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(latencies_ms, bins=40, color="tab:blue", alpha=0.8)
    for key, colour in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        value = timing["latency_ms"].get(key)
        if value is not None:
            ax.axvline(value, color=colour, linestyle="--", label=f"{key} {value:.1f} ms")
    ax.set_xlabel("latency per frame (ms)")
    ax.set_ylabel("frames")
    fps = timing.get("fps")
    ax.set_title(f"Latency ({timing['frames']} frames, {fps:.1f} fps)" if fps else "Latency")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_trajectories(report: dict[str, Any], sequence: str, path: Path) -> Path | None:
    """Box-centre x and y over time of every object of one sequence: ground truth dashed,
    prediction solid, in the same colour."""
    prefix = f"{sequence}_"
    tracks = {k: v for k, v in report["trajectories"].items() if k.startswith(prefix)}
    if not tracks:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), sharex=True)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, track) in enumerate(sorted(tracks.items())):
        colour = cycle[i % len(cycle)]
        frames = track["frames"]
        for axis, ax in enumerate(axes):
            gt = [c[axis] if c else float("nan") for c in track["gt"]]
            pred = [c[axis] if c else float("nan") for c in track["pred"]]
            ax.plot(frames, gt, linestyle="--", color=colour, linewidth=1)
            ax.plot(frames, pred, color=colour, linewidth=1.4, label=name[len(prefix) :])
    axes[0].set_ylabel("box centre x (px)")
    axes[1].set_ylabel("box centre y (px)")
    axes[1].invert_yaxis()  # image coordinates: y grows downwards
    for ax in axes:
        ax.set_xlabel("frame")
    axes[1].legend(
        title="object\n(solid: prediction,\ndashed: GT)",
        fontsize=7,
        title_fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
    )
    fig.suptitle(f"{sequence}: trajectories", fontsize=10)
    return _save(fig, path)


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write every plot that has data; returns ``{name: path}``.

    Trajectory plots are named ``trajectory:<sequence>``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path | None] = {
        "class_iou": plot_class_iou(report, out_dir / "class_iou.png"),
        "per_frame_j": plot_per_frame_j(report, out_dir / "per_frame_j.png"),
        "latency": plot_latency(report, out_dir / "latency.png"),
    }
    for sequence in report["sequences"]:
        plots[f"trajectory:{sequence}"] = plot_trajectories(
            report, sequence, out_dir / f"trajectory_{_safe(sequence)}.png"
        )
    return {k: v for k, v in plots.items() if v is not None}
