"""The network side of the engine: normalisation, encoder, memory of prototypes, decoder.

:class:`NetworkPredictor` turns a resized frame plus each target's previous mask into one
independent foreground probability map per target, at 1/4 of the processing resolution
(the contract's ``logits`` resolution). The engine around it handles flow, prior, aggregation
and resizing back to the input resolution.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from vos_ros.engine.backends.base import Backend
from vos_ros.engine.memory import MemoryBank
from vos_ros.engine.window import GRID, Window
from vos_ros.model.contract import (
    KEY_STRIDE,
    SKIP_STRIDE,
    check_prototype_scheme,
    frame_prototypes,
)

MEMORY_MODES = ("permanent", "replace", "recent")


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """In place on the decoder's output buffer (returned)."""
    np.negative(logits, out=logits)
    np.exp(logits, out=logits)
    logits += 1.0
    np.reciprocal(logits, out=logits)
    return logits


def _crop(tensor: Any, y0: int, y1: int, x0: int, x1: int) -> Any:
    """Contiguous ``tensor[:, :, y0:y1, x0:x1]`` of a numpy array or a torch tensor (the
    backends' native encoder outputs), on the same device."""
    part = tensor[:, :, y0:y1, x0:x1]
    return part.contiguous() if hasattr(part, "contiguous") else np.ascontiguousarray(part)


