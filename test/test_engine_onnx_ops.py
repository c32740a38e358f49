"""Exported graphs only use operators TensorRT 10's ONNX parser supports."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from engine_testlib import write_model_dir
from onnx import helper

from vos_ros.engine.onnx_ops import OPS_FILE, tensorrt_problems, tensorrt_supported_ops

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p for p in MODELS.glob("*/*.onnx"))


def test_ops_list_is_cited_and_sane():
    header = OPS_FILE.read_text().splitlines()[:4]
    assert any("TensorRT 10" in line for line in header)
    assert any("onnx-tensorrt" in line for line in header)
    ops = tensorrt_supported_ops()
    assert {"Conv", "Relu", "MatMul", "Resize", "ReduceMax", "Concat"} <= ops
    assert "NonMaxSuppression" in ops and "Unique" not in ops and "SequenceAt" not in ops


def test_checker_flags_unsupported_ops(tmp_path):
    node = helper.make_node("Unique", ["x"], ["y"])
    resize = helper.make_node("Resize", ["x", "", "s"], ["z"], mode="cubic")
    graph = helper.make_graph(
        [node, resize],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [
            helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None]),
        ],
        [helper.make_tensor("s", onnx.TensorProto.FLOAT, [1], [2.0])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph), str(path))
    problems = tensorrt_problems(path)
    assert any("Unique" in p for p in problems)
    assert any("cubic" in p for p in problems)


def test_test_model_graphs_use_supported_ops(tmp_path):
    folder = write_model_dir(tmp_path / "tiny")
    for name in ("encoder.onnx", "decoder.onnx"):
        assert tensorrt_problems(folder / name) == []


@pytest.mark.skipif(not SHIPPED, reason="no exported model under models/ yet")
@pytest.mark.parametrize("graph", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_graphs_use_supported_ops(graph):
    assert tensorrt_problems(graph) == []
