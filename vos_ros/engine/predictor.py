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
from vos_ros.model.contract import KEY_STRIDE, SKIP_STRIDE, frame_prototypes

MEMORY_MODES = ("permanent", "replace", "recent")


class NetworkPredictor:
    """Runs a contract model through a :class:`Backend` with a per-target prototype memory.

    :param mean: per-channel RGB mean (of x / 255) from the manifest.
    :param std: per-channel RGB std from the manifest.
    """

    binary_state = False  # the decoder takes the soft previous mask
    uses_prior = True

    def __init__(
        self,
        backend: Backend,
        memory: MemoryBank,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        self.backend = backend
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
            np.multiply(plane, np.float32(self._scale[c]), out=out[0, c], dtype=np.float32)
            out[0, c] += np.float32(self._offset[c])
        return out

    def encode(self, image: np.ndarray) -> tuple[Any, Any, Any]:
        # A backend may reuse its output buffers (CUDA graphs): a new frame invalidates the copy.
        self._key_cache = None
        return self.backend.run_encoder(image)

    def predict(
        self, features: tuple[Any, Any, Any], ids: list[int], previous: np.ndarray
    ) -> np.ndarray:
        """Foreground probabilities ``[N, h/4, w/4]`` float32 of targets ``ids``.

        :param previous: ``[N, h/4, w/4]`` float32 previous soft masks (already warped/gated).
        """
        t0 = time.perf_counter()
        proto_fg, proto_bg = self.memory.gather(ids)
        t1 = time.perf_counter()
        prev_mask = np.ascontiguousarray(previous, dtype=np.float32)[:, None]
        logits = self.backend.run_decoder(*features, proto_fg, proto_bg, prev_mask)
        probs = logits.reshape(previous.shape)
        # sigmoid, in place on the decoder's output buffer
        np.negative(probs, out=probs)
        np.exp(probs, out=probs)
        probs += 1.0
        np.reciprocal(probs, out=probs)
        t2 = time.perf_counter()
        self.timings_ms["memory"] = (t1 - t0) * 1e3
        self.timings_ms["decoder"] = (t2 - t1) * 1e3
        return probs

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
        fg, bg = frame_prototypes(key, prob8)
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

    def memory_nbytes(self) -> int:
        return self.memory.nbytes()
