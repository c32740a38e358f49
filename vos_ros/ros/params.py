"""The node's parameters: one table of specs, declared with descriptors, read into a frozen config.

Single source of truth: :data:`PARAMETERS` drives the declarations (description, type, range,
read-only flag), ``config/vos.yaml`` mirrors the defaults (a test checks), and the README's
parameter table is generated from it by :func:`markdown_table` (a test checks that too).

Values are read once, in ``on_configure``, into :class:`NodeConfig`. A bad value (out of range,
wrong type, unknown choice) never crashes the node at start-up: it is recorded at declaration and
turned into a configure FAILURE whose message names the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from vos_ros.engine.model_paths import DEFAULT_MODEL

if TYPE_CHECKING:
    from rclpy.node import Node

ParamValue = bool | int | float | str


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, default (which also fixes its type), help text and limits."""

    name: str
    default: ParamValue
    description: str
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    @property
    def field_name(self) -> str:
        """The :class:`NodeConfig` attribute (dots become underscores)."""
        return self.name.replace(".", "_")

    @property
    def type_name(self) -> str:
        return {bool: "bool", int: "int", float: "double", str: "string"}[type(self.default)]

    def check(self, value: ParamValue) -> str | None:
        """A reason why ``value`` is not acceptable, or None if it is."""
        expected = type(self.default)
        # bool is an int subclass in Python: compare exact types
        if type(value) is not expected and not (expected is float and type(value) is int):
            return (
                f"parameter '{self.name}' must be of type {self.type_name}, "
                f"got {type(value).__name__} {value!r}"
            )
        if self.int_range and not self.int_range[0] <= value <= self.int_range[1]:
            return (
                f"parameter '{self.name}' = {value} is out of range "
                f"[{self.int_range[0]}, {self.int_range[1]}]"
            )
        if self.float_range and not self.float_range[0] <= value <= self.float_range[1]:
            return (
                f"parameter '{self.name}' = {value} is out of range "
                f"[{self.float_range[0]}, {self.float_range[1]}]"
            )
        if self.choices and value not in self.choices:
            return (
                f"parameter '{self.name}' = {value!r} is not one of "
                f"{', '.join(repr(c) for c in self.choices)}"
            )
        return None

    def limits_text(self) -> str:
        if self.int_range:
            return f"{self.int_range[0]} .. {self.int_range[1]}"
        if self.float_range:
            return f"{self.float_range[0]:g} .. {self.float_range[1]:g}"
        if self.choices:
            return ", ".join(f"`{c}`" for c in self.choices)
        return ""


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "autostart",
        True,
        "Configure and activate right after start-up (set false to drive the lifecycle "
        "from a lifecycle manager).",
        read_only=True,
    ),
    ParamSpec(
        "model",
        DEFAULT_MODEL,
        "Segmentation model: the name of an installed model (protonet-s, the default: the "
        "network fused with the flow fallback), the path of a model folder (models/<name>, with "
        "model.yaml and ONNX graphs), or 'flow' (the training-free optical-flow tracker alone).",
    ),
    ParamSpec(
        "model_root",
        "",
        "When set, 'model' must be 'flow' or a folder inside this directory (symbolic links "
        "and '..' are resolved first); any other path fails configure. Empty = no restriction.",
        read_only=True,
    ),
    ParamSpec(
        "backend",
        "auto",
        "Inference runtime for model folders; 'auto' picks the fastest one installed.",
        choices=("auto", "onnxruntime", "torch", "tensorrt"),
    ),
    ParamSpec(
        "engine.device",
        "auto",
        "Where the network runs; 'auto' = CUDA when the backend can use it.",
        choices=("auto", "cpu", "cuda"),
    ),
    ParamSpec(
        "engine.precision",
        "auto",
        "Numeric precision; 'auto' = fp16 on CUDA (sam2 family on torch: bf16), fp32 on CPU; "
        "bf16 only for the sam2 family on CUDA.",
        choices=("auto", "fp32", "fp16", "bf16"),
    ),
    ParamSpec(
        "engine.threads",
        0,
        "Intra-op threads of the CPU backends (0 = library default).",
        int_range=(0, 256),
    ),
    ParamSpec(
        "engine.processing_short_side",
        0,
        "Frames are resized so their short side has about this many pixels (rounded to a "
        "multiple of 32: 360 runs at 352) before inference; results come back at the input "
        "size. 0 = the model's default.",
        int_range=(0, 4096),
    ),
    ParamSpec(
        "engine.max_targets",
        16,
        "Most targets tracked at once; requests that would exceed it are refused.",
        int_range=(1, 255),
    ),
    ParamSpec(
        "engine.flow_preset",
        "auto",
        "OpenCV DIS optical-flow preset used to carry masks from frame to frame; auto: medium "
        "for the flow fallback, ultrafast for networks.",
        choices=("auto", "ultrafast", "fast", "medium"),
    ),
    ParamSpec(
        "engine.flow_round_trip",
        False,
        "The flow fallback, alone or fused with a network: a second optical-flow run per frame "
        "(previous to current) finds the pixels a moving target just uncovered, where the "
        "warped mask is a guess (5-fold J&F "
        "0.710 -> 0.717; 8-10 ms more per frame at 854x480 on 2 CPU cores; measured with the "
        "commands in docs/architecture.md, 'Uncovered pixels').",
    ),
    ParamSpec(
        "engine.fuse_fallback",
        -1.0,
        "Network models (protonet family): above 0, the flow fallback runs beside the network "
        "and its log-odds, times this weight, are added to the network's, which keeps the mask "
        "near where the flow carried it (docs/architecture.md, 'Fusing a network with the "
        "fallback'); 0 = the network alone; -1 = the model's own value (protonet-s: 3, chosen "
        "by cross-validation; online adaptation fine-tunes the fused network). The flow "
        "fallback ignores it.",
        float_range=(-1.0, 100.0),
    ),
    ParamSpec(
        "engine.decoder_window_scale",
        2.0,
        "CPU backends: each visible target is decoded on its previous box enlarged this many "
        "times (at least a quarter of the frame per side) instead of the whole frame, so every "
        "added target costs little; 0 = always the whole frame.",
        float_range=(0.0, 10.0),
    ),
    ParamSpec(
        "engine.lost_search_every",
        2,
        "A lost target (not seen) is searched for on the whole frame, the most expensive "
        "decoder run, on every this-many-th frame only (staggered over the lost targets), so it "
        "comes back at most this many frames later; 1 = every frame.",
        int_range=(1, 30),
    ),
    ParamSpec(
        "engine.adapt_steps",
        0,
        "Online adaptation (network models, onnxruntime or torch backend): on the first "
        "annotation of a stream the network is fine-tuned on that frame for this many steps "
        "(OSVOS-style; 100 raised DAVIS J&F from 0.63 to 0.67 with protonet-s), about 50 s for "
        "100 steps on a 2-core CPU. 0 = off.",
        int_range=(0, 10000),
    ),
    ParamSpec(
        "engine.adapt_scope",
        "all",
        "What online adaptation fine-tunes: the whole network, or only the decoder (faster, "
        "smaller gain).",
        choices=("all", "decoder"),
    ),
    ParamSpec(
        "engine.adapt_background",
        True,
        "Online adaptation on a worker thread: the shipped weights keep tracking and the "
        "adapted network takes over when it is ready (state in the diagnostics' "
        "online_adaptation value); false blocks the stream until the fine-tuning is done.",
    ),
    ParamSpec(
        "engine.tensorrt_cache_dir",
        "",
        "Folder of the TensorRT engine and timing caches (the one 'vos-ros build-engine "
        "--cache-dir' filled); empty = ~/.cache/vos_ros/tensorrt.",
    ),
    ParamSpec(
        "warmup",
        True,
        "Run the engine once on a blank frame during configure, so the first camera frame "
        "is not slowed down by lazy initialisation.",
    ),
    ParamSpec(
        "input.compressed",
        False,
        "Subscribe to image/compressed (sensor_msgs/CompressedImage, decoded with OpenCV) "
        "instead of image (sensor_msgs/Image).",
    ),
    ParamSpec(
        "input.reliability",
        "best_effort",
        "QoS reliability of the image subscription (REP-2003 sensor data: best_effort).",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec(
        "input.depth",
        1,
        "QoS history depth of the image subscription; the node only ever works on the newest "
        "frame, so 1 is enough.",
        int_range=(1, 100),
    ),
    ParamSpec(
        "input.max_pixels",
        33_554_432,
        "Images with more pixels (width x height) than this are refused before they are "
        "decoded (a throttled warning names the size); 33554432 = 32 megapixels.",
        int_range=(64, 1 << 31),
    ),
    ParamSpec(
        "output.depth",
        5,
        "QoS history depth of the (reliable) output topics.",
        int_range=(1, 100),
    ),
    ParamSpec(
        "output.label_encoding",
        "auto",
        "Encoding of ~/label_image: 'auto' = mono8 while every target id is below 256, "
        "mono16 otherwise.",
        choices=("auto", "mono8", "mono16"),
    ),
    ParamSpec(
        "output.overlay_alpha",
        0.5,
        "Opacity of the target colours in ~/overlay (computed only while someone subscribes).",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "frame_buffer.size",
        30,
        "How many recent input frames are kept for requests that name the stamp of the frame "
        "they were made on.",
        int_range=(1, 600),
    ),
    ParamSpec(
        "frame_buffer.tolerance_ms",
        0.0,
        "A request stamp matches the nearest buffered frame within this many milliseconds "
        "(0 = exact match).",
        float_range=(0.0, 1000.0),
    ),
    ParamSpec(
        "box_prompt.method",
        "grabcut",
        "How ~/add_objects and ~/prompts turn a box into a mask: 'grabcut' (OpenCV GrabCut "
        "inside the box, the box itself if that fails) or 'box' (the filled box).",
        choices=("grabcut", "box"),
    ),
    ParamSpec(
        "box_prompt.grabcut_iterations",
        5,
        "GrabCut iterations per box.",
        int_range=(1, 20),
    ),
    ParamSpec(
        "prompts.enabled",
        True,
        "Subscribe to ~/prompts (the project's DetectionArray: boxes + class labels) and add "
        "each box as a new target, like ~/add_objects.",
    ),
    ParamSpec(
        "diagnostics.period_s",
        1.0,
        "Period of the /diagnostics status (frame rate, latency, dropped frames, targets).",
        float_range=(0.1, 60.0),
    ),
    ParamSpec(
        "diagnostics.latency_warn_ms",
        1000.0,
        "Diagnostics turn WARN when the 95th percentile of receive-to-publish latency "
        "exceeds this.",
        float_range=(1.0, 60000.0),
    ),
    ParamSpec(
        "diagnostics.stale_input_s",
        5.0,
        "Diagnostics turn WARN when the node is active but no image arrived for this long.",
        float_range=(0.1, 3600.0),
    ),
    ParamSpec(
        "memory.trim_period_s",
        10.0,
        "Every this many seconds the inference thread hands freed heap memory back to the "
        "operating system (glibc malloc_trim, ~0.1-1 ms), so the resident size does not ratchet "
        "up as targets come and go; /diagnostics report the resident size read right after the "
        "last trim (resident_after_trim_mib). 0 = never.",
        float_range=(0.0, 3600.0),
    ),
    ParamSpec(
        "log_throttle_s",
        5.0,
        "Repeated warnings about bad input are logged at most once per this many seconds.",
        float_range=(0.1, 3600.0),
    ),
)

