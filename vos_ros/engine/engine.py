"""The VOS engine: follows several targets through a stream of frames.

Per frame (see docs/architecture.md for the picture):

1. preprocess   resize once to the processing size; gray copy for the flow       (engine, flow)
2. flow         DIS flow previous -> current frame, warps every target's mask   (flow)
3. encoder      one encoder run for the frame                                    (predictor/backend)
4. memory       prototypes of every target, cached until the memory changes      (memory)
5. decoder      one decoder run for all N targets -> N independent probabilities (predictor/backend)
6. prior        weak responses far from each target's previous box are dropped   (prior)
7. aggregation  soft aggregation -> every pixel belongs to at most one target    (aggregation)
8. postprocess  upsample the N+1 probability maps once to the input size, argmax,
                masks, boxes, scores, visibility; memory write every k frames     (engine)

All per-frame array work before step 8 runs at the mask resolution (1/4 of the processing size
with a network, the processing size in the flow fallback). A target that is not visible keeps
its memory; with no previous mask and no prior it is searched for in the whole frame by
prototype matching and comes back with the same id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from vos_ros.engine.aggregation import argmax_channels, mask_box, soft_aggregate, target_scores
from vos_ros.engine.config import EngineConfig, EngineError
from vos_ros.engine.fallback import FlowPredictor
from vos_ros.engine.flow import FlowWarper, to_gray
from vos_ros.engine.prior import apply_box_prior
from vos_ros.engine.targets import TargetRegistry, check_target_id
from vos_ros.model.contract import SKIP_STRIDE, STRIDE
from vos_ros.types import FrameResult, TargetResult

DEFAULT_CLASS = "object"
TIMING_KEYS = ("preprocess", "flow", "encoder", "memory", "decoder", "postprocess", "total")


class InputError(EngineError):
    """A frame, label image or class map given to the engine is malformed."""


@dataclass(frozen=True)
class Prompt:
    """Ground truth for some targets on the frame it is given with.

    :param label_image: ``(H, W)`` integer array at the frame's size; pixel value k > 0 = target k.
    :param classes: target id -> class label; ids without an entry get ``"object"``.
    :param replace: ids that are already tracked are re-initialised from this mask (their
        memory is dropped) when True; when False, a tracked id in the prompt is an error.
    """

    label_image: np.ndarray
    classes: dict[int, str] = field(default_factory=dict)
    replace: bool = False


def processing_size(input_hw: tuple[int, int], short_side: int) -> tuple[int, int]:
    """``(width, height)`` with the input's aspect ratio, short side ``short_side``, both
    multiples of ``STRIDE``."""
    h, w = input_hw
    scale = short_side / min(h, w)
    pw = max(STRIDE, round(w * scale / STRIDE) * STRIDE)
    ph = max(STRIDE, round(h * scale / STRIDE) * STRIDE)
    return pw, ph


class VosEngine:
    """Multi-target video object segmentation on a stream of RGB frames.

    Build it with :func:`vos_ros.engine.build_engine`. ``predictor`` is a
    :class:`~vos_ros.engine.predictor.NetworkPredictor` or a
    :class:`~vos_ros.engine.fallback.FlowPredictor`.
    """

    def __init__(self, config: EngineConfig, predictor, short_side: int, memory_every: int) -> None:
        self.config = config
        self.predictor = predictor
        self.short_side = short_side
        self.memory_every = memory_every
        self._is_network = not isinstance(predictor, FlowPredictor)
        self._registry = TargetRegistry(config.max_targets)
        self._reset_stream()

    # ------------------------------------------------------------------ public API
    @property
    def target_ids(self) -> list[int]:
        """Live target ids in the order results are reported."""
        return self._registry.ids

    @property
    def backend_name(self) -> str:
        return self.predictor.name

    def next_free_id(self) -> int:
        """An id never used in this stream (for targets added by a detector)."""
        return self._registry.next_free_id()

    def reset(self) -> None:
        """Forget every target and the stream (frame size, flow history, memory)."""
        self._registry.clear()
        self.predictor.reset()
        self._reset_stream()

    def remove_targets(self, ids) -> list[int]:
        """Stop tracking ``ids``; returns the ids that were removed (unknown ids are ignored)."""
        removed = []
        for raw in ids:
            target_id = check_target_id(raw)
            if target_id not in self._registry:
                continue
            slot = self._registry.remove(target_id)
            self._state = np.delete(self._state, slot, axis=0)
            self._visible = np.delete(self._visible, slot)
            self._pending.pop(target_id, None)
            self.predictor.forget(target_id)
            removed.append(target_id)
        return removed

    def add_targets(
        self, frame_rgb: np.ndarray, label_image: np.ndarray, classes=None
    ) -> list[int]:
        """Add targets annotated on an earlier (buffered) frame of the stream.

        Existing targets are untouched. The new targets are tracked from the next :meth:`step`:
        their mask is carried from ``frame_rgb`` to that frame by optical flow.

        :returns: the added ids, ascending.
        """
        frame = self._check_frame(frame_rgb)
        masks = self._parse_labels(label_image, classes or {}, frame.shape[:2])
        if not masks:
            raise InputError("label_image has no target pixel (values > 0)")
        for target_id in masks:
            if target_id in self._registry:
                raise InputError(
                    f"target {target_id} is already tracked; remove it first or give it on the "
                    f"current frame with Prompt(replace=True)"
                )
        small = cv2.resize(frame, self._proc_wh, interpolation=cv2.INTER_LINEAR)
        gray = to_gray(small, self._flow_wh)
        features = self.predictor.encode(self.predictor.prepare(small))
        classes = classes or {}
        for target_id, full_mask in masks.items():
            small_mask = self._to_mask_res(full_mask)
            self._append_target(target_id, str(classes.get(target_id, DEFAULT_CLASS)), small_mask)
            self._pending[target_id] = (gray, small_mask)
            self.predictor.memorize(features, target_id, small_mask, "permanent")
        return sorted(masks)

    def step(self, frame_rgb: np.ndarray, prompt: Prompt | None = None) -> FrameResult:
        """Process the next frame of the stream; ``prompt`` gives ground truth on this frame."""
        t_start = time.perf_counter()
        frame = self._check_frame(frame_rgb)
        prompt_masks: dict[int, np.ndarray] = {}
        if prompt is not None:
            if not isinstance(prompt, Prompt):
                raise InputError(f"prompt must be a Prompt, got {type(prompt).__name__}")
            prompt_masks = self._parse_labels(prompt.label_image, prompt.classes, frame.shape[:2])
            for target_id in prompt_masks:
                if target_id in self._registry and not prompt.replace:
                    raise InputError(
                        f"target {target_id} is already tracked; use Prompt(replace=True) to "
                        f"re-annotate it"
                    )
        timings = dict.fromkeys(TIMING_KEYS, 0.0)

        # 1. preprocess: one resize of the frame; everything else works on the small copy.
        small = cv2.resize(frame, self._proc_wh, interpolation=cv2.INTER_LINEAR)
        gray = to_gray(small, self._flow_wh)
        busy = bool(len(self._registry) or prompt_masks)
        prepared = self.predictor.prepare(small) if busy else None
        t_pre = time.perf_counter()
        timings["preprocess"] = (t_pre - t_start) * 1e3

        # 2. flow: carry the previous masks to this frame. With nothing to carry the frame is only
        # kept as the flow reference of the next one (targets may be added later).
        motion = None
        if self._use_flow:
            motion = self._warper.advance(gray, with_motion=len(self._registry) > 0)
        tracked = [i for i in self._registry.ids if i not in prompt_masks]
        previous = self._warp_previous(gray, motion) if len(self._registry) else self._state
        t_flow = time.perf_counter()
        timings["flow"] = (t_flow - t_pre) * 1e3

        # 3. encoder (once per frame, only when there is something to track or memorise).
        features = self.predictor.encode(prepared) if busy else None
        t_enc = time.perf_counter()
        timings["encoder"] = (t_enc - t_flow) * 1e3

        # 4-5. memory + decoder for the tracked targets.
        for target_id in prompt_masks:  # register / re-annotate prompted targets
            small_mask = self._to_mask_res(prompt_masks[target_id])
            label = str(prompt.classes.get(target_id, DEFAULT_CLASS))
            if target_id in self._registry:
                self._registry.set_class(target_id, label)
                slot = self._registry.slot(target_id)
                previous[slot] = small_mask
            else:
                self._append_target(target_id, label, small_mask)
                previous = np.concatenate([previous, small_mask[None]])
        ids = self._registry.ids
        probs = np.zeros_like(previous)
        tracked_slots = np.array([ids.index(i) for i in tracked], dtype=np.intp)
        if len(tracked_slots):
            probs[tracked_slots] = self.predictor.predict(
                features, tracked, np.ascontiguousarray(previous[tracked_slots])
            )
            timings["memory"] += self.predictor.timings_ms["memory"]
        t_dec = time.perf_counter()
        # decoder stage: the network's decoder run, or the fallback's flow + colour combination
        timings["decoder"] = (t_dec - t_enc) * 1e3 - timings["memory"]

        # 6. localization prior (visible tracked targets only: lost ones are searched everywhere).
        if self.predictor.uses_prior and self.config.use_box_prior and len(tracked_slots):
            active = np.zeros(len(ids), bool)
            active[tracked_slots] = self._visible[tracked_slots]
            apply_box_prior(
                probs, previous, active, self.config.prior_scale, self.config.prior_keep_prob
            )

        # Prompted targets are exactly as given; other targets lose the prompted pixels.
        prompt_slots = [ids.index(i) for i in prompt_masks]
        if prompt_slots:
            union = np.zeros(previous.shape[1:], np.float32)
            for slot in prompt_slots:
                np.maximum(union, previous[slot], out=union)
            keep = 1.0 - union
            for slot in tracked_slots:
                probs[slot] *= keep
            for slot in prompt_slots:
                probs[slot] = previous[slot]

        # 7. aggregation + visibility at mask resolution.
        agg = soft_aggregate(probs)
        labels_small = argmax_channels(agg)
        areas, scores = target_scores(agg, labels_small)
        min_area = self.config.min_area_fraction * labels_small.size
        visible = (areas >= max(1.0, min_area)) & (scores >= self.config.visible_score)
        for slot in prompt_slots:
            visible[slot] = bool(areas[slot] > 0)
            scores[slot] = 1.0
        if self.predictor.binary_state:
            state = np.zeros((len(ids), *labels_small.shape), np.float32)
            for slot in range(len(ids)):
                state[slot][labels_small == slot + 1] = 1.0
        else:
            state = np.ascontiguousarray(agg[1:])
        state[~visible] = 0.0  # lost targets: no previous mask, no prior -> searched everywhere
        self._state = state
        self._visible = visible
        self._pending.clear()

        # Memory writes: annotations now, recent frames every k frames when confident.
        t_mem = time.perf_counter()
        if features is not None:
            for target_id in prompt_masks:
                slot = ids.index(target_id)
                mode = "replace" if prompt is not None and prompt.replace else "permanent"
                self.predictor.memorize(features, target_id, previous[slot], mode)
            if self._frame_index > 0 and self._frame_index % self.memory_every == 0:
                for slot in tracked_slots:
                    if visible[slot] and scores[slot] >= self.config.memory_score:
                        self.predictor.memorize(features, ids[slot], self._state[slot], "recent")
        t_post = time.perf_counter()
        timings["memory"] += (t_post - t_mem) * 1e3

        # 8. postprocess at the input resolution.
        result = self._results(agg, ids, visible, scores, prompt_masks)
        t_end = time.perf_counter()
        timings["postprocess"] = (t_end - t_post + t_mem - t_dec) * 1e3
        timings["total"] = (t_end - t_start) * 1e3
        result.timings_ms = timings
        result.frame_index = self._frame_index
        self._frame_index += 1
        return result

    # ------------------------------------------------------------------ internals
    def _reset_stream(self) -> None:
        self._input_hw: tuple[int, int] | None = None
        self._proc_wh = (0, 0)
        self._mask_wh = (0, 0)
        self._flow_wh = (0, 0)
        self._warper: FlowWarper | None = None
        self._state = np.zeros((0, 1, 1), np.float32)
        self._visible = np.zeros(0, bool)
        self._pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._frame_index = 0

    @property
    def _use_flow(self) -> bool:
        return self.config.use_flow or not self._is_network

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            shape = getattr(frame, "shape", None)
            raise InputError(f"frame must be an (H, W, 3) RGB uint8 array, got shape {shape}")
        if frame.dtype != np.uint8:
            raise InputError(f"frame must be uint8, got {frame.dtype}")
        hw = frame.shape[:2]
        if self._input_hw is None:
            self._start_stream(hw)
        elif hw != self._input_hw:
            raise InputError(
                f"frame size changed from {self._input_hw[1]}x{self._input_hw[0]} to "
                f"{hw[1]}x{hw[0]}; call reset() before a new stream"
            )
        return frame

    def _start_stream(self, hw: tuple[int, int]) -> None:
        if min(hw) < 8:
            raise InputError(f"frame is too small: {hw[1]}x{hw[0]}")
        self._input_hw = hw
        self._proc_wh = processing_size(hw, self.short_side)
        pw, ph = self._proc_wh
        if self._is_network:
            self._mask_wh = (pw // SKIP_STRIDE, ph // SKIP_STRIDE)
            flow_short = self.config.flow_short_side or self.short_side // 2
        else:
            self._mask_wh = (pw, ph)
            flow_short = self.config.flow_short_side or self.short_side
        scale = flow_short / min(ph, pw)
        self._flow_wh = (max(16, round(pw * scale)), max(16, round(ph * scale)))
        self._warper = FlowWarper(self.config.flow_preset, self._flow_wh, self._mask_wh)
        self._state = np.zeros(
            (len(self._registry), self._mask_wh[1], self._mask_wh[0]), np.float32
        )

    def _parse_labels(self, label_image, classes, hw: tuple[int, int]) -> dict[int, np.ndarray]:
        """``{target id: bool (H, W) mask}`` from a label image, validated."""
        if not isinstance(label_image, np.ndarray) or label_image.ndim != 2:
            shape = getattr(label_image, "shape", None)
            raise InputError(f"label_image must be an (H, W) integer array, got shape {shape}")
        if not np.issubdtype(label_image.dtype, np.integer):
            raise InputError(f"label_image must have an integer dtype, got {label_image.dtype}")
        if label_image.shape != hw:
            raise InputError(
                f"label_image is {label_image.shape[1]}x{label_image.shape[0]} but the frame is "
                f"{hw[1]}x{hw[0]}"
            )
        if not isinstance(classes, dict):
            raise InputError(f"classes must be a dict {{id: label}}, got {type(classes).__name__}")
        if label_image.size and (label_image.min() < 0 or label_image.max() > 65535):
            raise InputError("label_image values must be in 0..65535")
        counts = np.bincount(label_image.ravel().astype(np.intp, copy=False))
        ids = [int(i) for i in np.flatnonzero(counts) if i > 0]
        for key in classes:
            check_target_id(key)
            if int(key) not in ids:
                raise InputError(f"classes names target {key}, which has no pixel in label_image")
        return {i: label_image == i for i in ids}

    def _to_mask_res(self, full_mask: np.ndarray) -> np.ndarray:
        """Bool mask at input size -> float32 soft mask at mask resolution (area average)."""
        return cv2.resize(full_mask.astype(np.float32), self._mask_wh, interpolation=cv2.INTER_AREA)

    def _append_target(self, target_id: int, class_label: str, small_mask: np.ndarray) -> None:
        self._registry.add(target_id, class_label)
        self._state = np.concatenate([self._state, small_mask[None]])
        self._visible = np.append(self._visible, True)

    def _warp_previous(self, gray: np.ndarray, motion) -> np.ndarray:
        """Previous masks carried to this frame; pending targets use their own reference frame."""
        previous = self._state
        if motion is not None:
            previous = motion.apply(previous)
        if self._pending:
            previous = previous if motion is not None else previous.copy()
            ids = self._registry.ids
            for target_id, (ref_gray, mask) in self._pending.items():
                slot = ids.index(target_id)
                if self._use_flow:
                    previous[slot] = self._warper.motion(gray, ref_gray).apply(mask[None])[0]
                else:
                    previous[slot] = mask
        return previous

    def _results(self, agg, ids, visible, scores, prompt_masks) -> FrameResult:
        """Upsample once, argmax, and build the per-target results at the input resolution."""
        h, w = self._input_hw
        n = len(ids)
        full = np.empty((n + 1, h, w), np.float32)
        for c in range(n + 1):
            cv2.resize(agg[c], (w, h), dst=full[c], interpolation=cv2.INTER_LINEAR)
        index = argmax_channels(full)
        if prompt_masks:
            for target_id, mask in prompt_masks.items():
                slot = ids.index(target_id)
                index[index == slot + 1] = 0
                index[mask] = slot + 1
                full[slot + 1] = mask
        # index -> target id; targets that are not visible are shown as background. cv2.LUT on
        # the uint8 index is ~5x faster than numpy fancy indexing (max_targets ≤ 255).
        lut = np.zeros(256, np.uint16)
        lut[1 : n + 1][visible] = np.asarray(ids, np.uint16)[visible]
        label_image = cv2.LUT(index, lut) if n else np.zeros((h, w), np.uint16)
        targets = []
        for slot, target_id in enumerate(ids):
            if visible[slot]:
                mask = index == slot + 1
                box = mask_box(mask)
            else:
                mask = np.zeros((h, w), bool)
                box = (0, 0, 0, 0)
            targets.append(
                TargetResult(
                    target_id=target_id,
                    class_label=self._registry.class_label(target_id),
                    prob=full[slot + 1],
                    mask=mask,
                    box=box,
                    score=float(scores[slot]),
                    visible=bool(visible[slot]) and box != (0, 0, 0, 0),
                )
            )
        return FrameResult(frame_index=self._frame_index, targets=targets, label_image=label_image)
