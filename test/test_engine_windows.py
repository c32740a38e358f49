"""Decoder windows: geometry, exact crop-and-paste, and tracking with the engine's options."""

from __future__ import annotations

import numpy as np
import pytest
from engine_testlib import Sprite, iou, render, write_model_dir

from vos_ros.engine import EngineConfig, Prompt, build_engine
from vos_ros.engine.window import GRID, MAX_AREA_FRACTION, decoder_window, target_windows

H, W = 160, 256
RED, BLUE = (220, 40, 40), (40, 60, 220)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(write_model_dir(tmp_path_factory.mktemp("models") / "tiny"))


def _mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def test_window_holds_the_enlarged_box_on_the_key_grid():
    window = decoder_window(_mask(72, 128, 30, 40, 50, 61), scale=2.0, min_fraction=0.1)
    assert window is not None
    x0, y0, x1, y1 = window
    assert all(v % GRID == 0 for v in window)
    # the box 50..61 x 30..40 doubled about its centre: 44.5..66.5 x 25..45
    assert x0 <= 44 and x1 >= 67 and y0 <= 25 and y1 >= 45
    assert x1 - x0 <= 28 and y1 - y0 <= 24  # and not much more


def test_small_targets_get_the_minimum_window_inside_the_frame():
    window = decoder_window(_mask(72, 128, 0, 2, 125, 128), scale=2.0, min_fraction=0.25)
    x0, y0, x1, y1 = window
    assert x1 - x0 >= 32 and y1 - y0 >= 18  # a quarter of each side, at least
    assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 72  # pushed inside at the corner


def test_lost_or_large_targets_use_the_whole_frame():
    assert decoder_window(np.zeros((72, 128), np.float32), 2.0, 0.25) is None
    assert decoder_window(_mask(72, 128, 10, 60, 20, 110), 2.0, 0.25) is None
    previous = np.stack([_mask(72, 128, 30, 40, 50, 60)] * 2)
    assert target_windows(previous, np.array([True, False]), 2.0, 0.25)[1] is None
    assert 0 < MAX_AREA_FRACTION < 1


def test_a_window_decodes_exactly_its_region(tiny_model):
    """Crop and paste are exact: a whole-frame window equals the unwindowed run, and a
    smaller window is 0 outside and the decoder's answer on the crop inside."""
    engine = build_engine(EngineConfig(model=tiny_model, backend="onnxruntime", threads=1))
    sprites = [Sprite(1, RED, 28, lambda t: (40, 30)), Sprite(2, BLUE, 24, lambda t: (180, 100))]
    frame, labels = render(sprites, 0, H, W)
    engine.step(frame, Prompt(labels, {1: "red", 2: "blue"}))
    predictor = engine.predictor
    # the tiny model's processing size is the input size
    features = predictor.encode(predictor.prepare(frame))
    mh, mw = H // 4, W // 4
    previous = np.stack([_mask(mh, mw, 6, 14, 10, 18), _mask(mh, mw, 24, 32, 44, 52)])
    full = predictor.predict(features, [1, 2], previous).copy()
    whole = predictor.predict(features, [1, 2], previous, [(0, 0, mw, mh), None])
    np.testing.assert_allclose(whole, full, atol=1e-6)
    window = (4, 2, 24, 20)
    part = predictor.predict(features, [1, 2], previous, [window, None])
    x0, y0, x1, y1 = window
    outside = np.ones((mh, mw), bool)
    outside[y0:y1, x0:x1] = False
    assert np.all(part[0][outside] == 0.0)
    np.testing.assert_allclose(part[1], full[1], atol=1e-6)  # the other target: whole frame
    assert part[0][y0:y1, x0:x1].max() > 0.5  # the red target is found inside its window


@pytest.mark.parametrize(
    "settings",
    [
        {"decoder_window_scale": 2.0},
        {"decoder_window_scale": 0.0},
        {"use_flow": False},
        {"use_box_prior": False},
        {"use_flow": False, "use_box_prior": False, "decoder_window_scale": 0.0},
    ],
)
def test_tracking_with_each_engine_option(tiny_model, settings):
    sprites = [
        Sprite(1, RED, 28, lambda t: (20 + 4 * t, 30)),
        Sprite(2, BLUE, 24, lambda t: (200 - 3 * t, 100)),
    ]
    frames = [render(sprites, t, H, W) for t in range(25)]
    engine = build_engine(
        EngineConfig(model=tiny_model, backend="onnxruntime", threads=1, **settings)
    )
    for t, (frame, labels) in enumerate(frames):
        result = engine.step(frame, Prompt(labels, {1: "red", 2: "blue"}) if t == 0 else None)
        for target in result.targets:
            assert target.visible, (t, target.target_id)
            assert iou(target.mask, labels == target.target_id) > 0.6, (t, target.target_id)


def test_windows_only_on_cpu_backends(tiny_model):
    engine = build_engine(EngineConfig(model=tiny_model, backend="onnxruntime", threads=1))
    assert engine.predictor.uses_windows
    engine.predictor.backend.device = "cuda"  # what a GPU backend reports

    from vos_ros.engine.predictor import NetworkPredictor

    backend, memory = engine.predictor.backend, engine.predictor.memory
    gpu = NetworkPredictor(backend, memory, (0, 0, 0), (1, 1, 1), "local-bg")
    assert not gpu.uses_windows
