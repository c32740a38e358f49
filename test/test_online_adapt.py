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
from vos_ros.engine.fused import _downscale
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


def _network(engine):
    """The engine's network predictor (inside the fused one: protonet-s runs fused)."""
    return getattr(engine.predictor, "network", engine.predictor)


def _clip(frames: int = 4, h: int = 192, w: int = 320):
    sprite = Sprite(1, (230, 60, 40), 48, lambda t: (80 + 6 * t, 60))
    return [render([sprite], t, h, w) for t in range(frames)]


@pytest.mark.parametrize("weight", [None, 0.0], ids=["fused", "alone"])
def test_engine_adapts_on_the_first_annotation_and_restores_on_reset(weight):
    engine = build_engine(
        EngineConfig(model=str(MODEL), adapt_steps=1, threads=1, fuse_fallback=weight)
    )
    # the model's own weight (3) stays on with adaptation: the fused network is fine-tuned
    assert engine.config.fuse_fallback == (3.0 if weight is None else 0.0)
    base = _network(engine).backend
    (frame0, labels0), *rest = _clip()
    first = engine.step(frame0, Prompt(labels0))
    assert first.timings_ms["adapt"] > 0
    assert first.timings_ms["preprocess"] < first.timings_ms["adapt"]
    adapted = _network(engine).backend
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
    assert _network(engine).backend is adapted
    engine.reset()
    assert _network(engine).backend is base


def test_engine_adapts_when_targets_come_through_add_targets():
    engine = build_engine(EngineConfig(model=str(MODEL), adapt_steps=1, threads=1))
    base = _network(engine).backend
    (frame0, labels0), (frame1, _) = _clip(2)
    engine.step(frame0)  # nothing tracked yet: the frame is not encoded
    assert engine.add_targets(frame0, labels0) == [1]
    assert _network(engine).backend is not base
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
    adapter = engine.predictor.adapter
    assert adapter is not None and adapter.last_report is None and adapter.state == "idle"
    ((frame0, labels0),) = _clip(1)
    engine.step(frame0, Prompt(labels0))  # the first real annotation is learned
    assert adapter.state == "running"  # in the background: the node's default
    engine.reset()


def test_tiny_targets_are_tracked_without_adaptation():
    engine = build_engine(EngineConfig(model=str(MODEL), adapt_steps=1, threads=1))
    base = _network(engine).backend
    (frame0, _), (frame1, _) = _clip(2)
    labels = np.zeros(frame0.shape[:2], np.uint16)
    labels[60:66, 100:106] = 1  # 36 pixels: no crop of it passes the training clip filter
    engine.step(frame0, Prompt(labels))
    assert _network(engine).backend is base and engine.target_ids == [1]
    engine.step(frame1)
    with pytest.raises(ValueError, match="too small"):
        adapt_network(build_network().eval(), frame0, [labels > 0], AdaptSettings(steps=1))


def test_a_failed_adaptation_is_named_and_changes_nothing(monkeypatch):
    import vos_ros.model.online_adapt as online_adapt
    from vos_ros.engine.backends.base import BackendError

    engine = build_engine(EngineConfig(model=str(MODEL), adapt_steps=1, threads=1))
    base = _network(engine).backend

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(online_adapt, "adapt_network", broken)
    (frame0, labels0), (frame1, _) = _clip(2)
    with pytest.raises(BackendError, match="online adaptation failed: out of memory"):
        engine.step(frame0, Prompt(labels0))
    assert _network(engine).backend is base and engine.target_ids == []
    monkeypatch.undo()
    engine.step(frame1, Prompt(labels0))  # the engine still works afterwards
    assert engine.target_ids == [1] and _network(engine).backend is not base


def _step_until_swapped(engine, frames, base, timeout_s: float = 120.0):
    """Step frames (played back and forth) until the adapted backend is in; returns the
    number of frames it took."""
    import time

    deadline = time.monotonic() + timeout_s
    count = 0
    while _network(engine).backend is base:
        assert time.monotonic() < deadline, "background adaptation never finished"
        engine.step(frames[count % len(frames)])
        count += 1
        time.sleep(0.05)
    return count


