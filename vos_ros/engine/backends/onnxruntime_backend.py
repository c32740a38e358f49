"""ONNX Runtime backend: the default on CPU; uses the CUDA execution provider when asked for.

Encoder outputs stay as numpy arrays (CPU) and are fed straight back to the decoder session, so
nothing is copied between the two graphs on CPU.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.engine.backends.base import BackendError
from vos_ros.model import contract


def cuda_provider_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _feeds(key, f4, f8, proto_fg, proto_bg, prev_mask) -> dict[str, np.ndarray]:
    return {
        "key": key,
        "f4": f4,
        "f8": f8,
        "proto_fg": proto_fg,
        "proto_bg": proto_bg,
        "prev_mask": prev_mask,
    }


def _session_options(ort: Any, threads: int, arena: bool) -> Any:
    """Options of one session: ``threads`` intra-op threads (0 = ONNX Runtime's choice)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    # No busy-waiting of the worker threads between runs: on a small, shared CPU they spin
    # on the cores the rest of the frame (resizing, flow, messages) needs. Measured on the
    # 2-core development machine under load: 3 targets at 854x480 went from 119 to 39 ms per
    # frame (docs/benchmarks.md, "Profiling").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


class OnnxRuntimeBackend:
    """Two :class:`onnxruntime.InferenceSession` objects (encoder, decoder).

    :param device: ``cpu`` or ``cuda`` (CUDA execution provider; raises when it is missing).
    :param threads: intra-op threads per session; 0 lets ONNX Runtime decide.
    :param memory_arena: ONNX Runtime's CPU memory arena (see ``EngineConfig.cpu_memory_arena``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        encoder_path: Path,
        decoder_path: Path,
        device: str = "cpu",
        threads: int = 0,
        memory_arena: bool = False,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(
                f"onnxruntime is not installed ({exc}); pip install onnxruntime"
            ) from None
        if device == "cuda":
            if not cuda_provider_available():
                raise BackendError(
                    "device=cuda was asked for but onnxruntime has no CUDAExecutionProvider "
                    f"(available: {ort.get_available_providers()}); install onnxruntime-gpu "
                    "or use device=cpu"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise BackendError(f"onnxruntime backend: unknown device {device!r}")
        self.device = device
        # Decoder shapes change every frame (windows, lost targets), where an arena keeps the
        # largest working set ever needed (EngineConfig.cpu_memory_arena).
        options = _session_options(ort, threads, arena=memory_arena)
        # Small decoder runs (one per decoder window) use one thread each and run side by side:
        # a window is too small to split well over cores, a frame's windows are not (measured
        # effect: docs/benchmarks.md, "Changes of 2026-12-02").
        self._workers = threads or min(4, os.cpu_count() or 1)
        single = _session_options(ort, 1, arena=memory_arena)
        try:
            self._encoder = ort.InferenceSession(str(encoder_path), options, providers=providers)
            self._decoder = ort.InferenceSession(str(decoder_path), options, providers=providers)
            self._decoder_single = None
            if device == "cpu" and self._workers > 1:
                self._decoder_single = ort.InferenceSession(
                    str(decoder_path), single, providers=providers
                )
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise BackendError(f"onnxruntime could not load the model: {exc}") from None
        self._pool: ThreadPoolExecutor | None = None
        if device == "cuda" and "CUDAExecutionProvider" not in self._encoder.get_providers():
            raise BackendError("onnxruntime did not enable CUDAExecutionProvider for the encoder")

    def run_encoder(self, image: np.ndarray) -> tuple[Any, Any, Any]:
        key, f4, f8 = self._encoder.run(list(contract.ENCODER_OUTPUTS), {"image": image})
        return key, f4, f8

    def run_decoder(self, key, f4, f8, proto_fg, proto_bg, prev_mask) -> np.ndarray:
        return self._decoder.run(["logits"], _feeds(key, f4, f8, proto_fg, proto_bg, prev_mask))[0]

    def run_decoders(self, calls: list[tuple]) -> list[np.ndarray]:
        """Several independent decoder runs (each a ``run_decoder`` argument tuple), side by side
        on single-threaded sessions when there are several cores."""
        if len(calls) < 2 or self._decoder_single is None:
            return [self.run_decoder(*call) for call in calls]
        if self._pool is None:  # its idle threads end when the backend is garbage-collected
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="vos-decoder")
        session = self._decoder_single
        # InferenceSession.run is thread-safe and releases the GIL while it computes.
        return list(self._pool.map(lambda call: session.run(["logits"], _feeds(*call))[0], calls))

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return np.asarray(tensor, dtype=np.float32)
