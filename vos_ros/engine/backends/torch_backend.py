"""PyTorch backend: CPU or CUDA, fp16 on CUDA, optional CUDA graphs.

Weights come from the model folder's ``weights.pt`` loaded with ``torch.load(weights_only=True)``
(plain tensors only: a model file can never run code on load). The network is rebuilt with the
builder the manifest names (only builders inside the ``vos_ros`` package are accepted).

With ``cuda_graphs=True`` each input shape is captured once into a CUDA graph and replayed: the
encoder has one shape per stream, the decoder one per (targets N, prototypes P) pair, and both
change rarely. Replays write into static output buffers, which the engine consumes before the
next frame.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.engine.backends.base import BackendError

DEFAULT_BUILDER = "vos_ros.model.network.build_network"


def load_network(
    weights_path: Path, arch: dict[str, Any] | None = None, builder: str = DEFAULT_BUILDER
):
    """Build the network and load ``weights_path``; returns the module in eval mode.

    ``weights.pt`` holds either ``{"arch": ..., "model": state_dict}`` or a bare state dict
    (then ``arch`` from the manifest is used).
    """
    import torch

    module_name, _, func_name = builder.rpartition(".")
    if not module_name.startswith("vos_ros."):
        raise BackendError(f"torch backend: builder {builder!r} is outside the vos_ros package")
    try:
        build = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"torch backend: cannot import builder {builder!r} ({exc})") from None
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, truncated files
        raise BackendError(f"{weights_path}: cannot be loaded as plain tensors ({exc})") from None
    if isinstance(state, dict) and "model" in state and "arch" in state:
        arch, state_dict = state["arch"], state["model"]
    else:
        state_dict = state
    net = build(arch or {})
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise BackendError(f"{weights_path}: weights do not fit the architecture ({exc})") from None
    return net.eval()


class TorchBackend:
    """Runs ``network.encoder`` / ``network.decoder`` (torch modules following the contract).

    :param network: object with ``.encoder`` and ``.decoder`` modules.
    :param device: ``cpu`` or ``cuda``.
    :param precision: ``fp32`` or ``fp16`` (fp16 only on CUDA).
    :param threads: CPU intra-op threads (``torch.set_num_threads``); 0 keeps the default.
    """

    name = "torch"

    def __init__(
        self,
        network: Any,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int = 0,
        cuda_graphs: bool = False,
    ) -> None:
        import torch

        self._torch = torch
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("device=cuda was asked for but torch.cuda.is_available() is False")
        if device not in ("cpu", "cuda"):
            raise BackendError(f"torch backend: unknown device {device!r}")
        if precision == "fp16" and device != "cuda":
            raise BackendError("torch backend: fp16 needs device=cuda (CPU half precision is slow)")
        if cuda_graphs and device != "cuda":
            raise BackendError("torch backend: cuda_graphs needs device=cuda")
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        self.device = device
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._encoder = network.encoder.to(device=device, dtype=self._dtype).eval()
        self._decoder = network.decoder.to(device=device, dtype=self._dtype).eval()
        self._cuda_graphs = cuda_graphs
        self._graphs: dict[tuple, tuple[Any, tuple, Any]] = {}

    @classmethod
    def from_manifest(cls, manifest, device: str, precision: str, threads: int, cuda_graphs: bool):
        if manifest.weights_path is None:
            raise BackendError(
                f"{manifest.folder}: the torch backend needs weights.pt "
                "(model.yaml has no torch.weights)"
            )
        builder = (manifest.raw.get("torch") or {}).get("builder", DEFAULT_BUILDER)
        network = load_network(manifest.weights_path, manifest.arch, builder)
        return cls(
            network, device=device, precision=precision, threads=threads, cuda_graphs=cuda_graphs
        )

    def _to_device(self, array: np.ndarray):
        return self._torch.from_numpy(array).to(self.device, dtype=self._dtype, non_blocking=True)

    def _run(self, name: str, module, inputs: tuple) -> Any:
        if not self._cuda_graphs:
            return module(*inputs)
        key = (name, *(tuple(t.shape) for t in inputs))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(module, inputs)
            self._graphs[key] = entry
        graph, static_in, static_out = entry
        for dst, src in zip(static_in, inputs, strict=False):
            dst.copy_(src)
        graph.replay()
        return static_out

    def _capture(self, module, inputs: tuple):
        torch = self._torch
        static_in = tuple(t.clone() for t in inputs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm up kernels/allocator outside the capture
                module(*static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = module(*static_in)
        return graph, static_in, static_out

    def run_encoder(self, image: np.ndarray) -> tuple[Any, Any, Any]:
        with self._torch.inference_mode():
            key, f4, f8 = self._run("encoder", self._encoder, (self._to_device(image),))
        return key, f4, f8

    def run_decoder(self, key, f4, f8, proto_fg, proto_bg, prev_mask) -> np.ndarray:
        with self._torch.inference_mode():
            inputs = (
                key,
                f4,
                f8,
                self._to_device(proto_fg),
                self._to_device(proto_bg),
                self._to_device(prev_mask),
            )
            logits = self._run("decoder", self._decoder, inputs)
            return logits.float().cpu().numpy()

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.float().cpu().numpy()
