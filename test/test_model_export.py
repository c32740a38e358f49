"""Export round trip: ONNX graphs follow the contract and ONNX Runtime reproduces PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from vos_ros.engine.manifest import load_manifest
from vos_ros.model import contract
from vos_ros.model.export import export_model, load_network, sha256_of
from vos_ros.model.network import build_network

# Operators the network is meant to use (all supported by the TensorRT 10 ONNX parser).
ALLOWED_OPS = {
    "Add", "AveragePool", "Clip", "Concat", "Constant", "Conv", "Div", "Gather", "Identity",
    "MatMul", "Max", "Mul", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize",
    "Shape", "Slice", "Sqrt", "Sub", "Unsqueeze",
}  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = build_network()
    for p in net.parameters():  # move away from the init so the check is not trivial
        p.data += 0.01 * torch.randn_like(p)
    folder = tmp_path_factory.mktemp("export")
    checkpoint = folder / "ckpt.pt"
    torch.save({"arch": net.arch, "model": net.state_dict(), "step": 7}, checkpoint)
    manifest = export_model(checkpoint, folder / "protonet-test", short_side=96)
    return folder / "protonet-test", manifest, checkpoint


def test_manifest_checksums_and_fields(exported):
    folder, manifest, _ = exported
    on_disk = yaml.safe_load((folder / "model.yaml").read_text())
    assert on_disk == manifest
    for name, entry in manifest["files"].items():
        assert sha256_of(folder / name) == entry["sha256"]
    assert manifest["input"]["short_side"] == 96
    assert manifest["contract"]["key_dim"] == contract.KEY_DIM
    assert manifest["training"]["checkpoint_step"] == 7
    assert manifest["export_check"]["onnxruntime_vs_torch_max_abs_diff"] < 1e-3
    assert manifest["fuse_fallback"] == 0.0  # the network alone unless told otherwise


def test_export_sets_or_keeps_the_fusion_weight(exported, tmp_path):
    _, _, checkpoint = exported
    out = tmp_path / "fused"
    assert export_model(checkpoint, out, short_side=96, fuse_fallback=3.0)["fuse_fallback"] == 3.0
    assert load_manifest(out).fuse_fallback == 3.0
    assert export_model(checkpoint, out, short_side=96)["fuse_fallback"] == 3.0  # kept
    assert export_model(checkpoint, out, short_side=96, fuse_fallback=0)["fuse_fallback"] == 0.0


def test_graph_io_names_and_operators(exported):
    folder, _, _ = exported
    for name, inputs, outputs in (
        ("encoder.onnx", contract.ENCODER_INPUTS, contract.ENCODER_OUTPUTS),
        ("decoder.onnx", contract.DECODER_INPUTS, contract.DECODER_OUTPUTS),
    ):
        graph = onnx.load(str(folder / name)).graph
        assert tuple(i.name for i in graph.input) == inputs
        assert tuple(o.name for o in graph.output) == outputs
        ops = {node.op_type for node in graph.node}
        assert ops <= ALLOWED_OPS, f"{name} uses {sorted(ops - ALLOWED_OPS)}"


def test_onnxruntime_matches_torch_on_new_shapes(exported):
    folder, _, checkpoint = exported
    net, _ = load_network(checkpoint)
    enc = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / "decoder.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 3, 128, 192)).astype(np.float32)
    key, f4, f8 = enc.run(None, {"image": image})
    n, p = 4, 10
    fg = rng.normal(size=(n, p, contract.KEY_DIM)).astype(np.float32)
    fg /= np.linalg.norm(fg, axis=-1, keepdims=True)
    bg = fg[:, ::-1].copy()
    prev = rng.uniform(size=(n, 1, 32, 48)).astype(np.float32)
    (logits,) = dec.run(
        None, dict(zip(contract.DECODER_INPUTS, (key, f4, f8, fg, bg, prev), strict=True))
    )
    with torch.no_grad():
        t_key, t_f4, t_f8 = net.encoder(torch.from_numpy(image))
        t_logits = net.decoder(t_key, t_f4, t_f8, *(torch.from_numpy(a) for a in (fg, bg, prev)))
    np.testing.assert_allclose(key, t_key.numpy(), atol=1e-4)
    np.testing.assert_allclose(logits, t_logits.numpy(), atol=1e-3)
    assert logits.shape == (n, 1, 32, 48)


def test_weights_file_loads_safely(exported):
    folder, _, _ = exported
    state = torch.load(folder / "weights.pt", weights_only=True)
    net = build_network(state["arch"])
    net.load_state_dict(state["model"])


def test_bad_checkpoint_is_rejected(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(ValueError, match="not a vos_ros training checkpoint"):
        export_model(bad, tmp_path / "out")
