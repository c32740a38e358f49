"""Training-free fallback: optical-flow propagation + per-target colour and motion evidence.

It needs no model file, so the engine runs as soon as it is installed (``model="flow"``), and it
is the baseline a trained model must beat. Per frame and target (all at the processing size):

1. *Where the target should be*: the engine pulls the target's previous hard mask onto this frame
   with DIS optical flow (the same warping the network gets as guidance). The warped mask is
   blurred into a spatial prior: near its edge the flow is unsure (DIS smooths motion across
   object boundaries, and backward warping drags the mask over background the object just
   uncovered), deep inside it is likely the target, far outside it is very unlikely.
2. *What the target looks like*: fg/bg colour histograms in CIELAB (:mod:`colour_model`), from
   the annotated frame and refreshed from confident frames; they give each pixel a colour
   log-likelihood ratio.
3. *How the target moves* (:func:`motion_log_ratio`): the frame's optical flow inside the
   warped mask and around it, each summarised by a robust 2-D Gaussian. Outside the warped
   mask, a pixel that moves like the surroundings and not like the target loses log-odds (a
   leak onto like-coloured background); one that moves like the target and has its colours
   gains them (a part the mask lost). Inside the mask only a share of the lowering applies:
   parts of a target need not move like the whole (a player's limbs), but a leak the mask
   already took in still moves like the surroundings. On the 5 training folds: J&F 0.695,
   against 0.627 without it, and 0.710 with the finer DIS preset the engine runs for the
   fallback (docs/architecture.md, "The training-free fallback").
4. All three are added as log-odds and squashed to a probability. The prior's log-odds are
   capped lower inside the mask than outside, so clear background colour inside the warped mask
   (the strip the object uncovered while moving, the other object in front of it) is dropped,
   while a target-coloured patch far from the target is not taken. Optionally (off by default,
   ``uncovered_px``), where the flow's round trip (back to the previous frame and forward again)
   misses, the pixel was hidden on the previous frame and the warped mask there is a guess: on
   such pixels whose colour leans to the background the prior's log-odds are dropped, so
   ambiguous colours in the uncovered strip are not taken either. 5-fold J&F 0.710 -> 0.717,
   but its second DIS run costs 8-10 ms a frame, which the 2-core live view cannot spare.
5. An edge-aware smoothing (guided filter, :mod:`refine`) pulls the probability edges onto image
   edges, which the 1/4-resolution DIS flow blurs.

Without step 2 a backward-warped mask grows by the uncovered strip on every frame and follows
whatever passes in front of the target; that is why plain flow propagation "keeps growing".

A target that left the frame or was fully occluded has no previous mask (the engine reports it
not visible); it is searched for in the whole frame by colour alone: the largest connected
region whose colour is clearly the target's, of a size similar to the target's, not covered by
another target, becomes its mask again, under the same id.

Crossing targets stay apart because each target's background histogram holds the other targets'
colours, and the engine's soft aggregation gives every pixel to at most one target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from vos_ros.engine.colour_model import ColourModel, quantize
from vos_ros.engine.flow import Motion
from vos_ros.engine.refine import guided_filter

MEMORY_MODES = ("permanent", "replace", "recent")
# The round trip's miss, in pixels at short side 288, that marks a pixel as just uncovered when
# the check is on (chosen on the 5 training folds among 2, 4 and 8; node: engine.flow_round_trip).
ROUND_TRIP_PX = 4.0


# The values each number may take (inclusive). Outside them the log-odds turn NaN or infinite
# (a prior of 0 or 1, a spread or regularisation of 0) or mean nothing (a share above 1, a
# negative weight or width). Upper bounds only where the meaning sets one.
_PROBABILITY = (1e-6, 1.0 - 1e-6)
_RANGES: dict[str, tuple[float, float]] = {
    "prior_sigma": (0.0, math.inf),
    "prior_inside": _PROBABILITY,
    "prior_outside": _PROBABILITY,
    "colour_weight": (0.0, math.inf),
    "ring_px": (0.0, math.inf),
    "anchor_weight": (0.0, 1.0),
    "ring_weight": (0.0, 1.0),
    "update_rate": (0.0, 1.0),
    "refine_radius": (0.0, math.inf),
    "refine_eps": (1e-9, math.inf),
    "motion_weight": (0.0, math.inf),
    "motion_cap": (0.0, math.inf),
    "motion_min_spread": (1e-3, math.inf),
    "motion_inside_weight": (0.0, 1.0),
    "redetect_min_area": (0.0, math.inf),
    "redetect_max_area": (0.0, math.inf),
    "uncovered_px": (0.0, math.inf),
    "uncovered_weight": (0.0, 1.0),
}


@dataclass(frozen=True)
class FallbackSettings:
    """Parameters of the fallback (tuned on the DAVIS-2016 *training* split and on synthetic
    clips, the motion evidence by 5-fold cross-validation over it; never on the validation
    split). Lengths are in pixels at a processing short
    side of 288 and scale with it."""

    prior_sigma: float = 8.0  # blur of the warped mask: how far the flow may be off at an edge
    prior_inside: float = 0.9  # prior probability deep inside the warped mask (cap)
    prior_outside: float = 0.01  # prior probability far outside it (floor)
    colour_weight: float = 1.0  # weight of the colour log-likelihood ratio
    use_colour: bool = True
    ring_px: float = 24.0  # width of the background ring around the target
    anchor_weight: float = 0.75  # share of the annotated frame in the colour model
    ring_weight: float = 0.2  # share of the ring in the background histogram
    update_rate: float = 0.1  # weight of a new confident frame in the recent colour model
    refine_radius: float = 0.0  # guided-filter radius (0: off)
    refine_eps: float = 1e-3  # guided-filter regularisation (gray levels in [0, 1])
    # Motion evidence (0: off): weight of its log-likelihood ratio, the ratio's bound (it is
    # clipped to [-cap, cap]), the least spread of a motion model in pixels (flow noise: a still
    # background must not make every small motion look foreign), the colour log-ratio a pixel
    # outside the warped mask needs before target-like motion may raise its odds, and the
    # share of the lowering applied inside the warped mask (outside: all of it).
    motion_weight: float = 1.0
    motion_cap: float = 3.0
    motion_min_spread: float = 0.5
    motion_raise_min_colour: float = 1.0
    motion_inside_weight: float = 0.3
    # Search for a lost target: the largest connected region of pixels whose colour log-ratio
    # (target vs rest of the frame) is above ``redetect_logit``, with an area within
    # [redetect_min_area, redetect_max_area] x the target's area on the annotated frame.
    redetect: bool = True
    redetect_logit: float = 1.5
    redetect_min_area: float = 0.15
    redetect_max_area: float = 3.0
    # Uncovered pixels: where the flow's round trip (back to the previous frame and forward
    # again) misses by more than ``uncovered_px``, the pixel was hidden on the previous frame,
    # so the warped mask there is a guess (backward warping drags the mask over the strip a
    # moving object uncovers). There, if the colour log-ratio is below ``uncovered_max_colour``,
    # ``uncovered_weight`` of the prior's log-odds is dropped. 0 px, the default: off, no second
    # flow run (ROUND_TRIP_PX = 4 scores 0.717 against 0.710 on the 5 folds, for 8-10 ms more a
    # frame; docs/architecture.md).
    uncovered_px: float = 0.0
    uncovered_max_colour: float = 0.0
    uncovered_weight: float = 1.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"fallback.{name} must be in [{lo:g}, {hi:g}], got {value!r}")
        if self.prior_outside >= self.prior_inside:
            raise ValueError(
                f"fallback.prior_outside ({self.prior_outside!r}) must be below "
                f"fallback.prior_inside ({self.prior_inside!r})"
            )
        if self.redetect_min_area > self.redetect_max_area:
            raise ValueError(
                f"fallback.redetect_min_area ({self.redetect_min_area!r}) must not exceed "
                f"fallback.redetect_max_area ({self.redetect_max_area!r})"
            )

    @classmethod
    def from_overrides(cls, overrides: Iterable[tuple[str, object]] = ()) -> FallbackSettings:
        """The defaults with ``(name, value)`` pairs replaced (``--engine-set fallback.NAME=V``).

        :raises ValueError: for an unknown name, a value of the wrong type (switches take
            true/false, the rest finite numbers) or out of its range (``_RANGES``; the prior's
            floor below its cap, the re-detection's least area not above its largest).
        """
        settings = cls()
        names = {f.name for f in fields(cls)}
        changed: dict[str, bool | float] = {}
        for name, value in overrides:
            if name not in names:
                known = ", ".join(sorted(names))
                raise ValueError(f"fallback.{name}: not a fallback setting; known: {known}")
            if isinstance(getattr(settings, name), bool):
                if not isinstance(value, bool):
                    raise ValueError(f"fallback.{name} must be true or false, got {value!r}")
                changed[name] = value
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ValueError(f"fallback.{name} must be finite, got {value!r}")
                changed[name] = float(value)
            else:
                raise ValueError(f"fallback.{name} must be a number, got {value!r}")
        return replace(settings, **changed)


@dataclass
class FallbackFeatures:
    """Per-frame inputs of the fallback at the processing size: colour bins ``(h, w)`` uint16,
    and gray ``(h, w)`` float32 in [0, 1] (the refinement's guide; None when it is off)."""

    bins: np.ndarray
    gray: np.ndarray | None


class FlowPredictor:
    """Predictor with the same interface as :class:`vos_ros.engine.predictor.NetworkPredictor`.

    :param settings: fallback parameters (defaults: :class:`FallbackSettings`).
    :param short_side: processing short side, to scale the pixel lengths of ``settings``.
    """

    name = "flow"
    binary_state = True  # the engine keeps hard masks between frames (no blur build-up)
    uses_prior = False  # the warped mask is its own (soft) prior
    uses_windows = False  # no decoder
    masks_at_processing_size = True  # no 1/4-resolution logits

    def __init__(self, settings: FallbackSettings | None = None, short_side: int = 288) -> None:
        self.settings = settings or FallbackSettings()
        self._px = short_side / 288.0
        self._models: dict[int, ColourModel] = {}
        self._motion: Motion | None = None
        self.timings_ms: dict[str, float] = {"memory": 0.0, "decoder": 0.0}
        # per target of the last predict(): the window (x0, y0, x1, y1) its probability was
        # written in (0 outside), or None for a lost target searched in the whole frame
        self.last_windows: list[tuple[int, int, int, int] | None] = []

    # -- the predictor interface ----------------------------------------------------------------
    def take_motion(self, motion: Motion | None) -> None:
        """The engine's hook: this frame's motion from the previous one (None: no flow)."""
        self._motion = motion

    def prepare(self, small_rgb: np.ndarray) -> np.ndarray:
        return small_rgb

    def encode(self, small_rgb: np.ndarray) -> FallbackFeatures:
        gray = None
        if self.settings.refine_radius > 0:
            gray = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
            gray *= np.float32(1.0 / 255.0)
        return FallbackFeatures(quantize(small_rgb), gray)

    def predict(
        self,
        features: FallbackFeatures,
        ids: list[int],
        previous: np.ndarray,
        windows: list | None = None,
    ) -> np.ndarray:
        """Foreground probabilities ``[N, h, w]`` float32 of targets ``ids``.

        :param previous: ``[N, h, w]`` float32 flow-warped previous masks; all zero for a target
            that is lost (it is then searched for in the whole frame).
        :param windows: unused (no decoder to window; ``uses_windows`` is False).
        """
        t0 = time.perf_counter()
        probs = np.zeros_like(previous)
        present = previous.reshape(len(ids), -1).max(axis=1, initial=0.0) > 0.5
        taken = None  # pixels of the visible targets, computed once if a search needs it
        self.last_windows = [None] * len(ids)
        for i, target_id in enumerate(ids):
            model = self._models.get(target_id)
            if present[i]:
                self.last_windows[i] = self._track(features, previous[i], model, probs[i])
            elif model is not None and model.ready and self.settings.redetect:
                if taken is None and present.any():
                    taken = (previous[present] > 0.5).any(axis=0)
                self._search(features, model, taken, probs[i])
        self.timings_ms["decoder"] = (time.perf_counter() - t0) * 1e3
        return probs

    def memorize(
        self, features: FallbackFeatures, target_id: int, prob: np.ndarray, mode: str
    ) -> None:
        """Learn target ``target_id``'s colours from its mask ``prob`` ``(h, w)`` on this frame.

        :param mode: ``permanent`` / ``replace`` (an annotation: the model restarts from it) or
            ``recent`` (a confident tracked frame, blended in).
        """
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory mode must be one of {MEMORY_MODES}, got {mode!r}")
        if not self.settings.use_colour:
            return
        s = self.settings
        model = self._models.get(target_id)
        if model is None:
            model = ColourModel(s.anchor_weight, s.ring_weight)
            self._models[target_id] = model
        ring = max(1, round(s.ring_px * self._px))
        if mode == "recent":
            model.update(features.bins, prob, ring, s.update_rate)
        else:
            model.annotate(features.bins, prob, ring)

    def forget(self, target_id: int) -> None:
        self._models.pop(target_id, None)

    def reset(self) -> None:
        self._models.clear()
        self.take_motion(None)

    def memory_nbytes(self) -> int:
        return 0

    # -- internals ------------------------------------------------------------------------------
    def _flow(self) -> np.ndarray | None:
        """This frame's displacement (the engine warps at mask resolution, which is the
        fallback's processing size; the motion computes it on first use, once); None without
        motion."""
        return self._motion.displacement() if self._motion is not None else None

    def _track(
        self,
        features: FallbackFeatures,
        warped: np.ndarray,
        model: ColourModel | None,
        out: np.ndarray,
    ) -> tuple[int, int, int, int]:
        """Probability of a visible target, written into ``out`` within a window around it;
        returns the window ``(x0, y0, x1, y1)``."""
        s = self.settings
        sigma = s.prior_sigma * self._px
        # Beyond 4 sigma the prior is at its floor; the ring width adds room for fast motion.
        x0, y0, x1, y1 = _window(warped, math.ceil(4 * sigma + s.ring_px * self._px))
        prior = warped[y0:y1, x0:x1]
        prior = cv2.GaussianBlur(prior, (0, 0), sigma) if sigma > 0 else prior.copy()
        np.clip(prior, s.prior_outside, s.prior_inside, out=prior)
        logit = np.log(prior / (1.0 - prior))
        colour = None
        if model is not None and model.ready:
            colour = model.log_ratio(local=True)[features.bins[y0:y1, x0:x1]]
            if s.uncovered_px > 0:
                self._doubt_uncovered(logit, colour, (x0, y0, x1, y1))
            logit += np.float32(s.colour_weight) * colour
        flow = self._flow()
        if s.motion_weight > 0 and flow is not None:
            window = warped[y0:y1, x0:x1]
            ratio = motion_log_ratio(
                flow[:, y0:y1, x0:x1], window, s.motion_min_spread * self._px, s.motion_cap
            )
            if ratio is not None:
                logit += self._motion_evidence(ratio, window, colour)
        prob = sigmoid(logit)
        if s.refine_radius > 0 and features.gray is not None:
            radius = max(1, round(s.refine_radius * self._px))
            prob = guided_filter(features.gray[y0:y1, x0:x1], prob, radius, s.refine_eps)
            np.clip(prob, 0.0, 1.0, out=prob)
        out[y0:y1, x0:x1] = prob
        return x0, y0, x1, y1

    def _doubt_uncovered(
        self, logit: np.ndarray, colour: np.ndarray, box: tuple[int, int, int, int]
    ) -> None:
        """Drop the prior's log-odds ``logit`` (in place) on the uncovered pixels of the window
        ``box`` whose colour log-ratio ``colour`` leans to the background: the warped mask
        there may be the strip the target just uncovered. On target-coloured pixels it stays:
        DIS also misses on the target's own fast parts (ungated, scooter-gray lost 0.03 on its
        fold)."""
        trip = self._motion.round_trip_error() if self._motion is not None else None
        if trip is None:
            return
        s = self.settings
        x0, y0, x1, y1 = box
        doubtful = trip[y0:y1, x0:x1] > s.uncovered_px * self._px
        doubtful &= colour < s.uncovered_max_colour
        doubtful &= logit > 0  # the warped mask's side: outside it the prior already says no
        logit[doubtful] *= np.float32(1.0 - s.uncovered_weight)

    def _motion_evidence(
        self, ratio: np.ndarray, window: np.ndarray, colour: np.ndarray | None
    ) -> np.ndarray:
        """The log-odds the motion log-ratio adds, given the warped mask ``window`` and the
        colour log-ratio on the same pixels (None: no colour model yet)."""
        s = self.settings
        weight = np.float32(s.motion_weight)
        # Lowering: fully outside the warped mask, a little inside it, where parts of a target
        # may move their own way (a player's limbs) but a leak that got in still moves like
        # the surroundings.
        lower = np.minimum(ratio, 0.0)
        lower *= 1.0 - np.float32(1.0 - s.motion_inside_weight) * window
        lower *= weight
        if colour is None:
            return lower
        # Raising: outside only, and only where the colour is the target's: target-like motion
        # alone would also take background that moves with the target (the water a duck
        # pushes); with the target's colours it is a part the mask lost.
        np.maximum(ratio, 0.0, out=ratio)
        ratio[colour < s.motion_raise_min_colour] = 0.0
        ratio *= (1.0 - window) * weight
        ratio += lower
        return ratio

    def _search(
        self,
        features: FallbackFeatures,
        model: ColourModel,
        taken: np.ndarray | None,
        out: np.ndarray,
    ) -> None:
        """Look for a lost target in the whole frame by colour; writes its probability into
        ``out`` when a region qualifies, else leaves ``out`` at zero."""
        s = self.settings
        table = model.log_ratio(local=False)
        logit = table[features.bins]
        candidates = (logit > s.redetect_logit).view(np.uint8)
        if taken is not None:
            candidates[taken] = 0
        candidates = cv2.morphologyEx(candidates, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
        if count <= 1:
            return
        areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        ref = max(model.reference_area, 1.0)
        ok = (areas >= s.redetect_min_area * ref) & (areas <= s.redetect_max_area * ref)
        if not ok.any():
            return
        best = 1 + int(np.argmax(np.where(ok, areas, -1.0)))
        region = labels == best
        out[region] = sigmoid(logit[region])


def motion_log_ratio(
    flow: np.ndarray, warped: np.ndarray, min_spread: float, cap: float
) -> np.ndarray | None:
    """Per pixel, log p(flow | target) - log p(flow | surroundings), clipped to ``[-cap, cap]``.

    :param flow: ``[2, h, w]`` displacement of each pixel (:meth:`Motion.displacement`).
    :param warped: ``(h, w)`` the warped previous mask on the same pixels: > 0.9 is the target's
        motion, < 0.1 the surroundings'.
    :param min_spread: least spread of either motion, in pixels.
    :returns: float32 ``(h, w)``; None when either side has fewer than 20 sampled pixels.
    """
    # The two motions from every other pixel of every other row: the same statistics at a
    # quarter of the cost (the ratio itself is computed on every pixel).
    sample, sampled_mask = flow[:, ::2, ::2], warped[::2, ::2]
    target, around = sample[:, sampled_mask > 0.9], sample[:, sampled_mask < 0.1]
    if target.shape[1] < 20 or around.shape[1] < 20:
        return None
    (mt, st), (ma, sa) = (_robust_gaussian(v, min_spread) for v in (target, around))
    ratio = _squared_distance(flow, ma)
    ratio *= np.float32(0.5 / (sa * sa))
    ratio -= _squared_distance(flow, mt) * np.float32(0.5 / (st * st))
    ratio += np.float32(2 * math.log(sa / st))
    return np.clip(ratio, -cap, cap, out=ratio)


def _robust_gaussian(flow: np.ndarray, min_spread: float) -> tuple[np.ndarray, float]:
    """Median displacement ``[2]`` of ``flow`` ``[2, n]`` and its spread (MAD of the distances
    to it, scaled to a standard deviation): a few pixels of the other side do not move it."""
    centre = np.median(flow, axis=1).astype(np.float32)
    distance = np.sqrt(_squared_distance(flow, centre))
    return centre, max(1.4826 * float(np.median(distance)), min_spread)


def _squared_distance(flow: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``|flow - centre|^2`` over the first axis (x, y planes)."""
    dx = flow[0] - centre[0]
    dy = flow[1] - centre[1]
    dx *= dx
    dy *= dy
    dx += dy
    return dx


def _window(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """Box ``(x0, y0, x1, y1)`` around ``mask > 0`` grown by ``margin`` and clipped to the map."""
    x, y, w, h = cv2.boundingRect((mask > 0).view(np.uint8))
    hh, ww = mask.shape
    return max(0, x - margin), max(0, y - margin), min(ww, x + w + margin), min(hh, y + h + margin)


def sigmoid(logit: np.ndarray) -> np.ndarray:
    """Probabilities of log-odds ``logit``, in a new array (``logit`` is left as it is)."""
    out = np.negative(logit)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out
