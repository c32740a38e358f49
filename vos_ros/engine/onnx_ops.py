"""Check an ONNX graph against the operators the TensorRT 10 ONNX parser supports.

The list lives in ``tensorrt_onnx_ops.txt`` next to this module (with its source and version), so
a model can be checked for TensorRT compatibility on a machine without TensorRT.
"""

from __future__ import annotations

from pathlib import Path

OPS_FILE = Path(__file__).with_name("tensorrt_onnx_ops.txt")
RESIZE_MODES = {"nearest", "linear"}


def tensorrt_supported_ops() -> frozenset[str]:
    lines = OPS_FILE.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:  # If / Loop / Scan bodies
            if attr.g is not None and len(attr.g.node):
                yield from _nodes(attr.g)


def tensorrt_problems(onnx_path: str | Path) -> list[str]:
    """Human-readable problems that would stop TensorRT 10 from parsing ``onnx_path``."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    supported = tensorrt_supported_ops()
    problems = []
    for node in _nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.name or node.op_type}: custom domain {node.domain!r}")
        elif node.op_type not in supported:
            problems.append(
                f"{node.name or node.op_type}: operator {node.op_type} is not supported"
            )
        elif node.op_type == "Resize":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            mode = attrs.get("mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            if mode not in RESIZE_MODES:
                problems.append(f"{node.name}: Resize mode {mode!r} (TensorRT: nearest or linear)")
            if attrs.get("antialias", 0):
                problems.append(f"{node.name}: Resize with antialias is not supported")
    return problems