SPECS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeConfig:
    """The parameter values the node works with, read once in ``on_configure``."""

    autostart: bool
    model: str
    model_root: str
    backend: str
    engine_device: str
    engine_precision: str
    engine_threads: int
    engine_processing_short_side: int
    engine_max_targets: int
    engine_flow_preset: str
    engine_flow_round_trip: bool
    engine_fuse_fallback: float
    engine_decoder_window_scale: float
    engine_lost_search_every: int
    engine_adapt_steps: int
    engine_adapt_scope: str
    engine_adapt_background: bool
    engine_tensorrt_cache_dir: str
    warmup: bool
    input_compressed: bool
    input_reliability: str
    input_depth: int
    input_max_pixels: int
    output_depth: int
    output_label_encoding: str
    output_overlay_alpha: float
    frame_buffer_size: int
    frame_buffer_tolerance_ms: float
    box_prompt_method: str
    box_prompt_grabcut_iterations: int
    prompts_enabled: bool
    diagnostics_period_s: float
    diagnostics_latency_warn_ms: float
    diagnostics_stale_input_s: float
    memory_trim_period_s: float
    log_throttle_s: float

    @classmethod
    def from_values(cls, values: dict[str, ParamValue]) -> NodeConfig:
        """Build a config from ``{parameter name: value}``; missing names take their default.

        :raises ValueError: naming the first bad parameter.
        """
        unknown = sorted(set(values) - set(SPECS_BY_NAME))
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
        kwargs = {}
        for spec in PARAMETERS:
            value = values.get(spec.name, spec.default)
            reason = spec.check(value)
            if reason:
                raise ValueError(reason)
            if isinstance(spec.default, float):
                value = float(value)
            kwargs[spec.field_name] = value
        reason = model_path_problem(kwargs["model"], kwargs["model_root"])
        if reason:
            raise ValueError(reason)
        return cls(**kwargs)

    @classmethod
    def defaults(cls) -> NodeConfig:
        return cls.from_values({})


