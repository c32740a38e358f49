"""Probe (issue 34): does one more cue lift the flow fallback on the training folds?

Each cue is added to the fallback's per-pixel log-odds inside its tracking window, by patching
``FlowPredictor`` in this process only, and scored with the same 5-fold split as
``vos-ros crossval --model flow`` (the evaluator on every held-out fold):

- ``growth``: the mask may grow by at most ``--growth`` x the warped mask's area per frame (the
  logit is shifted until the area fits);
- ``motion``: the backward flow of each pixel against a robust 2-D Gaussian of the flow inside the
  warped mask and one of the flow around it; log-likelihood ratio clipped to [-cap, cap] (or
  [-cap, 0] with ``--suppress-only``), used only where the two motions differ by ``--separation``
  spreads;
- ``texture``: a Gaussian of local texture features (gradient energy at two scales, local
  contrast at two scales; ``--context-colour`` adds the Lab colour blurred at sigma 4) inside the
  first annotation against one outside it; log-likelihood ratio clipped to [-cap, cap].

    python scripts/probes/fallback_cues.py --cue motion --weight 0.5 --cap 2 --out /tmp/probe

A research probe, not product code: it patches private methods of the fallback.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

from vos_ros.engine import fallback
from vos_ros.engine.fallback import FlowPredictor
from vos_ros.engine.flow import FlowWarper
from vos_ros.evaluation import EvaluationOptions, evaluate
from vos_ros.model.crossval import fold_split, format_crossval, summarize_folds
from vos_ros.model.data import list_sequences

_last_flow: dict[str, np.ndarray] = {}


def _window(self: FlowPredictor, warped: np.ndarray) -> tuple[int, int, int, int]:
    s = self.settings
    sigma = s.prior_sigma * self._px
    return fallback._window(warped, math.ceil(4 * sigma + s.ring_px * self._px))


def _add_logit(out: np.ndarray, box: tuple[int, int, int, int], extra: np.ndarray) -> None:
    x0, y0, x1, y1 = box
    p = np.clip(out[y0:y1, x0:x1], 1e-6, 1 - 1e-6)
    out[y0:y1, x0:x1] = fallback._sigmoid((np.log(p / (1 - p)) + extra).astype(np.float32))


def _cap_growth(args: argparse.Namespace, warped: np.ndarray, out: np.ndarray) -> None:
    cap = (1 + args.growth) * float((warped > 0.5).sum())
    inside = out[out > 0.5]
    if cap <= 0 or inside.size <= cap:
        return
    threshold = float(np.partition(inside, int(inside.size - cap))[int(inside.size - cap)])
    p = np.clip(out, 1e-6, 1 - 1e-6)
    shift = math.log(threshold / (1 - threshold))
    out[...] = fallback._sigmoid((np.log(p / (1 - p)) - shift).astype(np.float32))


def _robust_gaussian(values: np.ndarray, min_spread: float) -> tuple[np.ndarray, float]:
    centre = np.median(values, axis=0)
    spread = 1.4826 * float(np.median(np.linalg.norm(values - centre, axis=1)))
    return centre, max(spread, min_spread)


def _affine_fit(design: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``[3, 2]`` least-squares affine map from ``(x, y, 1)`` to the flow, refit once on the
    better half of the points (robust to the other side's pixels near the edge)."""
    params = np.linalg.lstsq(design, flow, rcond=None)[0]
    error = np.linalg.norm(flow - design @ params, axis=1)
    keep = error <= np.median(error)
    return np.linalg.lstsq(design[keep], flow[keep], rcond=None)[0]


def _residual_spread(residual: np.ndarray, min_spread: float) -> float:
    return max(1.4826 * float(np.median(np.linalg.norm(residual, axis=1))), min_spread)


def _motion(args: argparse.Namespace, self: FlowPredictor, warped, out) -> None:
    flow = _last_flow.get("flow")
    if flow is None or flow.shape[:2] != warped.shape:
        return
    box = _window(self, warped)
    x0, y0, x1, y1 = box
    f, w = flow[y0:y1, x0:x1], warped[y0:y1, x0:x1]
    inside, around = f[w > 0.9], f[w < 0.1]
    if len(inside) < 20 or len(around) < 20:
        return
    if args.affine:  # each side's motion as an affine field of the position
        ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]].astype(np.float32)
        design = np.stack([xs, ys, np.ones_like(xs)], -1)
        residual_in = f - design @ _affine_fit(design[w > 0.9], inside)
        residual_out = f - design @ _affine_fit(design[w < 0.1], around)
        sf = _residual_spread(residual_in[w > 0.9], args.min_spread)
        sb = _residual_spread(residual_out[w < 0.1], args.min_spread)
        df, db = (residual_in**2).sum(-1), (residual_out**2).sum(-1)
    else:
        mf, sf = _robust_gaussian(inside, args.min_spread)
        mb, sb = _robust_gaussian(around, args.min_spread)
        if np.linalg.norm(mf - mb) < args.separation * max(sf, sb):
            return
        df, db = ((f - mf) ** 2).sum(-1), ((f - mb) ** 2).sum(-1)
    llr = -df / (2 * sf * sf) + db / (2 * sb * sb) + 2 * math.log(sb / sf)
    np.clip(llr, -args.cap, 0.0 if args.suppress_only else args.cap, out=llr)
    if args.outside_only:  # only where the mask would grow beyond the warped one
        llr *= 1.0 - w
    weight = args.weight
    if args.self_check > 0:  # how well the cue tells the warped mask from its surroundings
        inner, outer = llr[w > 0.9], llr[w < 0.1]
        accuracy = 0.5 * (float((inner > 0).mean()) + float((outer < 0).mean()))
        weight *= min(max((accuracy - args.self_check) / (1 - args.self_check), 0.0), 1.0)
    _add_logit(out, box, weight * llr)


