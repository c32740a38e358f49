"""``vos-ros bench [engine|node|soak]``: benchmarks of the engine and the node.

Modes (the first argument, default ``engine``)::

    # engine in-process: per-stage timings, throughput and latency per backend, size, targets
    vos-ros bench [--backends flow,onnxruntime,torch] [--sizes 854x480,1280x720] \\
        [--targets 1,3,10] [--frames 60] [--json OUT.json] [--write-md docs/benchmarks.md]

    # node across processes (publisher -> node -> subscriber), with a pass-through node as the
    # ROS-only baseline in the same run
    vos-ros bench node [--backends onnxruntime] [--sizes 854x480] [--targets 1,3] \\
        [--rate 30] [--seconds 15] [--json OUT.json] [--write-md docs/benchmarks.md]

    # soak: minutes at camera rate with targets added and removed by service; JSON + PNG plot
    vos-ros bench soak [--minutes 10] [--rate 30] [--change-every 5] --json OUT.json \\
        [--plot OUT.png] [--write-md docs/benchmarks.md]

Nothing here asserts a time: the commands print and record medians and spreads.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from vos_ros.benchmark.clips import size_list
from vos_ros.engine.model_paths import DEFAULT_MODEL

MODES = ("engine", "node", "soak", "faults")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,3,10; got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be at least 1; got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    from vos_ros.benchmark.engine_bench import BACKEND_SPECS

    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in BACKEND_SPECS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKEND_SPECS)}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    parser.add_argument(
        "mode", nargs="?", choices=MODES, default="engine", help="what to benchmark (engine)"
    )
    common = parser.add_argument_group("all modes")
    common.add_argument(
        "--model",
        default=None,
        help=f"'flow' (no network), a model folder or an installed model's name (default: "
        f"{DEFAULT_MODEL}, the product's default model)",
    )
    common.add_argument(
        "--backends",
        type=_name_list,
        default=None,
        help="comma list of flow, onnxruntime, onnxruntime-cuda, torch, torch-cuda, tensorrt "
        "(engine default: every one available here; node/soak default: onnxruntime, first used)",
    )
    common.add_argument("--sizes", type=size_list, default=None, help="WxH list (854x480,...)")
    common.add_argument("--targets", type=_int_list, default=None, help="target counts (1,3,10)")
    common.add_argument("--threads", type=int, default=0, help="CPU threads, 0 = library default")
    common.add_argument("--json", type=Path, default=None, help="write the records here")
    common.add_argument(
        "--write-md",
        type=Path,
        default=None,
        help="write the run's Markdown block into its section of this file, replacing the "
        "block of the run before (git keeps the history)",
    )
    common.add_argument(
        "--machine", default=None, help="machine label for the records (default: detected)"
    )
    from vos_ros.benchmark.fault_soak import add_fault_arguments

    add_fault_arguments(parser.add_argument_group("faults (soak with fault injection)"))
    engine = parser.add_argument_group("engine")
    engine.add_argument("--frames", type=int, default=60, help="measured frames per case (60)")
    engine.add_argument("--warmup", type=int, default=5, help="unmeasured frames per case (5)")
    engine.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample the measured frames with pyinstrument (requirements-dev.txt) and write the "
        "call tree here (.html: interactive page, otherwise text)",
    )
    engine.add_argument(
        "--pace-hz",
        type=float,
        default=None,
        help="start each step on a tick of this rate, as camera frames arrive (default: "
        "back-to-back); the node benchmark measures both at --rate",
    )
    engine.add_argument(
        "--clip-length", type=int, default=40, help="synthetic clip length, played back and forth"
    )
    engine.add_argument(
        "--engine-set",
        action="append",
        metavar="NAME=VALUE",
        help="set a field of vos_ros.engine.EngineConfig, e.g. lost_search_every=1 (repeatable)",
    )
    engine.add_argument(
        "--adapt-steps",
        type=int,
        default=None,
        help="online adaptation steps on each case's annotated frame (engine adapt_steps; off)",
    )
    engine.add_argument(
        "--adapt-background",
        action="store_true",
        default=None,
        help="with --adapt-steps: learn on the worker thread during the measured frames",
    )
    ros = parser.add_argument_group("node and soak")
    ros.add_argument("--rate", type=float, default=30.0, help="publishing rate in Hz (30)")
    ros.add_argument(
        "--seconds", type=float, default=15.0, help="node: measured seconds per phase (15)"
    )
    ros.add_argument(
        "--warmup-seconds", type=float, default=4.0, help="node: unmeasured seconds per phase (4)"
    )
    ros.add_argument("--minutes", type=float, default=10.0, help="soak: duration (10)")
    ros.add_argument(
        "--change-every", type=float, default=5.0, help="soak: seconds between target changes (5)"
    )
    ros.add_argument("--plot", type=Path, default=None, help="soak: PNG plot path")
    ros.add_argument(
        "--fastdds-profile",
        type=Path,
        default=None,
        help="node/soak: Fast DDS XML profile for every process instead of LARGE_DATA "
        "(e.g. config/fastdds_shm_udp.xml)",
    )
    ros.add_argument(
        "--fastdds-transports",
        default=None,
        help="node/soak: FASTDDS_BUILTIN_TRANSPORTS for every process instead of the node's "
        "default (e.g. 'LARGE_DATA?max_msg_size=4MB': frames sent whole, not in 64 KB fragments)",
    )
    ros.add_argument(
        "--log-dir", type=Path, default=None, help="node/soak: keep the child processes' logs here"
    )


# Options that matter for each mode, in the order the reproducing command line lists them.
_MODE_OPTIONS = {
    "engine": ("model", "backends", "sizes", "targets", "threads", "frames", "warmup",
               "pace_hz", "clip_length", "adapt_steps", "adapt_background", "profile"),
    "node": ("model", "backends", "sizes", "targets", "threads", "rate", "seconds",
             "warmup_seconds", "fastdds_profile", "fastdds_transports"),
    "soak": ("model", "backends", "sizes", "threads", "rate", "minutes", "change_every",
             "fastdds_profile", "fastdds_transports"),
}  # fmt: skip


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (the mode's options with the values used)."""
    words = ["vos-ros", "bench"] + ([args.mode] if args.mode != "engine" else [])
    for name in _MODE_OPTIONS[args.mode]:
        value = getattr(args, name)
        if value is None or value is False:
            continue
        if value is True:  # a flag
            words.append(f"--{name.replace('_', '-')}")
            continue
        if isinstance(value, list):
            value = ",".join(
                "x".join(str(v) for v in item) if isinstance(item, tuple) else str(item)
                for item in value
            )
        words += [
            f"--{name.replace('_', '-')}",
            f"{value:g}" if isinstance(value, float) else str(value),
        ]
    for name in ("json", "write_md", "plot"):
        if getattr(args, name) is not None:
            words += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    for name in ("frames", "warmup", "clip_length"):
        if getattr(args, name) < (1 if name != "warmup" else 0):
            print(f"error: --{name.replace('_', '-')} is too small", file=sys.stderr)
            return 2
    bad_pace = args.pace_hz is not None and args.pace_hz <= 0
    if args.rate <= 0 or args.seconds <= 0 or args.minutes <= 0 or bad_pace:
        print("error: --rate, --seconds, --minutes and --pace-hz must be positive", file=sys.stderr)
        return 2
    model = args.model or DEFAULT_MODEL
    model = args.model = _relative(model)
    import vos_ros.engine.backends  # noqa: F401 - sets OMP_WAIT_POLICY unless torch is loaded

    if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY") != "PASSIVE":
        print(
            "warning: torch was imported before the engine could set OMP_WAIT_POLICY=PASSIVE; "
            "torch CPU timings include OpenMP busy-waiting (set OMP_WAIT_POLICY=PASSIVE in the "
            "environment to measure without it)",
            file=sys.stderr,
        )
    if args.mode == "engine":
        return _run_engine(args, model)
    if args.mode == "node":
        return _run_node(args, model)
    if args.mode == "faults":
        return _run_faults(args, model)
    return _run_soak(args, model)


