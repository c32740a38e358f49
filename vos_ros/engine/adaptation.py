"""Online adaptation in the engine: learn the first annotated frame of a stream, then run the
adapted network (:mod:`vos_ros.model.online_adapt` does the learning).

The adapted network replaces the predictor's backend for the rest of the stream; ``reset``
brings the shipped weights back. ONNX Runtime runs the adapted network from a fresh export (the
sessions read the files once, so the temporary folder is deleted right after); the torch
backend runs the module itself. TensorRT would need an engine build per stream and is refused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.engine.backends.base import Backend, BackendError
from vos_ros.engine.config import ConfigError, EngineConfig

ADAPTABLE_BACKENDS = ("onnxruntime", "torch")


class OnlineAdapter:
    """Fine-tunes the manifest's ``weights.pt`` on an annotated frame and builds a backend for it.

    :param manifest: the model's checked manifest (needs ``weights.pt``).
    :param backend: the backend the engine runs (its name and device are reused).
    :raises ConfigError: when the backend cannot run adapted weights or there is no weights.pt.
    """

    def __init__(self, config: EngineConfig, manifest, backend: Backend, short_side: int) -> None:
        from vos_ros.model.online_adapt import AdaptSettings

        if backend.name not in ADAPTABLE_BACKENDS:
            raise ConfigError(
                f"adapt_steps > 0 needs backend onnxruntime or torch, not {backend.name} "
                "(an adapted network would need a TensorRT engine build per stream)"
            )
        if manifest.weights_path is None:
            raise ConfigError(
                f"adapt_steps > 0 needs the model's weights.pt; {manifest.folder}/model.yaml "
                "names none"
            )
        self.settings = AdaptSettings(
            steps=config.adapt_steps,
            scope=config.adapt_scope,
            lr=config.adapt_lr,
            threads=config.threads,
        )
        self._config = config
        self._manifest = manifest
        self._backend_name = backend.name
        self._device = backend.device
        self._short_side = short_side
        self._network: Any = None  # the shipped weights, loaded on first use
        self.last_report = None

    def _base_network(self):
        if self._network is None:
            from vos_ros.engine.backends.torch_backend import DEFAULT_BUILDER, load_network

            builder = (self._manifest.raw.get("torch") or {}).get("builder", DEFAULT_BUILDER)
            self._network = load_network(self._manifest.weights_path, self._manifest.arch, builder)
        return self._network

    def adapt(self, small_rgb: np.ndarray, masks: list[np.ndarray]) -> Backend:
        """A backend running the network fine-tuned on ``small_rgb`` (processing size) and its
        target ``masks`` (same size, non-zero = target)."""
        from vos_ros.model.online_adapt import adapt_network

        network, self.last_report = adapt_network(
            self._base_network(),
            small_rgb,
            masks,
            self.settings,
            prototype_scheme=self._manifest.prototype_scheme,
            device=self._device,
        )
        return self._backend_for(network)

    def _backend_for(self, network) -> Backend:
        if self._backend_name == "torch":
            from vos_ros.engine.backends.select import resolve_precision
            from vos_ros.engine.backends.torch_backend import TorchBackend

            precision = resolve_precision(self._config.precision, self._device)
            return TorchBackend(
                network, self._device, precision, self._config.threads, self._config.cuda_graphs
            )
        from vos_ros.engine.backends.onnxruntime_backend import OnnxRuntimeBackend
        from vos_ros.model.export import export_onnx

        with tempfile.TemporaryDirectory(prefix="vos_ros-adapted-") as tmp:
            folder = Path(tmp)
            try:
                export_onnx(network.cpu(), folder, self._short_side)
            except Exception as exc:  # torch.onnx raises many types
                raise BackendError(f"exporting the adapted network failed: {exc}") from None
            return OnnxRuntimeBackend(
                folder / "encoder.onnx", folder / "decoder.onnx", self._device, self._config.threads
            )
