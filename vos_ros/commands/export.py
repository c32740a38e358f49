"""``vos-ros export``: turn a training checkpoint into a model folder (ONNX + manifest)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="training checkpoint (last.pt, stepNNNNNN.pt)"
    )
    parser.add_argument("--out", required=True, help="model folder, e.g. models/protonet-s")
    parser.add_argument(
        "--short-side",
        type=int,
        default=288,
        help="processing short side written to the manifest (multiple of 32)",
    )
    parser.add_argument(
        "--metrics-from",
        default=None,
        help="a `vos-ros evaluate --json` report of this model; its scores go into the manifest",
    )
    parser.add_argument("--version", default="0.1.0", help="model version for the manifest")
    parser.add_argument(
        "--fuse-fallback",
        type=float,
        default=None,
        metavar="W",
        help="weight of the flow fallback the engine fuses the network with by default "
        "(0: alone; default: the existing manifest's, else 0)",
    )


def run(args: argparse.Namespace) -> int:
    from vos_ros.model.export import export_model, metrics_from_report

    metrics = None
    if args.metrics_from:
        metrics = metrics_from_report(json.loads(Path(args.metrics_from).read_text()))
    manifest = export_model(
        args.checkpoint,
        args.out,
        short_side=args.short_side,
        metrics=metrics,
        version=args.version,
        fuse_fallback=args.fuse_fallback,
    )
    arch = manifest["architecture"]
    print(
        f"wrote {args.out}: step {manifest['training']['checkpoint_step']}, "
        f"params {arch['parameters']}, GFLOPs@864x480 {arch['gflops_864x480_1_target']}, "
        f"onnx-vs-torch {manifest['export_check']['onnxruntime_vs_torch_max_abs_diff']:.1e}"
    )
    return 0
