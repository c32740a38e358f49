"""The evaluation report: one JSON document (schema below) and the terminal summary tables.

Schema (``"schema": "vos_ros.evaluation/1"``; every score is a float in [0, 1] or null)::

    davis.global        {J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay}
    davis.per_sequence  {"<seq>_<id>": {class, J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean,
                                        F-Recall, F-Decay, frames}}
    davis.per_frame     {"<seq>_<id>": {frames: [int], J: [float], F: [float]}}
    per_class_iou       {class: IoU}             object classes, one confusion matrix overall
    mean_class_iou      mean of per_class_iou
    background_iou      IoU of the background class
    class_pixels        {class: {tp, fp, fn}}    pixel counts behind the IoUs (incl. background)
    per_instance_iou    {"<seq>_<id>": {class, iou, frames}}
    timing              {frames, fps, latency_ms: {mean, p50, p95, p99, max}, dropped_frames,
                         stages_ms: {stage: mean ms}, per_frame_ms: [ms per frame]}
    sequences           {seq: {frames, frames_seen, complete, error, prompts, objects, J&F-Mean,
                        seconds, worker}}  one row per bag or sequence, also one that failed;
                        prompts: "ground truth" (each object's mask where it first appears) or
                        "recorded" (the bag's recorded initial masks / detector boxes, replayed);
                        seconds: wall time of the clip; worker: Ray worker host:pid or null
    trajectories        {"<seq>_<id>": {frames: [int], gt: [[x, y] | null], pred: [[x, y] | null]}}
    meta                {command, machine, date, model, backend, mode, source, partial, errors}

NaN (nothing to score) is written as null, so the file is strict JSON.
"""

from __future__ import annotations

import json
import math
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vos_ros.evaluation.confusion import BACKGROUND
from vos_ros.evaluation.davis_metrics import GLOBAL_KEYS, global_row, per_sequence_rows
from vos_ros.evaluation.scoring import DatasetScorer

SCHEMA = "vos_ros.evaluation/1"


def machine_description() -> str:
    """A short description of the machine the numbers were measured on."""
    import os

    cpus = os.cpu_count() or 0
    return (
        f"{platform.machine()} {cpus}-core {platform.system()}, Python {platform.python_version()}"
    )


def default_meta(model: str | None, backend: str | None, mode: str, source: str) -> dict[str, Any]:
    """The ``meta`` block: how and where the numbers were produced."""
    return {
        "command": " ".join(shlex.quote(a) for a in ["vos-ros", *sys.argv[1:]])
        if sys.argv and sys.argv[0].endswith("vos-ros")
        else " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_description(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "backend": backend,
        "mode": mode,
        "source": source,
    }


def build_report(
    scorer: DatasetScorer,
    meta: dict[str, Any],
    errors: list[str] | None = None,
    interrupted: bool = False,
) -> dict[str, Any]:
    """Turn everything scored so far into the report dictionary (see the module docstring)."""
    objects = scorer.object_series()
    per_seq = per_sequence_rows(objects)
    classes = {
        f"{s.info.name}_{key}": name
        for s in scorer.sequences
        for key, name in s.info.object_classes.items()
    }
    for name, row in per_seq.items():
        row["class"] = classes.get(name)
    per_frame = {
        obj.name: {"frames": obj.frames, "J": obj.j, "F": obj.f} for obj in objects if obj.j
    }
    class_iou = scorer.confusion.iou()
    object_iou = {k: v for k, v in class_iou.items() if k != BACKGROUND}
    instances = {
        f"{inst.sequence}_{inst.instance}": {
            "class": inst.class_label,
            "iou": inst.iou,
            "frames": inst.frames,
        }
        for s in scorer.sequences
        for inst in s.instances.values()
        if inst.frames
    }
    trajectories = {
        f"{s.info.name}_{key}": {
            "frames": t.frames,
            "gt": [list(c) if c else None for c in t.gt],
            "pred": [list(c) if c else None for c in t.pred],
        }
        for s in scorer.sequences
        for key, t in s.trajectories.items()
    }
    sequences = {
        s.info.name: {
            "frames": s.info.total_frames,
            "frames_seen": s.info.frames_seen,
            "complete": s.info.complete,
            "error": s.info.error,
            "prompts": s.info.prompts,
            "objects": len(s.objects),
            "J&F-Mean": global_row(list(s.objects.values()))["J&F-Mean"],
            "seconds": s.info.seconds,
            "worker": s.info.worker,
        }
        for s in scorer.sequences
    }
    all_errors = list(errors or [])
    partial = interrupted or bool(all_errors) or any(not s.info.complete for s in scorer.sequences)
    report = {
        "schema": SCHEMA,
        "davis": {"global": global_row(objects), "per_sequence": per_seq, "per_frame": per_frame},
        "per_class_iou": object_iou,
        "mean_class_iou": (sum(object_iou.values()) / len(object_iou)) if object_iou else None,
        "background_iou": class_iou.get(BACKGROUND),
        "class_pixels": scorer.confusion.counts(),
        "per_instance_iou": instances,
        "timing": scorer.timing.summary(),
        "sequences": sequences,
        "trajectories": trajectories,
        "meta": {**meta, "partial": partial, "interrupted": interrupted, "errors": all_errors},
    }
    return _sanitize(report)


