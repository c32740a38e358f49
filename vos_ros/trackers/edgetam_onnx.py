"""EdgeTAM on ONNX Runtime: its five networks exported to ONNX and run inside the library's own
streaming orchestration (``transformers``' ``EdgeTamVideoModel``).

``export_graphs`` writes ``image_encoder.onnx`` (the image encoder with the mask decoder's two
high-resolution projections, i.e. the model's ``get_image_features``), ``memory_attention.onnx``,
``memory_encoder.onnx``, ``spatial_perceiver.onnx`` (EdgeTAM's 2D spatial perceiver, which
compresses each memory frame to a fixed number of tokens) and ``mask_decoder.onnx`` (opset 17).
Dynamic axes: the number of targets, the memory length, the number of memory frames and of
object-pointer tokens. ``swap_graph_modules`` then replaces those parts of the model by modules
that run the graphs, so the library's ``forward`` (memory selection, object pointers, prompts)
stays the library's code.

One export shim, equal to the library's computation (tested): a Hiera image encoder resizes its
positional embedding bicubically from a parameter; at the fixed input size that is a constant,
computed once by the library's code and folded in (TensorRT has no bicubic resize). The
library's rotary encoding is already real-valued.
The memory attention takes two integers besides tensors (object-pointer tokens, memory frames);
each reaches the graph as the length of a marker input, so it stays a dynamic axis.

The mask decoder graph is the tracking case (``multimask_output=True``); prompt frames (a mask
or clicks turned into an output and an object pointer, once per prompt) stay on torch, as do the
prompt encoder and the small projections around the networks.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vos_ros.trackers.onnx_graphs import OPSET, GraphIO, OnnxRuntimeGraph, export_folder

__all__ = ["GRAPHS", "GRAPH_IO", "OPSET", "export_graphs", "swap_graph_modules", "use_onnxruntime"]

GRAPHS = (
    "image_encoder",
    "memory_attention",
    "memory_encoder",
    "spatial_perceiver",
    "mask_decoder",
)

_TARGETS = {0: "targets"}
# graph -> (input names, output names, dynamic axes), as in sam2_onnx.GRAPH_IO
GRAPH_IO: dict[str, GraphIO] = {
    "image_encoder": (["image"], ["fpn0", "fpn1", "fpn2", "pos0", "pos1", "pos2"], {}),
    "memory_attention": (
        ["curr", "curr_pos", "memory", "memory_pos", "obj_ptr_marker", "frame_marker"],
        ["features"],
        {"curr": {1: "targets"}, "curr_pos": {1: "targets"},
         "memory": {0: "memory_tokens", 1: "targets"},
         "memory_pos": {0: "memory_tokens", 1: "targets"},
         "obj_ptr_marker": {0: "pointer_tokens"}, "frame_marker": {0: "memory_frames"},
         "features": {1: "targets"}},
    ),
    "memory_encoder": (
        ["pix_feat", "masks"],
        ["maskmem_features", "maskmem_pos_enc"],
        {"pix_feat": _TARGETS, "masks": _TARGETS, "maskmem_features": _TARGETS,
         "maskmem_pos_enc": _TARGETS},
    ),
    "spatial_perceiver": (
        ["features", "pos"],
        ["latents", "latents_pos"],
        {"features": _TARGETS, "pos": _TARGETS, "latents": _TARGETS, "latents_pos": _TARGETS},
    ),
    "mask_decoder": (
        ["image_embeddings", "image_pe", "sparse", "dense", "high_res_0", "high_res_1"],
        ["masks", "iou_pred", "sam_tokens_out", "object_score_logits"],
        {"image_embeddings": _TARGETS, "image_pe": _TARGETS,
         "sparse": {0: "targets", 2: "prompt_tokens"}, "dense": _TARGETS,
         "high_res_0": _TARGETS, "high_res_1": _TARGETS, "masks": _TARGETS,
         "iou_pred": _TARGETS, "sam_tokens_out": _TARGETS, "object_score_logits": _TARGETS},
    ),
}  # fmt: skip


def _torch_nn() -> Any:
    import torch

    return torch.nn


# ------------------------------------------------------------------------------ export wrappers
def _export_modules(model: Any) -> dict[str, Any]:
    nn = _torch_nn()

    class ImageEncoderGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image):
            out = self.model.get_image_features(image, return_dict=True)
            return (*out.fpn_hidden_states, *out.fpn_position_encoding)

    class MemoryAttentionGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = model.memory_attention

        def forward(self, curr, curr_pos, memory, memory_pos, obj_ptr_marker, frame_marker):
            # the markers' lengths are the two integers: dynamic axes of the graph
            return self.attention(
                current_vision_features=curr,
                memory=memory,
                current_vision_position_embeddings=curr_pos,
                memory_posision_embeddings=memory_pos,  # the library's spelling
                num_object_pointer_tokens=obj_ptr_marker.shape[0],
                num_spatial_memory_tokens=frame_marker.shape[0],
            )

    class MaskDecoderGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = model.mask_decoder

        def forward(self, image_embeddings, image_pe, sparse, dense, high_res_0, high_res_1):
            return self.decoder(
                image_embeddings=image_embeddings,
                image_positional_embeddings=image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
                high_resolution_features=[high_res_0, high_res_1],
            )

    return {
        "image_encoder": ImageEncoderGraph().eval(),
        "memory_attention": MemoryAttentionGraph().eval(),
        "memory_encoder": model.memory_encoder.eval(),
        "spatial_perceiver": model.spatial_perceiver.eval(),
        "mask_decoder": MaskDecoderGraph().eval(),
    }


def example_inputs(model: Any, targets: int = 1) -> dict[str, tuple]:
    """Inputs of the shapes the tracker feeds: ``targets`` targets, 3 memory frames and 4 object
    pointers. The library's spatial perceiver runs one target at a time (it reshapes an expanded
    tensor), so the export traces ``targets=1``; the axis stays dynamic in the graphs."""
    import torch

    config = model.config
    size = int(model.image_size)
    side = size // 16  # the top-level feature map
    c, m = int(model.hidden_dim), int(model.mem_dim)
    frames, pointers = 3, 4 * (c // m)
    per_frame = int(config.perceiver_resampler_num_latents) + int(
        config.perceiver_resampler_num_latents_2d
    )
    # on the model's device: a CUDA model exports as it is
    randn = functools.partial(torch.randn, device=model.device)
    return {
        "image_encoder": (randn(1, 3, size, size),),
        "memory_attention": (
            randn(side * side, targets, c),
            randn(side * side, targets, c),
            randn(frames * per_frame + pointers, targets, m),
            randn(frames * per_frame + pointers, targets, m),
            torch.zeros(pointers, device=model.device),
            torch.zeros(frames, device=model.device),
        ),
        "memory_encoder": (
            randn(targets, c, side, side),
            torch.rand(targets, 1, size, size, device=model.device),
        ),
        "spatial_perceiver": (randn(targets, m, side, side), randn(targets, m, side, side)),
        "mask_decoder": (
            randn(targets, c, side, side),
            randn(targets, c, side, side),
            randn(targets, 1, 2, c),
            randn(targets, c, side, side),
            randn(targets, c // 8, side * 4, side * 4),
            randn(targets, c // 4, side * 2, side * 2),
        ),
    }


@contextlib.contextmanager
def _folded_position_embedding(model: Any, image: Any) -> Iterator[None]:
    """A Hiera encoder's positional embedding as the constant it is at ``image``'s size (see the
    module doc); other encoders are left as they are."""
    import torch

    backbone = getattr(model.vision_encoder, "backbone", None)
    original = getattr(backbone, "_get_pos_embed", None)
    if original is None:
        yield
        return
    folded: dict[tuple[int, ...], Any] = {}

    def constant(hw):
        key = tuple(int(v) for v in hw)
        if key not in folded:
            folded[key] = original(key).detach().clone()
        return folded[key]

    backbone._get_pos_embed = constant  # instance attribute: shadows the method
    try:
        with torch.no_grad():
            model.get_image_features(image)  # computed here, outside the trace
        yield
    finally:
        del backbone._get_pos_embed


def export_graphs(model: Any, folder: Path) -> Path:
    """Export the five graphs of ``model`` into ``folder`` (written whole or not at all)."""
    examples = example_inputs(model)
    with _folded_position_embedding(model, examples["image_encoder"][0]):
        return export_folder(_export_modules(model), examples, GRAPH_IO, folder)


# ------------------------------------------------------------------------------ runtime modules
def use_onnxruntime(model: Any, folder: Path, threads: int = 0) -> Any:
    """Swap ``model``'s five networks for modules that run the graphs in ``folder`` on ONNX
    Runtime; returns ``model``."""
    sessions = {name: OnnxRuntimeGraph(folder / f"{name}.onnx", threads) for name in GRAPHS}
    return swap_graph_modules(model, sessions)


def swap_graph_modules(model: Any, graphs: dict[str, Any]) -> Any:
    """Swap ``model``'s networks for modules that call ``graphs[name](*inputs)`` (inputs in
    :data:`GRAPH_IO` order, torch tensors) and take its outputs (a list, in that order): the
    library's streaming ``forward`` then runs unchanged around any runtime."""
    import torch

    nn = _torch_nn()
    torch_decoder = model.mask_decoder
    device = model.device

    def on_device(tensors: list) -> list:
        return [t.to(device) for t in tensors]

    def image_features(pixel_values, **_kwargs):
        out = on_device(graphs["image_encoder"](pixel_values))
        return SimpleNamespace(
            fpn_hidden_states=out[:3], fpn_position_encoding=out[3:], hidden_states=None,
            attentions=None,
        )  # fmt: skip

    class MemoryAttention(nn.Module):
        def forward(self, current_vision_features, memory,
                    current_vision_position_embeddings=None, memory_posision_embeddings=None,
                    num_object_pointer_tokens=0, num_spatial_memory_tokens=-1):  # fmt: skip
            markers = (
                torch.zeros(num_object_pointer_tokens, device=device),
                torch.zeros(num_spatial_memory_tokens, device=device),
            )
            (out,) = graphs["memory_attention"](
                current_vision_features, current_vision_position_embeddings,
                memory, memory_posision_embeddings, *markers,
            )  # fmt: skip
            return out.to(device)

    class Graph(nn.Module):  # tensors in, a tuple of tensors out
        def __init__(self, name: str) -> None:
            super().__init__()
            self.graph = name

        def forward(self, *tensors):
            return tuple(on_device(graphs[self.graph](*tensors)))

    class MaskDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prompt_frames = torch_decoder  # single-mask outputs (prompt frames) on torch

        def forward(self, image_embeddings, image_positional_embeddings,
                    sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output,
                    high_resolution_features, attention_similarity=None,
                    target_embedding=None, **kwargs):  # fmt: skip
            extras = attention_similarity is not None or target_embedding is not None
            if not multimask_output or extras:
                return self.prompt_frames(
                    image_embeddings, image_positional_embeddings, sparse_prompt_embeddings,
                    dense_prompt_embeddings, multimask_output, high_resolution_features,
                    attention_similarity, target_embedding, **kwargs,
                )  # fmt: skip
            return tuple(
                on_device(
                    graphs["mask_decoder"](
                        image_embeddings, image_positional_embeddings,
                        sparse_prompt_embeddings, dense_prompt_embeddings,
                        *high_resolution_features,
                    )
                )
            )  # fmt: skip

    model.get_image_features = image_features  # instance attribute: shadows the method
    model.memory_attention = MemoryAttention()
    model.memory_encoder = Graph("memory_encoder")
    model.spatial_perceiver = Graph("spatial_perceiver")
    model.mask_decoder = MaskDecoder()
    return model
