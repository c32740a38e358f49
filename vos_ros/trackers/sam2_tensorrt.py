"""The sam2 family on TensorRT 10: engines of the exported graphs, run inside the model
library's own orchestration.

The graphs are the ones the architecture's ONNX module exports (SAM 2:
:mod:`vos_ros.trackers.sam2_onnx`; EdgeTAM: :mod:`vos_ros.trackers.edgetam_onnx`), and the
submodules are swapped exactly as for ONNX Runtime (``swap_graph_modules``), so the library's
tracking step stays its own code and only the networks run as engines. A :class:`GraphSet`
names what differs per architecture: the graphs, their inputs and outputs, the ranges of their
dynamic axes and the swap. The SAM 2 ranges are below; EdgeTAM's are in
:mod:`vos_ros.trackers.edgetam_tensorrt`.

Why the optimization profiles look as they do: a TensorRT engine accepts only shapes inside the
(min, max) range of each dynamic axis it was built for, and is fastest at ``opt``. The ranges
are derived from the model, not typed in, because they follow from how the streaming tracker
uses it (:mod:`vos_ros.trackers.sam2_memory`):

* ``targets``: a batch holds 1 to ``max_targets`` targets (targets with the same memory frames);
* ``memory_tokens``: a target restarts its memory on each prompt, so it holds one prompt frame
  plus at most ``num_maskmem - 1`` recent frames, ``side * side`` tokens each, followed by its
  object-pointer tokens; a full memory is the steady state of a stream, so ``opt`` is the
  maximum;
* ``pointer_tokens``: the prompt frame's pointer plus at most ``max_obj_ptrs_in_encoder - 1``
  recent ones, each split into ``hidden_dim // mem_dim`` tokens;
* ``prompt_tokens``: only multimask calls reach the engine (single-mask prompt frames stay on
  torch), i.e. ``multimask_min_pt_num`` to ``multimask_max_pt_num`` points, at least SAM 2's
  one padding point, plus the prompt encoder's padding token.

Every other axis is static in the ONNX graph and taken from it. Engines live in the
:class:`~vos_ros.engine.backends.tensorrt_backend.EngineCache` (JSON sidecar, sha256, timing
cache), keyed by the checkpoint's sha256, graph, TensorRT version, GPU, compute capability,
precision and profile.

At run time, inputs and outputs are torch CUDA tensors and the engines run on torch's current
stream: the tensors around them are produced and consumed on that stream, so no extra
synchronization is needed. Outputs are allocated per call (cheap with torch's caching
allocator) because the tracker keeps some of them (memory features, object pointers) across
frames; reused buffers would be overwritten under it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vos_ros.engine.backends.base import BackendError
from vos_ros.engine.backends.tensorrt_backend import (
    BUILDER_FLAGS,
    OPT_TARGETS,
    EngineCache,
    Profile,
    Toolchain,
    bind_inputs,
)
from vos_ros.engine.manifest import sha256_file
from vos_ros.trackers import sam2_onnx
from vos_ros.trackers.onnx_graphs import GraphIO

Range = tuple[int, int, int]  # (min, opt, max) of one axis


@dataclass(frozen=True)
class GraphSet:
    """What the TensorRT path needs to know of one architecture's exported graphs."""

    graphs: tuple[str, ...]
    graph_io: dict[str, GraphIO]
    dim_ranges: Callable[[Any, int], dict[str, Range]]  # (model, max_targets) -> axis ranges
    swap: Callable[[Any, dict[str, Any]], Any]  # (model, {graph: runner}) -> model


