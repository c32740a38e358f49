"""EdgeTAM on a live stream, with the same interface as the SAM 2 tracker
(:class:`vos_ros.trackers.sam2_stream.Sam2StreamTracker`), so the sam2 family's engine plug-in
(:mod:`vos_ros.engine.sam2_predictor`) runs either.

Built on ``transformers``' ``EdgeTamVideoModel`` and its streaming inference session: the image
encoder runs once per frame; each target has a session of its own (one object in it). A prompt
frame steps the target's session with the model's own ``forward`` in streaming mode, so prompts
are the library's; a tracked frame runs the targets as batches
(:mod:`vos_ros.trackers.edgetam_batch`: the library's memory read-out per target, each network
once per batch) and stores each target's output in its session as the library stores it. What
this adds for a camera stream:

* **bounded memory**: the library's session keeps every frame it was given and every output;
  after each step a target's session keeps only its prompt frames and the tracked frames the
  model can still look at (``num_maskmem - 1`` frames of mask memory, ``max_object_pointers_in_
  encoder - 1`` of object pointers), which is all the library reads in streaming mode;
* **targets added, removed and replaced mid-stream**: a new session per target, dropped with it;
* **prompts as the library's processor makes them**: a mask resized to the square input
  (bilinear with antialiasing, >= 0.5); clicks and a box scaled from video pixels to the input,
  the box as two corner points labelled 2 and 3 ahead of the clicks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vos_ros.trackers.edgetam_batch import (
    OBJECT,
    perceiver_for_batches,
    read_memory,
    track_batch,
)
from vos_ros.trackers.sam2_stream import (
    EncodedFrame,
    SquareInput,
    TrackerInputError,
    batches_by_layout,
    prompt_points,
)

OBJECT_ID = 1  # each target's session holds one object (at index edgetam_batch.OBJECT)


class EdgeTamStreamTracker(SquareInput):
    """Tracks any number of targets with EdgeTAM, one bounded session per target.

    :param model: ``transformers.EdgeTamVideoModel`` in eval mode
        (:func:`~vos_ros.trackers.edgetam_library.build_edgetam_model`); its spatial perceiver
        is made to take batches of targets
        (:func:`~vos_ros.trackers.edgetam_batch.perceiver_for_batches`).
    :param precision: ``fp32``, or ``fp16`` / ``bf16`` (CUDA autocast).
    :param batch: most targets per batch on a tracked frame (``None``: every target whose
        memory has the same layout).
    """

    def __init__(self, model: Any, precision: str = "fp32", batch: int | None = None) -> None:
        config = model.config
        size = config.image_size
        super().__init__(
            int(size if isinstance(size, int) else size[0]),
            next(model.parameters()).device,
            precision,
        )
        perceiver_for_batches(model)
        self.model = model
        self.batch = batch
        # how far back the model looks in streaming mode: mask memory and object pointers
        self.window = max(
            int(config.num_maskmem) - 1, int(config.max_object_pointers_in_encoder) - 1
        )
        self._targets: dict[int, Any] = {}

    # ---------------------------------------------------------------- frames
    def encode(self, image: Any, frame_index: int) -> EncodedFrame:
        """Run the image encoder once for this frame (what every target's session is given)."""
        import torch

        with torch.inference_mode(), self._autocast():
            out = self.model.get_image_features(image, return_dict=True)
        features = {
            "pixel_values": image,
            "vision_feats": out.fpn_hidden_states,
            "vision_pos_embeds": out.fpn_position_encoding,
        }
        return EncodedFrame(frame_index, features)

    # ---------------------------------------------------------------- targets
    @property
    def target_ids(self) -> list[int]:
        return list(self._targets)

    def add_target(self, frame: EncodedFrame, target_id: int, mask: np.ndarray) -> Any:
        """Start (or restart) target ``target_id`` from a mask on ``frame``; returns the
        ``[1, 1, S/4, S/4]`` logits of the frame's output for it."""
        logits, session = self.start_from_mask(frame, mask)
        self.install(target_id, session)
        return logits

    def start_from_mask(self, frame: EncodedFrame, mask: np.ndarray) -> tuple[Any, Any]:
        """A new target's output and session from a mask prompt on ``frame`` (not installed)."""
        full = self.square_mask(mask)
        session = self._new_session()
        session.add_mask_inputs(session.obj_id_to_idx(OBJECT_ID), frame.frame_index, full)
        session.obj_with_new_inputs = [OBJECT_ID]
        logits, _ = self._step(session, frame)
        return logits, session

    def start_from_clicks(
        self,
        frame: EncodedFrame,
        video_hw: tuple[int, int],
        points: np.ndarray,
        labels: np.ndarray,
        box: tuple[float, float, float, float] | None = None,
    ) -> tuple[Any, Any]:
        """A new target's output and session from clicks and/or a box on ``frame`` through the
        prompt encoder (not installed); coordinates in video pixels of ``video_hw``."""
        import torch

        points, labels = prompt_points(points, labels, box)
        height, width = video_hw
        # scaled per axis as the library's processor scales them
        coords = torch.from_numpy(points.copy())[None, None]  # [image, object, points, xy]
        coords[..., 0] = coords[..., 0] * (self.image_size / width)
        coords[..., 1] = coords[..., 1] * (self.image_size / height)
        session = self._new_session()
        session.add_point_inputs(
            session.obj_id_to_idx(OBJECT_ID),
            frame.frame_index,
            {"point_coords": coords, "point_labels": torch.from_numpy(labels)[None, None]},
        )
        session.obj_with_new_inputs = [OBJECT_ID]
        logits, _ = self._step(session, frame)
        return logits, session

    def install(self, target_id: int, session: Any) -> None:
        """Track ``target_id`` from ``session`` (a started target), replacing any it had."""
        self._targets[target_id] = session

    def remove_target(self, target_id: int) -> bool:
        return self._targets.pop(target_id, None) is not None

    def reset(self) -> None:
        self._targets.clear()

    def nbytes(self) -> int:
        """Bytes of tensors the targets' sessions hold (their memory)."""
        total = 0
        for session in self._targets.values():
            for outputs in session.output_dict_per_obj.values():
                for frames in outputs.values():
                    for out in frames.values():
                        total += sum(_tensor_bytes(v) for v in out.values())
        return total

    # ---------------------------------------------------------------- tracking
    def track(self, frame: EncodedFrame, ids: list[int]) -> tuple[Any, Any]:
        """Segment targets ``ids`` on ``frame`` from their memory and add the frame to it.

        :returns: ``(logits [N, 1, S/4, S/4] float32, object_score_logits [N] float32)`` in the
            order of ``ids``; an occluded target (object score <= 0) has all logits at the
            model's "no object" value.
        """
        import torch

        unknown = [i for i in ids if i not in self._targets]
        if unknown:
            raise TrackerInputError(f"targets {unknown} are not tracked")
        low = self.image_size // 4
        logits = torch.empty((len(ids), 1, low, low), dtype=torch.float32, device=self.device)
        scores = torch.empty(len(ids), dtype=torch.float32, device=self.device)
        index = frame.frame_index
        sessions = [self._targets[i] for i in ids]
        with torch.inference_mode(), self._autocast():
            readouts = [read_memory(self.model, s, index) for s in sessions]
            for rows in batches_by_layout([r.layout() for r in readouts], self.batch):
                out = track_batch(self.model, frame.backbone_out, [readouts[r] for r in rows])
                logits[rows] = out.pred_masks.float()
                scores[rows] = out.object_score_logits.float().view(-1)
                for row, stored in zip(rows, out.per_target, strict=True):
                    self._store(sessions[row], index, stored)
        return logits, scores

    # ---------------------------------------------------------------- internals
    def _new_session(self) -> Any:
        import torch
        from transformers.models.edgetam_video.modeling_edgetam_video import (
            EdgeTamVideoInferenceSession,
        )

        return EdgeTamVideoInferenceSession(
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device=self.device,
            dtype=torch.float32,
        )

    def _step(self, session: Any, frame: EncodedFrame) -> tuple[Any, Any]:
        """A prompt frame: the library's streaming step of ``session`` on ``frame`` (with the
        frame's shared features), then the session trimmed to what later frames can read."""
        import torch

        features = frame.backbone_out
        index = frame.frame_index
        session.cache.cache_vision_features(
            index,
            {
                "vision_feats": features["vision_feats"],
                "vision_pos_embeds": features["vision_pos_embeds"],
            },
        )
        with torch.inference_mode(), self._autocast():
            out = self.model(
                inference_session=session, frame=features["pixel_values"], frame_idx=index
            )
        self._trim(session, index)
        return out.pred_masks.float(), out.object_score_logits.float().view(-1)

    def _store(self, session: Any, frame_index: int, output: dict[str, Any]) -> None:
        """Keep a tracked frame's output in the target's session as the library's ``forward``
        keeps it, then trim the session."""
        session.store_output(OBJECT, frame_index, output_value=output, is_conditioning_frame=False)
        session.frames_tracked_per_obj[OBJECT][frame_index] = {"reverse": False}
        self._trim(session, frame_index)

    def _trim(self, session: Any, frame_index: int) -> None:
        """Drop what streaming steps after ``frame_index`` never read: tracked outputs older
        than the window (prompt frames' outputs stay), and every frame's pixels and image
        features (each step is handed its own frame's; the library would keep the prompt
        frame's features, about 100 MB at 1024 x 1024, for as long as nothing replaced them)."""
        oldest = frame_index - self.window + 1  # the next frame reads back to here
        for outputs in session.output_dict_per_obj.values():
            tracked = outputs["non_cond_frame_outputs"]
            for index in [i for i in tracked if i < oldest]:
                del tracked[index]
        for frames in session.frames_tracked_per_obj.values():
            for index in [i for i in frames if i < oldest]:
                del frames[index]
        session.processed_frames.clear()
        session.cache.clear_all()


def _tensor_bytes(value: Any) -> int:
    if hasattr(value, "element_size"):
        return value.element_size() * value.nelement()
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0
