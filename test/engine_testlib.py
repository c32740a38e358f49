"""Test helpers for the engine: a tiny contract model and a scripted synthetic clip.

``ColorNet`` follows :mod:`vos_ros.model.contract` with fixed (untrained) weights: its key is a
random-Fourier-feature embedding of the pixel colour, so cosine similarity between keys is a
Gaussian kernel of colour distance, and its decoder scores each pixel by its best foreground
match minus its best background match plus the previous mask. That is enough to follow distinctly
coloured objects, to find one again after it left the frame, and to exercise every engine path
without a trained model. ``write_model_dir`` exports it like ``vos-ros export`` does.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from vos_ros.model import contract

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ColorEncoder(nn.Module):
    def __init__(self, bandwidth: float = 0.6, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.proj = nn.Conv2d(3, contract.KEY_DIM, 1)
        with torch.no_grad():
            self.proj.weight.copy_(
                torch.randn(contract.KEY_DIM, 3, 1, 1, generator=gen) / bandwidth
            )
            self.proj.bias.copy_(torch.rand(contract.KEY_DIM, generator=gen) * 2 * np.pi)

    def forward(self, image: torch.Tensor):
        x8 = F.avg_pool2d(image, 8)
        feat = torch.cos(self.proj(x8))
        key = feat / torch.clamp(torch.sqrt((feat * feat).sum(dim=1, keepdim=True)), min=1e-6)
        return key, F.avg_pool2d(image, 4), x8


class ColorDecoder(nn.Module):
    def __init__(self, gain: float = 12.0, prev_gain: float = 2.0) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(gain))
        self.prev_gain = nn.Parameter(torch.tensor(prev_gain))

    def forward(self, key, f4, f8, proto_fg, proto_bg, prev_mask):
        h, w = key.shape[2], key.shape[3]
        flat = key.flatten(2)  # [1, C, hw]
        sim_fg = torch.matmul(proto_fg, flat).amax(dim=1, keepdim=True)  # [N, 1, hw]
        sim_bg = torch.matmul(proto_bg, flat).amax(dim=1, keepdim=True)
        # f8/f4 take no part in the score, but the graph must keep every contract input.
        score = (sim_fg - sim_bg).reshape(sim_fg.shape[0], 1, h, w) + 0.0 * f8[:, :1]
        up = F.interpolate(score, scale_factor=2.0, mode="bilinear", align_corners=False)
        up = up + 0.0 * f4[:, :1]
        return self.gain * up + self.prev_gain * (2.0 * prev_mask - 1.0)


class ColorNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = ColorEncoder()
        self.decoder = ColorDecoder()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_model_dir(folder: Path, net: nn.Module | None = None, short_side: int = 160) -> Path:
    """Export ``net`` (default :class:`ColorNet`) to ``folder`` with a valid ``model.yaml``."""
    net = (net or ColorNet()).eval()
    folder.mkdir(parents=True, exist_ok=True)
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        key, f4, f8 = net.encoder(image)
    n, p = 2, 2 * contract.PROTOS_PER_FRAME
    protos = F.normalize(torch.randn(n, p, contract.KEY_DIM), dim=-1)
    prev = torch.rand(n, 1, 16, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.encoder,
            (image,),
            str(folder / "encoder.onnx"),
            input_names=["image"],
            output_names=["key", "f4", "f8"],
            opset_version=17,
            dynamic_axes={
                "image": {2: "H", 3: "W"},
                "key": {2: "H8", 3: "W8"},
                "f4": {2: "H4", 3: "W4"},
                "f8": {2: "H8", 3: "W8"},
            },
            dynamo=False,
        )
        torch.onnx.export(
            net.decoder,
            (key, f4, f8, protos, protos, prev),
            str(folder / "decoder.onnx"),
            input_names=list(contract.DECODER_INPUTS),
            output_names=["logits"],
            opset_version=17,
            dynamic_axes={
                "key": {2: "H8", 3: "W8"},
                "f4": {2: "H4", 3: "W4"},
                "f8": {2: "H8", 3: "W8"},
                "proto_fg": {0: "N", 1: "P"},
                "proto_bg": {0: "N", 1: "P"},
                "prev_mask": {0: "N", 2: "H4", 3: "W4"},
                "logits": {0: "N", 2: "H4", 3: "W4"},
            },
            dynamo=False,
        )
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    files = ("encoder.onnx", "decoder.onnx", "weights.pt")
    manifest = {
        "format_version": 1,
        "name": folder.name,
        "version": "0.0.1",
        "files": {
            f: {"sha256": _sha256(folder / f), "bytes": (folder / f).stat().st_size} for f in files
        },
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
        "torch": {"weights": "weights.pt"},
        "input": {"short_side": short_side, "color": "RGB", "mean": list(MEAN), "std": list(STD)},
        "contract": {"key_dim": contract.KEY_DIM, "c4": 3, "c8": 3, "protos_per_frame": 5},
        "memory": {"every": 3, "size": 3},
        "training": {"data": "none: fixed colour-matching weights for tests"},
        "metrics": {},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


# ----------------------------------------------------------------------------- synthetic clips
@dataclass
class Sprite:
    """A coloured square: ``path(t)`` gives its top-left (x, y) at frame t, or None (absent)."""

    target_id: int
    color: tuple[int, int, int]
    size: int
    path: object  # Callable[[int], tuple[float, float] | None]


def background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth low-contrast grey-green texture (float32 RGB)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(70, 110, size=(max(2, h // 16), max(2, w // 16), 1)).astype(np.float32)
    import cv2

    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    return np.concatenate([smooth * 0.9, smooth * 1.05, smooth * 0.85], axis=2)


def _texture(seed: int, size: int) -> np.ndarray:
    """Smooth blobs in [0.6, 1.2] (size, size): structure at every scale of the flow pyramid."""
    import cv2

    coarse = np.random.default_rng(seed).uniform(0.6, 1.2, (5, 5)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def render(
    sprites: list[Sprite], t: int, h: int, w: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: RGB uint8 (h, w, 3) and uint16 label image (later sprites drawn on top)."""
    rng = np.random.default_rng(1000 + t + seed)
    frame = background(h, w, seed).copy()
    labels = np.zeros((h, w), np.uint16)
    for s in sprites:
        pos = s.path(t)
        if pos is None:
            continue
        x0, y0 = round(pos[0]), round(pos[1])
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + s.size), min(h, y0 + s.size)
        if xa >= xb or ya >= yb:
            continue
        # a texture that moves with the sprite, so optical flow has something to follow
        patch = np.asarray(s.color, np.float32) * _texture(s.target_id, s.size)[..., None]
        frame[ya:yb, xa:xb] = patch[ya - y0 : yb - y0, xa - x0 : xb - x0]
        labels[ya:yb, xa:xb] = s.target_id
    frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8), labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
