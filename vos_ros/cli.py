"""``vos-ros``: the project's command-line entry point.

Each subcommand lives in its own module under :mod:`vos_ros.commands` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep heavy imports
(torch, rclpy, onnxruntime) inside ``run`` so that ``vos-ros --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under vos_ros.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "end-to-end demo: synthetic bag -> node (live) -> evaluation report"),
    "node": ("node", "run the ROS 2 node (same as `ros2 run vos_ros vos_node`)"),
    "evaluate": ("evaluate", "score the engine or existing predictions on DAVIS folders or bags"),
    "make-bag": ("make_bag", "write a DAVIS-layout folder or a synthetic clip as a rosbag2 MCAP"),
    "bench": ("bench", "per-stage timings and throughput of the engine and node"),
    "train": ("train", "train the segmentation network"),
    "crossval": ("crossval", "k-fold cross-validation over the training sequences"),
    "export": ("export", "export a trained checkpoint to ONNX + manifest"),
    "build-engine": ("build_engine", "prebuild the TensorRT engine for a model"),
    "console": ("console", "web console: live view with target selection, offline runs"),
    "fetch-model": ("fetch_model", "download a pretrained tracker (SAM 2.1, EdgeTAM) checkpoint"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vos-ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(f"vos_ros.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"vos_ros.commands.{module_name}":
                raise
            continue  # command not built yet
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
