"""The sam2 family on ONNX Runtime: the four exported graphs use only operators the TensorRT 10
ONNX parser supports, and the engine on ONNX Runtime matches the engine on torch (per target
IoU >= 0.99 on every frame, same visibility) with targets added mid-stream, so the number of
targets and the memory length vary. Seeded random weights (sam2_testlib)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sam2_testlib import iou, sam2_checkpoint  # noqa: F401  (pytest fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def engines(sam2_checkpoint, tmp_path_factory):  # noqa: F811
    from vos_ros.engine import EngineConfig, build_engine
    from vos_ros.pretrained.install import fetch_model

    root = tmp_path_factory.mktemp("sam2_ort")
    folder = str(fetch_model("sam2.1-hiera-tiny", root, checkpoint=sam2_checkpoint, quiet=True))
    cache = root / "cache"
    # the graphs take the targets as one batch; torch runs them one at a time (the CPU default)
    onnx = build_engine(
        EngineConfig(model=folder, backend="onnxruntime", cache_dir=str(cache), target_batch=3)
    )
    return onnx, build_engine(EngineConfig(model=folder, backend="torch")), cache


def test_exported_graphs_parse_with_tensorrt(engines):
    from vos_ros.engine.onnx_ops import tensorrt_problems
    from vos_ros.trackers.sam2_onnx import GRAPHS

    (folder,) = (engines[2] / "sam2-onnx").iterdir()
    for graph in GRAPHS:
        assert tensorrt_problems(folder / f"{graph}.onnx") == [], graph


def test_onnxruntime_matches_torch(engines):
    from vos_ros.engine import Prompt

    onnx, torch_engine, _ = engines
    assert onnx.backend_name == "onnxruntime"
    assert (onnx.predictor.tracker.batch, torch_engine.predictor.tracker.batch) == (3, 1)
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 256, (480, 854, 3), np.uint8), (0, 0), 9)
    first = np.zeros((480, 854), np.uint16)
    first[100:300, 200:400] = 1
    first[300:450, 500:800] = 2
    later = np.zeros((480, 854), np.uint16)
    later[20:120, 600:820] = 3
    for index in range(5):
        frame = np.roll(base, 6 * index, axis=1)
        prompt = {0: Prompt(first), 2: Prompt(later)}.get(index)
        a = onnx.step(frame, prompt)
        b = torch_engine.step(frame, prompt)
        assert [t.target_id for t in a.targets] == [t.target_id for t in b.targets]
        for x, y in zip(a.targets, b.targets, strict=True):
            assert iou(x.prob > 0.5, y.prob > 0.5) >= 0.99, (index, x.target_id)
            assert 0.02 < float((y.prob > 0.5).mean()) < 0.98
            assert x.visible == y.visible
