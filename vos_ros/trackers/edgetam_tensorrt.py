"""EdgeTAM on TensorRT 10: the engine code of :mod:`vos_ros.trackers.sam2_tensorrt` with
EdgeTAM's graphs (:mod:`vos_ros.trackers.edgetam_onnx`) and the ranges of their dynamic axes.

Why the ranges are what they are (all from the model's config, as the streaming tracker in
:mod:`vos_ros.trackers.edgetam_stream` uses it):

* ``targets``: a tracked frame runs targets with the same memory layout as one batch
  (:mod:`vos_ros.trackers.edgetam_batch`), 1 to ``max_targets``, ``opt`` as for SAM 2; prompt
  frames call with one;
* ``memory_frames``: a target restarts its session on each prompt, so it holds its prompt frame
  plus at most ``num_maskmem - 1`` recent frames;
* ``memory_tokens``: the spatial perceiver turns every memory frame into the same number of
  tokens (its 1D plus 2D latents), followed by the object-pointer tokens; a full memory is the
  steady state of a stream, so ``opt`` is the maximum;
* ``pointer_tokens``: the prompt frame's pointer plus at most ``max_object_pointers_in_encoder
  - 1`` recent ones, each split into ``hidden_dim // mem_dim`` tokens;
* ``prompt_tokens``: only multimask calls reach the engine (single-mask prompt frames stay on
  torch), i.e. ``multimask_min_pt_num`` to ``multimask_max_pt_num`` points, at least the one
  padding point the library sends without clicks, plus the prompt encoder's padding token.
"""

from __future__ import annotations

from typing import Any

from vos_ros.engine.backends.tensorrt_backend import OPT_TARGETS
from vos_ros.trackers import edgetam_onnx
from vos_ros.trackers.sam2_tensorrt import GraphSet, Range


def dim_ranges(model: Any, max_targets: int) -> dict[str, Range]:
    """(min, opt, max) of every dynamic axis name EdgeTAM's export uses (see module doc)."""
    config = model.config
    hidden, mem = int(model.hidden_dim), int(model.mem_dim)
    per_pointer = hidden // mem if mem < hidden else 1  # as the library splits a pointer
    pointers = (per_pointer, per_pointer * int(config.max_object_pointers_in_encoder))
    per_frame = int(config.perceiver_resampler_num_latents) + int(
        config.perceiver_resampler_num_latents_2d
    )
    frames = int(config.num_maskmem)
    points = (max(1, int(config.multimask_min_pt_num)), max(1, int(config.multimask_max_pt_num)))
    full = frames * per_frame + pointers[1]
    return {
        "targets": (1, min(OPT_TARGETS, max_targets), max_targets),
        "memory_frames": (1, frames, frames),
        "memory_tokens": (per_frame + pointers[0], full, full),
        "pointer_tokens": (pointers[0], pointers[1], pointers[1]),
        "prompt_tokens": (points[0] + 1, points[1] + 1, points[1] + 1),
    }


EDGETAM = GraphSet(
    edgetam_onnx.GRAPHS, edgetam_onnx.GRAPH_IO, dim_ranges, edgetam_onnx.swap_graph_modules
)
