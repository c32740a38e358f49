"""A network fused with the flow fallback (``fuse_fallback``): the log-odds, the engine, config."""

from __future__ import annotations

import numpy as np
import pytest
from engine_testlib import Sprite, iou, render, write_model_dir

from vos_ros.engine import EngineConfig, Prompt, build_engine
from vos_ros.engine.build import resolve_fusion
from vos_ros.engine.config import ConfigError
from vos_ros.engine.fused import FusedPredictor
from vos_ros.engine.manifest import ModelFileError

H, W = 160, 256
RED, BLUE = (220, 40, 40), (40, 60, 220)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(write_model_dir(tmp_path_factory.mktemp("models") / "tiny"))


class _FixedNetwork:
    """A network stand-in: the same probability everywhere, at 1/4 of the size it is given."""

    name = "fixed"
    uses_windows = False

    def __init__(self, prob: float) -> None:
        self.prob = prob
        self.timings_ms = {"memory": 0.0, "decoder": 0.0}
        self.seen_previous: np.ndarray | None = None

    def predict(self, features, ids, previous, windows=None) -> np.ndarray:
        self.seen_previous = previous
        return np.full(previous.shape, self.prob, np.float32)


class _FixedFallback:
    """A fallback stand-in: ``prob`` within a fixed window of every visible target, 0 outside."""

    def __init__(self, prob: float, window=(8, 4, 56, 28)) -> None:
        self.prob, self.window = prob, window
        self.last_windows: list = []

    def predict(self, features, ids, previous, windows=None) -> np.ndarray:
        x0, y0, x1, y1 = self.window
        out = np.zeros(previous.shape, np.float32)
        out[:, y0:y1, x0:x1] = self.prob
        self.last_windows = [self.window if m.max() > 0.5 else None for m in previous]
        return out


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_visible_targets_add_both_log_odds_lost_ones_take_the_network_alone() -> None:
    network, fallback = _FixedNetwork(0.8), _FixedFallback(0.1)
    fused = FusedPredictor(network, fallback, weight=0.5)
    previous = np.zeros((2, 32, 64), np.float32)
    previous[0, 8:24, 16:40] = 1.0  # target 1 visible, target 2 lost
    probs = fused.predict((None, None), [1, 2], previous)
    assert probs.shape == (2, 32, 64)
    assert network.seen_previous.shape == (2, 8, 16)  # the network's 1/4 resolution
    assert network.seen_previous[0].max() == 1.0 and network.seen_previous[1].max() == 0.0
    inside = np.zeros((32, 64), bool)
    inside[4:28, 8:56] = True
    expected = 1 / (1 + np.exp(-(_logit(0.8) + 0.5 * _logit(0.1))))
    np.testing.assert_allclose(probs[0][inside], expected, rtol=1e-5)
    # outside the fallback's window it says 0, clipped to 0.001 (log-odds -6.9): at a weight of
    # 0.5 the network still has a say there
    outside = 1 / (1 + np.exp(-(_logit(0.8) + 0.5 * _logit(1e-3))))
    np.testing.assert_allclose(probs[0][~inside], outside, rtol=1e-4)
    np.testing.assert_allclose(probs[1], 0.8, rtol=1e-5)  # lost: the network alone, everywhere
    # from a weight of 3 on the sum outside the window is below 1e-6: it is written as 0
    heavy = FusedPredictor(_FixedNetwork(0.999), _FixedFallback(0.1), weight=3.0)
    heavy_probs = heavy.predict((None, None), [1], previous[:1])[0]
    assert not heavy_probs[~inside].any() and heavy_probs[inside].min() > 0.0
    light = FusedPredictor(_FixedNetwork(0.999), _FixedFallback(0.1), weight=2.0)
    assert light.predict((None, None), [1], previous[:1])[0][~inside].min() > 0.0
    # saturated opinions are clipped to +-6.9: none is an absolute veto
    sure_no = FusedPredictor(_FixedNetwork(0.99), _FixedFallback(0.0), weight=1.0)
    assert 0.0 < sure_no.predict((None, None), [1], previous[:1]).max() < 0.5
    stronger_yes = FusedPredictor(_FixedNetwork(0.99), _FixedFallback(0.0), weight=0.5)
    assert stronger_yes.predict((None, None), [1], previous[:1]).min() > 0.5
    with pytest.raises(ValueError, match="weight must be > 0"):
        FusedPredictor(network, fallback, weight=0.0)


def test_the_network_is_scaled_up_on_the_window_as_on_the_whole_frame() -> None:
    import cv2

    from vos_ros.engine.fused import _log_odds, _upscaled_log_odds

    rng = np.random.default_rng(0)
    for _ in range(300):
        rows, cols = rng.integers(1, 16, size=2)
        prob = rng.random((rows, cols)).astype(np.float32)
        whole = cv2.resize(_log_odds(prob), (cols * 4, rows * 4), interpolation=cv2.INTER_LINEAR)
        x0, y0 = rng.integers(0, cols * 4), rng.integers(0, rows * 4)
        x1, y1 = rng.integers(x0 + 1, cols * 4 + 1), rng.integers(y0 + 1, rows * 4 + 1)
        np.testing.assert_array_equal(
            _upscaled_log_odds(prob, (x0, y0, x1, y1)), whole[y0:y1, x0:x1]
        )


