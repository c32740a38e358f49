"""Fleet evaluation on Ray: bags per minute with 1, 2, ... workers, and the driver's merge cost.

    python -m vos_ros.benchmark.fleet_bench [--bags 8] [--frames 60] [--size 640x480] \\
        [--objects 3] [--workers 1,2] [--model flow] [--json OUT.json]

Writes ``--bags`` synthetic bags (``vos-ros make-bag --synthetic``, seeds 0..N-1), scores them
once in this process (the baseline) and then on a local Ray cluster with each worker count
(``vos-ros evaluate --ray local --workers N``). Ray is started once, before the runs, and an
unmeasured warm-up (one bag per worker) lets every worker import and build the engine, which a
fleet pays once per worker, not per bag; both are reported apart. Per run: wall time, bags per
minute, wall time per frame. The merge (partials -> one scorer -> report dictionary) is timed on
the Ray run's partial results, with the size of the pickled partials (what travels back through
the object store).

Projection: a fleet of ``--project-bags`` bags of ``--project-minutes`` at ``--project-hz``
takes ``frames x (CPU time per frame of a worker in the 1-worker run) / workers`` plus the
merge, scaled by frames. CPU time is what a frame costs on a core of its own (wall time on a
shared machine also counts the other processes); the projection assumes perfect scaling (one
free core per worker, bags on shared storage, no straggler), which the measured 1 -> 2 worker
speed-up checks only at the smallest scale.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from vos_ros.engine.model_paths import DEFAULT_MODEL


def make_bags(root: Path, count: int, frames: int, size: tuple[int, int], objects: int) -> Path:
    """``count`` synthetic bags under ``root`` (one per seed), written as make-bag writes them."""
    from vos_ros.cli import main

    width, height = size
    for seed in range(count):
        args = ["make-bag", "--synthetic", "--seed", str(seed), "--frames", str(frames)]
        args += ["--width", str(width), "--height", str(height), "--objects", str(objects)]
        if main([*args, "--out", str(root / f"bag_{seed:04d}")]) != 0:
            raise SystemExit("make-bag failed")
    return root


def time_single_process(bags: Path, model: str, out: Path) -> dict[str, Any]:
    from vos_ros.evaluation import EvaluationOptions, evaluate

    start = time.perf_counter()
    cpu_start = time.process_time()
    outcome = evaluate(
        EvaluationOptions(json_path=out / "single.json", bag=bags, model=model, progress=False)
    )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return _rates("single process", 1, wall, outcome.report, cpu)


def bag_sources(bags: Path) -> list:
    """(name, opener) per bag, as ``vos-ros evaluate --bag`` opens them."""
    from vos_ros.evaluation.session import EvaluationOptions, clip_sources

    return clip_sources(EvaluationOptions(json_path=Path("-"), bag=bags), True)[0]


def time_ray(sources: list, model: str, workers: int) -> tuple[dict[str, Any], list]:
    """One Ray run (the cluster is already up); returns its row and the partial results."""
    from vos_ros.evaluation.fleet import EngineSpec, RaySettings, score_on_ray

    start = time.perf_counter()
    outcome = score_on_ray(sources, EngineSpec(model), RaySettings(workers=workers), False)
    wall = time.perf_counter() - start
    frames = sum(r.scorer.frames_scored for r in outcome.results)
    cpu = sum(r.cpu_seconds for r in outcome.results)
    row = _rates(f"Ray, {workers} worker(s)", workers, wall, {"timing": {"frames": frames}}, cpu)
    row["errors"] = [r.error for r in outcome.results if r.error]
    return row, outcome.results


def time_merge(results: list, repeats: int = 5) -> dict[str, Any]:
    """Driver-side cost of turning the partial results into the report (best of ``repeats``;
    on fresh copies of the partials each time, as they arrive from the object store), and their
    size as Ray serialises them (cloudpickle; serialising only, nothing is unpickled here)."""
    from ray import cloudpickle

    from vos_ros.evaluation.partials import merge_results
    from vos_ros.evaluation.report import build_report

    size = len(cloudpickle.dumps(results))
    best = float("inf")
    for _ in range(repeats):
        fresh = copy.deepcopy(results)
        start = time.perf_counter()
        scorer, errors = merge_results(fresh)
        build_report(scorer, {}, errors)
        best = min(best, time.perf_counter() - start)
    frames = sum(r.scorer.frames_scored for r in results)
    return {
        "merge_s": best,
        "merge_ms_per_bag": best * 1000 / len(results),
        "merge_us_per_frame": best * 1e6 / frames,
        "partials_bytes": size,
    }


def project(per_frame_s: float, merge_s_per_frame: float, args: argparse.Namespace) -> list:
    """Projected wall time of the configured fleet per cluster size (perfect scaling)."""
    frames = args.project_bags * args.project_minutes * 60 * args.project_hz
    merge_s = frames * merge_s_per_frame
    return [
        {"workers": w, "hours": (frames * per_frame_s / w + merge_s) / 3600, "merge_s": merge_s}
        for w in args.project_workers
    ]


def _rates(label: str, workers: int, wall: float, report: dict, cpu: float) -> dict[str, Any]:
    frames = report["timing"]["frames"]
    return {
        "run": label,
        "workers": workers,
        "wall_s": wall,
        "frames": frames,
        "ms_per_frame": wall * 1000 / frames,
        "cpu_ms_per_frame": cpu * 1000 / frames,
    }


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median wall time (the lower middle one for an even count), with the
    wall times of every round."""
    ordered = sorted(rows, key=lambda row: row["wall_s"])
    return {**ordered[(len(ordered) - 1) // 2], "walls_s": [round(r["wall_s"], 2) for r in rows]}


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"every value must be at least 1; got {text!r}")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH like 640x480; got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60, help="frames per bag")
    parser.add_argument("--size", type=_size, default=(640, 480), help="WxH of the bags")
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="worker counts (1,2)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (median)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--project-bags", type=int, default=1000)
    parser.add_argument("--project-minutes", type=float, default=5.0)
    parser.add_argument("--project-hz", type=float, default=30.0)
    parser.add_argument("--project-workers", type=_ints, default=[1, 8, 32, 128])
    args = parser.parse_args(argv)
    if args.bags < 1 or args.frames < 3 or args.rounds < 1:
        parser.error("need at least 1 bag of at least 3 frames, and at least 1 round")

    import ray

    with tempfile.TemporaryDirectory(prefix="fleet_bench_") as tmp:
        root = Path(tmp)
        bags = make_bags(root / "bags", args.bags, args.frames, args.size, args.objects)
        load_before = list(os.getloadavg())
        time_single_process(bags / "bag_0000", args.model, root)  # warm-up: imports, first run
        start = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
        )
        ray_start_s = time.perf_counter() - start
        try:
            # warm-up: workers start, import the engine and build it once (a fleet pays this
            # once per worker, not per bag)
            sources = bag_sources(bags)
            start = time.perf_counter()
            time_ray(sources[: max(args.workers)], args.model, max(args.workers))
            warmup_s = time.perf_counter() - start
            # rounds alternate the configurations, so that load from other processes on a
            # shared machine spreads over all of them; each one reports its median round
            runs: dict[str, list[dict[str, Any]]] = {}
            results: list = []
            for _ in range(args.rounds):
                row = time_single_process(bags, args.model, root)
                runs.setdefault(row["run"], []).append(row)
                for workers in args.workers:
                    row, results = time_ray(sources, args.model, workers)
                    runs.setdefault(row["run"], []).append(row)
        finally:
            ray.shutdown()
    rows = [_median_row(group) for group in runs.values()]
    merge = time_merge(results)
    # the cost of a frame on a core of its own: CPU time, which the other processes of a
    # shared machine do not inflate the way they inflate wall time
    one_worker = next((r for r in rows if r["workers"] == 1 and "Ray" in r["run"]), rows[0])
    projection = project(
        one_worker["cpu_ms_per_frame"] / 1000, merge["merge_us_per_frame"] / 1e6, args
    )
    record = {
        "command": " ".join(["python -m vos_ros.benchmark.fleet_bench", *(argv or sys.argv[1:])]),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()}-core {platform.system()}, "
        f"Python {platform.python_version()}",
        "load_average": {"before": load_before, "after": list(os.getloadavg())},
        "rounds": args.rounds,
        "bags": args.bags,
        "frames_per_bag": args.frames,
        "size": list(args.size),
        "objects": args.objects,
        "model": args.model,
        "ray_start_s": ray_start_s,
        "warmup_s": warmup_s,
        "runs": rows,
        "merge": merge,
        "projection": projection,
    }
    print(format_markdown(record))
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def format_markdown(record: dict[str, Any]) -> str:
    lines = [
        "| run | wall s (median; rounds) | bags/min | wall ms / frame | CPU ms / frame |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in record["runs"]:
        per_min = record["bags"] / row["wall_s"] * 60
        walls = ", ".join(f"{w:.1f}" for w in row["walls_s"])
        lines.append(
            f"| {row['run']} | {row['wall_s']:.1f} ({walls}) | {per_min:.1f} "
            f"| {row['ms_per_frame']:.1f} | {row['cpu_ms_per_frame']:.1f} |"
        )
    merge = record["merge"]
    lines.append("")
    lines.append(
        f"Ray start {record['ray_start_s']:.1f} s, warm-up {record['warmup_s']:.1f} s; merge "
        f"{merge['merge_s'] * 1000:.1f} ms for {record['bags']} bags "
        f"({merge['merge_us_per_frame']:.1f} us per frame, partials "
        f"{merge['partials_bytes'] / 1e6:.2f} MB pickled); load average {record['load_average']}"
    )
    lines.append("")
    lines.append("| workers | projected hours |")
    lines.append("|---:|---:|")
    for row in record["projection"]:
        lines.append(f"| {row['workers']} | {row['hours']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
