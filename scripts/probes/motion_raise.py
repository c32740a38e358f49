"""Probe (issue 34): variants of the fallback's motion evidence raising the odds, on the 5 folds.

The shipped fallback clips the motion log-ratio to ``[-motion_cap, motion_cap]`` and lets it
raise a pixel's odds only where its colour log-ratio is above ``motion_raise_min_colour``; those
two are ``--engine-set fallback.NAME=VALUE`` settings of ``vos-ros crossval``. This probe scores
what the settings cannot express, by wrapping ``fallback.motion_log_ratio`` in this process:

- ``--raise R``: the upper bound of the ratio apart from its lower one (``-motion_cap``);
- ``--separation K``: no raising for a target whose two motions (inside and around the warped
  mask) are closer than K times the larger spread.

    python scripts/probes/motion_raise.py --raise 2 --min-colour 1 --out /tmp/probe

A research probe, not product code: it patches the fallback's module function.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vos_ros.engine import fallback
from vos_ros.evaluation import EvaluationOptions, evaluate
from vos_ros.model.crossval import fold_split, format_crossval, summarize_folds
from vos_ros.model.data import list_sequences

_shipped = fallback.motion_log_ratio


def install(upper: float, separation: float) -> None:
    def motion_log_ratio(
        flow: np.ndarray, warped: np.ndarray, min_spread: float, cap: float
    ) -> np.ndarray | None:
        ratio = _shipped(flow, warped, min_spread, max(cap, upper))
        if ratio is None:
            return None
        np.clip(ratio, -cap, upper, out=ratio)
        if separation > 0:
            sample, sampled_mask = flow[:, ::2, ::2], warped[::2, ::2]
            sides = sample[:, sampled_mask > 0.9], sample[:, sampled_mask < 0.1]
            (mt, st), (ma, sa) = (fallback._robust_gaussian(v, min_spread) for v in sides)
            if np.linalg.norm(mt - ma) < separation * max(st, sa):
                np.minimum(ratio, 0.0, out=ratio)
        return ratio

    fallback.motion_log_ratio = motion_log_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/vos-train"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--raise", dest="upper", type=float, default=3.0)
    parser.add_argument("--min-colour", type=float, default=1.0)
    parser.add_argument("--separation", type=float, default=0.0)
    args = parser.parse_args()
    install(args.upper, args.separation)
    rows = []
    for k, held in enumerate(fold_split(list_sequences(args.data), 5, 0)):
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
                engine_settings={"fallback": (("motion_raise_min_colour", args.min_colour),)},
            )
        )
        scores = json.loads(report.read_text())["davis"]["global"]
        rows.append({"fold": k, "sequences": held, **scores})
    print(format_crossval({"per_fold": rows, "summary": summarize_folds(rows)}))


if __name__ == "__main__":
    main()
