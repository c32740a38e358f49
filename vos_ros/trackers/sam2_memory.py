"""Per-target SAM 2 memory for a stream: prompt frames kept, a bounded window of recent frames.

The official video predictor keeps every frame's output of a whole video. SAM 2 only looks at
the prompt ("conditioning") frames, the last ``num_maskmem - 1`` frames (mask memory) and the
last ``max_obj_ptrs_in_encoder - 1`` frames (object pointers), so a stream keeps exactly those
and drops older ones: bounded memory, same look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FrameMemory:
    """What SAM 2 keeps of one frame for one target (the official predictor's compact output).

    :param maskmem_features: ``[1, C, h, w]`` bfloat16, as the official predictor stores it.
    :param maskmem_pos_enc: list of ``[1, C, h, w]`` positional encodings (the same every frame).
    :param obj_ptr: ``[1, hidden_dim]`` object pointer.
    :param object_score_logits: ``[1, 1]``, > 0 when the target was seen on that frame.
    """

    maskmem_features: Any
    maskmem_pos_enc: list
    obj_ptr: Any
    object_score_logits: Any

    def nbytes(self) -> int:
        tensors = (self.maskmem_features, self.obj_ptr, self.object_score_logits)
        return sum(t.numel() * t.element_size() for t in tensors)


class TargetMemory:
    """One target's memory: prompt frames (kept for good) and the most recent tracked frames.

    :param window: how many frames back SAM 2 can look; older tracked frames are dropped.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.prompts: dict[int, FrameMemory] = {}
        self.recent: dict[int, FrameMemory] = {}

    def add_prompt(self, frame_index: int, memory: FrameMemory) -> None:
        self.recent.pop(frame_index, None)  # a prompt frame is never also a tracked frame
        self.prompts[frame_index] = memory

    def add_recent(self, frame_index: int, memory: FrameMemory) -> None:
        self.recent[frame_index] = memory
        oldest = frame_index - self.window + 1
        for old in [t for t in self.recent if t < oldest]:
            del self.recent[old]

    def layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The frames in memory: targets with the same layout can run as one batch."""
        return tuple(sorted(self.prompts)), tuple(sorted(self.recent))

    def nbytes(self) -> int:
        return sum(m.nbytes() for m in (*self.prompts.values(), *self.recent.values()))


def stacked_output_dict(memories: list[TargetMemory]) -> dict[str, dict[int, dict[str, Any]]]:
    """The official ``output_dict`` of a batch of targets with one layout: each frame's
    tensors concatenated over the targets (batch axis first)."""
    import torch

    def stack(entries: list[FrameMemory]) -> dict[str, Any]:
        batch = len(entries)
        return {
            "maskmem_features": torch.cat([e.maskmem_features for e in entries]),
            "maskmem_pos_enc": [p.expand(batch, -1, -1, -1) for p in entries[0].maskmem_pos_enc],
            "obj_ptr": torch.cat([e.obj_ptr for e in entries]),
            "object_score_logits": torch.cat([e.object_score_logits for e in entries]),
        }

    first = memories[0]
    return {
        "cond_frame_outputs": {
            t: stack([m.prompts[t] for m in memories]) for t in sorted(first.prompts)
        },
        "non_cond_frame_outputs": {
            t: stack([m.recent[t] for m in memories]) for t in sorted(first.recent)
        },
    }
