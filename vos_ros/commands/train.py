"""``vos-ros train``: train the segmentation network on a DAVIS-layout folder (resumable)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from types import SimpleNamespace

from vos_ros.model.train_config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # field defaults without building a config (that would import torch for the arch default)
    defaults = SimpleNamespace(**{f.name: f.default for f in fields(TrainConfig)})
    parser.add_argument(
        "--data", required=True, help="DAVIS-layout training folder (never the validation set)"
    )
    parser.add_argument(
        "--out", required=True, help="run folder: last.pt, stepNNNNNN.pt, train.log"
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", action="store_true", help="require a checkpoint in --out to resume from"
    )
    resume.add_argument(
        "--fresh", action="store_true", help="ignore an existing checkpoint and start over"
    )
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help="total optimizer steps (schedule length)"
    )
    parser.add_argument("--batch", type=int, default=defaults.batch, help="clips per step")
    parser.add_argument(
        "--clip-len",
        type=int,
        default=defaults.clip_len,
        help="frames per clip (first = annotated)",
    )
    parser.add_argument(
        "--crop",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=(defaults.crop_w, defaults.crop_h),
        help="training crop size, multiples of 32",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--device", default=defaults.device, help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--threads", type=int, default=defaults.threads, help="CPU threads for torch"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--save-every",
        type=float,
        default=defaults.save_every_s,
        help="seconds between checkpoints",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=defaults.snapshot_every,
        help="keep a numbered checkpoint every N steps",
    )
    parser.add_argument(
        "--cache-dir", default=defaults.cache_dir, help="where the resized training set is cached"
    )
    parser.add_argument(
        "--own-pred-prob",
        type=float,
        default=defaults.own_pred_prob,
        help="frames >= 2: use the network's own (flow-warped) previous prediction this often",
    )
    parser.add_argument(
        "--prototype-scheme",
        choices=("local-bg", "frame-grid"),
        default=defaults.prototype_scheme,
        help="how memory prototypes are computed (vos_ros.model.contract); written to the manifest",
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="CHECKPOINT",
        help="start from these weights (a checkpoint or a model's weights.pt) with a fresh "
        "optimizer and schedule; ignored when --out already holds a checkpoint to resume",
    )
    parser.add_argument(
        "--warmup", type=int, default=defaults.warmup, help="linear learning-rate warm-up steps"
    )
    parser.add_argument(
        "--paste-prob",
        type=float,
        default=defaults.paste_prob,
        help="share of clips with a second object pasted in from another sequence",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop and save after this much wall time (resume later with the same command)",
    )
    parser.add_argument(
        "--sequences",
        type=lambda text: [name for name in text.split(",") if name],
        default=None,
        help="train on these sequences of --data only (comma-separated; default: all)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (for log files)"
    )


def run(args: argparse.Namespace) -> int:
    from vos_ros.model.train import train

    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        steps=args.steps,
        batch=args.batch,
        clip_len=args.clip_len,
        own_pred_prob=args.own_pred_prob,
        crop_w=args.crop[0],
        crop_h=args.crop[1],
        lr=args.lr,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        save_every_s=args.save_every,
        snapshot_every=args.snapshot_every,
        cache_dir=args.cache_dir,
        prototype_scheme=args.prototype_scheme,
        init=args.init,
        warmup=args.warmup,
        paste_prob=args.paste_prob,
        sequences=args.sequences,
    )
    mode = "require" if args.resume else "never" if args.fresh else "auto"
    max_seconds = None if args.max_minutes is None else args.max_minutes * 60.0
    metrics = train(cfg, resume=mode, progress=not args.no_progress, max_seconds=max_seconds)
    print(f"finished: {metrics}")
    return 0
