"""The launch arguments of ``launch/vos.launch.py`` and the node command line they amount to.

One source of truth for two ways of starting the node: the launch file (ROS distros, where
``launch_ros`` exists) reads its argument names, defaults and descriptions from here, and
:func:`node_command` builds the equivalent ``--ros-args`` command line for machines without
``launch`` (the PyPI wheels have none), which the tests use. This module imports no ROS package.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vos_ros.engine.model_paths import DEFAULT_MODEL

PACKAGE = "vos_ros"
EXECUTABLE = "vos_node"
NODE_NAME = "vos_node"
# The node logs this (then its image topic) once active; the programs that start it wait for it.
NODE_ACTIVE_LOG = "active: listening on"
# Without the LARGE_DATA transport, Fast DDS drops nearly every VGA image sent with best-effort QoS
# between processes (UDP fragments are lost); LARGE_DATA uses shared memory + TCP instead.
FASTDDS_TRANSPORT_ENV = ("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")


def random_domain_id() -> int:
    """A ROS domain id for one run of the node with its clients (tests, benchmarks, evaluation).

    1-101: the domains whose DDS ports stay below Linux's ephemeral range (32768-60999); above it
    an outgoing socket (LARGE_DATA's TCP connections) can take a discovery port.
    """
    return random.randint(1, 101)


@dataclass(frozen=True)
class LaunchArg:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


def default_config_path() -> str:
    """``config/vos.yaml`` of the installed package (colcon) or of this checkout (pip -e)."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            installed = Path(get_package_share_directory(PACKAGE)) / "config" / "vos.yaml"
            if installed.is_file():
                return str(installed)
        except (PackageNotFoundError, KeyError, ValueError, OSError):
            pass
    except ImportError:
        pass
    return str(Path(__file__).resolve().parents[2] / "config" / "vos.yaml")


LAUNCH_ARGUMENTS: tuple[LaunchArg, ...] = (
    LaunchArg(
        "image",
        "/camera/image_raw",
        "Camera topic (sensor_msgs/Image); with input.compressed:=true the node reads "
        "<image>/compressed (sensor_msgs/CompressedImage) instead.",
    ),
    LaunchArg(
        "config",
        default_config_path(),
        "Parameter file (YAML) for the node; see config/vos.yaml for every parameter.",
    ),
    LaunchArg(
        "model",
        DEFAULT_MODEL,
        "'flow' (training-free tracker), or a model folder: a path, or the name of an "
        "installed model (protonet-s or models/protonet-s, found in the package's share folder).",
    ),
    LaunchArg(
        "backend",
        "auto",
        "Inference runtime for model folders.",
        choices=("auto", "onnxruntime", "torch", "tensorrt"),
    ),
    LaunchArg(
        "namespace",
        "",
        "Namespace of the node and its topics (one namespace per camera).",
    ),
    LaunchArg(
        "use_sim_time",
        "false",
        "Use the /clock topic (bag replay with --clock).",
        choices=("true", "false"),
    ),
    LaunchArg(
        "log_level",
        "info",
        "Logging level of the node.",
        choices=("debug", "info", "warn", "error", "fatal"),
    ),
)

LAUNCH_DEFAULTS: dict[str, str] = {arg.name: arg.default for arg in LAUNCH_ARGUMENTS}


def remappings(image: str) -> list[tuple[str, str]]:
    """Topic remappings the launch file applies for camera topic ``image``."""
    return [("image", image), ("image/compressed", f"{image}/compressed")]


def node_parameters(values: dict[str, str]) -> dict[str, object]:
    """Parameters set from launch arguments on top of the parameter file."""
    return {
        "model": values["model"],
        "backend": values["backend"],
        "use_sim_time": values["use_sim_time"].lower() == "true",
    }


def node_command(
    overrides: dict[str, str] | None = None,
    parameters_dir: Path | str | None = None,
    extra_parameters: dict[str, object] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The node command line equivalent to ``ros2 launch vos_ros vos.launch.py`` with
    ``overrides`` (launch argument name -> value, as strings).

    As in the launch file, the parameters set from launch arguments (and ``extra_parameters``)
    must win over the parameter file; ROS gives a parameter file precedence over ``-p``, so they
    go into a second parameter file written to ``parameters_dir`` (default: a temporary folder),
    exactly as ``launch_ros`` does with a parameter dictionary.
    """
    values = {**LAUNCH_DEFAULTS, **(overrides or {})}
    unknown = sorted(set(values) - set(LAUNCH_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown launch argument(s): {', '.join(unknown)}")
    for arg in LAUNCH_ARGUMENTS:
        if arg.choices and values[arg.name] not in arg.choices:
            raise ValueError(
                f"launch argument {arg.name}={values[arg.name]!r} is not one of {arg.choices}"
            )
    import yaml

    parameters = {**node_parameters(values), **(extra_parameters or {})}
    folder = Path(parameters_dir) if parameters_dir else Path(tempfile.mkdtemp(prefix="vos_ros_"))
    folder.mkdir(parents=True, exist_ok=True)
    launch_file = folder / "launch_parameters.yaml"
    launch_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": _nest(parameters)}}))

    command = [python, "-m", "vos_ros.ros.node", "--ros-args", "-r", f"__node:={NODE_NAME}"]
    if values["namespace"]:
        command += ["-r", f"__ns:={_absolute(values['namespace'])}"]
    command += ["--params-file", values["config"], "--params-file", str(launch_file)]
    for source, target in remappings(values["image"]):
        command += ["-r", f"{source}:={target}"]
    command += ["--log-level", values["log_level"]]
    return command


def _nest(flat: dict[str, object]) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the layout of ROS parameter files)."""
    nested: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        section = nested
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = value
    return nested


def process_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the Fast DDS transport set unless
    the caller already chose one, as the launch file does."""
    env = dict(os.environ if base is None else base)
    key, value = FASTDDS_TRANSPORT_ENV
    env.setdefault(key, value)
    return env


def _absolute(namespace: str) -> str:
    return namespace if namespace.startswith("/") else "/" + namespace
