"""SAM 2 on a live stream: one camera frame at a time, no look-ahead, nothing preloaded.

Built on the official model (``SAM2Base`` from the ``sam2`` package): its image encoder runs
once per frame, and ``track_step`` (memory attention, prompt encoder, mask decoder, memory
encoder) once per frame for a batch of targets. It mirrors what the official
``SAM2VideoPredictor`` does for a mask prompt followed by ``propagate_in_video``, step by step:

* a prompt mask is resized to the model's square input (bilinear with antialiasing, >= 0.5),
  taken as the output of its frame (``_use_mask_as_output``) and encoded into memory from that
  output upsampled again, with ``is_mask_from_pts=True`` (the official preflight);
* clicks and boxes go through SAM's prompt encoder as ``add_new_points_or_box`` sends them (a
  box is two corner points labelled 2 and 3 ahead of the clicks), and are encoded into memory
  the same way;
* each tracked frame runs ``track_step`` with the memory encoder; the memory features are kept
  in bfloat16 as the official predictor keeps them;
* hole filling runs only where the official predictor can run it (the CUDA extension).

Differences, by design: each target keeps only the frames SAM 2 can still look at
(:mod:`vos_ros.trackers.sam2_memory`), and a stream has no length, so object-pointer time is
normalised by ``max_obj_ptrs_in_encoder`` (16), which is what the official predictor uses on
videos of at least 16 frames (it takes ``min(video length, 16)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vos_ros.engine.config import EngineError
from vos_ros.trackers.sam2_memory import FrameMemory, TargetMemory, stacked_output_dict

# The stream's "number of frames" for SAM 2: larger than any frame index, so that only
# max_obj_ptrs_in_encoder bounds the object pointers (see the module docstring).
UNBOUNDED_STREAM = 2**62
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the official video loader's normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


class TrackerInputError(EngineError):
    """A prompt or target id given to the tracker is invalid."""


@dataclass
class EncodedFrame:
    """The image encoder's output for one frame of the stream."""

    frame_index: int
    backbone_out: dict[str, Any]


