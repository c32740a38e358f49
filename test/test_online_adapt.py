"""Online adaptation: the network learns the annotated frame, the engine runs the adapted copy
for the rest of the stream and goes back to the shipped weights on reset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from engine_testlib import Sprite, render

from vos_ros.engine import EngineConfig, Prompt, build_engine
from vos_ros.engine.adaptation import OnlineAdapter
from vos_ros.engine.config import ConfigError
from vos_ros.engine.manifest import load_manifest
from vos_ros.model.network import build_network
from vos_ros.model.online_adapt import AdaptSettings, adapt_network

MODEL = Path(__file__).resolve().parents[1] / "models" / "protonet-s"


def _frame_and_mask(h: int = 96, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[30:70, 50:100] = 1
    frame[mask > 0] = (220, 40, 40)
    return frame, mask


def _settings(**overrides) -> AdaptSettings:
    values = dict(steps=3, batch=2, clip_len=3, crop_h=64, crop_w=96, lr=1e-3)
    values.update(overrides)
    return AdaptSettings(**values)


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_adaptation_changes_a_copy_and_keeps_batchnorm_statistics():
    torch.manual_seed(0)
    net = build_network().eval()
    before = _tensors(net)
    frame, mask = _frame_and_mask()
    adapted, report = adapt_network(net, frame, [mask], _settings())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # a copy
    after = adapted.state_dict()
    stats = [k for k in after if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    convs = [k for k in after if k.endswith("weight") and after[k].ndim == 4]
    assert any(not torch.equal(before[k], after[k]) for k in convs)
    assert not adapted.training and report.steps == 3 and report.seconds > 0
    assert np.isfinite(report.first_loss) and np.isfinite(report.last_loss)


def test_decoder_scope_leaves_the_encoder_unchanged():
    net = build_network().eval()
    frame, mask = _frame_and_mask()
    adapted, _ = adapt_network(net, frame, [mask], _settings(scope="decoder"))
    enc_before, enc_after = net.encoder.state_dict(), adapted.encoder.state_dict()
    assert all(torch.equal(enc_before[k], enc_after[k]) for k in enc_before)
    dec_before, dec_after = net.decoder.state_dict(), adapted.decoder.state_dict()
    assert any(not torch.equal(dec_before[k], dec_after[k]) for k in dec_before)


def test_adaptation_rejects_empty_masks_and_bad_settings():
    net = build_network().eval()
    frame, mask = _frame_and_mask()
    with pytest.raises(ValueError, match="non-empty"):
        adapt_network(net, frame, [np.zeros_like(mask)], _settings())
    with pytest.raises(ValueError, match="uint8"):
        adapt_network(net, frame.astype(np.float32), [mask], _settings())
    with pytest.raises(ValueError, match="scope"):
        AdaptSettings(scope="head")
    with pytest.raises(ValueError, match="multiple of 32"):
        AdaptSettings(crop_h=100)
    with pytest.raises(ConfigError, match="adapt_scope"):
        EngineConfig(adapt_scope="head")
    with pytest.raises(ConfigError, match="adapt_steps"):
        EngineConfig(adapt_steps=-1)


def _clip(frames: int = 4, h: int = 192, w: int = 320):
    sprite = Sprite(1, (230, 60, 40), 48, lambda t: (80 + 6 * t, 60))
    return [render([sprite], t, h, w) for t in range(frames)]


def test_engine_adapts_on_the_first_annotation_and_restores_on_reset():
    engine = build_engine(EngineConfig(model=str(MODEL), adapt_steps=1, threads=1))
    base = engine.predictor.backend
    (frame0, labels0), *rest = _clip()
    first = engine.step(frame0, Prompt(labels0))
    assert first.timings_ms["adapt"] > 0
    assert first.timings_ms["preprocess"] < first.timings_ms["adapt"]
    adapted = engine.predictor.backend
    assert adapted is not base and adapted.name == "onnxruntime"
    assert engine.predictor.adapter.last_report.steps == 1
    for frame, _ in rest:
        result = engine.step(frame)
        assert "adapt" not in result.timings_ms
    assert result.targets[0].visible
    # A second target while the first is tracked: the memory would not match a new encoder.
    more = np.zeros_like(labels0)
    more[150:180, 250:300] = 2
    engine.step(rest[-1][0], Prompt(more))
    assert engine.predictor.backend is adapted
    engine.reset()
    assert engine.predictor.backend is base


def test_engine_adapts_when_targets_come_through_add_targets():
    engine = build_engine(EngineConfig(model=str(MODEL), adapt_steps=1, threads=1))
    base = engine.predictor.backend
    (frame0, labels0), (frame1, _) = _clip(2)
    engine.step(frame0)  # nothing tracked yet: the frame is not encoded
    assert engine.add_targets(frame0, labels0) == [1]
    assert engine.predictor.backend is not base
    assert engine.step(frame1).targets[0].visible


def test_tensorrt_and_missing_weights_are_refused(tmp_path):
    manifest = load_manifest(str(MODEL))
    config = EngineConfig(model=str(MODEL), adapt_steps=5)

    class FakeBackend:
        name, device = "tensorrt", "cuda"

    with pytest.raises(ConfigError, match="onnxruntime or torch"):
        OnlineAdapter(config, manifest, FakeBackend(), 288)
    FakeBackend.name = "onnxruntime"
    no_weights = type(manifest)(**{**manifest.__dict__, "weights_path": None})
    with pytest.raises(ConfigError, match=r"weights\.pt"):
        OnlineAdapter(config, no_weights, FakeBackend(), 288)


def test_node_engine_warm_up_does_not_adapt():
    pytest.importorskip("rclpy")
    from vos_ros.ros.node import build_node_engine
    from vos_ros.ros.params import NodeConfig

    config = NodeConfig.from_values(
        {"model": str(MODEL), "engine.adapt_steps": 1, "engine.threads": 1}
    )
    engine = build_node_engine(config)
    assert engine.predictor.adapter is not None and engine.predictor.adapter.last_report is None
    ((frame0, labels0),) = _clip(1)
    engine.step(frame0, Prompt(labels0))  # the first real annotation is learned
    assert engine.predictor.adapter.last_report.steps == 1
