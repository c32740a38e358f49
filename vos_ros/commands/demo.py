"""``vos-ros demo``: the whole product end to end, on a generated scene, in well under a minute.

    vos-ros demo [--out demo_output] [--model auto|flow|models/<name>] [--frames 48] [--rate 1.0]

1. generates a synthetic clip (textured person, car, ball and animal that cross, leave and
   re-enter the frame, with exact ground truth) and writes it as a rosbag2 MCAP bag;
2. starts the ROS 2 node in its own process and plays the bag to it over ROS topics in real time
   (live mode of ``vos-ros evaluate``): the node gets each object's mask through
   ``~/set_initial_mask`` on the frame where it first appears and tracks it from there;
3. scores the node's ``~/instances`` against the ground truth and prints the per-class IoU table
   and the paths of the JSON and HTML reports.

``--model auto`` uses the product's default model (the node's, ``DEFAULT_MODEL``: whichever
scores better on video nobody tuned on); a default model folder that does not exist or load falls
back to the training-free flow tracker. The output says which and why.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from vos_ros.engine.model_paths import DEFAULT_MODEL, FLOW


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("demo_output"),
        help="output folder: bag, reports, node log (default: ./demo_output)",
    )
    parser.add_argument(
        "--model",
        default="auto",
        help=f"'auto' (the product's default model, {DEFAULT_MODEL}; flow if it does not "
        "load), 'flow', or a model folder",
    )
    parser.add_argument(
        "--backend", default="auto", choices=("auto", "onnxruntime", "torch", "tensorrt")
    )
    parser.add_argument("--frames", type=int, default=48, help="frames of the synthetic clip")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate of the clip")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="playback speed (multiple of --fps)"
    )
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--node-timeout", type=float, default=60.0, help="seconds the node may take to come up"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def model_candidates(model: str = DEFAULT_MODEL) -> list[Path]:
    """Where the model folder ``model`` may be: this folder, the checkout, the installed package."""
    from vos_ros.engine.model_paths import model_candidates as candidates

    return candidates(model)


def choose_model(requested: str, backend: str, default: str = DEFAULT_MODEL) -> tuple[str, str]:
    """``(model for the node, one-line explanation)`` for ``--model``.

    ``auto`` takes ``default``; a default model folder must load (build an engine), else the
    flow tracker runs, and the explanation says why.
    """
    if requested != "auto":
        kind = "optical-flow fallback" if requested == FLOW else "as requested"
        return requested, f"model: {requested} ({kind})"
    if default == FLOW:
        return FLOW, (
            "model: flow (optical-flow fallback, the default: it scores better than the shipped "
            "network on video nobody tuned on; README 'Models, training and the engine')"
        )
    folder = next((p for p in model_candidates(default) if p.is_dir()), None)
    if folder is None:
        return FLOW, f"model: flow (optical-flow fallback; {default} not found)"
    try:
        from vos_ros.engine import EngineConfig, build_engine

        build_engine(EngineConfig(model=str(folder), backend=backend))
    except (ValueError, OSError, ImportError, RuntimeError) as exc:
        return FLOW, f"model: flow (optical-flow fallback; {folder} does not load: {exc})"
    return str(folder), f"model: {folder} (default model)"


def _new_bag_path(out: Path) -> Path:
    """``OUT/synthetic_bag``, removing the bag a previous demo left there."""
    from vos_ros.bag_io import is_bag

    bag = out / "synthetic_bag"
    if bag.exists():
        if not is_bag(bag):
            raise ValueError(f"{bag} exists and is not a bag; choose another --out")
        shutil.rmtree(bag)
    return bag


def run(args: argparse.Namespace) -> int:
    from vos_ros.bag_io import BagError
    from vos_ros.evaluation.bag_export import BagExportOptions, export_clip
    from vos_ros.evaluation.report import format_class_table, format_timing
    from vos_ros.evaluation.session import EvaluationInputError, EvaluationOptions, evaluate
    from vos_ros.synthetic import SceneConfig, synthetic_clip

    started = time.monotonic()
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        bag = _new_bag_path(out)
        config = SceneConfig(
            width=args.width,
            height=args.height,
            frames=args.frames,
            objects=args.objects,
            seed=args.seed,
            fps=args.fps,
        )
        count = export_clip(
            synthetic_clip(config, name="synthetic"), bag, BagExportOptions(fps=args.fps)
        )
    except (BagError, ValueError, OSError) as exc:
        print(f"error: cannot write the synthetic bag: {exc}", file=sys.stderr)
        return 2
    print(
        f"synthetic scene: {count} frames {args.width}x{args.height} at {args.fps:g} fps, "
        f"{args.objects} objects -> {bag}"
    )
    model, why = choose_model(args.model, args.backend)
    print(why)
    print(
        f"starting the node and playing the bag to it over ROS topics (rate {args.rate:g}), "
        "then scoring its ~/instances ..."
    )
    sys.stdout.flush()
    options = EvaluationOptions(
        json_path=out / "report.json",
        bag=bag,
        report_dir=out / "report",
        progress=not args.no_progress,
        model=model,
        backend=args.backend,
        live=True,
        rate=args.rate,
        node_timeout=args.node_timeout,
        node_log=out / "node.log",
    )
    try:
        outcome = evaluate(options)
    except EvaluationInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = outcome.report
    print()
    print(format_class_table(report))
    jf = report["davis"]["global"]["J&F-Mean"]
    print(f"\nDAVIS J&F-Mean {jf:.3f}" if jf is not None else "\nDAVIS J&F-Mean -")
    timing = format_timing(report)
    if timing:
        print(timing)
    dropped = report["timing"]["dropped_frames"]
    if dropped:
        total = dropped + report["timing"]["frames"]
        print(
            f"{dropped} of {total} frames came while the node was busy with an earlier one and "
            "were dropped (real-time behaviour); they count as empty predictions. "
            "--rate 0.5 plays at half speed."
        )
    print(f"\nJSON report: {outcome.report_path}")
    if outcome.html_path is not None:
        print(f"HTML report: {outcome.html_path}  (open it in a browser)")
    print(f"node log:    {out / 'node.log'}")
    print(f"done in {time.monotonic() - started:.1f} s")
    for message in outcome.errors:
        print(f"error: {message}", file=sys.stderr)
    if outcome.interrupted:
        return 130
    return 2 if outcome.errors else 0
