"""Training loop: short clips, memory grown like the engine, previous-mask guidance.

One step takes a batch of clips of ``clip_len`` frames. Frame 0 is the annotated frame: its
ground truth gives the memory prototypes (with the same function the engine uses, in torch).
Every later frame is predicted from the memory and a previous mask, which is either an imperfect
copy of the ground truth (what the engine's flow-warped previous mask looks like) or the
network's own previous prediction; each predicted frame is then added to the memory, as the
engine does with recent frames. Loss: boundary-weighted binary cross entropy + dice per target.

Checkpoints (``last.pt``: network + optimizer + step) are written every few minutes and at the
end; a run in the same folder resumes from it. Sampling is seeded by (seed, step), so a resumed
run sees the same clips it would have seen without the interruption.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vos_ros.model.augment import backward_flow_sampling, perturb_prev_mask, warp_with_sampling
from vos_ros.model.contract import DEFAULT_PROTOTYPE_SCHEME, check_prototype_scheme
from vos_ros.model.data import Sequence, load_training_set
from vos_ros.model.network import ProtoNet, build_network
from vos_ros.model.synth_pairs import make_training_clip
from vos_ros.model.torch_prototypes import frame_prototypes_torch
from vos_ros.model.train_config import TrainConfig

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CHECKPOINT_NAME = "last.pt"
LOG_NAME = "train.log"


def normalize_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` RGB -> float32 ``[B, 3, H, W]`` normalised with MEAN/STD."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def boundary_weight(mask: np.ndarray, band: int = 3, gain: float = 3.0) -> np.ndarray:
    """``1 + gain`` on a band of ``band`` pixels around the mask boundary, 1 elsewhere."""
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    edge = cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)
    return (1.0 + gain * edge).astype(np.float32)


def _downsample(mask: np.ndarray, factor: int) -> np.ndarray:
    h, w = mask.shape
    return cv2.resize(
        mask.astype(np.float32), (w // factor, h // factor), interpolation=cv2.INTER_AREA
    )


@dataclass
class Batch:
    """A batch of clips, flattened over targets.

    frames: uint8 ``[B, L, H, W, 3]``; gt: float ``[T, L, H, W]`` for the T targets of all clips;
    clip_of: ``[T]`` clip index of each target; weight: ``[T, L, H, W]`` loss weights;
    gt_prev: ``[T, L, H/4, W/4]`` perturbed previous masks (index 0 unused);
    flow_grid: ``[B, L, H/4, W/4, 2]`` ``grid_sample`` grids (align_corners=True) that pull frame
    t-1 onto frame t with the engine's kind of optical flow (index 0 unused).
    """

    frames: torch.Tensor
    gt: torch.Tensor
    clip_of: torch.Tensor
    weight: torch.Tensor
    gt_prev: torch.Tensor
    flow_grid: torch.Tensor
    use_own: np.ndarray  # bool [L]: frame uses the network's own previous prediction


def make_batch(cfg: TrainConfig, sequences: list[Sequence], step: int) -> Batch:
    rng = np.random.default_rng([cfg.seed, step])
    frames, gts, clip_of, weights, prevs, grids = [], [], [], [], [], []
    h4, w4 = cfg.crop_h // 4, cfg.crop_w // 4
    for b in range(cfg.batch):
        clip, targets = make_training_clip(
            rng, sequences, cfg.clip_len, cfg.max_gap, (cfg.crop_h, cfg.crop_w), cfg.paste_prob
        )
        frames.append(clip)
        samplings = [None] + [
            backward_flow_sampling(clip[t], clip[t - 1], (h4, w4)) for t in range(1, cfg.clip_len)
        ]
        grid = np.zeros((cfg.clip_len, h4, w4, 2), np.float32)
        for t in range(1, cfg.clip_len):
            grid[t, ..., 0] = samplings[t][0] * (2.0 / (w4 - 1)) - 1.0
            grid[t, ..., 1] = samplings[t][1] * (2.0 / (h4 - 1)) - 1.0
        grids.append(grid)
        for target in targets:
            clip_of.append(b)
            gts.append(target)
            weights.append(np.stack([boundary_weight(m) for m in target]))
            prev = [np.zeros((h4, w4), np.float32)]
            for t in range(1, cfg.clip_len):
                r = rng.random()
                if r < 0.05:  # target lost: only the memory can find it again
                    soft = np.zeros((h4, w4), np.float32)
                elif r < 0.2:  # the previous frame's mask, badly off and not warped
                    soft = _downsample(perturb_prev_mask(rng, target[t - 1]), 4)
                elif r < 0.7:  # what the engine feeds: a fair prediction, warped by flow
                    strength = float(rng.uniform(0.1, 0.7))
                    fair = _downsample(perturb_prev_mask(rng, target[t - 1], strength), 4)
                    soft = warp_with_sampling(fair, samplings[t])
                else:  # aligned with this frame but with large errors
                    soft = _downsample(perturb_prev_mask(rng, target[t]), 4)
                prev.append(soft)
            prevs.append(np.stack(prev))
    use_own = np.array([t >= 2 and rng.random() < cfg.own_pred_prob for t in range(cfg.clip_len)])
    return Batch(
        frames=torch.from_numpy(np.stack(frames)),
        gt=torch.from_numpy(np.stack(gts).astype(np.float32)),
        clip_of=torch.tensor(clip_of),
        weight=torch.from_numpy(np.stack(weights)),
        gt_prev=torch.from_numpy(np.stack(prevs)),
        flow_grid=torch.from_numpy(np.stack(grids)),
        use_own=use_own,
    )


def _prototypes(
    key: torch.Tensor, probs8: torch.Tensor, scheme: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target prototypes: key ``[T, C, h, w]``, probs8 ``[T, h, w]`` -> two ``[T, P, C]``."""
    pairs = [frame_prototypes_torch(key[i], probs8[i], scheme) for i in range(len(key))]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def clip_forward(
    net: ProtoNet, batch: Batch, device: torch.device, scheme: str = DEFAULT_PROTOTYPE_SCHEME
) -> list[torch.Tensor]:
    """Run the network over the clips like the engine does; returns logits ``[T, 1, H/4, W/4]``
    for frames 1..L-1. ``scheme``: how memory prototypes are computed (the contract's)."""
    length = batch.frames.shape[1]
    images = normalize_images(batch.frames.flatten(0, 1).to(device))
    key, f4, f8 = net.encoder(images)  # [B*L, ...]
    clip_of = batch.clip_of.to(device)
    gt = batch.gt.to(device)

    def frame_index(t: int) -> torch.Tensor:
        return clip_of * length + t

    first = frame_index(0)
    gt8 = F.avg_pool2d(gt[:, 0:1], 8)[:, 0]
    fg, bg = _prototypes(key[first], gt8, scheme)
    mem_fg, mem_bg = [fg], [bg]
    outputs = []
    prev_logits = None
    for t in range(1, length):
        idx = frame_index(t)
        if batch.use_own[t] and prev_logits is not None:
            # The engine warps its last prediction to the new frame with optical flow.
            grid = batch.flow_grid[:, t].to(device)[batch.clip_of.to(device)]
            prev = F.grid_sample(
                torch.sigmoid(prev_logits).detach(), grid, align_corners=True, padding_mode="zeros"
            )
        else:
            prev = batch.gt_prev[:, t : t + 1].to(device)
        logits = net.decoder(
            key[idx], f4[idx], f8[idx], torch.cat(mem_fg, 1), torch.cat(mem_bg, 1), prev
        )
        outputs.append(logits)
        prev_logits = logits
        if t < length - 1:  # the engine adds recent frames to memory with their predicted mask
            prob8 = F.avg_pool2d(torch.sigmoid(logits).detach(), 2)[:, 0]
            fg, bg = _prototypes(key[idx], prob8, scheme)
            mem_fg.append(fg)
            mem_bg.append(bg)
    return outputs


