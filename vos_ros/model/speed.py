"""Time a model folder's ONNX graphs with ONNX Runtime on the CPU (network only, no engine).

    python -m vos_ros.model.speed models/protonet-s --threads 1 2

prints the median encoder and decoder times per input size, target count and thread count. The
engine's end-to-end numbers (flow, aggregation, resizing included) come from ``vos-ros bench``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vos_ros.model import contract

SIZES = ((288, 512), (480, 864))  # (H, W): the default processing size and full 854x480 (padded)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def time_model(
    folder: str | Path,
    threads: int,
    sizes=SIZES,
    targets=(1, 3),
    memory_frames: int = 5,
    repeats: int = 20,
) -> list[dict[str, float]]:
    """Median milliseconds of ``encoder.onnx`` and ``decoder.onnx`` for each size and N."""
    import onnxruntime as ort

    folder = Path(folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    enc = ort.InferenceSession(str(folder / "encoder.onnx"), options, providers=providers)
    dec = ort.InferenceSession(str(folder / "decoder.onnx"), options, providers=providers)
    rng = np.random.default_rng(0)
    rows = []
    for h, w in sizes:
        image = rng.normal(size=(1, 3, h, w)).astype(np.float32)
        key, f4, f8 = enc.run(None, {"image": image})
        enc_ms = _median_ms(lambda image=image: enc.run(None, {"image": image}), repeats)
        for n in targets:
            p = memory_frames * contract.PROTOS_PER_FRAME
            protos = rng.normal(size=(n, p, contract.KEY_DIM)).astype(np.float32)
            protos /= np.linalg.norm(protos, axis=-1, keepdims=True)
            prev = rng.uniform(size=(n, 1, h // 4, w // 4)).astype(np.float32)
            feeds = dict(
                zip(contract.DECODER_INPUTS, (key, f4, f8, protos, protos, prev), strict=True)
            )
            dec_ms = _median_ms(lambda feeds=feeds: dec.run(None, feeds), repeats)
            rows.append(
                {"h": h, "w": w, "targets": n, "threads": threads, "encoder_ms": enc_ms,
                 "decoder_ms": dec_ms}
            )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder with encoder.onnx and decoder.onnx")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print("   H x W    N  threads  encoder ms  decoder ms")
    for threads in args.threads:
        for row in time_model(args.model, threads, repeats=args.repeats):
            print(
                f"{row['h']:4d} x {row['w']:<4d} {row['targets']:2d}  {threads:7d}  "
                f"{row['encoder_ms']:10.1f}  {row['decoder_ms']:10.1f}"
            )


if __name__ == "__main__":
    main()