def dim_ranges(model: Any, max_targets: int) -> dict[str, Range]:
    """(min, opt, max) of every dynamic axis name the export uses, from the model's settings
    (see the module docstring for why each range is what it is)."""
    side = int(model.sam_image_embedding_size)  # image_size // backbone_stride
    hidden, mem = int(model.hidden_dim), int(model.mem_dim)
    per_pointer = hidden // mem if mem < hidden else 1  # as SAM2Base splits a pointer
    max_frames = int(model.num_maskmem)  # the prompt frame + num_maskmem - 1 recent frames
    if model.use_obj_ptrs_in_encoder:
        pointers = (per_pointer, per_pointer * int(model.max_obj_ptrs_in_encoder))
    else:
        pointers = (0, 0)
    # SAM 2 sends at least one (padding) point, and its prompt encoder appends a padding token.
    points = (max(1, int(model.multimask_min_pt_num)), max(1, int(model.multimask_max_pt_num)))
    return {
        "targets": (1, min(OPT_TARGETS, max_targets), max_targets),
        "memory_tokens": (
            side * side + pointers[0],
            max_frames * side * side + pointers[1],
            max_frames * side * side + pointers[1],
        ),
        "pointer_tokens": (pointers[0], pointers[1], pointers[1]),
        "prompt_tokens": (points[0] + 1, points[1] + 1, points[1] + 1),
    }


SAM2 = GraphSet(sam2_onnx.GRAPHS, sam2_onnx.GRAPH_IO, dim_ranges, sam2_onnx.swap_graph_modules)


def graph_inputs(path: Path) -> list[tuple[str, tuple[int | str, ...]]]:
    """``(name, dims)`` of an ONNX graph's inputs: an int for a static axis, the axis name for a
    dynamic one."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [
        (i.name, tuple(d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim))
        for i in graph.input
        if i.name not in initializers
    ]


def profiles(
    model: Any, folder: Path, max_targets: int, graph_set: GraphSet = SAM2
) -> dict[str, Profile]:
    """One optimization profile per graph in ``folder``: static axes from the graph, dynamic
    axes from the graph set's ``dim_ranges``."""
    ranges = graph_set.dim_ranges(model, max_targets)
    out: dict[str, Profile] = {}
    for graph in graph_set.graphs:
        profile: Profile = {}
        for name, dims in graph_inputs(folder / f"{graph}.onnx"):
            unknown = [d for d in dims if isinstance(d, str) and d not in ranges]
            if unknown:
                raise BackendError(f"{graph}.onnx input {name}: no range for axes {unknown}")
            per_axis = [ranges[d] if isinstance(d, str) else (d, d, d) for d in dims]
            profile[name] = tuple(tuple(r[k] for r in per_axis) for k in range(3))  # type: ignore[assignment]
        out[graph] = profile
    return out


def load_engines(
    model: Any,
    folder: Path,
    precision: str,
    max_targets: int,
    cache_dir: str | None,
    checkpoint_sha256: str,
    toolchain: Toolchain,
    graph_set: GraphSet = SAM2,
) -> tuple[dict[str, tuple[Any, bool]], dict[str, Profile], EngineCache]:
    """``({graph: (engine, built)}, {graph: profile}, cache)``: each engine of the graphs in
    ``folder`` taken from the cache, or built and cached."""
    if precision not in BUILDER_FLAGS:
        raise BackendError(
            f"TensorRT precision must be one of {', '.join(BUILDER_FLAGS)}, got {precision!r}"
        )
    graph_profiles = profiles(model, folder, max_targets, graph_set)
    cache = EngineCache(cache_dir)
    engines = {}
    for graph in graph_set.graphs:
        # keyed by the graph's own bytes too: a new export (other sam2, torch or export code)
        # of the same checkpoint must not reuse an engine built from the old graph
        graph_sha256 = sha256_file(folder / f"{graph}.onnx")
        digest = hashlib.sha256(f"{checkpoint_sha256}|{graph_sha256}".encode()).hexdigest()
        key = toolchain.key(digest, graph, precision, graph_profiles[graph])
        engines[graph] = toolchain.load_or_build(
            cache, key, folder / f"{graph}.onnx", graph_profiles[graph]
        )
    return engines, graph_profiles, cache


