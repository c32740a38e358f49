"""What the sam2 family's graph backends share, whatever library the model comes from: writing a
set of ONNX graphs into a folder whole or not at all, and running one on ONNX Runtime with torch
tensors in and out."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17

# graph -> (input names, output names, dynamic axes); runtime modules feed and read them in
# this order (ONNX Runtime and TensorRT alike)
GraphIO = tuple[list[str], list[str], dict[str, dict[int, str]]]


def export_folder(
    modules: dict[str, Any], examples: dict[str, tuple], graph_io: dict[str, GraphIO], folder: Path
) -> Path:
    """Export each ``modules[name]`` at ``examples[name]`` as ``folder/name.onnx`` (opset
    :data:`OPSET`, TorchScript exporter); the folder is staged beside ``folder`` and moved in
    only when every graph is written, so a failed export leaves nothing half-written."""
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with torch.no_grad():
            for name, module in modules.items():
                inputs, outputs, axes = graph_io[name]
                torch.onnx.export(
                    module,
                    examples[name],
                    str(stage / f"{name}.onnx"),
                    opset_version=OPSET,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes=axes,
                    dynamo=False,
                )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return folder


class OnnxRuntimeGraph:
    """One graph on ONNX Runtime's CPU provider, called with torch tensors (or arrays) in the
    graph's input order; returns its outputs as CPU torch tensors in the graph's output order."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, *arrays: Any) -> list:
        import torch

        feed = {
            name: np.ascontiguousarray(
                a.detach().float().cpu().numpy() if torch.is_tensor(a) else a
            )
            for name, a in zip(self.inputs, arrays, strict=True)
        }
        return [torch.from_numpy(out) for out in self.session.run(None, feed)]
