"""SAM 2 on ONNX Runtime: the four networks exported to ONNX, run inside the official
orchestration.

``export_graphs`` writes ``image_encoder.onnx``, ``memory_attention.onnx``, ``memory_encoder.onnx``
and ``mask_decoder.onnx`` (opset 17; the number of targets, the memory length and the number of
object-pointer tokens are dynamic axes). ``use_onnxruntime`` then swaps those submodules of an
official ``SAM2Base`` for modules that run the graphs, so ``track_step`` and everything around it
stay the official code. Two export shims, both equal to the official computation (tested):

* the image encoder's positional embedding is resized bicubically from a parameter; at the fixed
  input size it is a constant, computed once by the official code and folded in (TensorRT has no
  bicubic resize);
* the memory attention's rotary encoding multiplies complex numbers, which ONNX has no type for;
  during export it runs as the same products on (real, imaginary) pairs.

The mask decoder graph is the tracking case (``multimask_output=True``); the prompt-frame case
(a mask prompt turned into an object pointer, once per prompt) stays on torch.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vos_ros.trackers.onnx_graphs import OPSET, GraphIO, OnnxRuntimeGraph, export_folder

__all__ = ["GRAPHS", "GRAPH_IO", "OPSET", "export_graphs", "swap_graph_modules", "use_onnxruntime"]

GRAPHS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")


def _torch_nn() -> Any:
    import torch

    return torch.nn


# ------------------------------------------------------------------------------ export wrappers
def _image_encoder_graph(model: Any) -> Any:
    class ImageEncoderGraph(_torch_nn().Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.image_encoder

        def forward(self, image):
            out = self.encoder(image)
            return (*out["backbone_fpn"], *out["vision_pos_enc"])

    return ImageEncoderGraph().eval()


def _memory_attention_graph(model: Any) -> Any:
    class MemoryAttentionGraph(_torch_nn().Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = model.memory_attention

        def forward(self, curr, curr_pos, memory, memory_pos, obj_ptr_marker):
            # the marker's length is the number of object-pointer tokens: a dynamic axis
            return self.attention(
                curr=[curr],
                curr_pos=[curr_pos],
                memory=memory,
                memory_pos=memory_pos,
                num_obj_ptr_tokens=obj_ptr_marker.shape[0],
            )

    return MemoryAttentionGraph().eval()


def _memory_encoder_graph(model: Any) -> Any:
    class MemoryEncoderGraph(_torch_nn().Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.memory_encoder

        def forward(self, pix_feat, masks):
            out = self.encoder(pix_feat, masks, skip_mask_sigmoid=True)
            return out["vision_features"], out["vision_pos_enc"][0]

    return MemoryEncoderGraph().eval()


def _mask_decoder_graph(model: Any) -> Any:
    class MaskDecoderGraph(_torch_nn().Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = model.sam_mask_decoder

        def forward(self, image_embeddings, image_pe, sparse, dense, high_res_0, high_res_1):
            return self.decoder(
                image_embeddings=image_embeddings,
                image_pe=image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
                repeat_image=False,
                high_res_features=[high_res_0, high_res_1],
            )

    return MaskDecoderGraph().eval()


@contextlib.contextmanager
def _export_shims(model: Any) -> Iterator[None]:
    """Fold the encoder's positional embedding; real-valued rotary encoding (see module doc)."""
    import sam2.modeling.sam.transformer as transformer
    import torch

    trunk = model.image_encoder.trunk
    size = model.image_size // trunk.patch_embed.proj.stride[0]
    with torch.no_grad():
        folded = trunk._get_pos_embed((size, size)).detach().clone()
    trunk._get_pos_embed = lambda hw: folded  # instance attribute: shadows the method
    pairs = {}
    for module in model.memory_attention.modules():
        if isinstance(module, transformer.RoPEAttention):
            # on the device its forward moves it to (the model's), so that it stays this tensor
            module.freqs_cis = module.freqs_cis.to(model.device)
            cis = module.freqs_cis
            pairs[id(cis)] = (cis.real.contiguous(), cis.imag.contiguous())
    original = transformer.apply_rotary_enc

    def rotary(xq, xk, freqs_cis, repeat_freqs_k=False):  # the official signature
        return _rotary_real(xq, xk, pairs[id(freqs_cis)], repeat_freqs_k)

    transformer.apply_rotary_enc = rotary
    try:
        yield
    finally:
        transformer.apply_rotary_enc = original
        del trunk._get_pos_embed


