"""ProtoNet: a compact prototype-matching segmentation network that follows the model contract.

The network has two parts, exported as two ONNX graphs (see :mod:`vos_ros.model.contract`):

* :class:`Encoder` runs once per frame: a from-scratch depthwise-separable backbone down to 1/32
  with an FPN-style path back to 1/8. It returns the L2-normalised matching ``key`` (1/8), the
  1/4 skip features ``f4`` and the 1/8 features ``f8``.
* :class:`Decoder` runs once per frame for all N targets together (batch axis = target). Each
  target is a binary problem (instance isolation): the current ``key`` is compared with the
  target's foreground and background prototypes (cosine similarity, max and mean over the P
  prototypes), the previous mask gives MaskTrack-style guidance at 1/8 and 1/4, and a small
  U-Net-style decoder with the ``f4`` skip turns this into one logit map per target at 1/4.

Only TensorRT-friendly operators are used (Conv, Relu, Add, Mul, Div, Sqrt, Concat, Resize,
ReduceMax/ReduceMean/ReduceSum, MatMul, AveragePool, Reshape) and ``forward`` has no
data-dependent Python control flow, so ONNX graphs with dynamic H, W, N and P are exact.

Features shared by all targets (``f8``, ``f4``) are projected once with batch 1 and added to the
per-target branch by broadcasting: this is the same as a convolution over their concatenation,
but the shared part is not recomputed N times.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vos_ros.model.contract import KEY_DIM

# Architecture hyper-parameters; ``build_network`` accepts overrides of any of these keys.
DEFAULT_ARCH: dict[str, Any] = {
    "name": "protonet-s",
    "stem": 16,  # channels at 1/2
    "c4": 24,  # backbone channels at 1/4
    "c8": 48,  # backbone channels at 1/8
    "c16": 96,  # backbone channels at 1/16
    "c32": 160,  # backbone channels at 1/32
    "blocks": [1, 2, 3, 2],  # extra stride-1 blocks at 1/4, 1/8, 1/16, 1/32
    "fpn": 64,  # FPN width = f8 channels (C8)
    "skip": 32,  # f4 channels (C4)
    "dec8": 40,  # decoder width at 1/8
    "dec4": 16,  # decoder width at 1/4
}


def _conv_bn_relu(
    cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (optionally strided) + pointwise 1x1; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = _conv_bn_relu(cin, cin, 3, stride, groups=cin)
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(y + x) if self.residual else F.relu(y)


def _stage(cin: int, cout: int, extra_blocks: int) -> nn.Sequential:
    layers = [SeparableBlock(cin, cout, stride=2)]
    layers += [SeparableBlock(cout, cout) for _ in range(extra_blocks)]
    return nn.Sequential(*layers)


def _up2(x: torch.Tensor) -> torch.Tensor:
    # Bilinear x2 (ONNX Resize, linear, half-pixel): exact for the multiple-of-32 input sizes.
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def l2_normalize(x: torch.Tensor, dim: int = 1, eps: float = 1e-6) -> torch.Tensor:
    """``x / max(||x||, eps)`` written with plain Mul/ReduceSum/Sqrt/Max/Div ops."""
    norm = torch.sqrt((x * x).sum(dim=dim, keepdim=True))
    return x / torch.clamp(norm, min=eps)


class Encoder(nn.Module):
    """image ``[B, 3, H, W]`` -> (key ``[B, KEY_DIM, H/8, W/8]``, f4 ``[B, C4, H/4, W/4]``,
    f8 ``[B, C8, H/8, W/8]``); H and W multiples of 32."""

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        b = arch["blocks"]
        self.stem = _conv_bn_relu(3, arch["stem"], 3, stride=2)
        self.s4 = _stage(arch["stem"], arch["c4"], b[0])
        self.s8 = _stage(arch["c4"], arch["c8"], b[1])
        self.s16 = _stage(arch["c8"], arch["c16"], b[2])
        self.s32 = _stage(arch["c16"], arch["c32"], b[3])
        fpn = arch["fpn"]
        self.lat32 = nn.Conv2d(arch["c32"], fpn, 1)
        self.lat16 = nn.Conv2d(arch["c16"], fpn, 1)
        self.lat8 = nn.Conv2d(arch["c8"], fpn, 1)
        self.smooth8 = SeparableBlock(fpn, fpn)
        self.key_head = nn.Conv2d(fpn, KEY_DIM, 1)
        self.skip4 = _conv_bn_relu(arch["c4"], arch["skip"], 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x4 = self.s4(self.stem(image))
        x8 = self.s8(x4)
        x16 = self.s16(x8)
        x32 = self.s32(x16)
        p16 = self.lat16(x16) + _up2(self.lat32(x32))
        p8 = self.lat8(x8) + _up2(p16)
        f8 = self.smooth8(F.relu(p8))
        key = l2_normalize(self.key_head(f8))
        return key, self.skip4(x4), f8


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip; ``dilation`` widens the context at 1/8."""

    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


