"""The engine on real DAVIS frames (skipped when ../shared/data/vos is absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from engine_testlib import iou, write_model_dir
from PIL import Image

from vos_ros.engine import EngineConfig, Prompt, build_engine

SEQUENCE = "blackswan"
MODELS = Path(__file__).resolve().parents[1] / "models"


def _clip(root: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    frames = sorted((root / "JPEGImages" / "480p" / SEQUENCE).glob("*.jpg"))[:n]
    out = []
    for path in frames:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        gt = np.array(Image.open(root / "Annotations" / "480p" / SEQUENCE / f"{path.stem}.png"))
        out.append((rgb, gt.astype(np.uint16)))
    return out


def test_flow_fallback_on_real_frames(davis_val_dir):
    clip = _clip(davis_val_dir, 20)
    engine = build_engine(EngineConfig(model="flow"))
    scores = []
    for t, (rgb, gt) in enumerate(clip):
        result = engine.step(rgb, Prompt(gt, {1: "swan"}) if t == 0 else None)
        assert result.label_image.shape == gt.shape
        target = result.targets[0]
        assert target.target_id == 1 and target.class_label == "swan"
        scores.append(iou(target.mask, gt == 1))
    assert scores[0] == 1.0
    # A smoke test, not a tuning target (this is the validation split): the fallback loses
    # some of the dark swan against dark water by frame 20 (IoU ~0.7). Its motion evidence
    # raising the odds of target-coloured pixels that move with the target (chosen by
    # cross-validation on the training folds, +0.036 there) costs this sequence a rim of the
    # water the swan pushes along: mean IoU over these frames 0.788 without it, 0.737 with it
    # (J&F over the whole sequence 0.702; docs/architecture.md, "Motion evidence").
    assert np.mean(scores) > 0.7 and min(scores) > 0.6, scores


def test_network_engine_on_real_frames(davis_val_dir, tmp_path):
    clip = _clip(davis_val_dir, 6)
    model = write_model_dir(tmp_path / "tiny", short_side=288)
    engine = build_engine(EngineConfig(model=str(model), backend="onnxruntime", threads=1))
    for t, (rgb, gt) in enumerate(clip):
        result = engine.step(rgb, Prompt(gt) if t == 0 else None)
        assert result.label_image.shape == gt.shape
        assert result.targets[0].prob.shape == gt.shape
        assert result.timings_ms["encoder"] > 0 if t else True


@pytest.mark.skipif(not sorted(MODELS.glob("*/model.yaml")), reason="no exported model yet")
@pytest.mark.parametrize(
    "model_dir", sorted(MODELS.glob("*/model.yaml")), ids=lambda p: p.parent.name
)
def test_shipped_models_track_on_real_frames(davis_val_dir, model_dir):
    clip = _clip(davis_val_dir, 10)
    engine = build_engine(EngineConfig(model=str(model_dir.parent), backend="onnxruntime"))
    for t, (rgb, gt) in enumerate(clip):
        result = engine.step(rgb, Prompt(gt) if t == 0 else None)
        assert iou(result.targets[0].mask, gt == 1) > 0.5
