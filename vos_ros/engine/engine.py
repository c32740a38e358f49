"""The VOS engine: follows several targets through a stream of frames.

Per frame (see docs/architecture.md for the picture):

1. preprocess   resize once to the processing size; gray copy for the flow       (engine, flow)
2. flow         DIS flow previous -> current frame, warps every target's mask   (flow)
3. encoder      one encoder run for the frame                                    (predictor/backend)
4. memory       prototypes of every target, cached until the memory changes      (memory)
5. decoder      N independent probabilities: one batched run for the targets on the whole frame,
                one run per target on a window around it on CPUs              (predictor, window)
6. prior        weak responses far from each target's previous box are dropped   (prior)
7. aggregation  soft aggregation -> every pixel belongs to at most one target    (aggregation)
8. postprocess  upsample the N+1 probability maps once to the input size, argmax,
                masks, boxes, scores, visibility                                 (postprocess)
                memory write every k frames                                      (engine)

Frames, label images and prompts are checked before anything changes (inputs).

All per-frame array work before step 8 runs at the mask resolution (1/4 of the processing size
with a network, the processing size in the flow fallback). A target that is not visible keeps
its memory; with no previous mask and no prior it is searched for in the whole frame by
prototype matching and comes back with the same id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from vos_ros.click_prompt import ClickError, ClickPrompt, validate_click_prompt
from vos_ros.engine.aggregation import argmax_channels, soft_aggregate, target_scores
from vos_ros.engine.annotations import AnnotationLog
from vos_ros.engine.config import EngineConfig
from vos_ros.engine.flow import FlowWarper, Motion, to_gray
from vos_ros.engine.inputs import InputError, Prompt, check_rgb_frame, parse_label_image
from vos_ros.engine.postprocess import frame_result
from vos_ros.engine.prior import apply_box_prior
from vos_ros.engine.targets import TargetRegistry, check_target_id
from vos_ros.engine.window import target_windows
from vos_ros.model.contract import SKIP_STRIDE, STRIDE
from vos_ros.types import FrameResult

__all__ = ["InputError", "Prompt", "VosEngine", "processing_size"]

DEFAULT_CLASS = "object"
# The stages of one step, in order (FrameResult.timings_ms; "total" is the whole step).
ENGINE_STAGES = ("preprocess", "flow", "encoder", "memory", "decoder", "postprocess")
TIMING_KEYS = (*ENGINE_STAGES, "total")


@dataclass
class _FrameContext:
    """The last stepped frame as it was before aggregation: enough to apply a prompt that
    arrives for it later (:meth:`VosEngine.add_targets`) exactly as a ``Prompt`` to
    :meth:`VosEngine.step` would have.

    :param small: ``(h, w, 3)`` uint8 frame at the processing size (identifies the frame).
    :param features: the predictor's encoding of the frame; None when nothing needed it yet.
    :param frame_index: index of the frame in the stream.
    :param tracked: ids the predictor ran for on this frame.
    :param tracked_probs: ``[len(tracked), mh, mw]`` float32 their probabilities (after the
        box prior, before prompts take their pixels).
    :param prompts: prompted id -> ``(mh, mw)`` float32 soft mask at mask resolution.
    """

    small: np.ndarray
    features: Any
    frame_index: int
    tracked: list[int]
    tracked_probs: np.ndarray
    prompts: dict[int, np.ndarray]

    def forget(self, target_id: int) -> None:
        self.prompts.pop(target_id, None)
        if target_id in self.tracked:
            row = self.tracked.index(target_id)
            del self.tracked[row]
            self.tracked_probs = np.delete(self.tracked_probs, row, axis=0)


@dataclass(frozen=True)
class PredictorHooks:
    """What a predictor plug-in may change in the engine's pipeline (optional attributes of the
    predictor; the defaults are the contract networks' and the flow fallback's behaviour).

    A model family with its own tracker (SAM 2) takes a fixed-size input resized its own way,
    its prompts at full resolution, runs every target on every frame, writes its own memory
    from its raw outputs and merges targets by its own rule instead of soft aggregation.
    """

    processing_wh: Callable[[tuple[int, int]], tuple[int, int]] | None = None
    resize_frame: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None
    begin_frame: Callable[[int], None] | None = None  # told the index of each stepped frame
    # told each stepped frame's motion from the previous one (None: no flow was run)
    take_motion: Callable[[Motion | None], None] | None = None
    # (features, {id: ClickPrompt}, input (H, W)) -> {id: bool mask}: a prompt encoder
    segment_clicks: Callable[[Any, dict, tuple[int, int]], dict[int, np.ndarray]] | None = None
    aggregate: Callable[[np.ndarray], np.ndarray] = soft_aggregate
    uses_flow: bool = True
    tracks_every_frame: bool = False  # lost targets too (no lost_search_every schedule)
    writes_own_memory: bool = False  # no "recent" memory writes from the engine
    takes_full_prompts: bool = False  # memorize(..., full_mask) with the input-size mask
    # Masks, flow warping and aggregation at the processing size (the flow fallback, alone or
    # fused with a network), not at 1/4 of it (a network's logits)
    masks_at_processing_size: bool = False

    @classmethod
    def of(cls, predictor: Any) -> PredictorHooks:
        names = [f.name for f in fields(cls)]
        return cls(**{name: getattr(predictor, name) for name in names if hasattr(predictor, name)})


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
    :class:`~vos_ros.engine.predictor.NetworkPredictor`, a
    :class:`~vos_ros.engine.fallback.FlowPredictor`, the two fused
    (:class:`~vos_ros.engine.fused.FusedPredictor`) or a model family's plug-in.
    """

    def __init__(self, config: EngineConfig, predictor, short_side: int, memory_every: int) -> None:
        self.config = config
        self.predictor = predictor
        self.short_side = short_side
        self.memory_every = memory_every
        self._hooks = PredictorHooks.of(predictor)
        self._is_network = not self._hooks.masks_at_processing_size
        self._registry = TargetRegistry(config.max_targets)
        self._adaptation_paused = False
        # Background adaptation swaps the encoder mid-stream: the annotated frames are kept so
        # that the permanent memory can be computed again with the adapted network.
        self._background = config.adapt_background and getattr(predictor, "can_adapt", False)
        self._annotations = AnnotationLog(config.permanent_size) if self._background else None
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

    def class_of(self, target_id: int) -> str:
        """The class label of tracked target ``target_id``."""
        return self._registry.class_label(target_id)

    def reset(self) -> None:
        """Forget every target and the stream (frame size, flow history, memory)."""
        self._registry.clear()
        self.predictor.reset()
        if self._annotations is not None:
            self._annotations.clear()
        self._reset_stream()

    @property
    def adaptation_state(self) -> str:
        """``off``, or the online adaptation's ``idle`` | ``running`` | ``done`` |
        ``failed: <why>`` (for diagnostics)."""
        adapter = getattr(self.predictor, "adapter", None)
        if adapter is None:
            return "off"
        return f"failed: {adapter.error}" if adapter.state == "failed" else adapter.state

    @contextmanager
    def adaptation_paused(self) -> Iterator[None]:
        """Within the block, annotations do not trigger online adaptation (e.g. a warm-up)."""
        self._adaptation_paused = True
        try:
            yield
        finally:
            self._adaptation_paused = False

    def remove_targets(self, ids) -> list[int]:
        """Stop tracking ``ids``; returns the ids that were removed (unknown ids are ignored)."""
        removed = []
        for raw in ids:
            target_id = check_target_id(raw)
            if target_id not in self._registry:
                continue
            slot = self._registry.remove(target_id)
            self._state = np.delete(self._state, slot, axis=0)
            self._lost_since = np.delete(self._lost_since, slot)
            self._pending.pop(target_id, None)
            self._recent_writes = [w for w in self._recent_writes if w[0] != target_id]
            if self._last is not None:
                self._last.forget(target_id)
            self.predictor.forget(target_id)
            if self._annotations is not None:
                self._annotations.forget(target_id)
            removed.append(target_id)
        if removed and not len(self._registry) and self._background:
            self.predictor.cancel_adaptation()  # learnt for targets that are gone
        return removed

    def add_targets(
        self, frame_rgb: np.ndarray, label_image: np.ndarray, classes=None
    ) -> list[int]:
        """Add targets annotated on a frame of the stream that was already stepped.

        On the most recent stepped frame (the usual case: a service call answered right after
        that frame) the engine ends up in exactly the state ``step(frame, Prompt(label_image,
        classes, replace=False))`` would have left: the new masks are taken as given, existing
        targets lose those pixels (previous masks, visibility and this frame's memory entries)
        and the new targets are tracked from the next :meth:`step` like any other.

        On an older buffered frame the new targets' memory is taken from that frame and their
        previous mask is the prompt, carried by optical flow from that frame to the next
        stepped one; existing targets are untouched (they may still cover the new targets'
        pixels on the most recent frame; the next step's aggregation sorts that out).

        :returns: the added ids, ascending.
        """
        frame = self._check_frame(frame_rgb)
        classes = classes or {}
        masks = parse_label_image(label_image, classes, frame.shape[:2])
        if not masks:
            raise InputError("label_image has no target pixel (values > 0)")
        for target_id in masks:
            if target_id in self._registry:
                raise InputError(
                    f"target {target_id} is already tracked; remove it first or give it on the "
                    f"current frame with Prompt(replace=True)"
                )
        small = self._resize(frame)
        last = self._last
        if self._maybe_adapt(small, masks) and last is not None:
            last.features = None  # encoded by the weights before the adaptation
        if last is not None and np.array_equal(small, last.small):
            self._prompt_last_frame(last, masks, classes)
        else:
            self._add_on_older_frame(small, masks, classes)
        return sorted(masks)

    @property
    def segments_clicks(self) -> bool:
        """Whether the model family turns clicks and boxes into masks itself (SAM's prompt
        encoder, :meth:`add_click_targets`); for the others a caller makes a mask first
        (:func:`vos_ros.click_prompt.grabcut_click_mask`) and calls :meth:`add_targets`."""
        return self._hooks.segment_clicks is not None

    def add_click_targets(
        self, frame_rgb: np.ndarray, prompts: dict[int, ClickPrompt], classes=None
    ) -> list[int]:
        """Add targets from clicks and boxes on a frame of the stream that was already stepped,
        through the model family's prompt encoder; otherwise as :meth:`add_targets` (the same
        rules for the last stepped frame and older buffered ones).

        :param prompts: ``{new target id: ClickPrompt}`` in pixels of ``frame_rgb``.
        :returns: the added ids, ascending.
        :raises InputError: a family without a prompt encoder, a bad or tracked id, too many
            targets, clicks outside the frame, or a prompt in which the model finds no target
            (nothing changes then).
        """
        checked = self._check_click_prompts(frame_rgb, prompts)
        small = self._resize(frame_rgb)
        last = self._last
        on_last = last is not None and np.array_equal(small, last.small)
        features = self._last_features(last) if on_last else self._encode_older_frame(small)
        try:
            masks = self._segment(features, checked, frame_rgb.shape[:2])
            if on_last:
                self._prompt_last_frame(last, masks, classes or {})
            else:
                self._add_on_older_frame(small, masks, classes or {}, features)
        except Exception:
            self._forget_untracked(checked)
            raise
        return sorted(masks)

    def preview_clicks(
        self, frame_rgb: np.ndarray, prompts: dict[int, ClickPrompt]
    ) -> dict[int, np.ndarray]:
        """The masks the prompt encoder makes from clicks and boxes on the last stepped frame,
        without adding targets (nothing changes): what a user interface shows before the
        targets are confirmed, or turns into mask prompts.

        :param prompts: ``{id: ClickPrompt}``, ids not tracked, in pixels of ``frame_rgb``.
        :returns: ``{id: (H, W) bool mask}`` at ``frame_rgb``'s size.
        :raises InputError: as :meth:`add_click_targets`, and when ``frame_rgb`` is not the last
            stepped frame.
        """
        checked = self._check_click_prompts(frame_rgb, prompts)
        last = self._last
        if last is None or not np.array_equal(self._resize(frame_rgb), last.small):
            raise InputError("preview_clicks works on the last stepped frame; step it first")
        try:
            return self._segment(self._last_features(last), checked, frame_rgb.shape[:2])
        finally:
            self._forget_untracked(checked)

    def _check_click_prompts(
        self, frame_rgb: np.ndarray, prompts: dict[int, ClickPrompt]
    ) -> dict[int, ClickPrompt]:
        """``prompts`` with checked ids and clicks, for a family with a prompt encoder."""
        if self._hooks.segment_clicks is None:
            raise InputError(
                f"model family of {self.predictor.name!r} has no prompt encoder; make a mask "
                "from the clicks (vos_ros.click_prompt.grabcut_click_mask) and add it"
            )
        frame = self._check_frame(frame_rgb)
        if not prompts:
            raise InputError("no prompts given")
        checked: dict[int, ClickPrompt] = {}
        for raw, prompt in prompts.items():
            target_id = check_target_id(raw)
            if target_id in self._registry:
                raise InputError(f"target {target_id} is already tracked; remove it first")
            try:
                checked[target_id] = validate_click_prompt(prompt, frame.shape[:2])
            except ClickError as exc:
                raise InputError(f"target {target_id}: {exc}") from None
        if len(self._registry) + len(checked) > self.config.max_targets:
            raise InputError(
                f"cannot add {len(checked)} targets: already tracking {len(self._registry)} "
                f"(max_targets={self.config.max_targets})"
            )
        return checked

    def _segment(
        self, features, prompts: dict[int, ClickPrompt], hw: tuple[int, int]
    ) -> dict[int, np.ndarray]:
        """The prompt encoder's masks; an error when one of them is empty."""
        masks = self._hooks.segment_clicks(features, prompts, hw)
        empty = sorted(i for i, mask in masks.items() if not mask.any())
        if empty:
            raise InputError(
                f"the model finds no target in the clicks or box of ids {empty}; click on "
                "the target, or draw a box around it"
            )
        return masks

    def _forget_untracked(self, ids) -> None:
        """Drop what the predictor started for prompt ids that did not become targets."""
        for target_id in ids:
            if target_id not in self._registry:
                self.predictor.forget(target_id)

    def step(self, frame_rgb: np.ndarray, prompt: Prompt | None = None) -> FrameResult:
        """Process the next frame of the stream; ``prompt`` gives ground truth on this frame."""
        t_start = time.perf_counter()
        frame = self._check_frame(frame_rgb)
        self._write_recent_memory()  # the previous frame's, now that no prompt can change it
        if self._background:
            self._swap_in_adapted()
        t_flushed = time.perf_counter()
        prompt_masks: dict[int, np.ndarray] = {}
        if prompt is not None:
            if not isinstance(prompt, Prompt):
                raise InputError(f"prompt must be a Prompt, got {type(prompt).__name__}")
            prompt_masks = parse_label_image(prompt.label_image, prompt.classes, frame.shape[:2])
            for target_id in prompt_masks:
                if target_id in self._registry and not prompt.replace:
                    raise InputError(
                        f"target {target_id} is already tracked; use Prompt(replace=True) to "
                        f"re-annotate it"
                    )
        timings = dict.fromkeys(TIMING_KEYS, 0.0)

        # 1. preprocess: one resize of the frame; everything else works on the small copy.
        small = self._resize(frame)
        adapt_ms = 0.0
        if prompt_masks:
            t_adapt = time.perf_counter()
            if self._maybe_adapt(small, prompt_masks):
                adapt_ms = (time.perf_counter() - t_adapt) * 1e3
                timings["adapt"] = adapt_ms  # only on the frame that was learned
        gray = to_gray(small, self._flow_wh) if self._use_flow else None
        busy = bool(len(self._registry) or prompt_masks)
        if self._hooks.begin_frame is not None:
            self._hooks.begin_frame(self._frame_index)
        prepared = self.predictor.prepare(small) if busy else None
        t_pre = time.perf_counter()
        timings["preprocess"] = (t_pre - t_flushed) * 1e3 - adapt_ms

        # 2. flow: carry the previous masks to this frame. With nothing to carry the frame is only
        # kept as the flow reference of the next one (targets may be added later).
        motion = None
        if self._use_flow:
            motion = self._warper.advance(gray, with_motion=len(self._registry) > 0)
        tracked = [i for i in self._registry.ids if i not in prompt_masks]
        previous = self._warp_previous(gray, motion) if len(self._registry) else self._state
        if self._hooks.take_motion is not None:
            self._hooks.take_motion(motion)
        t_flow = time.perf_counter()
        timings["flow"] = (t_flow - t_pre) * 1e3

        # 3. encoder (once per frame, only when there is something to track or memorise).
        features = self.predictor.encode(prepared) if busy else None
        t_enc = time.perf_counter()
        timings["encoder"] = (t_enc - t_flow) * 1e3

        # 4-5. memory + decoder for the tracked targets.
        prompt_small: dict[int, np.ndarray] = {}
        for target_id in prompt_masks:  # register / re-annotate prompted targets
            small_mask = self._to_mask_res(prompt_masks[target_id])
            label = str(prompt.classes.get(target_id, DEFAULT_CLASS))
            if target_id in self._registry:
                self._registry.set_class(target_id, label)
            else:
                self._append_target(target_id, label, small_mask)
            prompt_small[target_id] = small_mask
        tracked_slots = np.array([self._registry.slot(i) for i in tracked], dtype=np.intp)
        tracked_previous = np.ascontiguousarray(previous[tracked_slots])
        mh, mw = self._mask_wh[1], self._mask_wh[0]
        gather_ms = 0.0
        searched = self._searched(tracked_slots)
        if searched.any():
            decode = np.flatnonzero(searched)
            decode_ids = [tracked[row] for row in decode]
            decode_previous = tracked_previous if searched.all() else tracked_previous[decode]
            windows = None
            if self.predictor.uses_windows and self.config.decoder_window_scale > 0:
                windows = target_windows(
                    decode_previous,
                    self._visible[tracked_slots[decode]],
                    self.config.decoder_window_scale,
                    self.config.decoder_window_min,
                )
            probs = self.predictor.predict(features, decode_ids, decode_previous, windows)
            if searched.all():
                tracked_probs = probs
            else:  # lost targets not searched on this frame: nothing found, still lost
                tracked_probs = np.zeros((len(tracked), mh, mw), np.float32)
                tracked_probs[decode] = probs
            gather_ms = self.predictor.timings_ms["memory"]
        else:
            tracked_probs = np.zeros((len(tracked), mh, mw), np.float32)
        t_dec = time.perf_counter()
        # decoder stage: the network's decoder run, or the fallback's evidence combination
        timings["decoder"] = (t_dec - t_enc) * 1e3 - gather_ms

        # 6. localization prior (visible tracked targets only: lost ones are searched everywhere).
        if self.predictor.uses_prior and self.config.use_box_prior and tracked:
            apply_box_prior(
                tracked_probs,
                tracked_previous,
                self._visible[tracked_slots],
                self.config.prior_scale,
                self.config.prior_keep_prob,
            )

        # 7. prompts + aggregation + visibility at mask resolution (shared with add_targets).
        self._last = _FrameContext(
            small, features, self._frame_index, tracked, tracked_probs, prompt_small
        )
        agg, ids, visible, scores = self._settle_frame(self._last)

        # Memory writes of the annotations (the recent entries wait for the next step).
        t_mem = time.perf_counter()
        mode = "replace" if prompt is not None and prompt.replace else "permanent"
        self._memorize_prompts(features, prompt_small, mode, small, prompt_masks)
        t_post = time.perf_counter()
        timings["memory"] = gather_ms + (t_post - t_mem + t_flushed - t_start) * 1e3

        # 8. postprocess at the input resolution.
        result = frame_result(
            agg, ids, visible, scores, prompt_masks, self._input_hw,
            self._registry.class_label, self._frame_index,
        )  # fmt: skip
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
        # per slot: index of the first frame of the current loss, -1 while visible
        self._lost_since = np.zeros(0, np.int64)
        self._pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._frame_index = 0
        self._last: _FrameContext | None = None
        # (target id, mask) recent-memory entries of the last frame, written by the next step
        self._recent_writes: list[tuple[int, np.ndarray]] = []

    @property
    def _use_flow(self) -> bool:
        if not self._hooks.uses_flow:
            return False
        return self.config.use_flow or not self._is_network

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        """The frame at the processing size, resized as the predictor's network expects."""
        if self._hooks.resize_frame is not None:
            return self._hooks.resize_frame(frame, self._proc_wh)
        return cv2.resize(frame, self._proc_wh, interpolation=cv2.INTER_LINEAR)

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` when it is an RGB frame of this stream's size (the first one sets it)."""
        check_rgb_frame(frame)
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
        if self._hooks.processing_wh is not None:  # a network with a fixed input size
            self._proc_wh = self._hooks.processing_wh(hw)
        else:
            self._proc_wh = processing_size(hw, self.short_side)
        pw, ph = self._proc_wh
        if self._is_network:
            self._mask_wh = (pw // SKIP_STRIDE, ph // SKIP_STRIDE)
            # Flow at the resolution of the masks it warps: a quarter of the DIS work of half
            # resolution, same scores (docs/benchmarks.md, "Changes of 2026-12-02, third round").
            flow_short = self.config.flow_short_side or min(self._mask_wh)
        else:
            self._mask_wh = (pw, ph)
            flow_short = self.config.flow_short_side or self.short_side
        scale = flow_short / min(ph, pw)
        self._flow_wh = (max(16, round(pw * scale)), max(16, round(ph * scale)))
        self._warper = FlowWarper(self.config.dis_preset, self._flow_wh, self._mask_wh)
        self._state = np.zeros(
            (len(self._registry), self._mask_wh[1], self._mask_wh[0]), np.float32
        )

    def _to_mask_res(self, full_mask: np.ndarray) -> np.ndarray:
        """Bool mask at input size -> float32 soft mask at mask resolution (area average)."""
        return cv2.resize(full_mask.astype(np.float32), self._mask_wh, interpolation=cv2.INTER_AREA)

    def _append_target(self, target_id: int, class_label: str, small_mask: np.ndarray) -> None:
        self._registry.add(target_id, class_label)
        self._state = np.concatenate([self._state, small_mask[None]])
        self._lost_since = np.append(self._lost_since, -1)

    def _settle_frame(
        self, ctx: _FrameContext
    ) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray]:
        """Apply the frame's prompts, aggregate, and make the result the state the next frame
        starts from (previous masks, visibility, queued recent-memory entries).

        Prompted targets are exactly as given; tracked targets lose the prompted pixels. The one
        code path for :meth:`step` and for :meth:`add_targets` on the last stepped frame, so both
        leave the same state. Targets added on an older frame since keep their pending masks.

        :returns: ``(agg [N + 1, mh, mw], ids [N], visible [N], scores [N])`` for the frame's N
            targets in slot order.
        """
        all_ids = self._registry.ids
        ids = [i for i in all_ids if i in ctx.prompts or i in ctx.tracked]
        row_of = {target_id: row for row, target_id in enumerate(ctx.tracked)}
        probs = np.empty((len(ids), *ctx.tracked_probs.shape[1:]), np.float32)
        keep = None
        if ctx.prompts:
            union = np.zeros(probs.shape[1:], np.float32)
            for mask in ctx.prompts.values():
                np.maximum(union, mask, out=union)
            keep = 1.0 - union
        for slot, target_id in enumerate(ids):
            if target_id in ctx.prompts:
                probs[slot] = ctx.prompts[target_id]
            else:
                probs[slot] = ctx.tracked_probs[row_of[target_id]]
                if keep is not None:
                    probs[slot] *= keep

        agg = self._hooks.aggregate(probs)
        labels_small = argmax_channels(agg)
        areas, scores = target_scores(agg, labels_small)
        min_area = self.config.min_area_fraction * labels_small.size
        visible = (areas >= max(1.0, min_area)) & (scores >= self.config.visible_score)
        for slot, target_id in enumerate(ids):
            if target_id in ctx.prompts:
                visible[slot] = bool(areas[slot] > 0)
                scores[slot] = 1.0
        if self.predictor.binary_state:
            state = np.zeros((len(ids), *labels_small.shape), np.float32)
            for slot in range(len(ids)):
                state[slot][labels_small == slot + 1] = 1.0
        else:
            state = np.ascontiguousarray(agg[1:])
        state[~visible] = 0.0  # lost targets: no previous mask, no prior -> searched everywhere
        if len(ids) == len(all_ids):
            self._state = state
            self._lost_since = self._loss_starts(self._lost_since, visible, ctx.frame_index)
        else:
            slots = [all_ids.index(i) for i in ids]
            self._state[slots] = state
            self._lost_since[slots] = self._loss_starts(
                self._lost_since[slots], visible, ctx.frame_index
            )
        for target_id in ids:
            self._pending.pop(target_id, None)

        # Recent memory every k frames when confident; written by the next step, because a
        # prompt for this frame may still arrive (add_targets) and change these masks.
        self._recent_writes = []
        own_memory = self._hooks.writes_own_memory  # the predictor wrote this frame already
        if ctx.frame_index > 0 and ctx.frame_index % self.memory_every == 0 and not own_memory:
            for slot, target_id in enumerate(ids):
                confident = visible[slot] and scores[slot] >= self.config.memory_score
                if target_id in row_of and confident:
                    self._recent_writes.append((target_id, state[slot]))
        return agg, ids, visible, scores

    @property
    def _visible(self) -> np.ndarray:
        """Per slot: was the target seen on the last settled frame."""
        return self._lost_since < 0

    def _searched(self, slots: np.ndarray) -> np.ndarray:
        """Which of the tracked targets at ``slots`` get a decoder run on this frame: every
        visible one, and a lost one on the first frame after it was lost (a brief dropout comes
        back at once), then on every ``lost_search_every``-th frame. The schedule counts from
        the loss, not from the stream's start, so results do not depend on when a stream began
        (the node and the offline evaluator see the same)."""
        every = 1 if self._hooks.tracks_every_frame else self.config.lost_search_every
        visible = self._visible[slots]
        if every == 1 or visible.all():
            return np.ones(len(slots), bool)
        frames_lost = self._frame_index - self._lost_since[slots]  # 1 on the frame after
        return visible | ((frames_lost - 1) % every == 0)

    @staticmethod
    def _loss_starts(since: np.ndarray, visible: np.ndarray, frame_index: int) -> np.ndarray:
        """Update the loss starts with a frame's visibility (the same when a frame is settled
        twice, as :meth:`add_targets` does)."""
        return np.where(visible, -1, np.where(since < 0, frame_index, since))

    def _maybe_adapt(self, small: np.ndarray, masks: dict[int, np.ndarray]) -> bool:
        """Online adaptation on the first annotation of a stream: only while no target has
        memory, since memory written with the old encoder would not match the new one."""
        if self._adaptation_paused or len(self._registry):
            return False
        if not getattr(self.predictor, "can_adapt", False):
            return False
        size = self._proc_wh
        small_masks = [
            cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            for m in masks.values()
        ]
        if not self.predictor.worth_adapting(small_masks):
            return False  # only tiny targets: tracked with the shipped weights
        if self._background:
            self.predictor.start_adaptation(small, small_masks)
            return False  # the shipped weights track until the adapted ones are ready
        self.predictor.adapt(small, small_masks)
        return True

    def _write_recent_memory(self) -> None:
        """Write the last frame's queued recent-memory entries (with that frame's features)."""
        if self._recent_writes:
            for target_id, mask in self._recent_writes:
                self.predictor.memorize(self._last.features, target_id, mask, "recent")
            self._recent_writes = []

    def _memorize_prompts(
        self,
        features,
        masks: dict[int, np.ndarray],
        mode: str,
        small: np.ndarray,
        full_masks: dict[int, np.ndarray],
    ) -> None:
        """Memory entries of annotated masks ``{id: (mh, mw) float32}`` on the frame of
        ``features`` (``small``: that frame at processing size; ``full_masks``: the same masks
        at the input size, for predictors that take their prompts at full resolution)."""
        for target_id, mask in masks.items():
            if self._hooks.takes_full_prompts:
                self.predictor.memorize(features, target_id, mask, mode, full_masks[target_id])
            else:
                self.predictor.memorize(features, target_id, mask, mode)
        if self._annotations is not None and masks:
            self._annotations.record(small, masks, mode)

    def _swap_in_adapted(self) -> None:
        """Run the network a background adaptation finished, from this frame on.

        Memory written with the shipped encoder does not match the adapted one, so every
        target's annotation entries are computed again from the kept frames; recent entries are
        dropped and refill within ``memory_every`` frames.
        """
        if not self.predictor.take_adapted_backend():
            return
        ids = self._registry.ids
        for target_id in ids:
            self.predictor.forget(target_id)
        for small, entries in self._annotations.frames(ids):
            features = self.predictor.encode(self.predictor.prepare(small))
            for target_id, mask in entries:
                self.predictor.memorize(features, target_id, mask, "permanent")
        if self._last is not None:
            self._last.features = None  # encoded by the shipped weights

    def _prompt_last_frame(
        self, ctx: _FrameContext, masks: dict[int, np.ndarray], classes: dict
    ) -> None:
        """New targets on the last stepped frame: as if they had come as its ``Prompt``."""
        self._last_features(ctx)
        new: dict[int, np.ndarray] = {}
        for target_id, full_mask in masks.items():
            new[target_id] = self._to_mask_res(full_mask)
            label = str(classes.get(target_id, DEFAULT_CLASS))
            self._append_target(target_id, label, new[target_id])
        ctx.prompts.update(new)
        self._settle_frame(ctx)
        self._memorize_prompts(ctx.features, new, "permanent", ctx.small, masks)

    def _add_on_older_frame(
        self, small: np.ndarray, masks: dict[int, np.ndarray], classes: dict, features=None
    ) -> None:
        """New targets on an older buffered frame: memory from that frame, previous mask = the
        prompt, carried by flow to the next step; existing targets are untouched.

        ``features``: that frame encoded by :meth:`_encode_older_frame`, or None."""
        if features is None:
            features = self._encode_older_frame(small)
        gray = to_gray(small, self._flow_wh) if self._use_flow else None
        new: dict[int, np.ndarray] = {}
        for target_id, full_mask in masks.items():
            new[target_id] = self._to_mask_res(full_mask)
            label = str(classes.get(target_id, DEFAULT_CLASS))
            self._append_target(target_id, label, new[target_id])
            self._pending[target_id] = (gray, new[target_id])
        self._memorize_prompts(features, new, "permanent", small, masks)

    def _last_features(self, ctx: _FrameContext):
        """The last stepped frame's features, encoded now if nothing was tracked on it."""
        if ctx.features is None:
            ctx.features = self.predictor.encode(self.predictor.prepare(ctx.small))
        return ctx.features

    def _encode_older_frame(self, small: np.ndarray):
        """Features of a buffered frame older than the last stepped one. Encoding it may reuse
        the backend's buffers of the last frame's features: what still needs them is written
        first, and the last frame is encoded again if it is prompted later."""
        self._write_recent_memory()
        if self._last is not None:
            self._last.features = None
        return self.predictor.encode(self.predictor.prepare(small))

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
