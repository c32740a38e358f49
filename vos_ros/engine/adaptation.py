"""Online adaptation in the engine: learn the first annotated frame of a stream, then run the
adapted network (:mod:`vos_ros.model.online_adapt` does the learning).

The adapted network replaces the predictor's backend for the rest of the stream; ``reset``
brings the shipped weights back. Blocking mode learns inside the frame that brought the
annotation; background mode (:meth:`OnlineAdapter.start`) learns on a worker thread while the
shipped weights keep tracking, and the engine swaps the backend in at the next frame after it
is done. ONNX Runtime runs the adapted network from a fresh export (the sessions read the
files once, so the temporary folder is deleted right after); the torch backend runs the module
itself. TensorRT would need an engine build per stream and is refused.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.engine.backends.base import Backend, BackendError
from vos_ros.engine.config import ConfigError, EngineConfig

ADAPTABLE_BACKENDS = ("onnxruntime", "torch")
_EXPORT_LOCK = threading.Lock()


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
        self._job: Future | None = None
        self._stop: threading.Event | None = None
        self._lock = threading.Lock()  # _base_network from the worker and the engine thread
        self.state = "idle"  # idle | running | done | failed
        self.error = ""

    # ------------------------------------------------------------------ background mode
    def start(self, small_rgb: np.ndarray, masks: list[np.ndarray]) -> None:
        """Learn on a daemon thread (it never holds up the process's exit); :meth:`take_ready`
        hands the backend over when done. A job still running from an earlier stream is
        stopped at its next step and its result is never used."""
        self.cancel()
        frame, copies = small_rgb.copy(), [m.copy() for m in masks]
        job: Future = Future()
        stop = threading.Event()
        # One torch thread unless configured: the other core keeps tracking meanwhile.
        settings = dataclasses.replace(self.settings, threads=self._config.threads or 1)

        def work() -> None:
            try:
                job.set_result(self.adapt(frame, copies, settings, stop))
            except BaseException as exc:  # handed to the engine thread by take_ready
                job.set_exception(exc)

        self._job, self._stop = job, stop
        self.state, self.error = "running", ""
        threading.Thread(target=work, name="vos-adapt", daemon=True).start()

    def take_ready(self) -> Backend | None:
        """The adapted backend once the background job is done (once), else None. A failed
        job is recorded in ``state``/``error`` and tracking goes on with the shipped weights."""
        job = self._job
        if job is None or not job.done():
            return None
        self._job = None
        try:
            backend = job.result()
        except Exception as exc:  # adapt() names its failures as BackendError
            self.state, self.error = "failed", str(exc)
            return None
        self.state = "done"
        return backend

    def cancel(self) -> None:
        """Stop and forget the background job (a new stream, or no target left)."""
        if self._stop is not None:
            self._stop.set()
        self._job, self._stop = None, None
        if self.state == "running":
            self.state = "idle"

    def _base_network(self):
        with self._lock:
            return self._load_base_network()

    def _load_base_network(self):
        if self._network is None:
            from vos_ros.engine.backends.torch_backend import DEFAULT_BUILDER, load_network

            builder = (self._manifest.raw.get("torch") or {}).get("builder", DEFAULT_BUILDER)
            self._network = load_network(self._manifest.weights_path, self._manifest.arch, builder)
        return self._network

    def adapt(
        self,
        small_rgb: np.ndarray,
        masks: list[np.ndarray],
        settings: Any = None,
        stop: threading.Event | None = None,
    ) -> Backend:
        """A backend running the network fine-tuned on ``small_rgb`` (processing size) and its
        target ``masks`` (same size, non-zero = target).

        :raises BackendError: when the fine-tuning or the export fails or ``stop`` is set.
        """
        from vos_ros.model.online_adapt import AdaptationStoppedError, adapt_network

        try:
            network, self.last_report = adapt_network(
                self._base_network(),
                small_rgb,
                masks,
                settings or self.settings,
                prototype_scheme=self._manifest.prototype_scheme,
                device=self._device,
                stop=stop,
            )
        except AdaptationStoppedError:
            raise BackendError("online adaptation stopped (new stream)") from None
        except BackendError:
            raise
        except Exception as exc:  # torch raises RuntimeError and others: name the stage
            raise BackendError(f"online adaptation failed: {exc}") from exc
        if stop is not None and stop.is_set():  # no export for a result nobody will use
            raise BackendError("online adaptation stopped (new stream)")
        return self._backend_for(network)

    def worth_adapting(self, masks: list[np.ndarray]) -> bool:
        """False when every target is too small to learn from (tracking goes on unadapted)."""
        from vos_ros.model.online_adapt import large_enough

        return any(large_enough(m, self.settings) for m in masks)

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

        # torch.onnx.export keeps global state: two at once (a background job of an earlier
        # stream still exporting) fail with "GLOBALS.in_onnx_export must be False".
        with _EXPORT_LOCK, tempfile.TemporaryDirectory(prefix="vos_ros-adapted-") as tmp:
            folder = Path(tmp)
            try:
                export_onnx(network.cpu(), folder, self._short_side)
            except Exception as exc:  # torch.onnx raises many types
                raise BackendError(f"exporting the adapted network failed: {exc}") from None
            return OnnxRuntimeBackend(
                folder / "encoder.onnx",
                folder / "decoder.onnx",
                self._device,
                self._config.threads,
                memory_arena=self._config.cpu_memory_arena,
            )
