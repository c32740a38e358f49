"""``vos-ros evaluate``: DAVIS J&F, per-class IoU and latency on DAVIS folders or bags.

    vos-ros evaluate --davis DIR [--sequences a,b] [--classes FILE] --json OUT.json
    vos-ros evaluate --davis DIR --predictions PRED_DIR --json OUT.json
    vos-ros evaluate --bag BAG [--image-topic T] [--gt-topic T] --json OUT.json
    vos-ros evaluate --bag BAG --live [--rate 0.5] [--node-cmd CMD | --namespace NS] --json OUT.json
    vos-ros evaluate --bag 'DIR/*' --ray [local|ADDRESS] [--workers N] --json OUT.json

Without ``--predictions`` the engine runs offline, in-process (``--model``, ``--backend``). With
``--live`` the bag is played over ROS topics to the node in its own process (started here, or an
already-running one with ``--namespace``), and the node's ``~/instances`` are scored. With
``--ray`` every bag (or DAVIS sequence) is one task on a Ray cluster and the driver merges the
partial results into the same report (:mod:`vos_ros.evaluation.fleet`).
``--report-dir`` adds PNG plots and a self-contained HTML report. Ctrl-C stops the run and still
writes the report of what was scored; malformed input ends with a clear message and, when frames
were scored before it, a partial report. Exit status: 0 done, 2 input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vos_ros.engine.model_paths import DEFAULT_MODEL
from vos_ros.evaluation.confusion import DEFAULT_IGNORE, ENCODINGS, PANOPTIC_DIVISOR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("input (one of)")
    src.add_argument("--davis", type=Path, metavar="DIR", help="DAVIS-layout folder")
    src.add_argument(
        "--bag",
        type=Path,
        metavar="BAG",
        help="rosbag2 bag (MCAP or sqlite3), a folder of bags (one per sequence), or a quoted "
        "glob of bags ('fleet/2026-*/*')",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        metavar="PRED_DIR",
        help="score these prediction PNGs (DAVIS layout) instead of running the "
        "engine (with --davis)",
    )
    parser.add_argument("--sequences", metavar="A,B", help="only these sequences (comma-separated)")
    parser.add_argument(
        "--classes",
        type=Path,
        metavar="FILE",
        help="class map: DAVIS classes.json ({seq: {id: class}}) with --davis; "
        "{id: class} JSON with --bag (else the bag's class topic)",
    )
    parser.add_argument(
        "--resolution",
        choices=("480p", "Full-Resolution"),
        help="DAVIS resolution folder (default: the first present)",
    )
    parser.add_argument(
        "--ignore-value",
        type=int,
        metavar="V",
        help="label value left out of scoring (default: none for instance ids, "
        f"{DEFAULT_IGNORE} for panoptic; DAVIS 255 counts as background, like the "
        "official evaluator)",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        metavar="N",
        help="score at most N frames per sequence (quick checks)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        required=True,
        metavar="OUT.json",
        help="where to write the JSON report",
    )
    parser.add_argument(
        "--report-dir", type=Path, metavar="DIR", help="also write plots (PNG) and report.html here"
    )
    parser.add_argument(
        "--overlay-video",
        action="store_true",
        help="with --report-dir: also write an MP4 overlay per sequence",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    eng = parser.add_argument_group("engine (offline mode; live mode: the node started here)")
    eng.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"'flow' (training-free fallback) or a model folder (default: {DEFAULT_MODEL})",
    )
    eng.add_argument(
        "--backend", default="auto", choices=("auto", "onnxruntime", "torch", "tensorrt")
    )
    eng.add_argument(
        "--threads", type=int, default=0, help="CPU threads of the engine (0: default)"
    )
    eng.add_argument(
        "--engine-set",
        action="append",
        metavar="NAME=VALUE",
        help="offline mode: set a field of vos_ros.engine.EngineConfig, e.g. "
        "decoder_window_scale=0, or of the flow fallback's FallbackSettings, e.g. "
        "fallback.motion_cap=2 (repeatable)",
    )

    fleet = parser.add_argument_group("Ray cluster (offline mode, one task per bag or sequence)")
    fleet.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="score on Ray: 'local' (the default when ADDRESS is left out) starts Ray on this "
        "machine; 'auto', HOST:PORT or ray://HOST:PORT joins a running cluster",
    )
    fleet.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --ray: bags scored at once (default: the cluster's CPUs / --threads); each "
        "worker runs the engine with --threads threads (0 counts as 1)",
    )
    parser.add_argument(
        "--frames-parquet",
        type=Path,
        metavar="OUT",
        help="also write one row per object and frame (J, F, pixel counts) as Parquet",
    )

    bag = parser.add_argument_group("bags")
    bag.add_argument(
        "--live",
        action="store_true",
        help="play the bag over ROS topics to the node in its own process (with /clock and "
        "use_sim_time) and score its ~/instances, instead of running the engine in-process",
    )
    live = parser.add_argument_group("live mode (--live)")
    live.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="playback speed as a multiple of the recorded frame rate (default 1.0)",
    )
    live.add_argument(
        "--node-cmd",
        metavar="CMD",
        help="command line that starts the node (default: as launch/vos.launch.py does, with "
        "--model, --backend, image:=<image topic>, use_sim_time:=true)",
    )
    live.add_argument(
        "--namespace",
        metavar="NS",
        help="namespace of the node; without --node-cmd: evaluate the node already running "
        "as NS/vos_node (on ROS_DOMAIN_ID, subscribed to the image topic) instead of starting one",
    )
    live.add_argument(
        "--node-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds the node may take to come up (default 60)",
    )
    bag.add_argument("--image-topic", default="/camera/image_raw")
    bag.add_argument("--gt-topic", default="/camera/ground_truth")
    bag.add_argument(
        "--class-topic",
        default="/camera/ground_truth/classes",
        help="std_msgs/String topic with the class map as JSON ('' for none)",
    )
    bag.add_argument(
        "--prompt-topic",
        default="/vos_node/prompts",
        help="recorded detector boxes (vos_ros/DetectionArray) to replay ('' for none)",
    )
    bag.add_argument(
        "--initial-mask-topic",
        default="/vos_node/initial_mask",
        help="recorded initial masks (sensor_msgs/Image label images) to replay ('' for none)",
    )
    bag.add_argument(
        "--ground-truth-prompts",
        action="store_true",
        help="prompt with the ground truth even when the bag recorded prompts",
    )
    bag.add_argument(
        "--gt-encoding",
        choices=ENCODINGS,
        default="instance",
        help="instance: pixel = instance id (+ class map); panoptic: class*divisor + instance",
    )
    bag.add_argument("--panoptic-divisor", type=int, default=PANOPTIC_DIVISOR)


def run(args: argparse.Namespace) -> int:
    from vos_ros.evaluation.session import EvaluationInputError, EvaluationOptions, evaluate

    if (args.davis is None) == (args.bag is None):
        print("error: give exactly one of --davis DIR or --bag BAG", file=sys.stderr)
        return 2
    if args.predictions is not None and args.davis is None:
        print("error: --predictions needs --davis (the ground truth)", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    if args.live and args.bag is None:
        print("error: --live plays bags (make one with `vos-ros make-bag`)", file=sys.stderr)
        return 2
    try:
        outcome = evaluate(EvaluationOptions.from_args(args))
    except EvaluationInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(outcome.summary)
    if outcome.report_path is not None:
        print(f"\nreport: {outcome.report_path}")
    if outcome.html_path is not None:
        print(f"html:   {outcome.html_path}")
    for message in outcome.errors:
        print(f"error: {message}", file=sys.stderr)
    if outcome.interrupted:
        return 130
    return 2 if outcome.errors else 0