def test_fused_engine_tracks_crossing_targets_at_the_processing_size(tiny_model) -> None:
    sprites = [
        Sprite(1, RED, 28, lambda t: (30 + 4 * t, 40)),
        Sprite(2, BLUE, 24, lambda t: (210 - 3 * t, 110)),
    ]
    frames = [render(sprites, t, H, W) for t in range(24)]
    config = EngineConfig(model=tiny_model, backend="onnxruntime", threads=1, fuse_fallback=1.0)
    assert config.dis_preset == "medium"  # the fallback's motion evidence reads the flow
    engine = build_engine(config)
    assert isinstance(engine.predictor, FusedPredictor)
    assert engine.backend_name.endswith("+flow")
    for t, (frame, labels) in enumerate(frames):
        result = engine.step(frame, Prompt(labels, {1: "red", 2: "blue"}) if t == 0 else None)
        for target in result.targets:
            assert target.visible, (t, target.target_id)
            assert iou(target.mask, labels == target.target_id) > 0.6, (t, target.target_id)
    assert engine.remove_targets([2]) == [2]
    assert 2 not in engine.predictor.fallback._models  # both memories forget it
    assert engine.predictor.network.memory.get(1) is not None
    engine.reset()
    assert not engine.predictor.fallback._models and not engine.target_ids


def test_fuse_fallback_settings_are_checked(tiny_model) -> None:
    with pytest.raises(ConfigError, match="fuse_fallback fuses a network"):
        EngineConfig(model="flow", fuse_fallback=1.0)
    with pytest.raises(ConfigError, match="fuse_fallback"):
        EngineConfig(model=tiny_model, fuse_fallback=-1.0)
    assert EngineConfig(model=tiny_model, fuse_fallback=1.0, adapt_steps=10).runs_fallback
    with pytest.raises(ConfigError, match="network with fuse_fallback > 0"):
        EngineConfig(model=tiny_model, fuse_fallback=0.0, fallback=(("prior_sigma", 6.0),))
    # left to the model (None), whose manifest has no weight: the network runs alone, and
    # fallback settings are refused when the engine is built
    assert resolve_fusion(EngineConfig(model=tiny_model)).fuse_fallback == 0.0
    with pytest.raises(ConfigError, match="network with fuse_fallback > 0"):
        build_engine(EngineConfig(model=tiny_model, fallback=(("prior_sigma", 6.0),)))
    fused = EngineConfig(model=tiny_model, fuse_fallback=2.0, fallback=(("prior_sigma", 6.0),))
    assert fused.runs_fallback and EngineConfig(model=tiny_model).dis_preset == "ultrafast"
    engine = build_engine(
        EngineConfig(model=tiny_model, backend="onnxruntime", threads=1, fuse_fallback=2.0,
                     fallback=(("prior_sigma", 6.0),))
    )  # fmt: skip
    assert engine.predictor.fallback.settings.prior_sigma == 6.0
    assert engine.predictor.weight == 2.0


def test_a_model_manifest_sets_the_default_weight(tmp_path) -> None:
    folder = write_model_dir(tmp_path / "fused")
    manifest = folder / "model.yaml"
    manifest.write_text(manifest.read_text() + "fuse_fallback: 3.0\n")
    model = str(folder)
    engine = build_engine(EngineConfig(model=model, backend="onnxruntime", threads=1))
    assert engine.config.fuse_fallback == 3.0 and engine.predictor.weight == 3.0
    assert engine.config.dis_preset == "medium"
    alone = build_engine(EngineConfig(model=model, backend="onnxruntime", fuse_fallback=0.0))
    assert not isinstance(alone.predictor, FusedPredictor)
    assert alone.config.dis_preset == "ultrafast"
    # online adaptation fine-tunes the network and keeps the model's fusion
    assert resolve_fusion(EngineConfig(model=model, adapt_steps=5)).fuse_fallback == 3.0
    # fallback settings reach the fused network's fallback
    tuned = build_engine(
        EngineConfig(model=model, backend="onnxruntime", fallback=(("prior_sigma", 6.0),))
    )
    assert tuned.predictor.fallback.settings.prior_sigma == 6.0
    for bad in ("-1", "true", "fast"):
        manifest.write_text(manifest.read_text().replace(
            manifest.read_text().splitlines()[-1], f"fuse_fallback: {bad}"))  # fmt: skip
        with pytest.raises(ModelFileError, match="fuse_fallback must be a number in"):
            build_engine(EngineConfig(model=model, backend="onnxruntime"))
