"""Online adaptation: fine-tune the network on the annotated frame of a stream (OSVOS-style).

OSVOS (Caelles et al. 2017) and MaskTrack (Perazzi et al. 2017) fine-tune their network on the
first frame of every video before segmenting the rest; the network then knows *this* object and
*this* background. The same works here without any other data: training clips are made from the
annotated frame alone, with the training pipeline's augmentation (one random affine per clip plus
a growing per-frame drift as camera motion, colour jitter, blur, noise) and its previous-mask
corruption, and the loss is the training loss.

Each target of the frame is its own binary problem (the other targets are background to it), as
in training. BatchNorm keeps its running statistics (frozen): a batch made from one frame would
give the layers statistics of that frame only.

The result is a copy of the network; the engine exports it and swaps its backend
(:meth:`vos_ros.engine.predictor.NetworkPredictor.adapt`).
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from vos_ros.engine.config import ADAPT_SCOPES
from vos_ros.model.contract import DEFAULT_PROTOTYPE_SCHEME
from vos_ros.model.data import Sequence
from vos_ros.model.network import ProtoNet
from vos_ros.model.synth_pairs import MIN_FIRST_FRAME_FRACTION
from vos_ros.model.train import clip_forward, clip_loss, make_batch
from vos_ros.model.train_config import TrainConfig


@dataclass(frozen=True)
class AdaptSettings:
    """How the annotated frame is learned.

    ``steps``: optimiser steps (0: no adaptation); ``scope``: ``decoder`` (encoder frozen, so
    memory entries written before the adaptation stay valid) or ``all``; ``lr``: constant AdamW
    learning rate; ``batch`` clips of ``clip_len`` frames cropped to ``crop_w`` x ``crop_h``.
    """

    steps: int = 100
    scope: str = "all"
    lr: float = 1e-4
    batch: int = 4
    clip_len: int = 3
    crop_h: int = 192
    crop_w: int = 320
    seed: int = 0
    threads: int = 0  # torch intra-op threads during adaptation; 0 = leave torch's setting

    def __post_init__(self) -> None:
        if self.scope not in ADAPT_SCOPES:
            raise ValueError(f"adaptation scope must be one of {ADAPT_SCOPES}, got {self.scope!r}")
        if self.crop_h % 32 or self.crop_w % 32:
            raise ValueError(f"crop {self.crop_w}x{self.crop_h} must be a multiple of 32")
        if self.clip_len < 2 or self.batch < 1 or self.steps < 0:
            raise ValueError("adaptation needs clip_len >= 2, batch >= 1 and steps >= 0")


@dataclass
class AdaptReport:
    steps: int
    seconds: float
    first_loss: float
    last_loss: float


class AdaptationStoppedError(RuntimeError):
    """The caller asked a running adaptation to stop (its result is no longer wanted)."""


class TooSmallError(ValueError):
    """No target of the frame is large enough for the training crops."""


def min_target_pixels(settings: AdaptSettings) -> int:
    """Targets below this many pixels are left out of the adaptation: the crops scale a frame by
    0.55-1.1 and keep clips whose target covers MIN_FIRST_FRAME_FRACTION of the crop, so a
    smaller one would be drawn again and again (twice that area passes about half the time)."""
    return int(np.ceil(2 * MIN_FIRST_FRAME_FRACTION * settings.crop_h * settings.crop_w / 1.1**2))


def large_enough(mask: np.ndarray, settings: AdaptSettings) -> bool:
    return int(np.count_nonzero(mask)) >= min_target_pixels(settings)


def _frame_sequences(frame_rgb: np.ndarray, masks: list[np.ndarray], length: int) -> list[Sequence]:
    """One still 'video' per target: the frame repeated (the augmentation adds the motion)."""
    frames = np.repeat(frame_rgb[None], length, axis=0)
    return [
        Sequence(f"target{i}", frames, np.repeat((m > 0).astype(np.uint8)[None], length, axis=0))
        for i, m in enumerate(masks)
    ]


def _freeze_batchnorm(net: torch.nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)


def adapt_network(
    net: ProtoNet,
    frame_rgb: np.ndarray,
    masks: list[np.ndarray],
    settings: AdaptSettings,
    prototype_scheme: str = DEFAULT_PROTOTYPE_SCHEME,
    device: str = "cpu",
    stop: threading.Event | None = None,
) -> tuple[ProtoNet, AdaptReport]:
    """A copy of ``net`` fine-tuned on one annotated frame, on ``device`` (``cpu`` | ``cuda``).

    :param frame_rgb: uint8 ``[H, W, 3]`` RGB at the engine's processing size.
    :param masks: one ``[H, W]`` mask per target (non-zero = target); empty masks are skipped.
    :param stop: checked before every step; when set, :class:`AdaptationStoppedError` is raised.
    :raises ValueError: when no mask has a pixel or every target is too small.
    """
    masks = [m for m in masks if np.count_nonzero(m)]
    if not masks:
        raise ValueError("online adaptation needs at least one non-empty target mask")
    masks = [m for m in masks if large_enough(m, settings)]
    if not masks:
        raise TooSmallError(
            f"every target is smaller than {min_target_pixels(settings)} pixels at the "
            "processing size: too small to learn from crops"
        )
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 [H, W, 3], got {frame_rgb.dtype} {frame_rgb.shape}")
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    start = time.perf_counter()
    adapted = copy.deepcopy(net).to(device=device, dtype=torch.float32).train()
    _freeze_batchnorm(adapted)
    if settings.scope == "decoder":
        adapted.encoder.eval()
        for p in adapted.encoder.parameters():
            p.requires_grad_(False)
    params = [p for p in adapted.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    cfg = TrainConfig(
        data="",
        out="",
        batch=settings.batch,
        clip_len=settings.clip_len,
        crop_h=settings.crop_h,
        crop_w=settings.crop_w,
        max_gap=1,
        paste_prob=0.0,
        own_pred_prob=0.7,
        seed=settings.seed,
    )
    sequences = _frame_sequences(frame_rgb, masks, settings.clip_len)
    torch_device = torch.device(device)
    losses: list[float] = []
    try:
        for step in range(settings.steps):
            if stop is not None and stop.is_set():
                raise AdaptationStoppedError(f"stopped after {step} of {settings.steps} steps")
            batch = make_batch(cfg, sequences, step)
            outputs = clip_forward(adapted, batch, torch_device, prototype_scheme)
            loss = clip_loss(outputs, batch, torch_device)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(previous_threads)
    adapted.eval()
    for p in adapted.parameters():
        p.requires_grad_(False)
    head = float(np.mean(losses[:10])) if losses else float("nan")
    tail = float(np.mean(losses[-10:])) if losses else float("nan")
    report = AdaptReport(settings.steps, time.perf_counter() - start, head, tail)
    return adapted, report
