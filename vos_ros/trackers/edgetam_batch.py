"""One tracked frame for a batch of EdgeTAM targets: each network runs once for the batch.

``transformers``' ``EdgeTamVideoModel`` steps the objects of a session one at a time (its
``forward`` runs each with ``batch_size=1``), and four of its steps only work for that batch of
one: the vision features' expansion (``expand`` on a list), the reshape after the memory
attention (``squeeze(1)``), the choice among the multimask outputs (its indices broadcast to
``[B, B]``) and the spatial perceiver's latents (``view`` of an expanded tensor). So a batch is
put together here from the library's own pieces:

* **memory read-out, per target** (:func:`read_memory`): the library's
  ``_gather_memory_frame_outputs``, ``_build_memory_attention_inputs``,
  ``_get_object_pointers`` and ``_process_object_pointers`` at batch 1 (gathering, no network);
  targets whose memory has the same number of frames and of pointer tokens, which is all the
  memory attention's rotary encoding depends on, run as one batch (:meth:`Readout.layout`);
* **the networks, once per batch**: the library's memory attention, prompt encoder, mask
  decoder and memory encoder (``_encode_new_memory``); inside it the library's spatial
  perceiver runs target by target (:func:`perceiver_for_batches`, called by the tracker), its
  ONNX Runtime and TensorRT graphs take the batch;
* **written here for a batch** (:func:`track_batch`): the reshape after the memory attention and
  the mask head's tail as the library's ``_single_frame_forward`` runs it on a tracked frame
  (no clicks: one padding point; occluded targets' logits at the "no object" value; the mask
  with the best predicted IoU and its token; the object pointer).

The outputs are stored per target in the shapes the library stores (``store_output``), so the
library's own steps (prompts, the next read-out) go on from them. Equal to the library's
per-target steps within float rounding (``test/test_edgetam.py``: logits within 1e-3).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

OBJECT = 0  # each target's session holds one object, at index 0


def _torch() -> Any:
    import torch

    return torch


@dataclass(frozen=True)
class Readout:
    """One target's memory for the memory attention, at batch 1.

    :param memory: ``[tokens, 1, mem_dim]``: the memory frames' tokens, then the pointers'.
    :param memory_pos: positional encodings of ``memory``, same shape.
    :param frames: how many memory frames ``memory`` holds.
    :param pointer_tokens: how many of its tokens are object-pointer tokens (at the end).
    """

    memory: Any
    memory_pos: Any
    frames: int
    pointer_tokens: int

    def layout(self) -> tuple[int, int, int]:
        """Targets with the same layout run as one batch."""
        return int(self.memory.shape[0]), self.frames, self.pointer_tokens


@dataclass(frozen=True)
class BatchOutput:
    """A tracked frame's output for a batch of targets (batch axis first).

    :param pred_masks: ``[N, 1, S/4, S/4]`` logits.
    :param object_score_logits: ``[N, 1, 1]``; > 0 where the target is seen.
    :param per_target: what the library stores for each target's frame, in its shapes.
    """

    pred_masks: Any
    object_score_logits: Any
    per_target: list[dict[str, Any]]


def read_memory(model: Any, session: Any, frame_index: int) -> Readout:
    """Target ``session``'s memory for tracking ``frame_index``, as the library reads it in
    streaming mode (its ``_prepare_memory_conditioned_features``, steps 2 to 4)."""
    torch = _torch()
    device = model.device
    entries = model._gather_memory_frame_outputs(session, OBJECT, frame_index)
    memory, memory_pos = model._build_memory_attention_inputs(entries, device)
    frames = len(memory)
    offsets, tokens, most = model._get_object_pointers(
        session, OBJECT, frame_index, session.num_frames, device, streaming=True
    )
    pointer_tokens = 0
    if tokens:
        pointers, pointers_pos = model._process_object_pointers(
            offsets, tokens, most, 1, model.hidden_dim, device
        )
        memory.append(pointers)
        memory_pos.append(pointers_pos)
        pointer_tokens = int(pointers.shape[0])
    return Readout(torch.cat(memory), torch.cat(memory_pos), frames, pointer_tokens)


def track_batch(model: Any, features: dict[str, Any], readouts: list[Readout]) -> BatchOutput:
    """Track a batch of targets of one layout on a frame (``features``: the frame's
    ``vision_feats`` and ``vision_pos_embeds``, batch 1, sequence first) and encode the frame
    into their memory."""
    count = len(readouts)
    feats, pos = features["vision_feats"], features["vision_pos_embeds"]
    top, top_pos = feats[-1], pos[-1]  # [HW, 1, C]
    channels = int(model.hidden_dim)
    height, width = model.backbone_feature_sizes[-1]
    memory = model.memory_attention(
        current_vision_features=top.expand(-1, count, -1),
        current_vision_position_embeddings=top_pos.expand(-1, count, -1),
        memory=_along_batch([r.memory for r in readouts]),
        memory_posision_embeddings=_along_batch([r.memory_pos for r in readouts]),
        num_object_pointer_tokens=readouts[0].pointer_tokens,
        num_spatial_memory_tokens=readouts[0].frames,
    )  # [1, N, HW, C]
    conditioned = memory[0].transpose(1, 2).reshape(count, channels, height, width)
    high_res = [
        x.permute(1, 2, 0).reshape(1, x.shape[2], *size).expand(count, -1, -1, -1)
        for x, size in zip(feats[:-1], model.backbone_feature_sizes[:-1], strict=True)
    ]
    low, high, pointer, scores = _mask_head(model, conditioned, high_res)
    maskmem, maskmem_pos = model._encode_new_memory(
        current_vision_feats=top.expand(-1, count, -1),
        pred_masks_high_res=high,
        object_score_logits=scores,
        is_mask_from_pts=False,
    )
    per_target = [
        {
            "pred_masks": low[row : row + 1],
            "object_pointer": pointer[row : row + 1],
            "maskmem_features": maskmem[row : row + 1],
            "maskmem_pos_enc": maskmem_pos[row : row + 1],
            "object_score_logits": scores[row : row + 1],
        }
        for row in range(count)
    ]
    return BatchOutput(low, scores, per_target)


def _along_batch(tensors: list[Any]) -> Any:
    """Per-target ``[tokens, 1, C]`` tensors as one ``[tokens, N, C]`` batch; a batch of one is
    used as it is (no second copy of the memory that :func:`read_memory` put together)."""
    return tensors[0] if len(tensors) == 1 else _torch().cat(tensors, dim=1)


def _mask_head(model: Any, image_embeddings: Any, high_res: list) -> tuple[Any, Any, Any, Any]:
    """The library's SAM head on a tracked frame, for a batch: ``(low-res logits [N, 1, s, s],
    high-res logits [N, 1, S, S], object pointers [N, 1, C], object scores [N, 1, 1])``."""
    torch = _torch()
    from torch.nn import functional
    from transformers.models.edgetam_video.modeling_edgetam_video import NO_OBJ_SCORE

    count = image_embeddings.shape[0]
    device, dtype = image_embeddings.device, image_embeddings.dtype
    # no clicks on a tracked frame: the one padding point the library sends
    sparse, dense = model.prompt_encoder(
        input_points=torch.zeros(count, 1, 1, 2, dtype=dtype, device=device),
        input_labels=-torch.ones(count, 1, 1, dtype=torch.int32, device=device),
        input_boxes=None,
        input_masks=None,
    )
    multimask = model._use_multimask(False, None)
    masks, iou, tokens, scores = model.mask_decoder(
        image_embeddings=image_embeddings,
        image_positional_embeddings=model.get_image_wide_positional_embeddings().repeat(
            count, 1, 1, 1
        ),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        high_resolution_features=high_res,
    )  # masks [N, 1, K, s, s], iou [N, 1, K], tokens [N, 1, K, C], scores [N, 1, 1]
    seen = scores > 0
    masks = torch.where(seen[:, None, None], masks, NO_OBJ_SCORE)
    rows = torch.arange(count, device=device)
    best = iou.argmax(dim=-1)[:, 0] if multimask else torch.zeros_like(rows)
    low = masks[rows, 0, best][:, None]  # [N, 1, s, s]
    token = tokens[rows, 0, best if tokens.shape[2] > 1 else 0][:, None]  # [N, 1, C]
    size = (model.image_size, model.image_size)
    high = functional.interpolate(low.float(), size=size, mode="bilinear", align_corners=False)
    pointer = model.object_pointer_proj(token)
    weight = seen.to(pointer.dtype)
    pointer = weight * pointer + (1 - weight) * model.no_object_pointer
    return low, high.to(low.dtype), pointer, scores


def perceiver_for_batches(model: Any) -> None:
    """Let ``model``'s spatial perceiver take a batch of targets: the library's runs target by
    target (its 2D latents take a batch of one, see the module doc); a graph that replaced it
    (ONNX Runtime, TensorRT) takes batches as it is."""
    from transformers.models.edgetam_video.modeling_edgetam_video import (
        EdgeTamVideoPerceiverResampler,
    )

    if isinstance(model.spatial_perceiver, EdgeTamVideoPerceiverResampler):
        model.spatial_perceiver = _target_by_target_class()(model.spatial_perceiver)


@functools.cache
def _target_by_target_class() -> type:
    torch = _torch()

    class TargetByTarget(torch.nn.Module):
        """``module`` run on each target of a batch in turn, outputs concatenated."""

        def __init__(self, module: Any) -> None:
            super().__init__()
            self.module = module

        def forward(self, *tensors):
            if tensors[0].shape[0] == 1:
                return self.module(*tensors)
            rows = [self.module(*(t[i : i + 1] for t in tensors)) for i in range(len(tensors[0]))]
            return tuple(torch.cat(parts) for parts in zip(*rows, strict=True))

    return TargetByTarget
