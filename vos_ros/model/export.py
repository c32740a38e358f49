"""Export a training checkpoint to a model folder the engine loads (``models/<name>/``).

Writes ``encoder.onnx`` and ``decoder.onnx`` (opset 17, dynamic H, W, N and P, names and shapes
of :mod:`vos_ros.model.contract`), ``weights.pt`` (architecture + state dict, for the PyTorch
backend; plain tensors only, loadable with ``weights_only=True``) and ``model.yaml`` (the
manifest: checksums, input size and normalisation, memory settings, training data, metrics).
Every export is checked: ONNX Runtime must reproduce the PyTorch outputs at two input sizes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vos_ros.model import contract
from vos_ros.model.network import ProtoNet, build_network
from vos_ros.model.train import MEAN, STD, load_checkpoint

FORMAT_VERSION = 1
OPSET = 17
DEFAULT_SHORT_SIDE = 288  # processing size the model was trained for (854x480 -> 512x288)
DEFAULT_MEMORY = {"every": 5, "size": 4}
TRAINING_DATA = {
    "name": "DAVIS 2016 train split (30 sequences, 2,079 frames, 640x360 copy)",
    "license": "CC BY-NC 4.0 (DAVIS terms of use); some clips keep their YouTube uploaders' terms",
    "citation": "Perazzi et al., A Benchmark Dataset and Evaluation Methodology for Video Object "
    "Segmentation, CVPR 2016",
    "synthetic": "two-target clips made by pasting objects cut out from other training sequences",
}
MAX_ABS_DIFF = 1e-3  # ONNX Runtime vs PyTorch on logits


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_network(checkpoint: str | Path) -> tuple[ProtoNet, dict[str, Any]]:
    """Network (eval mode) and raw dict of a training checkpoint or of a ``weights.pt``."""
    state = load_checkpoint(Path(checkpoint))
    net = build_network(state["arch"])
    net.load_state_dict(state["model"])
    return net.eval(), state


def _example_inputs(net: ProtoNet, h: int, w: int, n: int, p: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, h, w, generator=gen)
    with torch.no_grad():
        key, f4, f8 = net.encoder(image)

    def protos() -> torch.Tensor:
        v = torch.randn(n, p, contract.KEY_DIM, generator=gen)
        return v / v.norm(dim=-1, keepdim=True)

    prev = torch.rand(n, 1, h // contract.SKIP_STRIDE, w // contract.SKIP_STRIDE, generator=gen)
    return image, (key, f4, f8, protos(), protos(), prev)


def export_onnx(net: ProtoNet, out_dir: Path, short_side: int = DEFAULT_SHORT_SIDE) -> None:
    """Write ``encoder.onnx`` and ``decoder.onnx`` into ``out_dir``."""
    h, w = short_side, (short_side * 16 // 9) // contract.STRIDE * contract.STRIDE
    image, dec_inputs = _example_inputs(net, h, w, n=2, p=2 * contract.PROTOS_PER_FRAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net.encoder,
            (image,),
            str(out_dir / "encoder.onnx"),
            input_names=list(contract.ENCODER_INPUTS),
            output_names=list(contract.ENCODER_OUTPUTS),
            opset_version=OPSET,
            dynamic_axes={
                "image": {2: "H", 3: "W"},
                "key": {2: "H8", 3: "W8"},
                "f4": {2: "H4", 3: "W4"},
                "f8": {2: "H8", 3: "W8"},
            },
            dynamo=False,
        )
        torch.onnx.export(
            net.decoder,
            dec_inputs,
            str(out_dir / "decoder.onnx"),
            input_names=list(contract.DECODER_INPUTS),
            output_names=list(contract.DECODER_OUTPUTS),
            opset_version=OPSET,
            dynamic_axes={
                "key": {2: "H8", 3: "W8"},
                "f4": {2: "H4", 3: "W4"},
                "f8": {2: "H8", 3: "W8"},
                "proto_fg": {0: "N", 1: "P"},
                "proto_bg": {0: "N", 1: "P"},
                "prev_mask": {0: "N", 2: "H4", 3: "W4"},
                "logits": {0: "N", 2: "H4", 3: "W4"},
            },
            dynamo=False,
        )


def verify_onnx(net: ProtoNet, out_dir: Path) -> float:
    """Max abs difference between ONNX Runtime and PyTorch over several shapes.

    :raises ValueError: when it exceeds ``MAX_ABS_DIFF`` (the export is wrong).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    enc = ort.InferenceSession(
        str(out_dir / "encoder.onnx"), options, providers=["CPUExecutionProvider"]
    )
    dec = ort.InferenceSession(
        str(out_dir / "decoder.onnx"), options, providers=["CPUExecutionProvider"]
    )
    worst = 0.0
    for h, w, n, p in [(288, 512, 1, 5), (224, 320, 3, 20)]:
        image, dec_inputs = _example_inputs(net, h, w, n, p, seed=h + n)
        with torch.no_grad():
            torch_enc = net.encoder(image)
            torch_logits = net.decoder(*dec_inputs)
        ort_enc = enc.run(None, {"image": image.numpy()})
        feeds = dict(zip(contract.DECODER_INPUTS, (t.numpy() for t in dec_inputs), strict=True))
        ort_logits = dec.run(None, feeds)[0]
        diffs = [np.abs(a - b.numpy()).max() for a, b in zip(ort_enc, torch_enc, strict=True)]
        diffs.append(np.abs(ort_logits - torch_logits.numpy()).max())
        worst = max(worst, *(float(d) for d in diffs))
    if worst > MAX_ABS_DIFF:
        raise ValueError(
            f"ONNX export of {out_dir} differs from PyTorch by {worst:.2e} > {MAX_ABS_DIFF}"
        )
    return worst


