"""A contract network fused with the flow fallback: both opinions as log-odds, added.

The network (:class:`~vos_ros.engine.predictor.NetworkPredictor`) recognises the target by its
learnt features; the fallback (:class:`~vos_ros.engine.fallback.FlowPredictor`) knows where the
flow carried it and what its colours and motion are. Their failures differ: the network's mask
picks up background far away that resembles the target, which the fallback's prior rules out;
the fallback loses parts that the flow misses and the network still recognises. Adding the two
log-odds (a product of the two experts, the fallback's weighted by ``weight``) keeps what both
believe and lets a confident one overrule an unsure one.

The engine runs this predictor at the fallback's mask resolution (the processing size) with its
DIS preset: the network sees the previous masks area-averaged to 1/4 of it, its logits are
scaled back up bilinearly. A lost target (no previous mask) is searched by the network alone,
which matches the target's learnt prototypes over the whole frame; the fallback's colour
search would veto everything it does not find itself.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from vos_ros.engine.fallback import FallbackFeatures, FlowPredictor, sigmoid
from vos_ros.engine.flow import Motion
from vos_ros.engine.predictor import NetworkPredictor
from vos_ros.engine.window import target_windows
from vos_ros.model.contract import SKIP_STRIDE

# Probabilities are clipped to [EPS, 1 - EPS] before taking log-odds (+-CLIP, 6.9): a saturated
# opinion of one side can still be overruled by the other.
EPS = 1e-3
CLIP = float(np.log((1.0 - EPS) / EPS))
# Log-odds below this are 0 in effect (a probability under 1e-6).
NEGLIGIBLE = -13.8


class FusedPredictor:
    """The predictor interface of :class:`NetworkPredictor`, at the processing size.

    :param network: the contract network, its memory and backend.
    :param fallback: the flow fallback, built for the same processing short side.
    :param weight: weight of the fallback's log-odds (> 0).
    :param window_scale: decoder windows of the network (CPU backends; ``EngineConfig``'s
        ``decoder_window_scale``, 0: whole frames) and their least share of each side.
    """

    binary_state = True  # hard masks between frames, as the fallback was tuned with
    uses_prior = True  # the box prior against far-away responses, as for a network alone
    uses_windows = False  # the network's windows are chosen here, at its own resolution
    masks_at_processing_size = True  # the engine's masks, warps and aggregation

    def __init__(
        self,
        network: NetworkPredictor,
        fallback: FlowPredictor,
        weight: float,
        window_scale: float = 0.0,
        window_min: float = 0.25,
    ) -> None:
        if not weight > 0:
            raise ValueError(f"the fallback's weight must be > 0, got {weight!r}")
        self.network = network
        self.fallback = fallback
        self.weight = float(weight)
        self._window_scale = window_scale if network.uses_windows else 0.0
        self._window_min = window_min
        # Outside the fallback's window its probability is 0, so the sum there is at most
        # CLIP - weight x CLIP: when that is negligible only the window needs computing.
        self._window_only = CLIP - self.weight * CLIP <= NEGLIGIBLE
        self.name = f"{network.name}+flow"
        self.timings_ms: dict[str, float] = {"memory": 0.0, "decoder": 0.0}

    # -- the predictor interface ----------------------------------------------------------------
    def take_motion(self, motion: Motion | None) -> None:
        self.fallback.take_motion(motion)

    def prepare(self, small_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.network.prepare(small_rgb), small_rgb

    def encode(self, prepared: tuple[np.ndarray, np.ndarray]) -> tuple[Any, FallbackFeatures]:
        image, small_rgb = prepared
        return self.network.encode(image), self.fallback.encode(small_rgb)

    def predict(
        self,
        features: tuple[Any, FallbackFeatures],
        ids: list[int],
        previous: np.ndarray,
        windows: list | None = None,
    ) -> np.ndarray:
        """Foreground probabilities ``[N, H, W]`` float32 at the processing size.

        :param previous: ``[N, H, W]`` float32 flow-warped previous masks; all zero for a lost
            target.
        :param windows: unused (``uses_windows`` is False).
        """
        t0 = time.perf_counter()
        network_features, fallback_features = features
        n, h, w = previous.shape
        small_previous = _downscale(previous)
        present = previous.reshape(n, -1).max(axis=1, initial=0.0) > 0.5
        network_windows = None
        if self._window_scale > 0:
            network_windows = target_windows(
                small_previous, present, self._window_scale, self._window_min
            )
        network_probs = self.network.predict(network_features, ids, small_previous, network_windows)
        fallback_probs = self.fallback.predict(fallback_features, ids, previous)
        out = np.zeros_like(previous)
        for i in range(n):
            if not present[i]:  # lost: the network alone, on the whole frame
                out[i] = sigmoid(_upscaled_log_odds(network_probs[i], (0, 0, w, h)))
                continue
            box = self.fallback.last_windows[i] if self._window_only else (0, 0, w, h)
            x0, y0, x1, y1 = box
            part = _upscaled_log_odds(network_probs[i], box)
            part += np.float32(self.weight) * _log_odds(fallback_probs[i, y0:y1, x0:x1])
            out[i, y0:y1, x0:x1] = sigmoid(part)
        self.timings_ms["memory"] = self.network.timings_ms["memory"]
        self.timings_ms["decoder"] = (time.perf_counter() - t0) * 1e3 - self.timings_ms["memory"]
        return out

    def memorize(
        self, features: tuple[Any, FallbackFeatures], target_id: int, prob: np.ndarray, mode: str
    ) -> None:
        """Both memories learn target ``target_id`` from its ``(H, W)`` mask ``prob``."""
        network_features, fallback_features = features
        self.network.memorize(network_features, target_id, _downscale(prob[None])[0], mode)
        self.fallback.memorize(fallback_features, target_id, prob, mode)

    def forget(self, target_id: int) -> None:
        self.network.forget(target_id)
        self.fallback.forget(target_id)

    # -- online adaptation: the network's (the fallback has nothing to learn). When a background
    # adaptation swaps in, the engine forgets every target and memorizes its annotations again:
    # the fallback's colour models then restart from the annotations, as on the annotated frame.
    @property
    def adapter(self):
        return self.network.adapter

    @property
    def can_adapt(self) -> bool:
        return self.network.can_adapt

    def worth_adapting(self, masks: list[np.ndarray]) -> bool:
        return self.network.worth_adapting(masks)

    def adapt(self, small_rgb: np.ndarray, masks: list[np.ndarray]) -> None:
        self.network.adapt(small_rgb, masks)

    def start_adaptation(self, small_rgb: np.ndarray, masks: list[np.ndarray]) -> None:
        self.network.start_adaptation(small_rgb, masks)

    def take_adapted_backend(self) -> bool:
        return self.network.take_adapted_backend()

    def cancel_adaptation(self) -> None:
        self.network.cancel_adaptation()

    def reset(self) -> None:
        self.network.reset()
        self.fallback.reset()

    def memory_nbytes(self) -> int:
        return self.network.memory_nbytes()


def _downscale(masks: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` masks area-averaged to the network's ``[N, H/4, W/4]``."""
    n, h, w = masks.shape
    size = (w // SKIP_STRIDE, h // SKIP_STRIDE)
    out = np.empty((n, size[1], size[0]), np.float32)
    for i in range(n):
        out[i] = cv2.resize(masks[i], size, interpolation=cv2.INTER_AREA)
    return out


def _upscaled_log_odds(prob: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The log-odds of the network's ``(h/4, w/4)`` probabilities ``prob``, scaled up bilinearly
    to the processing size, on ``box`` ``(x0, y0, x1, y1)`` only.

    The values are those of scaling the whole map up: with a whole scale factor, bilinear
    weights depend only on a pixel's offset within its cell, so a crop one cell wider than the
    box on each side (OpenCV repeats a crop's edge, as the frame's) gives the same pixels.
    """
    x0, y0, x1, y1 = box
    s = SKIP_STRIDE
    rows, cols = prob.shape
    c0, r0 = max(x0 // s - 1, 0), max(y0 // s - 1, 0)
    c1, r1 = min(-(-x1 // s) + 1, cols), min(-(-y1 // s) + 1, rows)
    crop = _log_odds(prob[r0:r1, c0:c1])
    up = cv2.resize(crop, ((c1 - c0) * s, (r1 - r0) * s), interpolation=cv2.INTER_LINEAR)
    return up[y0 - r0 * s : y1 - r0 * s, x0 - c0 * s : x1 - c0 * s]


def _log_odds(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob, EPS, 1.0 - EPS)
    return np.log(p / (1.0 - p))