def test_background_adaptation_keeps_tracking_and_swaps_in_with_rebuilt_memory():
    engine = build_engine(
        EngineConfig(model=str(MODEL), adapt_steps=2, adapt_background=True, threads=1)
    )
    base = _network(engine).backend
    clip = _clip(6)
    (frame0, labels0), rest = clip[0], [f for f, _ in clip[1:]]
    first = engine.step(frame0, Prompt(labels0))
    assert "adapt" not in first.timings_ms and _network(engine).backend is base
    assert engine.predictor.adapter.state == "running"
    frames = _step_until_swapped(engine, rest, base)
    assert frames >= 1 and engine.predictor.adapter.state == "done"
    # The permanent entry was computed again with the adapted encoder; recent ones dropped.
    memory = _network(engine).memory.get(1)
    assert memory.num_entries == 1
    # the annotation's prototypes from the adapted encoder, as a network alone computes them
    expected = build_engine(EngineConfig(model=str(MODEL), threads=1, fuse_fallback=0.0)).predictor
    expected.backend = _network(engine).backend
    small = engine._annotations.frames([1])[0][0]
    mask = engine._annotations.frames([1])[0][1][0][1]  # processing size: the model runs fused
    mask = _downscale(mask[None])[0]  # as the fused predictor hands it to its network
    assert 1 in engine.predictor.fallback._models  # forgotten and learnt again by the fallback
    expected.memorize(expected.encode(expected.prepare(small)), 1, mask, "permanent")
    np.testing.assert_allclose(memory.entries()[0], expected.memory.get(1).entries()[0], atol=1e-6)
    assert engine.step(rest[0]).targets[0].visible
    engine.reset()
    assert _network(engine).backend is base and engine.predictor.adapter.state == "done"


def test_background_adaptation_is_dropped_by_reset_and_failures_keep_the_shipped_weights(
    monkeypatch,
):
    import vos_ros.model.online_adapt as online_adapt

    engine = build_engine(
        EngineConfig(model=str(MODEL), adapt_steps=2000, adapt_background=True, threads=1)
    )
    base = _network(engine).backend
    clip = _clip(3)
    engine.step(clip[0][0], Prompt(clip[0][1]))
    assert engine.predictor.adapter.state == "running"
    engine.reset()  # a new stream: the running job is stopped and never used
    assert engine.predictor.adapter.state == "idle"

    def broken(*args, **kwargs):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(online_adapt, "adapt_network", broken)
    engine.step(clip[0][0], Prompt(clip[0][1]))
    import time

    deadline = time.monotonic() + 30
    while engine.predictor.adapter.state == "running" and time.monotonic() < deadline:
        engine.step(clip[1][0])
        time.sleep(0.05)
    assert engine.predictor.adapter.state == "failed"
    assert "no memory left" in engine.predictor.adapter.error
    assert _network(engine).backend is base and engine.step(clip[2][0]).targets


def test_annotation_log_mirrors_the_permanent_memory_slots():
    from vos_ros.engine.annotations import AnnotationLog

    log = AnnotationLog(permanent_size=2)
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(4)]
    masks = [np.full((1, 1), i, np.float32) for i in range(4)]
    log.record(frames[0], {1: masks[0], 2: masks[0]}, "permanent")
    log.record(frames[1], {1: masks[1]}, "permanent")
    log.record(frames[2], {1: masks[2]}, "permanent")  # full: overwrites the newest
    log.record(frames[3], {2: masks[3]}, "replace")
    replay = log.frames([1, 2])
    assert [int(f[0, 0, 0]) for f, _ in replay] == [0, 2, 3]
    assert [(t, float(m[0, 0])) for _, pairs in replay for t, m in pairs] == [
        (1, 0.0),
        (1, 2.0),
        (2, 3.0),
    ]
    log.forget(1)
    assert [t for _, pairs in log.frames([1, 2]) for t, _ in pairs] == [2]