def count_parameters(net: ProtoNet) -> dict[str, int]:
    return {
        "encoder": sum(p.numel() for p in net.encoder.parameters()),
        "decoder": sum(p.numel() for p in net.decoder.parameters()),
    }


def count_flops(net: ProtoNet, h: int, w: int, targets: int = 1) -> dict[str, float]:
    """GFLOPs (2 x multiply-adds of convolutions and matmuls) of encoder and decoder at h x w."""
    from torch.utils.flop_counter import FlopCounterMode

    image, dec_inputs = _example_inputs(net, h, w, n=targets, p=(1 + DEFAULT_MEMORY["size"]) * 5)
    result = {}
    for name, module, args in (
        ("encoder", net.encoder, (image,)),
        ("decoder", net.decoder, dec_inputs),
    ):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(*args)
        result[name] = round(counter.get_total_flops() / 1e9, 3)
    return result


def metrics_from_report(report: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``metrics`` from a ``vos-ros evaluate --json`` report of this model."""
    meta = report.get("meta", {})
    davis = report.get("davis", {})
    return {
        "davis_global": {k: round(float(v), 4) for k, v in davis.get("global", {}).items()},
        "davis_per_sequence_jf": {
            name: round(float(scores["J&F-Mean"]), 4)
            for name, scores in davis.get("per_sequence", {}).items()
        },
        "fps_offline": round(float(report.get("timing", {}).get("fps", 0.0)), 1),
        "source": meta.get("source"),
        "command": meta.get("command"),
        "date": meta.get("date"),
        "machine": meta.get("machine"),
    }


def write_weights(net: ProtoNet, path: Path) -> None:
    """Architecture + state dict only (no optimizer): what the PyTorch backend needs."""
    buffer = io.BytesIO()
    torch.save({"arch": net.arch, "model": net.state_dict()}, buffer)
    path.write_bytes(buffer.getvalue())


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    short_side: int = DEFAULT_SHORT_SIDE,
    metrics: dict[str, Any] | None = None,
    version: str = "0.1.0",
    fuse_fallback: float | None = None,
) -> dict[str, Any]:
    """Export ``checkpoint`` into ``out_dir``; returns the manifest that was written.

    Keeps an existing manifest's ``metrics`` and ``fuse_fallback`` (the weight of the flow
    fallback the engine fuses the network with by default) unless new ones are given.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if short_side % contract.STRIDE:
        raise ValueError(f"short side {short_side} must be a multiple of {contract.STRIDE}")
    net, state = load_network(checkpoint)
    export_onnx(net, out, short_side)
    max_diff = verify_onnx(net, out)
    write_weights(net, out / "weights.pt")

    manifest_path = out / "model.yaml"
    old = yaml.safe_load(manifest_path.read_text()) if manifest_path.is_file() else {}
    config = state.get("config", {})
    files = ("encoder.onnx", "decoder.onnx", "weights.pt")
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": out.name,
        "version": version,
        "files": {
            name: {"sha256": sha256_of(out / name), "bytes": (out / name).stat().st_size}
            for name in files
        },
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
        "torch": {"builder": "vos_ros.model.network.build_network", "weights": "weights.pt"},
        "input": {
            "short_side": short_side,
            "multiple_of": contract.STRIDE,
            "color": "RGB",
            "scale": "x / 255",
            "mean": list(MEAN),
            "std": list(STD),
        },
        "contract": {
            "opset": OPSET,
            "key_dim": contract.KEY_DIM,
            "key_stride": contract.KEY_STRIDE,
            "skip_stride": contract.SKIP_STRIDE,
            "c4": int(net.arch["skip"]),
            "c8": int(net.arch["fpn"]),
            "protos_per_frame": contract.PROTOS_PER_FRAME,
            "prototype_scheme": config.get("prototype_scheme", contract.LEGACY_PROTOTYPE_SCHEME),
        },
        "memory": dict(DEFAULT_MEMORY),
        "fuse_fallback": float(
            fuse_fallback if fuse_fallback is not None else old.get("fuse_fallback", 0.0)
        ),
        "architecture": {
            **net.arch,
            "parameters": count_parameters(net),
            "gflops_864x480_1_target": count_flops(net, 480, 864),
            "gflops_512x288_1_target": count_flops(net, 288, 512),
        },
        "training": {
            "data": TRAINING_DATA,
            "checkpoint_step": int(state.get("step", 0)),
            "wall_time_s": round(float(state.get("elapsed_s", 0.0)), 1),
            "config": {k: v for k, v in config.items() if k not in ("arch",)},
        },
        "export_check": {"onnxruntime_vs_torch_max_abs_diff": max_diff},
        "metrics": metrics if metrics is not None else old.get("metrics", {}),
    }
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return manifest
