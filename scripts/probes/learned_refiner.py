"""Probe (issue 34): a small CNN that corrects the flow fallback, cross-validated.

The fallback's evidence (frame RGB, flow-warped previous mask, blurred prior log-odds, colour
log-likelihood ratio, their sum) in its tracking window goes through five dilated 3x3
convolutions (``--channels`` wide, receptive field 33 pixels at 512x288); the output is added to
the fallback's log-odds (zero-initialised, so an untrained refiner is the fallback).

1. The fallback runs on every training sequence from its first annotation; each tracked frame's
   window and its ground truth are kept (about 1.4 GB in memory).
2. For each of the 5 folds of ``vos-ros crossval``: the refiner is trained on the other folds'
   windows (random 96x96 crops, binary cross entropy, Adam, cosine schedule), then the held-out
   sequences are scored with it in the loop by the project's evaluator.

    python scripts/probes/learned_refiner.py --steps 600 --channels 16 --out /tmp/refiner

A research probe, not product code: it patches private methods of the fallback.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vos_ros.engine import EngineConfig, Prompt, build_engine, fallback
from vos_ros.engine.fallback import FlowPredictor
from vos_ros.evaluation import EvaluationOptions, evaluate
from vos_ros.evaluation.davis_folder import DavisFolder
from vos_ros.model.crossval import fold_split, format_crossval, summarize_folds

CROP = 96
BATCH = 16


class Refiner(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 7
        for dilation in (1, 2, 4, 8, 1):
            layers += [
                nn.Conv2d(width, channels, 3, padding=dilation, dilation=dilation),
                nn.ReLU(),
            ]
            width = channels
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 6:7] * 4.0 + self.head(self.body(x))  # channel 6: the fallback's log-odds / 4


def evidence(self: FlowPredictor, features, warped: np.ndarray, model):
    """The fallback's window and its inputs ``[7, h, w]`` there."""
    s = self.settings
    sigma = s.prior_sigma * self._px
    x0, y0, x1, y1 = fallback._window(warped, math.ceil(4 * sigma + s.ring_px * self._px))
    w = warped[y0:y1, x0:x1]
    prior = np.clip(cv2.GaussianBlur(w, (0, 0), sigma), s.prior_outside, s.prior_inside)
    prior_logit = np.log(prior / (1.0 - prior))
    colour = np.zeros_like(prior_logit)
    if model is not None and model.ready:
        colour = s.colour_weight * model.log_ratio(local=True)[features.bins[y0:y1, x0:x1]]
    x = np.empty((7, *w.shape), np.float32)
    x[:3] = (self._rgb[y0:y1, x0:x1].transpose(2, 0, 1) - 127.5) / 64.0
    x[3] = w
    x[4] = prior_logit / 4.0
    x[5] = np.clip(colour, -8, 8) / 4.0
    x[6] = np.clip(prior_logit + colour, -12, 12) / 4.0
    return (x0, y0, x1, y1), x


def collect(data: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per sequence, the (inputs, ground truth) of every window the fallback tracked."""
    windows: list = []
    track = FlowPredictor._track

    def recording_track(self, features, warped, model, out):
        track(self, features, warped, model, out)
        windows.append(evidence(self, features, warped, model))

    FlowPredictor._track = recording_track
    folder, samples = DavisFolder(data), {}
    for name in folder.sequences():
        engine, samples[name] = build_engine(EngineConfig(model="flow", threads=1)), []
        for frame in folder.clip(name).frames():
            target = (frame.gt.instances > 0).astype(np.uint8)
            windows.clear()
            engine.step(frame.image, Prompt(target) if frame.index == 0 else None)
            small = engine.predictor._rgb.shape[1::-1]
            gt = cv2.resize(target, small, interpolation=cv2.INTER_NEAREST)
            for (x0, y0, x1, y1), x in windows:
                samples[name].append((x.astype(np.float16), gt[y0:y1, x0:x1]))
        print(f"{name}: {len(samples[name])} windows", flush=True)
    FlowPredictor._track = track
    return samples


def crops(samples: list, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for _ in range(BATCH):
        x, gt = samples[rng.integers(len(samples))]
        x, y = x.astype(np.float32), gt[None].astype(np.float32)
        pad = ((0, 0), (0, max(0, CROP - y.shape[1])), (0, max(0, CROP - y.shape[2])))
        x, y = np.pad(x, pad, mode="edge"), np.pad(y, pad, mode="edge")
        i, j = rng.integers(y.shape[1] - CROP + 1), rng.integers(y.shape[2] - CROP + 1)
        x, y = x[:, i : i + CROP, j : j + CROP], y[:, i : i + CROP, j : j + CROP]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(np.ascontiguousarray(ys))


def train(samples: list, steps: int, channels: int, seed: int) -> Refiner:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Refiner(channels)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        x, y = crops(samples, rng)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval()


def install(net: Refiner) -> None:
    def refined_track(self, features, warped, model, out):
        (x0, y0, x1, y1), x = evidence(self, features, warped, model)
        with torch.no_grad():
            logit = net(torch.from_numpy(x)[None])[0, 0].numpy()
        out[y0:y1, x0:x1] = fallback._sigmoid(logit)

    FlowPredictor._track = refined_track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/vos-train"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()
    encode = FlowPredictor.encode

    def keeping_encode(self, small_rgb):  # the windows' RGB, for the refiner's input
        self._rgb = small_rgb
        return encode(self, small_rgb)

    FlowPredictor.encode = keeping_encode
    samples = collect(args.data)
    track = FlowPredictor._track
    rows = []
    for k, held in enumerate(fold_split(sorted(samples), 5, 0)):
        torch.set_num_threads(2)
        rest = [s for name in samples if name not in held for s in samples[name]]
        install(train(rest, args.steps, args.channels, k))
        torch.set_num_threads(1)
        report = args.out / f"fold{k}.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        evaluate(
            EvaluationOptions(
                json_path=report,
                davis=args.data,
                sequences=held,
                model="flow",
                threads=1,
                progress=False,
            )
        )
        FlowPredictor._track = track
        scores = json.loads(report.read_text())["davis"]["global"]
        rows.append({"fold": k, "sequences": held, **scores})
        print(f"fold {k}: J&F {scores['J&F-Mean']:.3f}", flush=True)
    print(format_crossval({"per_fold": rows, "summary": summarize_folds(rows)}))


if __name__ == "__main__":
    main()