def texture_features(rgb: np.ndarray, context_colour: bool) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    lum = lab[..., 0]
    features = []
    for pre, post in ((0, 2), (2, 4)):  # gradient energy, fine and coarse
        src = cv2.GaussianBlur(lum, (0, 0), pre) if pre else lum
        gx, gy = cv2.Sobel(src, cv2.CV_32F, 1, 0), cv2.Sobel(src, cv2.CV_32F, 0, 1)
        features.append(cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), post))
    for sigma in (3, 6):  # local contrast
        mean = cv2.GaussianBlur(lum, (0, 0), sigma)
        features.append(
            np.sqrt(np.maximum(cv2.GaussianBlur(lum * lum, (0, 0), sigma) - mean**2, 0))
        )
    if context_colour:
        features += [cv2.GaussianBlur(lab[..., c], (0, 0), 4) for c in range(3)]
    return np.stack(features, -1)


def _gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.cov(x, rowvar=False) + np.eye(x.shape[1]) * 1e-4


def _log_density(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = x - mean
    return (
        -0.5 * np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)
        - 0.5 * np.linalg.slogdet(cov)[1]
    )


def install(args: argparse.Namespace) -> None:
    track, encode, memorize = FlowPredictor._track, FlowPredictor.encode, FlowPredictor.memorize
    flow_between = FlowWarper.flow_between

    def patched_flow_between(self, gray, reference):
        map_x, map_y = flow_between(self, gray, reference)
        _last_flow["flow"] = np.stack([map_x - self._grid_x, map_y - self._grid_y], -1)
        return map_x, map_y

    def patched_encode(self, small_rgb):
        features = encode(self, small_rgb)
        if args.cue == "texture":
            features.texture = texture_features(small_rgb, args.context_colour)
        return features

    def patched_memorize(self, features, target_id, prob, mode):
        memorize(self, features, target_id, prob, mode)
        fg = prob > 0.5
        if args.cue != "texture" or mode == "recent" or min(fg.sum(), (~fg).sum()) < 20:
            return
        t = features.texture
        self.__dict__.setdefault("_texture", {})[target_id] = (_gaussian(t[fg]), _gaussian(t[~fg]))

    def patched_track(self, features, warped, model, out):
        track(self, features, warped, model, out)
        if args.cue == "growth":
            _cap_growth(args, warped, out)
        elif args.cue == "motion":
            _motion(args, self, warped, out)
        elif getattr(self, "_texture", None):
            (mf, cf), (mb, cb) = next(iter(self._texture.values()))  # DAVIS-2016: one target
            box = _window(self, warped)
            x = features.texture[box[1] : box[3], box[0] : box[2]]
            llr = np.clip(_log_density(x, mf, cf) - _log_density(x, mb, cb), -args.cap, args.cap)
            _add_logit(out, box, args.weight * llr)

    FlowWarper.flow_between = patched_flow_between
    FlowPredictor.encode = patched_encode
    FlowPredictor.memorize = patched_memorize
    FlowPredictor._track = patched_track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cue", choices=("none", "growth", "motion", "texture"), required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/vos-train"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--growth", type=float, default=0.1)
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--cap", type=float, default=2.0)
    parser.add_argument("--min-spread", type=float, default=0.5)
    parser.add_argument("--separation", type=float, default=0.0)
    parser.add_argument("--suppress-only", action="store_true")
    parser.add_argument("--affine", action="store_true")
    parser.add_argument("--outside-only", action="store_true")
    parser.add_argument("--self-check", type=float, default=0.0)
    parser.add_argument("--context-colour", action="store_true")
    args = parser.parse_args()
    if args.cue != "none":
        install(args)
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
            )
        )
        scores = json.loads(report.read_text())["davis"]["global"]
        rows.append({"fold": k, "sequences": held, **scores})
    print(format_crossval({"per_fold": rows, "summary": summarize_folds(rows)}))


if __name__ == "__main__":
    main()