def _sanitize(value: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, numpy scalars -> Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(report: dict[str, Any], path: Path | str) -> Path:
    """Write the report as indented strict JSON (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def format_class_table(report: dict[str, Any]) -> str:
    """The per-class IoU table (object classes, their mean, background) with its title."""
    class_pixels = report["class_pixels"]
    rows = [
        [name, iou, class_pixels[name]["tp"] + class_pixels[name]["fn"]]
        for name, iou in sorted(report["per_class_iou"].items())
    ]
    rows.append(["(mean)", report["mean_class_iou"], None])
    rows.append([BACKGROUND, report["background_iou"], None])
    return "Per-class IoU (one confusion matrix over all frames)\n" + format_table(
        ["class", "IoU", "gt pixels"], rows
    )


def format_timing(report: dict[str, Any]) -> str:
    """One line: frames, fps, latency percentiles, dropped frames ("" when nothing was timed)."""
    t = report["timing"]
    if not t["frames"] and not t["dropped_frames"]:
        return ""
    lat = t["latency_ms"]
    return (
        f"Timing: {t['frames']} frames, {_fmt(t['fps'], 1)} fps, latency ms "
        f"p50 {_fmt(lat['p50'], 1)} / p95 {_fmt(lat['p95'], 1)} / p99 {_fmt(lat['p99'], 1)}, "
        f"dropped {t['dropped_frames']}"
    )


def format_summary(report: dict[str, Any]) -> str:
    """The terminal summary: global DAVIS row, per-class IoU, per-sequence rows and timing."""
    parts: list[str] = []
    g = report["davis"]["global"]
    parts.append(
        "DAVIS (official protocol)\n"
        + format_table(list(GLOBAL_KEYS), [[g[k] for k in GLOBAL_KEYS]])
    )
    parts.append(format_class_table(report))
    seq_rows = [
        [name, r.get("class"), r["J&F-Mean"], r["J-Mean"], r["F-Mean"], r["J-Decay"], r["frames"]]
        for name, r in report["davis"]["per_sequence"].items()
    ]
    parts.append(
        "Per sequence and object\n"
        + format_table(["object", "class", "J&F", "J", "F", "J-Decay", "frames"], seq_rows)
    )
    clips = report["sequences"]
    if any(row.get("worker") for row in clips.values()):  # a Ray run: one row per task
        rows = [
            [
                name,
                r["frames_seen"],
                r["objects"],
                r["J&F-Mean"],
                r["seconds"],
                r["worker"],
                r["error"] or "ok",
            ]
            for name, r in clips.items()
        ]
        parts.append(
            "Per bag (Ray)\n"
            + format_table(["bag", "frames", "objects", "J&F", "s", "worker", "status"], rows)
        )
    timing = format_timing(report)
    if timing:
        parts.append(timing)
    meta = report["meta"]
    if meta.get("partial"):
        why = "; ".join(meta.get("errors") or []) or "interrupted"
        parts.append(f"PARTIAL REPORT: {why}")
    return "\n\n".join(parts)