class GraphEngine:
    """One graph's engine, called like the ONNX Runtime session: tensors in, tensors out (in
    the order of the graph's ``GraphIO``)."""

    def __init__(
        self, toolchain: Toolchain, engine: Any, graph: str, profile: Profile, io: GraphIO
    ) -> None:
        self.graph = graph
        self.profile = profile
        self.toolchain = toolchain
        self.engine = engine
        self.inputs, self.outputs, _ = io
        engine_outputs = set(toolchain.output_names(engine))
        if engine_outputs != set(self.outputs):
            raise BackendError(
                f"TensorRT engine of {graph} has outputs {sorted(engine_outputs)}, expected "
                f"{sorted(self.outputs)}; delete the cached engine"
            )
        self.dtypes = {
            name: toolchain.torch_dtype(engine.get_tensor_dtype(name))
            for name in (*self.inputs, *self.outputs)
        }
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for {graph}")

    def __call__(self, *tensors: Any) -> list:
        import torch

        device = tensors[0].device
        # the tracker hands over expanded / permuted views and bfloat16 memory features
        inputs = {
            name: t.to(device=device, dtype=self.dtypes[name]).contiguous()
            for name, t in zip(self.inputs, tensors, strict=True)
        }
        # Temporaries freed on return are safe: torch reuses their memory only for work queued
        # later on the same stream, i.e. after the engine has run.
        bind_inputs(self.context, self.profile, inputs, self.graph)
        outputs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self.dtypes[name], device=device)
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        if not self.context.execute_async_v3(self.toolchain.stream_handle(device)):
            raise BackendError(f"TensorRT failed to run the {self.graph} engine")
        return outputs


def use_tensorrt(
    model: Any,
    folder: Path,
    precision: str,
    max_targets: int,
    cache_dir: str | None,
    checkpoint_sha256: str,
    toolchain: Toolchain | None = None,
    graph_set: GraphSet = SAM2,
) -> Any:
    """Swap the same submodules as the architecture's ``use_onnxruntime`` for TensorRT engines
    of the graphs in ``folder`` (built, or taken from the cache); returns ``model``.

    :param precision: fp32, fp16 or bf16 (what TensorRT may use inside the engines).
    :param toolchain: the installed TensorRT on the current GPU by default.
    :param graph_set: the architecture's graphs (SAM 2 by default).
    :raises BackendError: no TensorRT / GPU, or an engine that cannot be built.
    """
    toolchain = toolchain or Toolchain.open()
    engines, graph_profiles, _ = load_engines(
        model,
        folder,
        precision,
        max_targets,
        cache_dir,
        checkpoint_sha256,
        toolchain,
        graph_set,
    )
    runners = {
        graph: GraphEngine(
            toolchain, engine, graph, graph_profiles[graph], graph_set.graph_io[graph]
        )
        for graph, (engine, _) in engines.items()
    }
    return graph_set.swap(model, runners)


def prebuild_engines(config: Any) -> tuple[Toolchain, EngineCache, dict[str, bool]]:
    """Export (if not cached) and build (if not cached) the engines of the ``family: sam2``
    model ``config.model`` (SAM 2 or EdgeTAM) on the current GPU, as the node would on its
    first start.

    :returns: the toolchain, the engine cache and ``{graph: built}``.
    """
    from vos_ros.engine.sam2_predictor import (
        architecture_graphs,
        build_architecture_model,
        onnx_graphs,
    )
    from vos_ros.trackers.sam2_manifest import load_sam2_manifest

    manifest = load_sam2_manifest(config.model, verify_checksums=config.verify_checksums)
    graphs, library, graph_set = architecture_graphs(manifest.architecture)
    toolchain = Toolchain.open()
    model = build_architecture_model(manifest, "cuda")
    folder = onnx_graphs(model, manifest, config, graphs, library)
    precision = "fp16" if config.precision == "auto" else config.precision
    engines, _, cache = load_engines(
        model,
        folder,
        precision,
        config.max_targets,
        config.cache_dir,
        manifest.files[manifest.checkpoint.name],
        toolchain,
        graph_set,
    )
    return toolchain, cache, {graph: built for graph, (_, built) in engines.items()}
