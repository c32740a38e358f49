"""The one interface every inference backend implements (ONNX Runtime, PyTorch, TensorRT).

The engine calls :meth:`Backend.run_encoder` once per frame and :meth:`Backend.run_decoder` once
per frame for all targets, exactly as the model contract (:mod:`vos_ros.model.contract`) defines
the two graphs. Encoder outputs may stay in the backend's own memory (e.g. on the GPU): the engine
passes them back to ``run_decoder`` untouched and asks for a host copy of ``key`` only when it
writes a memory entry (:meth:`Backend.to_numpy`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from vos_ros.engine.config import EngineError


class BackendError(EngineError):
    """A backend cannot be created or cannot run the model (named, never a silent fallback)."""


@runtime_checkable
class Backend(Protocol):
    """Runs ``encoder.onnx``/``decoder.onnx`` (or their PyTorch twins).

    Attributes: ``name`` (``onnxruntime`` | ``torch`` | ``tensorrt``) and ``device``
    (``cpu`` | ``cuda``), reported in diagnostics.
    """

    name: str
    device: str

    def run_encoder(self, image: np.ndarray) -> tuple[Any, Any, Any]:
        """``image`` ``[1, 3, H, W]`` float32 -> ``(key, f4, f8)`` in backend-native form."""
        ...

    def run_decoder(
        self,
        key: Any,
        f4: Any,
        f8: Any,
        proto_fg: np.ndarray,
        proto_bg: np.ndarray,
        prev_mask: np.ndarray,
    ) -> np.ndarray:
        """Encoder outputs + ``proto_fg``/``proto_bg`` ``[N, P, KEY_DIM]`` + ``prev_mask``
        ``[N, 1, H/4, W/4]`` (float32 numpy) -> ``logits`` ``[N, 1, H/4, W/4]`` float32 numpy."""
        ...

    def to_numpy(self, tensor: Any) -> np.ndarray:
        """Host float32 copy (or view) of an encoder output."""
        ...
