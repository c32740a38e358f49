"""``vos-ros build-engine``: prebuild (and cache) the TensorRT engines of a model.

The node then starts in seconds instead of building for minutes on its first frame. A
``family: sam2`` folder gets its four graphs exported (if not cached) and their engines built,
as ``backend: tensorrt`` would on the node's first start. On a machine without TensorRT or a
CUDA GPU the command stops with a clear message (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vos_ros.engine import EngineConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (models/<name>)")
    parser.add_argument(
        "--precision", choices=("fp32", "fp16", "bf16"), default="fp16", help="bf16: sam2 only"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="engine + timing cache folder (default ~/.cache/vos_ros)"
    )
    parser.add_argument(
        "--short-side", type=int, default=None, help="processing short side (default: manifest)"
    )
    parser.add_argument("--max-targets", type=int, default=16, help="largest N in the profile")
    parser.add_argument(
        "--memory-size", type=int, default=None, help="ring size (default: manifest)"
    )


def run(args: argparse.Namespace) -> int:
    from vos_ros.engine import EngineConfig, EngineError
    from vos_ros.engine.backends.select import MachineCapabilities

    caps = MachineCapabilities.probe()
    if not caps.tensorrt:
        print(
            "build-engine: TensorRT is not installed here (python -c 'import tensorrt' fails); "
            "install TensorRT 10 on the target machine and run this command there",
            file=sys.stderr,
        )
        return 2
    if not caps.torch_cuda:
        print(
            "build-engine: no CUDA GPU visible (torch.cuda.is_available() is False)",
            file=sys.stderr,
        )
        return 2
    from vos_ros.engine.backends.select import create_backend
    from vos_ros.engine.family import model_family
    from vos_ros.engine.manifest import load_manifest

    try:
        config = EngineConfig(
            model=args.model,
            backend="tensorrt",
            device="cuda",
            precision=args.precision,
            cache_dir=args.cache_dir,
            processing_short_side=args.short_side,
            max_targets=args.max_targets,
            memory_size=args.memory_size,
        )
        if model_family(args.model) == "sam2":
            return _build_sam2(config)
        manifest = load_manifest(config.model)
        short_side = config.processing_short_side or manifest.short_side
        backend = create_backend(config, manifest, short_side=short_side, caps=caps)
    except EngineError as exc:
        print(f"build-engine: {exc}", file=sys.stderr)
        return 1
    _report(backend.built, backend.cache.folder, backend, backend.precision)
    return 0


def _report(built: dict[str, bool], folder: Path, toolchain: Any, precision: str) -> None:
    """One line per engine (built now or taken from the cache), then the toolchain."""
    for graph, was_built in built.items():
        state = "built" if was_built else "up to date (cached)"
        print(f"{graph}: {state} in {folder}")
    print(
        f"TensorRT {toolchain.tensorrt_version}, {toolchain.gpu_name} "
        f"(sm {toolchain.compute_capability}), {precision}"
    )


def _build_sam2(config: EngineConfig) -> int:
    """The four SAM 2 engines (the model's input size and memory are fixed by its config)."""
    from vos_ros.trackers.sam2_tensorrt import prebuild_engines

    if config.processing_short_side is not None or config.memory_size is not None:
        print(
            "build-engine: --short-side and --memory-size do not apply to a sam2 model, which "
            "runs at its fixed square input size with SAM 2's own memory",
            file=sys.stderr,
        )
        return 2
    toolchain, cache, built = prebuild_engines(config)
    _report(built, cache.folder, toolchain, config.precision)
    return 0
