"""``vos-ros crossval``: k-fold cross-validation over the training sequences (resumable).

    # the network: per fold, train on the other folds, export, score the held-out sequences
    vos-ros crossval --data ../shared/data/vos-train --out runs/cv --folds 5 --steps 5000
    # the training-free fallback on the same folds (nothing to train)
    vos-ros crossval --data ../shared/data/vos-train --out runs/cv-flow --folds 5 --model flow

Training options are those of ``vos-ros train`` that shape a run (``--steps``, ``--batch``, ...);
``--engine-set NAME=VALUE`` sets engine settings for scoring, as in ``vos-ros evaluate``; the
fallback's own parameters are ``fallback.NAME`` (``vos_ros.engine.fallback.FallbackSettings``):

    vos-ros crossval --data ../shared/data/vos-train --out runs/cv-cap2 --folds 5 --model flow \
        --engine-set fallback.motion_cap=2

Folds are independent: train them side by side on separate cores with ``--only-folds``, then run
the command once more without it for the summary; score trained fold networks again with other
engine settings with ``--models-from``:

    vos-ros crossval ... --out runs/cv --only-folds 0,1 &  vos-ros crossval ... --out runs/cv \
        --only-folds 2,3 & wait; vos-ros crossval ... --out runs/cv
    vos-ros crossval ... --out runs/cv-other --models-from runs/cv --engine-set NAME=VALUE
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

from vos_ros.model.train_config import TrainConfig

# TrainConfig fields a fold's run takes from the command line
TRAIN_OPTIONS = ("steps", "batch", "clip_len", "lr", "warmup", "own_pred_prob", "paste_prob",
                 "prototype_scheme", "device", "threads", "init")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimpleNamespace(**{f.name: f.default for f in fields(TrainConfig)})
    parser.add_argument("--data", required=True, type=Path, help="DAVIS-layout training folder")
    parser.add_argument("--out", required=True, type=Path, help="cross-validation folder")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    parser.add_argument(
        "--model", choices=("network", "flow"), default="network", help="what to score (network)"
    )
    parser.add_argument(
        "--engine-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="engine setting for scoring (repeatable)",
    )
    parser.add_argument(
        "--eval-threads", type=int, default=1, help="engine threads while scoring (1)"
    )
    parser.add_argument(
        "--only-folds",
        type=_fold_list,
        default=None,
        metavar="K[,K...]",
        help="train and score only these folds (summary once every fold has a report)",
    )
    parser.add_argument(
        "--models-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="score the fold networks of this cross-validation folder (same split)",
    )
    train = parser.add_argument_group("training (model=network)")
    for name in TRAIN_OPTIONS:
        default = getattr(defaults, name)
        kind = type(default) if default is not None else str
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    train.add_argument(
        "--crop",
        nargs=2,
        type=int,
        default=(defaults.crop_w, defaults.crop_h),
        metavar=("W", "H"),
        help="training crop size, multiples of 32",
    )


def _fold_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated fold numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from vos_ros.evaluation.session import EvaluationInputError, parse_engine_settings
    from vos_ros.model.crossval import format_crossval, run_crossval

    train = {name: getattr(args, name) for name in TRAIN_OPTIONS}
    train["crop_w"], train["crop_h"] = args.crop
    try:
        result = run_crossval(
            args.data,
            args.out,
            folds=args.folds,
            model=args.model,
            seed=args.seed,
            train=train,
            engine_settings=parse_engine_settings(args.engine_set),
            threads=args.eval_threads,
            only_folds=args.only_folds,
            models_from=args.models_from,
        )
    except (EvaluationInputError, ValueError) as exc:
        print(f"vos-ros crossval: error: {exc}", file=sys.stderr)
        return 2
    if result is None:
        return 0
    print(format_crossval(result))
    print(f"wrote {args.out / 'crossval.json'}")
    return 0
