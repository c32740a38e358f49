"""Same inputs, same outputs: ONNX Runtime and PyTorch on CPU agree to 1e-3 in probability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from engine_testlib import ColorNet, Sprite, render, write_model_dir

from vos_ros.engine import EngineConfig, Prompt, build_engine
from vos_ros.engine.backends.onnxruntime_backend import OnnxRuntimeBackend
from vos_ros.engine.backends.torch_backend import TorchBackend
from vos_ros.engine.manifest import load_manifest
from vos_ros.engine.memory import MemoryBank
from vos_ros.engine.predictor import NetworkPredictor
from vos_ros.model import contract

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p.parent for p in MODELS.glob("*/model.yaml"))
TOLERANCE = 1e-3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _random_inputs(h: int, w: int, n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(1, 3, h, w)).astype(np.float32)
    protos = rng.normal(size=(2, n, p, contract.KEY_DIM)).astype(np.float32)
    protos /= np.linalg.norm(protos, axis=-1, keepdims=True)
    prev = rng.uniform(size=(n, 1, h // 4, w // 4)).astype(np.float32)
    return image, protos[0], protos[1], prev


def _compare_backends(ort_backend, torch_backend) -> float:
    worst = 0.0
    for h, w, n, p in [(160, 256, 1, 5), (96, 128, 3, 20)]:
        image, fg, bg, prev = _random_inputs(h, w, n, p, seed=h + n)
        probs = []
        for backend in (ort_backend, torch_backend):
            key, f4, f8 = backend.run_encoder(image)
            logits = backend.run_decoder(key, f4, f8, fg, bg, prev)
            assert logits.shape == (n, 1, h // 4, w // 4) and logits.dtype == np.float32
            probs.append(_sigmoid(logits))
        worst = max(worst, float(np.abs(probs[0] - probs[1]).max()))
    return worst


def test_test_model_backends_agree(tmp_path):
    net = ColorNet()
    folder = write_model_dir(tmp_path / "tiny", net)
    manifest = load_manifest(folder)
    ort_backend = OnnxRuntimeBackend(manifest.encoder_path, manifest.decoder_path, "cpu", 1)
    net.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    torch_backend = TorchBackend(net, device="cpu", threads=1)
    assert _compare_backends(ort_backend, torch_backend) <= TOLERANCE


def test_test_model_engine_outputs_agree(tmp_path):
    """Whole engine (memory, prior, aggregation) on both backends: same probabilities."""
    net = ColorNet()
    folder = write_model_dir(tmp_path / "tiny", net)
    manifest = load_manifest(folder)
    sprites = [
        Sprite(1, (220, 40, 40), 28, lambda t: (20 + 4 * t, 30)),
        Sprite(2, (40, 60, 220), 24, lambda t: (200 - 3 * t, 100)),
    ]
    engines = [build_engine(EngineConfig(model=str(folder), backend="onnxruntime", threads=1))]
    torch_engine = build_engine(EngineConfig(model=str(folder), backend="onnxruntime", threads=1))
    torch_engine.predictor = NetworkPredictor(
        TorchBackend(net, device="cpu", threads=1),
        MemoryBank(2, manifest.memory_size, manifest.memory_every),
        manifest.mean,
        manifest.std,
        manifest.prototype_scheme,
    )
    engines.append(torch_engine)
    for t in range(12):
        frame, labels = render(sprites, t, 160, 256)
        results = [e.step(frame, Prompt(labels) if t == 0 else None) for e in engines]
        for a, b in zip(results[0].targets, results[1].targets, strict=True):
            assert np.abs(a.prob - b.prob).max() <= TOLERANCE


@pytest.mark.skipif(not SHIPPED, reason="no exported model under models/ yet")
@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_backends_agree(folder):
    manifest = load_manifest(folder)
    ort_backend = OnnxRuntimeBackend(manifest.encoder_path, manifest.decoder_path, "cpu", 0)
    torch_backend = TorchBackend.from_manifest(manifest, "cpu", "fp32", 0, False)
    assert _compare_backends(ort_backend, torch_backend) <= TOLERANCE
