"""``vos-ros node [--ros-args ...]``: run the ROS 2 node (same as ``ros2 run vos_ros vos_node``).

Everything after ``--ros-args`` goes to ROS unchanged, e.g.::

    vos-ros node --ros-args -r image:=/camera/image_raw -p model:=flow \\
        --params-file config/vos.yaml
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ros-args",
        dest="ros_args",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="ARG",
        help="ROS arguments (remappings -r, parameters -p, --params-file, --log-level, ...)",
    )


def run(args: argparse.Namespace) -> int:
    from vos_ros.ros.node import main

    ros_args = ["--ros-args", *args.ros_args] if args.ros_args else []
    return main(["vos-ros", *ros_args])
