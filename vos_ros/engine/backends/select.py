"""Choose and create the inference backend.

``backend="auto"`` picks the fastest one this machine can run, by what is installed:
TensorRT (``tensorrt`` importable and a CUDA GPU) > PyTorch on CUDA > ONNX Runtime with its
CUDA provider > ONNX Runtime on CPU > PyTorch on CPU.
Once chosen, a backend that fails to start raises :class:`BackendError` naming the backend and
the reason; the engine never switches to another backend or device on its own, because a node
that silently runs 10x slower on the CPU is worse than one that stops with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass

from vos_ros.engine.backends.base import Backend, BackendError
from vos_ros.engine.config import EngineConfig


@dataclass(frozen=True)
class MachineCapabilities:
    """What is installed; probed once, injectable in tests."""

    tensorrt: bool
    torch: bool
    torch_cuda: bool
    onnxruntime: bool
    onnxruntime_cuda: bool

    @classmethod
    def probe(cls) -> MachineCapabilities:
        from vos_ros.engine.backends.onnxruntime_backend import cuda_provider_available
        from vos_ros.engine.backends.tensorrt_backend import tensorrt_importable

        try:
            import torch

            has_torch, torch_cuda = True, bool(torch.cuda.is_available())
        except ImportError:
            has_torch, torch_cuda = False, False
        try:
            import onnxruntime  # noqa: F401

            has_ort = True
        except ImportError:
            has_ort = False
        return cls(
            tensorrt=tensorrt_importable(),
            torch=has_torch,
            torch_cuda=torch_cuda,
            onnxruntime=has_ort,
            onnxruntime_cuda=has_ort and cuda_provider_available(),
        )


def choose_backend(config: EngineConfig, caps: MachineCapabilities) -> tuple[str, str]:
    """``(backend, device)`` for ``config`` on a machine with ``caps``.

    :raises BackendError: when an explicit choice cannot run here (the message says why).
    """
    backend, device = config.backend, config.device
    if backend == "auto":
        if device in ("auto", "cuda") and caps.tensorrt and caps.torch_cuda:
            return "tensorrt", "cuda"
        if device in ("auto", "cuda") and caps.torch_cuda:
            return "torch", "cuda"
        if device in ("auto", "cuda") and caps.onnxruntime_cuda:
            return "onnxruntime", "cuda"
        if device == "cuda":
            raise BackendError("device=cuda was asked for but no backend here can use a CUDA GPU")
        if caps.onnxruntime:
            return "onnxruntime", "cpu"
        if caps.torch:
            return "torch", "cpu"
        raise BackendError("no inference backend installed: pip install onnxruntime")
    if backend == "tensorrt":
        if device == "cpu":
            raise BackendError("backend=tensorrt runs on CUDA only; device=cpu is not possible")
        if not caps.tensorrt:
            raise BackendError(
                "backend=tensorrt was asked for but the tensorrt package is not importable"
            )
        if not caps.torch_cuda:
            raise BackendError(
                "backend=tensorrt needs a CUDA GPU and PyTorch with CUDA; none found"
            )
        return "tensorrt", "cuda"
    if backend == "torch":
        if not caps.torch:
            raise BackendError("backend=torch was asked for but PyTorch is not installed")
        if device == "cuda" and not caps.torch_cuda:
            raise BackendError(
                "backend=torch device=cuda was asked for but torch.cuda is unavailable"
            )
        return "torch", (
            "cuda" if device == "cuda" or (device == "auto" and caps.torch_cuda) else "cpu"
        )
    # onnxruntime
    if not caps.onnxruntime:
        raise BackendError("backend=onnxruntime was asked for but onnxruntime is not installed")
    if device == "cuda" and not caps.onnxruntime_cuda:
        raise BackendError(
            "backend=onnxruntime device=cuda: onnxruntime has no CUDAExecutionProvider"
        )
    return "onnxruntime", (
        "cuda" if device == "cuda" or (device == "auto" and caps.onnxruntime_cuda) else "cpu"
    )


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> fp16 on CUDA, fp32 on CPU; fp16 on CPU and bf16 are refused."""
    if precision == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if precision == "bf16":
        raise BackendError(
            "precision=bf16 is for the sam2 model family on CUDA; this model's networks run "
            "fp32 or fp16"
        )
    if precision == "fp16" and device == "cpu":
        raise BackendError("precision=fp16 needs a CUDA device; use fp32 on the CPU")
    return precision


def create_backend(
    config: EngineConfig, manifest, short_side: int, caps: MachineCapabilities | None = None
) -> Backend:
    """Create the backend ``config`` asks for (see the module docstring for ``auto``)."""
    caps = caps or MachineCapabilities.probe()
    backend, device = choose_backend(config, caps)
    if backend == "onnxruntime":
        if config.precision == "fp16":
            raise BackendError(
                "backend=onnxruntime runs the fp32 ONNX graphs; use precision=auto or fp32"
            )
        from vos_ros.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            manifest.encoder_path,
            manifest.decoder_path,
            device,
            config.threads,
            memory_arena=config.cpu_memory_arena,
        )
    precision = resolve_precision(config.precision, device)
    if backend == "torch":
        from vos_ros.engine.backends.torch_backend import TorchBackend

        return TorchBackend.from_manifest(
            manifest, device, precision, config.threads, config.cuda_graphs
        )
    from vos_ros.engine.backends.tensorrt_backend import TensorRTBackend, profile_shapes

    memory_size = config.memory_size or manifest.memory_size or 4
    profiles = profile_shapes(
        short_side,
        config.max_targets,
        max_memory_frames=config.permanent_size + memory_size,
        opt_memory_frames=1 + memory_size,
        c4=manifest.c4,
        c8=manifest.c8,
    )
    return TensorRTBackend(manifest, precision, profiles, config.cache_dir)