class NetworkPredictor:
    """Runs a contract model through a :class:`Backend` with a per-target prototype memory.

    :param mean: per-channel RGB mean (of x / 255) from the manifest.
    :param std: per-channel RGB std from the manifest.
    :param prototype_scheme: how memory prototypes are computed; the manifest's, which the
        network was trained with.
    """

    binary_state = False  # the decoder takes the soft previous mask
    uses_prior = True

    def __init__(
        self,
        backend: Backend,
        memory: MemoryBank,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        prototype_scheme: str,
        adapter=None,
    ) -> None:
        self.backend = backend
        self._base_backend = backend
        # vos_ros.engine.adaptation.OnlineAdapter, or None when online adaptation is off
        self.adapter = adapter
        self.prototype_scheme = check_prototype_scheme(prototype_scheme)
        # Decoder windows pay off on CPUs, where the decoder's cost follows its pixel count. On
        # a GPU a small decoder run costs its launch overhead whatever its size, and varying
        # shapes would defeat TensorRT's profiles and CUDA graphs: whole frames there.
        self.uses_windows = getattr(backend, "device", "cpu") != "cuda"
        self.name = backend.name
        self.memory = memory
        std_arr = np.asarray(std, np.float32)
        # (x / 255 - mean) / std == x * scale + offset, one multiply-add per pixel and channel.
        self._scale = [float(v) for v in 1.0 / (255.0 * std_arr)]
        self._offset = [float(v) for v in -np.asarray(mean, np.float32) / std_arr]
        # (backend key tensor, its numpy copy): holding the tensor makes the identity test safe.
        self._key_cache: tuple[Any, np.ndarray] | None = None
        self.timings_ms: dict[str, float] = {"memory": 0.0, "decoder": 0.0}

    def prepare(self, small_rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)`` at processing size -> normalised ``[1, 3, H, W]`` float32."""
        # Split into contiguous planes first: converting the strided HWC -> CHW transpose
        # directly was 10x slower (2 ms vs 0.2 ms at 512x288, docs/benchmarks.md "Profiling").
        planes = cv2.split(small_rgb)
        out = np.empty((1, 3, *small_rgb.shape[:2]), np.float32)
        for c, plane in enumerate(planes):
            # x * scale + offset in one pass (addWeighted with a zero second term); two numpy
            # passes (multiply, then add) took ~0.07 ms more at 512x288.
            cv2.addWeighted(
                plane, self._scale[c], plane, 0.0, self._offset[c], dst=out[0, c], dtype=cv2.CV_32F
            )
        return out

    @property
    def can_adapt(self) -> bool:
        return self.adapter is not None

    def adapt(self, small_rgb: np.ndarray, masks: list[np.ndarray]) -> None:
        """Run the network fine-tuned on this annotated frame from now on (until ``reset``).

        :raises BackendError: when the fine-tuning or the export fails (the backend is kept).

        Memory written before is computed with the old encoder, so the engine calls this only
        when no target has memory yet.
        """
        self.backend = self.adapter.adapt(small_rgb, masks)
        self._key_cache = None

    def start_adaptation(self, small_rgb: np.ndarray, masks: list[np.ndarray]) -> None:
        """Learn this annotated frame in the background (see :meth:`take_adapted_backend`)."""
        self.adapter.start(small_rgb, masks)

    def take_adapted_backend(self) -> bool:
        """Switch to the backend a background adaptation finished; True when it switched."""
        backend = self.adapter.take_ready() if self.adapter is not None else None
        if backend is None:
            return False
        self.backend = backend
        self._key_cache = None
        return True

    def cancel_adaptation(self) -> None:
        if self.adapter is not None:
            self.adapter.cancel()

    def worth_adapting(self, masks: list[np.ndarray]) -> bool:
        return self.adapter is not None and self.adapter.worth_adapting(masks)

    def encode(self, image: np.ndarray) -> tuple[Any, Any, Any]:
        # A backend may reuse its output buffers (CUDA graphs): a new frame invalidates the copy.
        self._key_cache = None
        return self.backend.run_encoder(image)

    def predict(
        self,
        features: tuple[Any, Any, Any],
        ids: list[int],
        previous: np.ndarray,
        windows: list[Window | None] | None = None,
    ) -> np.ndarray:
        """Foreground probabilities ``[N, h/4, w/4]`` float32 of targets ``ids``.

        :param previous: ``[N, h/4, w/4]`` float32 previous soft masks (already warped/gated).
        :param windows: per target, a decoder window at mask resolution (the target is decoded
            on that region only and is 0 outside it) or ``None`` (whole frame); see
            :mod:`vos_ros.engine.window`. ``None``: every target on the whole frame.
        """
        t0 = time.perf_counter()
        proto_fg, proto_bg = self.memory.gather(ids)
        t1 = time.perf_counter()
        prev_mask = np.ascontiguousarray(previous, dtype=np.float32)[:, None]
        if windows is None or all(w is None for w in windows):
            probs = self._decode(features, proto_fg, proto_bg, prev_mask)
        else:
            probs = np.zeros(previous.shape, np.float32)
            whole = [i for i, w in enumerate(windows) if w is None]
            if whole:
                probs[whole] = self._decode(
                    features, proto_fg[whole], proto_bg[whole], prev_mask[whole]
                )
            key, f4, f8 = features
            rows, calls = [], []
            for i, window in enumerate(windows):
                if window is None:
                    continue
                x0, y0, x1, y1 = window
                k0, k1, j0, j1 = y0 // GRID, y1 // GRID, x0 // GRID, x1 // GRID
                rows.append(i)
                calls.append(
                    (
                        _crop(key, k0, k1, j0, j1),
                        _crop(f4, y0, y1, x0, x1),
                        _crop(f8, k0, k1, j0, j1),
                        proto_fg[i : i + 1],
                        proto_bg[i : i + 1],
                        np.ascontiguousarray(prev_mask[i : i + 1, :, y0:y1, x0:x1]),
                    )
                )
            run_many = getattr(self.backend, "run_decoders", None)
            if run_many is not None:
                outputs = run_many(calls)
            else:
                outputs = [self.backend.run_decoder(*call) for call in calls]
            for i, logits in zip(rows, outputs, strict=True):
                x0, y0, x1, y1 = windows[i]
                probs[i, y0:y1, x0:x1] = _sigmoid(logits[0, 0])
        t2 = time.perf_counter()
        self.timings_ms["memory"] = (t1 - t0) * 1e3
        self.timings_ms["decoder"] = (t2 - t1) * 1e3
        return probs

    def _decode(self, features, proto_fg, proto_bg, prev_mask: np.ndarray) -> np.ndarray:
        """One decoder run -> probabilities ``[n, h, w]``."""
        logits = self.backend.run_decoder(
            *features,
            np.ascontiguousarray(proto_fg),
            np.ascontiguousarray(proto_bg),
            prev_mask,
        )
        return _sigmoid(logits.reshape(prev_mask.shape[0], *prev_mask.shape[2:]))

    def memorize(
        self, features: tuple[Any, Any, Any], target_id: int, prob: np.ndarray, mode: str
    ) -> None:
        """Store target ``target_id``'s prototypes from this frame.

        :param prob: ``[h/4, w/4]`` float32 mask of the target on the frame ``features`` came from.
        :param mode: ``permanent`` (annotation, kept for good), ``replace`` (annotation that drops
            the target's earlier memory) or ``recent`` (ring entry).
        """
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory mode must be one of {MEMORY_MODES}, got {mode!r}")
        key_native = features[0]
        if self._key_cache is None or self._key_cache[0] is not key_native:
            self._key_cache = (key_native, self.backend.to_numpy(key_native)[0])
        key = self._key_cache[1]
        h8, w8 = key.shape[1:]
        factor = KEY_STRIDE // SKIP_STRIDE
        if prob.shape != (h8 * factor, w8 * factor):
            raise ValueError(f"mask shape {prob.shape} does not match key shape {key.shape[1:]}")
        prob8 = cv2.resize(prob, (w8, h8), interpolation=cv2.INTER_AREA)
        fg, bg = frame_prototypes(key, prob8, self.prototype_scheme)
        target = self.memory.get(target_id)
        if mode == "recent":
            target.add_recent(fg, bg)
        else:
            target.add_permanent(fg, bg, replace=mode == "replace")

    def forget(self, target_id: int) -> None:
        self.memory.remove(target_id)

    def reset(self) -> None:
        self.memory.clear()
        self._key_cache = None
        self.backend = self._base_backend  # a new stream starts from the shipped weights
        self.cancel_adaptation()

    def memory_nbytes(self) -> int:
        return self.memory.nbytes()