def _relative(path: str) -> str:
    """``path`` relative to the working directory when inside it (for readable records)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _meta(args: argparse.Namespace, title: str, model: str, **extra) -> dict:
    from vos_ros.benchmark.engine_bench import model_info
    from vos_ros.benchmark.stats import load_average, machine_info, today

    return {
        "title": title,
        "command": _command_line(args),
        "date": today(),
        "machine": machine_info(args.machine),
        "model": model_info(model),
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": {"before": load_average()},
        **extra,
    }


def _finish(args: argparse.Namespace, meta: dict, payload: dict, section: str, block: str) -> None:
    from vos_ros.benchmark.report import run_header, write_into_section
    from vos_ros.benchmark.stats import load_average

    meta["load_average"]["after"] = load_average()
    document = {**meta, **payload}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=_json_default))
        print(f"wrote {args.json}")
    markdown = run_header(meta) + "\n\n" + block
    print(markdown)
    if args.write_md:
        write_into_section(args.write_md, section, markdown)
        print(f"wrote into {args.write_md} (section {section})")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _run_engine(args: argparse.Namespace, model: str) -> int:
    from vos_ros.benchmark.engine_bench import (
        available_backends,
        engine_target_checks,
        run_engine_bench,
    )
    from vos_ros.benchmark.report import engine_table, targets_list
    from vos_ros.evaluation.session import EvaluationInputError, parse_engine_settings

    profiler = None
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            print("error: --profile needs pyinstrument: pip install pyinstrument", file=sys.stderr)
            return 2
        profiler = Profiler(interval=0.0005)
    try:
        settings = parse_engine_settings(args.engine_set or [])
    except EvaluationInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backends = args.backends or available_backends()
    if model == "flow":
        backends = ["flow"]
    sizes = args.sizes or [(854, 480), (1280, 720)]
    targets = args.targets or [1, 3, 10]
    meta = _meta(
        args,
        "Engine (in-process)",
        model,
        notes=[
            f"{args.frames} measured frames per case after {args.warmup} warm-up frames; "
            "times in ms, median [p5–p95]; fps = 1000 / median end-to-end",
            "end-to-end = engine.step + message decode/build/serialise (node work without DDS)",
        ]
        + (
            [f"each step started on a {args.pace_hz:g} Hz tick (as camera frames arrive)"]
            if args.pace_hz
            else []
        ),
    )
    records = run_engine_bench(
        backends,
        sizes,
        targets,
        frames=args.frames,
        warmup=args.warmup,
        model=model,
        threads=args.threads,
        clip_length=args.clip_length,
        progress=print,
        profiler=profiler,
        adapt_steps=args.adapt_steps or 0,
        adapt_background=bool(args.adapt_background),
        engine_settings=settings,
        pace_hz=args.pace_hz,
    )
    if profiler is not None:
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        if args.profile.suffix == ".html":
            args.profile.write_text(profiler.output_html())
        else:
            args.profile.write_text(profiler.output_text(unicode=True, color=False))
        print(f"wrote the profile to {args.profile}")
    checks = engine_target_checks(records)
    block = engine_table(records)
    if checks:
        block += "\n\nTargets (ONNX Runtime, 854x480):\n\n" + targets_list(checks)
    _finish(args, meta, {"cases": records, "targets": checks}, "Engine", block)
    return 0 if all("error" not in r for r in records) else 1


def _run_node(args: argparse.Namespace, model: str) -> int:
    from vos_ros.benchmark.node_bench import node_block, run_node_bench

    backend = (args.backends or ["onnxruntime"])[0]
    if model == "flow":
        backend = "flow"
    width, height = (args.sizes or [(854, 480)])[0]
    meta = _meta(args, f"Node across processes ({backend})", model)
    result = run_node_bench(
        backend=backend,
        model=model,
        size=(width, height),
        targets=args.targets or [1, 3],
        rate=args.rate,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        threads=args.threads,
        log_dir=args.log_dir,
        progress=print,
        fastdds_profile=args.fastdds_profile,
        fastdds_transports=args.fastdds_transports,
    )
    _finish(args, meta, result, "Node", node_block(result))
    return 0 if not result.get("error") else 1


def _run_soak(args: argparse.Namespace, model: str) -> int:
    from vos_ros.benchmark.soak import run_soak, soak_block

    backend = (args.backends or ["onnxruntime"])[0]
    if model == "flow":
        backend = "flow"
    width, height = (args.sizes or [(854, 480)])[0]
    meta = _meta(args, f"Soak ({backend}, {args.minutes:g} min)", model)
    plot = args.plot or (args.json.with_suffix(".png") if args.json else None)
    result = run_soak(
        backend=backend,
        model=model,
        size=(width, height),
        minutes=args.minutes,
        rate=args.rate,
        change_every=args.change_every,
        threads=args.threads,
        plot_path=plot,
        log_dir=args.log_dir,
        progress=print,
        fastdds_profile=args.fastdds_profile,
        fastdds_transports=args.fastdds_transports,
    )
    _finish(args, meta, result, "Soak", soak_block(result))
    return 0 if not result.get("error") else 1


def _run_faults(args: argparse.Namespace, model: str) -> int:
    """The soak with fault injection (docs/reliability.md); shares --seconds, --rate, --sizes."""
    from vos_ros.benchmark import fault_soak

    width, height = (args.sizes or [(320, 240)])[0]
    backend = "flow" if model == "flow" else (args.backends or ["onnxruntime"])[0]
    fault_args = argparse.Namespace(
        size=f"{width}x{height}",
        seconds=args.seconds,
        rate=args.rate,
        model=model,
        backend=backend,
        threads=max(args.threads, 1),
        bad_every=args.bad_every,
        backend_error_every=args.backend_error_every,
        service_hz=args.service_hz,
        seed=args.seed,
        json=args.json,
        log_dir=args.log_dir,
    )
    return fault_soak.run(fault_args)
