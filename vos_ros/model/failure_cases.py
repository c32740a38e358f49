"""Pictures of a model's worst frames on a DAVIS folder, for the model card.

    python -m vos_ros.model.failure_cases --davis DIR --model models/protonet-s \
        --report eval.json --out models/protonet-s/img --count 4

Reads the per-frame J of an evaluation report (``vos-ros evaluate --json``), reruns the engine on
the sequences of the worst frames and saves, for each, the frame with the prediction (left) and
with the ground truth (right), half size, as PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from vos_ros.evaluation.davis_folder import read_label_png, read_rgb

VOID = 255  # DAVIS "ignore" label


def worst_frames(report: dict, count: int, skip_first: int = 5) -> list[tuple[str, int, float]]:
    """``(sequence, frame index, J)`` of the ``count`` worst frames, one per sequence, skipping the
    first frames (the annotation and its neighbours)."""
    per_frame = report["davis"]["per_frame"]
    found = []
    for name, scores in per_frame.items():
        j = scores.get("J") if isinstance(scores, dict) else None
        if not j:
            continue
        j = np.asarray(j, float)
        frames = scores.get("frames", list(range(len(j))))  # scored frame indices
        if len(j) <= skip_first:
            continue
        i = int(np.nanargmin(j[skip_first:])) + skip_first
        found.append((name.rsplit("_", 1)[0], int(frames[i]), float(j[i])))
    return sorted(found, key=lambda item: item[2])[:count]


def _overlay(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    out = rgb.astype(np.float32)
    out[mask] = 0.45 * out[mask] + 0.55 * np.asarray(color, np.float32)
    edges = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    out[edges > 0] = color
    return out.astype(np.uint8)


def render(
    davis: Path,
    model: str,
    sequence: str,
    frame_index: int,
    threads: int,
    fuse_fallback: float | None = None,
) -> np.ndarray:
    """Run the engine from frame 0 to ``frame_index``; return [prediction | ground truth].

    :param fuse_fallback: the engine setting (None: the model's own).
    """
    from vos_ros.engine import EngineConfig, Prompt, build_engine

    image_dir = davis / "JPEGImages" / "480p" / sequence
    gt_dir = davis / "Annotations" / "480p" / sequence
    frames = sorted(image_dir.glob("*.jpg"))
    engine = build_engine(EngineConfig(model=model, threads=threads, fuse_fallback=fuse_fallback))
    result = None
    for t, path in enumerate(frames[: frame_index + 1]):
        rgb = read_rgb(path)
        prompt = None
        if t == 0:
            label = read_label_png(gt_dir / (path.stem + ".png")).astype(np.uint16)
            label[label == VOID] = 0
            prompt = Prompt(label, {int(k): "object" for k in np.unique(label) if k})
        result = engine.step(rgb, prompt=prompt)
    gt_label = read_label_png(gt_dir / (frames[frame_index].stem + ".png"))
    gt = (gt_label > 0) & (gt_label != VOID)
    pred = result.label_image > 0
    left = _overlay(rgb, pred, (255, 60, 60))
    right = _overlay(rgb, gt, (60, 220, 60))
    both = np.hstack([left, right])
    return cv2.resize(both, (both.shape[1] // 2, both.shape[0] // 2), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--report", required=True, type=Path, help="vos-ros evaluate JSON")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fuse-fallback",
        type=float,
        default=None,
        help="weight of the fused flow fallback (0: the network alone; default: the model's)",
    )
    parser.add_argument("--prefix", default="failure", help="file names start with this")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for sequence, index, j in worst_frames(report, args.count):
        picture = render(args.davis, args.model, sequence, index, args.threads, args.fuse_fallback)
        path = args.out / f"{args.prefix}_{sequence}_{index:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        print(f"{path}: J={j:.3f}")


if __name__ == "__main__":
    main()