def _rotary_real(xq: Any, xk: Any, cos_sin: tuple[Any, Any], repeat_freqs_k: bool) -> Any:
    """``sam2``'s ``apply_rotary_enc`` on (real, imaginary) pairs instead of complex numbers:
    (a + ib)(c + is) = (ac - bs) + i(as + bc)."""
    cos, sin = cos_sin
    q = _rotate(xq, cos, sin)
    if repeat_freqs_k:
        repeat = xk.shape[-2] // xq.shape[-2]
        cos, sin = cos.repeat(repeat, 1), sin.repeat(repeat, 1)
    return q, _rotate(xk, cos, sin)


def _rotate(x: Any, cos: Any, sin: Any) -> Any:
    import torch

    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(3).type_as(x)


def _example_inputs(model: Any) -> dict[str, tuple]:
    """Inputs of the shapes the tracker feeds (2 targets, 3 memory frames, 5 pointers)."""
    import torch

    size = model.image_size
    side = size // 16  # the top-level feature map
    c, m = model.hidden_dim, model.mem_dim
    batch, tokens = 2, 3 * side * side + 5 * (c // m)
    # on the model's device: a CUDA model (the TensorRT path) exports as it is
    randn = functools.partial(torch.randn, device=model.device)
    return {
        "image_encoder": (randn(1, 3, size, size),),
        "memory_attention": (
            randn(side * side, batch, c),
            randn(side * side, batch, c),
            randn(tokens, batch, m),
            randn(tokens, batch, m),
            torch.zeros(5 * (c // m), device=model.device),
        ),
        "memory_encoder": (
            randn(batch, c, side, side),
            torch.rand(batch, 1, size, size, device=model.device),
        ),
        "mask_decoder": (
            randn(batch, c, side, side),
            randn(1, c, side, side),
            randn(batch, 2, c),
            randn(batch, c, side, side),
            randn(batch, c // 8, side * 4, side * 4),
            randn(batch, c // 4, side * 2, side * 2),
        ),
    }


# graph -> (input names, output names, dynamic axes); the runtime modules feed and read them
# in this order (ONNX Runtime and TensorRT alike)
GRAPH_IO: dict[str, GraphIO] = {
    "image_encoder": (["image"], ["fpn0", "fpn1", "fpn2", "pos0", "pos1", "pos2"], {}),
    "memory_attention": (
        ["curr", "curr_pos", "memory", "memory_pos", "obj_ptr_marker"],
        ["features"],
        {"curr": {1: "targets"}, "curr_pos": {1: "targets"},
         "memory": {0: "memory_tokens", 1: "targets"},
         "memory_pos": {0: "memory_tokens", 1: "targets"},
         "obj_ptr_marker": {0: "pointer_tokens"}, "features": {1: "targets"}},
    ),
    "memory_encoder": (
        ["pix_feat", "masks"],
        ["maskmem_features", "maskmem_pos_enc"],
        {"pix_feat": {0: "targets"}, "masks": {0: "targets"},
         "maskmem_features": {0: "targets"}, "maskmem_pos_enc": {0: "targets"}},
    ),
    "mask_decoder": (
        ["image_embeddings", "image_pe", "sparse", "dense", "high_res_0", "high_res_1"],
        ["masks", "iou_pred", "sam_tokens_out", "object_score_logits"],
        {"image_embeddings": {0: "targets"}, "sparse": {0: "targets", 1: "prompt_tokens"},
         "dense": {0: "targets"}, "high_res_0": {0: "targets"}, "high_res_1": {0: "targets"},
         "masks": {0: "targets"}, "iou_pred": {0: "targets"}, "sam_tokens_out": {0: "targets"},
         "object_score_logits": {0: "targets"}},
    ),
}  # fmt: skip


def export_graphs(model: Any, folder: Path) -> Path:
    """Export the four graphs of ``model`` into ``folder`` (written whole or not at all)."""
    wrappers = {
        "image_encoder": _image_encoder_graph,
        "memory_attention": _memory_attention_graph,
        "memory_encoder": _memory_encoder_graph,
        "mask_decoder": _mask_decoder_graph,
    }
    examples = _example_inputs(model)
    with _export_shims(model):
        modules = {name: wrappers[name](model) for name in GRAPHS}
        return export_folder(modules, examples, GRAPH_IO, folder)


# ------------------------------------------------------------------------------ runtime modules
def use_onnxruntime(model: Any, folder: Path, threads: int = 0) -> Any:
    """Swap ``model``'s image encoder, memory attention, memory encoder and (tracking) mask
    decoder for modules that run the graphs in ``folder``; returns ``model``."""
    sessions = {name: OnnxRuntimeGraph(folder / f"{name}.onnx", threads) for name in GRAPHS}
    return swap_graph_modules(model, sessions)


def swap_graph_modules(model: Any, graphs: dict[str, Any]) -> Any:
    """Swap ``model``'s four networks for modules that call ``graphs[name](*inputs)`` (inputs in
    :data:`GRAPH_IO` order, torch tensors) and take its outputs (a list, in that order): the
    official ``track_step`` then runs unchanged around any runtime (ONNX Runtime, TensorRT)."""
    import torch

    nn = _torch_nn()
    torch_decoder = model.sam_mask_decoder

    class ImageEncoder(nn.Module):
        def forward(self, sample):
            out = graphs["image_encoder"](sample)
            fpn, pos = out[:3], out[3:]
            return {"vision_features": fpn[-1], "vision_pos_enc": pos, "backbone_fpn": fpn}

    class MemoryAttention(nn.Module):
        def forward(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens=0):
            # only the marker's length reaches the graph: the number of object-pointer tokens
            marker = torch.zeros(num_obj_ptr_tokens, device=curr[0].device)
            return graphs["memory_attention"](curr[0], curr_pos[0], memory, memory_pos, marker)[0]

    class MemoryEncoder(nn.Module):
        def forward(self, pix_feat, masks, skip_mask_sigmoid=False):
            if not skip_mask_sigmoid:
                masks = masks.sigmoid()
            features, pos = graphs["memory_encoder"](pix_feat, masks)
            return {"vision_features": features, "vision_pos_enc": [pos]}

    class MaskDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prompt_frames = torch_decoder  # mask prompts (single-mask output) stay on torch
            for name in ("conv_s0", "conv_s1"):  # used by forward_image
                setattr(self, name, getattr(torch_decoder, name))

        def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings,
                    dense_prompt_embeddings, multimask_output, repeat_image,
                    high_res_features=None):  # fmt: skip
            if not multimask_output or repeat_image:
                return self.prompt_frames(
                    image_embeddings, image_pe, sparse_prompt_embeddings,
                    dense_prompt_embeddings, multimask_output, repeat_image, high_res_features,
                )  # fmt: skip
            return tuple(
                graphs["mask_decoder"](
                    image_embeddings, image_pe, sparse_prompt_embeddings,
                    dense_prompt_embeddings, *high_res_features,
                )
            )  # fmt: skip

    model.image_encoder = ImageEncoder()
    model.memory_attention = MemoryAttention()
    model.memory_encoder = MemoryEncoder()
    model.sam_mask_decoder = MaskDecoder()
    return model
