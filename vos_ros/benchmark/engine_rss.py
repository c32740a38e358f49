"""Resident memory of the engine alone over a long stream, with targets removed and added again.

    python -m vos_ros.benchmark.engine_rss --model models/sam2.1-hiera-tiny --frames 50

The node soak (``vos-ros bench soak``) samples the node's RSS once a second, whenever that
second falls. That suits a model that steps in milliseconds; a model that steps in seconds (SAM 2
on a CPU) holds hundreds of MB of short-lived activations for most of each step, so those samples
swing by a third and a trend hides in them. Here the engine runs in this process and RSS is read
after each step, after ``gc.collect`` and ``malloc_trim``: what the stream keeps, not what a step
borrows. Every ``--churn-every`` frames target 2 is removed and given again (where it is in
view), as the soak does.
Nothing is asserted; the report gives RSS after warm-up (first and last third), the model's own
memory (``memory_nbytes``) and the step times.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from vos_ros.benchmark.clips import make_clip
from vos_ros.heap_trim import resident_mib, trim_heap


def rss_mib() -> float:
    rss = resident_mib()
    if rss is None:
        raise RuntimeError("cannot read this process's resident size (/proc/self/statm)")
    return rss


def run(model: str, backend: str, frames: int, churn_every: int, size: tuple[int, int]) -> dict:
    from vos_ros.engine import EngineConfig, Prompt, build_engine

    engine = build_engine(EngineConfig(model=model, backend=backend))
    clip = make_clip(size[0], size[1], targets=2, length=frames)
    labels = clip.labels[0]
    rows = []
    for index in range(frames):
        frame = clip.frames[index % len(clip.frames)]
        started = time.perf_counter()
        engine.step(frame, Prompt(labels) if index == 0 else None)
        target = clip.labels[index % len(clip.frames)] == 2
        if index and index % churn_every == 0 and target.any():  # removed, then given again
            engine.remove_targets([2])
            engine.add_targets(frame, target.astype(np.uint16) * 2)
        step_s = time.perf_counter() - started
        gc.collect()
        trim_heap()
        rows.append(
            {
                "frame": index,
                "rss_mib": round(rss_mib(), 1),
                "model_memory_mib": round(engine.predictor.memory_nbytes() / 2**20, 2),
                "step_s": round(step_s, 2),
            }
        )
        print(rows[-1], flush=True)
    after = rows[len(rows) // 3 :]  # warm-up: the models' memory windows fill first
    third = max(1, len(after) // 3)
    first = float(np.mean([r["rss_mib"] for r in after[:third]]))
    last = float(np.mean([r["rss_mib"] for r in after[-third:]]))
    return {
        "model": model,
        "backend": engine.backend_name,
        "frames": frames,
        "size": f"{size[0]}x{size[1]}",
        "rss_first_third_mib": round(first, 1),
        "rss_last_third_mib": round(last, 1),
        "rss_growth_pct": round(100 * (last - first) / first, 2),
        "step_median_s": float(np.median([r["step_s"] for r in rows[1:]])),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="'flow' or a model folder")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--churn-every", type=int, default=10)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.frames < 6 or args.churn_every < 1:
        parser.error("--frames must be at least 6 and --churn-every at least 1")
    report = run(args.model, args.backend, args.frames, args.churn_every, (args.width, args.height))
    summary = {k: v for k, v in report.items() if k != "rows"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