def matching_maps(
    key: torch.Tensor, proto_fg: torch.Tensor, proto_bg: torch.Tensor
) -> torch.Tensor:
    """Cosine-similarity maps of every pixel against each target's prototypes.

    :param key: ``[1 or N, C, h, w]`` L2-normalised keys.
    :param proto_fg: ``[N, P, C]`` L2-normalised foreground prototypes (same for ``proto_bg``).
    :returns: ``[N, 4, h, w]``: max and mean similarity to fg, then max and mean to bg.
    """
    h, w = key.shape[2], key.shape[3]
    flat = key.flatten(2)  # [1|N, C, hw]
    sim_fg = torch.matmul(proto_fg, flat)  # [N, P, hw]
    sim_bg = torch.matmul(proto_bg, flat)
    maps = torch.cat(
        [
            sim_fg.amax(dim=1, keepdim=True),
            sim_fg.mean(dim=1, keepdim=True),
            sim_bg.amax(dim=1, keepdim=True),
            sim_bg.mean(dim=1, keepdim=True),
        ],
        dim=1,
    )  # [N, 4, hw]
    return maps.reshape(maps.shape[0], 4, h, w)


class Decoder(nn.Module):
    """(key, f4, f8, proto_fg, proto_bg, prev_mask) -> logits ``[N, 1, H/4, W/4]``.

    key/f4/f8 have batch 1 (shared by all targets, broadcast) or batch N (one per target, used in
    training where every target comes from a different clip).
    """

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        d8, d4 = arch["dec8"], arch["dec4"]
        self.f8_proj = nn.Conv2d(arch["fpn"], d8, 1)
        self.guide8 = nn.Conv2d(5, d8, 3, padding=1)  # 4 matching maps + prev mask at 1/8
        self.refine8 = nn.Sequential(ResidualBlock(d8, dilation=2), ResidualBlock(d8, dilation=1))
        self.up_proj = nn.Conv2d(d8, d4, 1)
        self.f4_proj = nn.Conv2d(arch["skip"], d4, 1)
        self.guide4 = nn.Conv2d(1, d4, 3, padding=1)  # prev mask at 1/4
        self.refine4 = nn.Sequential(
            nn.Conv2d(d4, d4, 3, padding=1), nn.ReLU(inplace=True), ResidualBlock(d4)
        )
        self.head = nn.Conv2d(d4, 1, 3, padding=1)
        # Learned weight of the previous mask added straight to the logits: a strong start
        # (copying the previous mask) that the rest of the decoder learns to correct.
        self.prev_gain = nn.Parameter(torch.tensor(2.0))

    def forward(
        self,
        key: torch.Tensor,
        f4: torch.Tensor,
        f8: torch.Tensor,
        proto_fg: torch.Tensor,
        proto_bg: torch.Tensor,
        prev_mask: torch.Tensor,
    ) -> torch.Tensor:
        maps = matching_maps(key, proto_fg, proto_bg)  # [N, 4, h, w]
        prev8 = F.avg_pool2d(prev_mask, 2)  # [N, 1, h, w]
        x8 = F.relu(self.f8_proj(f8) + self.guide8(torch.cat([maps, prev8], dim=1)))
        x8 = self.refine8(x8)
        x4 = self.up_proj(_up2(x8)) + self.f4_proj(f4) + self.guide4(prev_mask)
        x4 = self.refine4(F.relu(x4))
        return self.head(x4) + self.prev_gain * (2.0 * prev_mask - 1.0)


class ProtoNet(nn.Module):
    """Encoder + decoder; ``arch`` is kept so checkpoints can rebuild the same network."""

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        self.arch = dict(arch)
        self.encoder = Encoder(self.arch)
        self.decoder = Decoder(self.arch)


def build_network(arch: dict[str, Any] | None = None) -> ProtoNet:
    """Build a :class:`ProtoNet` from ``DEFAULT_ARCH`` updated with ``arch``.

    :raises ValueError: for an unknown architecture key.
    """
    merged = dict(DEFAULT_ARCH)
    for name, value in (arch or {}).items():
        if name not in DEFAULT_ARCH:
            raise ValueError(f"unknown architecture key {name!r}; known: {sorted(DEFAULT_ARCH)}")
        merged[name] = value
    return ProtoNet(merged)