class SquareInput:
    """What both streaming trackers (SAM 2 here, EdgeTAM in :mod:`edgetam_stream`) do with
    their input: frames and prompt masks at the model's square size, CUDA autocast."""

    def __init__(self, image_size: int, device: Any, precision: str) -> None:
        import torch

        self.image_size = image_size
        self.device = device
        self.precision = precision
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)

    def preprocess(self, square_rgb: np.ndarray) -> Any:
        """RGB uint8 ``(S, S, 3)`` -> normalised ``[1, 3, S, S]`` float32 on the model's device,
        computed as the official video loader does (x / 255 in float64, then float32)."""
        import torch

        size = self.image_size
        if square_rgb.shape != (size, size, 3) or square_rgb.dtype != np.uint8:
            raise TrackerInputError(
                f"frame must be ({size}, {size}, 3) uint8, "
                f"got {square_rgb.shape} {square_rgb.dtype}"
            )
        image = torch.from_numpy(square_rgb / 255.0).permute(2, 0, 1)[None].float()
        image = (image - self._mean) / self._std
        return image.to(self.device)

    def square_mask(self, mask: np.ndarray) -> Any:
        """A prompt mask at any size -> ``[1, 1, S, S]`` float32 0/1 on the model's device:
        resized bilinearly with antialiasing and thresholded at 0.5, as both libraries do."""
        import torch
        import torch.nn.functional as F

        if not isinstance(mask, np.ndarray) or mask.ndim != 2 or not mask.size:
            raise TrackerInputError("mask must be a 2-D array")
        size = self.image_size
        full = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))[None, None].float()
        if full.shape[-2:] != (size, size):
            full = F.interpolate(
                full, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            full = (full >= 0.5).float()
        return full.to(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self.precision == "fp32" or self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)


def batches_by_layout(layouts: list[Hashable], batch: int | None) -> list[list[int]]:
    """Rows of targets that run as one batch: the same memory layout (``layouts[row]``), at
    most ``batch`` to a batch (``None``: no cap)."""
    groups: dict[Hashable, list[int]] = {}
    for row, layout in enumerate(layouts):
        groups.setdefault(layout, []).append(row)
    size = batch or max(len(layouts), 1)
    return [rows[i : i + size] for rows in groups.values() for i in range(0, len(rows), size)]


def prompt_points(
    points: np.ndarray, labels: np.ndarray, box: tuple[float, float, float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks and a box as the prompt encoder takes them: ``(P, 2)`` float32 points in video
    pixels and ``(P,)`` labels, the box as two corner points labelled 2 and 3 ahead of the
    clicks (as the official ``add_new_points_or_box`` and transformers' processor send it).

    :raises TrackerInputError: points and labels that do not pair, or neither clicks nor box.
    """
    points = np.asarray(points, np.float32).reshape(-1, 2)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(points) != len(labels):
        raise TrackerInputError(f"{len(points)} points but {len(labels)} labels")
    if box is not None:
        points = np.concatenate([np.asarray(box, np.float32).reshape(2, 2), points])
        labels = np.concatenate([np.array([2, 3], np.int64), labels])
    if not len(points):
        raise TrackerInputError("give at least one point or a box")
    return points, labels


class Sam2StreamTracker(SquareInput):
    """Tracks any number of targets with SAM 2's own per-target memory, batched over targets.

    :param model: an official ``SAM2Base`` in eval mode (:func:`~vos_ros.trackers.sam2_library.
        build_model`).
    :param precision: ``fp32``, or ``fp16`` / ``bf16`` (CUDA autocast, as the official demos).
    :param fill_holes: run the official hole filling (needs the package's CUDA extension).
    :param batch: most targets per batch on a tracked frame (``None``: every target whose
        memory has the same layout).
    """

    def __init__(
        self,
        model: Any,
        precision: str = "fp32",
        fill_holes: bool = False,
        batch: int | None = None,
    ) -> None:
        super().__init__(int(model.image_size), model.device, precision)
        self.model = model
        self.fill_holes = fill_holes and getattr(model, "fill_hole_area", 0) > 0
        self.batch = batch
        stride = int(model.memory_temporal_stride_for_eval)
        # how far back SAM 2 looks: mask memory and object pointers
        self.window = max(
            stride * (int(model.num_maskmem) - 1), int(model.max_obj_ptrs_in_encoder) - 1
        )
        self._targets: dict[int, TargetMemory] = {}

    # ---------------------------------------------------------------- frames
    def encode(self, image: Any, frame_index: int) -> EncodedFrame:
        """Run the image encoder once for this frame."""
        import torch

        with torch.inference_mode(), self._autocast():
            return EncodedFrame(frame_index, self.model.forward_image(image))

    # ---------------------------------------------------------------- targets
    @property
    def target_ids(self) -> list[int]:
        return list(self._targets)

    def add_target(self, frame: EncodedFrame, target_id: int, mask: np.ndarray) -> Any:
        """Start (or restart, dropping its memory) target ``target_id`` from a mask on ``frame``.

        :param mask: ``(H, W)`` bool mask at any resolution (the video's).
        :returns: ``[1, 1, S/4, S/4]`` float32 logits of the frame's output for the target.
        """
        logits, memory = self.start_from_mask(frame, mask)
        self.install(target_id, memory)
        return logits

    def start_from_mask(self, frame: EncodedFrame, mask: np.ndarray) -> tuple[Any, TargetMemory]:
        """A new target's output and memory from a mask prompt on ``frame`` (not installed)."""
        import torch

        full = self.square_mask(mask)
        with torch.inference_mode(), self._autocast():
            return self._start(frame, point_inputs=None, mask_inputs=full)

    def start_from_clicks(
        self,
        frame: EncodedFrame,
        video_hw: tuple[int, int],
        points: np.ndarray,
        labels: np.ndarray,
        box: tuple[float, float, float, float] | None = None,
    ) -> tuple[Any, TargetMemory]:
        """A new target's output and memory from clicks and/or a box on ``frame`` through SAM's
        prompt encoder (not installed), as the official ``add_new_points_or_box`` on a frame
        the target was never tracked on: the box becomes two corner points (labels 2 and 3)
        ahead of the clicks, and coordinates are scaled from the video's pixels to the model's
        square input.

        :param video_hw: the video frame's ``(H, W)``, which the coordinates refer to.
        :param points: ``(P, 2)`` click positions ``(x, y)`` in video pixels (P may be 0).
        :param labels: ``(P,)`` 1 = on the target, 0 = not on the target.
        :param box: ``(x0, y0, x1, y1)`` in video pixels.
        """
        import torch

        points, labels = prompt_points(points, labels, box)
        labels = labels.astype(np.int32)  # the official predictor's label type
        height, width = video_hw
        coords = torch.from_numpy(points)[None] / torch.tensor([width, height]) * self.image_size
        point_inputs = {
            "point_coords": coords.to(self.device),
            "point_labels": torch.from_numpy(labels)[None].to(self.device),
        }
        with torch.inference_mode(), self._autocast():
            return self._start(frame, point_inputs=point_inputs, mask_inputs=None)

    def install(self, target_id: int, memory: TargetMemory) -> None:
        """Track ``target_id`` from ``memory`` (a started target), replacing any memory it had."""
        self._targets[target_id] = memory

    def _start(
        self, frame: EncodedFrame, point_inputs: dict | None, mask_inputs: Any
    ) -> tuple[Any, TargetMemory]:
        """``track_step`` on a prompt frame, then its memory as the official preflight encodes
        it: from the output upsampled again, as a mask the user interacted with."""
        import torch
        import torch.nn.functional as F

        size = self.image_size
        feats, sizes, out = self._track_step(
            frame,
            1,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
        )
        masks = self._filled(out["pred_masks"])
        high_res = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
        features, pos_enc = self.model._encode_new_memory(
            current_vision_feats=feats,
            feat_sizes=sizes,
            pred_masks_high_res=high_res,
            object_score_logits=out["object_score_logits"],
            is_mask_from_pts=True,
        )
        memory = TargetMemory(self.window)
        memory.add_prompt(
            frame.frame_index,
            FrameMemory(
                features.to(torch.bfloat16), pos_enc, out["obj_ptr"], out["object_score_logits"]
            ),
        )
        return masks.float(), memory

    def remove_target(self, target_id: int) -> bool:
        return self._targets.pop(target_id, None) is not None

    def reset(self) -> None:
        self._targets.clear()

    def nbytes(self) -> int:
        return sum(m.nbytes() for m in self._targets.values())

    # ---------------------------------------------------------------- tracking
    def track(self, frame: EncodedFrame, ids: list[int]) -> tuple[Any, Any]:
        """Segment targets ``ids`` on ``frame`` from their memory and add the frame to it.

        :returns: ``(logits [N, 1, S/4, S/4] float32, object_score_logits [N] float32)`` in the
            order of ``ids``; an occluded target (object score <= 0) has all logits at SAM 2's
            "no object" value.
        """
        import torch

        unknown = [i for i in ids if i not in self._targets]
        if unknown:
            raise TrackerInputError(f"targets {unknown} are not tracked")
        low = self.image_size // 4
        logits = torch.empty((len(ids), 1, low, low), dtype=torch.float32, device=self.device)
        scores = torch.empty(len(ids), dtype=torch.float32, device=self.device)
        with torch.inference_mode(), self._autocast():
            for rows in self._batches(ids):
                batch_ids = [ids[r] for r in rows]
                masks, obj_scores = self._track_batch(frame, batch_ids)
                logits[rows] = masks.float()
                scores[rows] = obj_scores.float().view(-1)
        return logits, scores

    def _track_batch(self, frame: EncodedFrame, ids: list[int]) -> tuple[Any, Any]:
        import torch

        memories = [self._targets[i] for i in ids]
        _, _, out = self._track_step(frame, len(ids), output_dict=stacked_output_dict(memories))
        features = out["maskmem_features"].to(torch.bfloat16)
        for row, memory in enumerate(memories):
            memory.add_recent(
                frame.frame_index,
                FrameMemory(
                    features[row : row + 1],
                    [p[row : row + 1] for p in out["maskmem_pos_enc"]],
                    out["obj_ptr"][row : row + 1],
                    out["object_score_logits"][row : row + 1],
                ),
            )
        return self._filled(out["pred_masks"]), out["object_score_logits"]

    def _filled(self, masks: Any) -> Any:
        """The official hole filling of output logits, where it can run (its CUDA extension)."""
        if not self.fill_holes:
            return masks
        from sam2.utils.misc import fill_holes_in_mask_scores

        return fill_holes_in_mask_scores(masks, self.model.fill_hole_area)

    def _track_step(
        self,
        frame: EncodedFrame,
        batch: int,
        output_dict: dict,
        point_inputs: dict | None = None,
        mask_inputs: Any = None,
    ) -> tuple[list, list, dict]:
        """The official ``track_step`` for ``batch`` targets on ``frame``: a prompt frame when
        given prompt inputs (memory encoded by the caller), else a tracked frame (memory
        encoder run). Returns the flattened features, their sizes and the step's output."""
        feats, pos, sizes = self._batched_features(frame, batch)
        prompted = point_inputs is not None or mask_inputs is not None
        out = self.model.track_step(
            frame_idx=frame.frame_index,
            is_init_cond_frame=prompted,
            current_vision_feats=feats,
            current_vision_pos_embeds=pos,
            feat_sizes=sizes,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            output_dict=output_dict,
            num_frames=UNBOUNDED_STREAM,
            run_mem_encoder=not prompted,
        )
        return feats, sizes, out

    def _batches(self, ids: list[int]) -> list[list[int]]:
        """Rows of ``ids`` grouped by memory layout (same frames in memory), at most ``batch``
        to a group."""
        return batches_by_layout([self._targets[i].layout() for i in ids], self.batch)

    def _batched_features(self, frame: EncodedFrame, batch: int) -> tuple[list, list, list]:
        """The frame's features expanded to ``batch`` targets and flattened, as the official
        predictor's ``_get_image_feature`` does."""
        backbone = frame.backbone_out
        expanded = {
            "backbone_fpn": [f.expand(batch, -1, -1, -1) for f in backbone["backbone_fpn"]],
            "vision_pos_enc": [p.expand(batch, -1, -1, -1) for p in backbone["vision_pos_enc"]],
        }
        _, feats, pos, sizes = self.model._prepare_backbone_features(expanded)
        return feats, pos, sizes