# Keep NodeConfig and PARAMETERS in step: fail at import, not at run time.
if [f.name for f in fields(NodeConfig)] != [spec.field_name for spec in PARAMETERS]:
    raise RuntimeError("NodeConfig fields and PARAMETERS are out of step")


def model_path_problem(model: str, model_root: str) -> str | None:
    """Why ``model`` is not allowed under ``model_root`` (None: allowed).

    Both paths are resolved (``~``, ``..`` and symbolic links) before the comparison, so neither
    ``model_root/../elsewhere`` nor a link inside the root that points outside it gets through.
    """
    if not model_root or model == "flow":
        return None
    from vos_ros.engine.model_paths import resolve_model

    root = Path(model_root).expanduser().resolve()
    target = Path(resolve_model(model)).expanduser().resolve()  # the folder the engine will load
    if not target.is_relative_to(root):
        return (
            f"parameter 'model' = {model!r} resolves to {target}, which is outside "
            f"model_root {root}"
        )
    return None


def descriptor_for(spec: ParamSpec):  # -> rcl_interfaces.msg.ParameterDescriptor
    """The ROS parameter descriptor (description, type, range, read-only) for ``spec``."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    parameter_type = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
    }[type(spec.default)]
    descriptor = ParameterDescriptor(
        name=spec.name,
        type=parameter_type,
        description=spec.description,
        read_only=spec.read_only,
    )
    if spec.choices:
        descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.int_range:
        descriptor.integer_range = [
            IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=0)
        ]
    if spec.float_range:
        descriptor.floating_point_range = [
            FloatingPointRange(
                from_value=float(spec.float_range[0]), to_value=float(spec.float_range[1]), step=0.0
            )
        ]
    return descriptor


def declare_parameters(node: Node) -> dict[str, str]:
    """Declare every parameter on ``node``; returns ``{name: reason}`` for rejected overrides.

    A rejected override (out of range, wrong type) is declared with its default instead, so the
    node still starts and can report the problem at configure, naming the parameter.
    """
    from rclpy.exceptions import ParameterException

    rejected: dict[str, str] = {}
    for spec in PARAMETERS:
        descriptor = descriptor_for(spec)
        try:
            node.declare_parameter(spec.name, spec.default, descriptor)
        except ParameterException as exc:
            rejected[spec.name] = f"parameter '{spec.name}': {exc}"
            node.declare_parameter(spec.name, spec.default, descriptor, ignore_override=True)
    return rejected


def read_config(node: Node, rejected: dict[str, str] | None = None) -> NodeConfig:
    """Read all parameters of ``node`` into a :class:`NodeConfig`.

    :raises ValueError: naming the parameter, for an override rejected at declaration or a value
        outside its choices.
    """
    if rejected:
        raise ValueError("; ".join(rejected[name] for name in sorted(rejected)))
    values = {spec.name: node.get_parameter(spec.name).value for spec in PARAMETERS}
    return NodeConfig.from_values(values)


def check_parameter_update(name: str, value: ParamValue) -> str | None:
    """Reason to reject a run-time ``ros2 param set`` of one of our parameters (None = accept)."""
    spec = SPECS_BY_NAME.get(name)
    return spec.check(value) if spec else None


def markdown_table() -> str:
    """The README's parameter table, generated from :data:`PARAMETERS`."""
    lines = [
        "| parameter | type | default | range / choices | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in PARAMETERS:
        default = str(spec.default).lower() if isinstance(spec.default, bool) else spec.default
        description = spec.description + (" Read-only." if spec.read_only else "")
        lines.append(
            f"| `{spec.name}` | {spec.type_name} | `{default}` | {spec.limits_text()} "
            f"| {description} |"
        )
    return "\n".join(lines)


def yaml_defaults(node_name: str = "vos_node") -> dict:
    """``{node_name: {ros__parameters: {...}}}`` with every default, nested at the dots."""
    params: dict = {}
    for spec in PARAMETERS:
        *parents, leaf = spec.name.split(".")
        section = params
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = spec.default
    return {node_name: {"ros__parameters": params}}