def clip_loss(
    outputs: list[torch.Tensor], batch: Batch, device: torch.device
) -> dict[str, torch.Tensor]:
    """Boundary-weighted BCE + dice over frames 1..L-1 at crop resolution; also a train IoU."""
    gt = batch.gt.to(device)
    weight = batch.weight.to(device)
    bce_terms, dice_terms, ious = [], [], []
    for t, logits in enumerate(outputs, start=1):
        up = F.interpolate(logits, scale_factor=4.0, mode="bilinear", align_corners=False)[:, 0]
        target = gt[:, t]
        bce = F.binary_cross_entropy_with_logits(up, target, weight=weight[:, t], reduction="none")
        bce_terms.append(bce.flatten(1).sum(1) / weight[:, t].flatten(1).sum(1))
        prob = torch.sigmoid(up)
        inter = (prob * target).flatten(1).sum(1)
        dice_terms.append(
            1 - (2 * inter + 1) / (prob.flatten(1).sum(1) + target.flatten(1).sum(1) + 1)
        )
        with torch.no_grad():
            hard = up > 0
            union = (hard | (target > 0.5)).flatten(1).sum(1).float()
            inter_h = (hard & (target > 0.5)).flatten(1).sum(1).float()
            ious.append(
                torch.where(union > 0, inter_h / union.clamp(min=1), torch.ones_like(union))
            )
    bce = torch.stack(bce_terms).mean()
    dice = torch.stack(dice_terms).mean()
    return {"loss": bce + dice, "bce": bce, "dice": dice, "iou": torch.stack(ious).mean()}


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(
    path: Path,
    net: ProtoNet,
    opt: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    elapsed: float,
) -> None:
    """Atomic write of network + optimizer + progress (a crash never leaves a broken file)."""
    state = {
        "arch": net.arch,
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "elapsed_s": elapsed,
        "config": asdict(cfg),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects.

    :raises ValueError: when the file is not a training checkpoint.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "arch" not in state:
        raise ValueError(f"{path} is not a vos_ros training checkpoint (no 'model'/'arch' entries)")
    return state


def train(
    cfg: TrainConfig,
    resume: str = "auto",
    progress: bool = True,
    stop_after_steps: int | None = None,
    max_seconds: float | None = None,
) -> dict[str, float]:
    """Train (or resume) into ``cfg.out``; returns the last logged metrics.

    :param resume: ``"auto"`` resumes when ``out/last.pt`` exists, ``"require"`` fails without
        it, ``"never"`` starts fresh (overwriting the checkpoint).
    :param stop_after_steps: stop (and save) after this many steps of this run; the schedule
        still runs to ``cfg.steps``, so a later run resumes where this one stopped.
    :param max_seconds: same, after this much wall time.
    """
    from tqdm import tqdm

    if cfg.crop_h % 32 or cfg.crop_w % 32:
        raise ValueError(f"crop size {cfg.crop_w}x{cfg.crop_h} must be a multiple of 32")
    check_prototype_scheme(cfg.prototype_scheme)
    if cfg.clip_len < 2:
        raise ValueError("clip_len must be at least 2 (one annotated frame + one predicted)")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT_NAME

    start_step, elapsed = 0, 0.0
    state = None
    if resume != "never" and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
    elif resume == "require":
        raise ValueError(f"--resume given but no checkpoint at {ckpt_path}")
    init = None
    if state is None and cfg.init:
        init = load_checkpoint(Path(cfg.init))  # weights only: fresh optimizer and schedule
    arch = (state or init or {}).get("arch", cfg.arch)
    net = build_network(arch).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_step, elapsed = int(state["step"]), float(state["elapsed_s"])
    elif init:
        net.load_state_dict(init["model"])
    cfg.arch = dict(net.arch)

    sequences = load_training_set(
        cfg.data, cfg.store_w, cfg.store_h, cfg.cache_dir, only=cfg.sequences
    )
    log_file = (out / LOG_NAME).open("a")
    log_file.write(json.dumps({"event": "start", "step": start_step, "config": asdict(cfg)}) + "\n")
    net.train()
    last_save = time.monotonic()
    running: dict[str, float] = {}
    metrics: dict[str, float] = {}
    end_step = cfg.steps
    if stop_after_steps is not None:
        end_step = min(cfg.steps, start_step + stop_after_steps)
    bar = tqdm(
        range(start_step, end_step), initial=start_step, total=cfg.steps, disable=not progress
    )
    t_start = t_prev = time.monotonic()
    for step in bar:
        lr = _lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = make_batch(cfg, sequences, step)
        outputs = clip_forward(net, batch, device, cfg.prototype_scheme)
        losses = clip_loss(outputs, batch, device)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

        now = time.monotonic()
        elapsed += now - t_prev
        t_prev = now
        for name, value in losses.items():
            value = float(value.detach())
            running[name] = 0.9 * running.get(name, value) + 0.1 * value
        if (step + 1) % cfg.log_every == 0 or step + 1 == end_step:
            metrics = {"step": step + 1, "lr": lr, "elapsed_s": round(elapsed, 1)}
            metrics |= {k: round(v, 4) for k, v in running.items()}
            log_file.write(json.dumps(metrics) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{running['loss']:.3f}", iou=f"{running['iou']:.3f}")
        if (step + 1) % cfg.snapshot_every == 0:
            save_checkpoint(out / f"step{step + 1:06d}.pt", net, opt, step + 1, cfg, elapsed)
        out_of_time = max_seconds is not None and now - t_start > max_seconds
        if now - last_save > cfg.save_every_s or step + 1 == end_step or out_of_time:
            save_checkpoint(ckpt_path, net, opt, step + 1, cfg, elapsed)
            last_save = now
        if out_of_time:
            end_step = step + 1
            break
    bar.close()
    event = {"event": "end" if end_step == cfg.steps else "pause", "step": end_step}
    log_file.write(json.dumps(event | {"elapsed_s": round(elapsed, 1)}) + "\n")
    log_file.close()
    return metrics
