"""Engine benchmark: per-stage timings and end-to-end throughput/latency, in-process.

One *case* = one backend x input size x target count. A case prompts the first frame of a
synthetic clip (:mod:`vos_ros.benchmark.clips`) with all its targets, runs ``warmup`` frames that
are not measured, then ``frames`` measured frames (the clip is played back and forth). Per frame
it records the engine's own stage timings (``FrameResult.timings_ms``), the wall time of
``engine.step`` and, where rclpy and the generated ``vos_ros.msg`` import, the cost of the node's
message work around the engine:

- ``msg_in``: ``sensor_msgs/Image`` (rgb8) -> RGB array, as the node decodes camera frames;
- ``msg_out``: ``FrameResult`` -> ``InstanceMaskArray`` + label image + detections messages;
- ``serialize``: CDR serialisation of those messages (what a publish pays before the transport).

Pacing: with ``CaseSpec.pace_hz`` every step starts on a tick of that rate (a late step starts at
once; lost ticks are not made up), as frames arrive from a camera. The engine's step is then
slower than back-to-back on a shared machine (between frames the caches lose the engine's data),
and that paced time is what a node at the same input rate can at best reach.

Memory: a target's memory is *full* once it holds its annotation plus a full ring of recent
entries; the case reports the step time before and after the frame where every target's memory
became full, so "cost stays flat once the memory budget is full" can be read off directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.benchmark.clips import BenchClip, make_clip
from vos_ros.benchmark.stats import load_average, summarize

# Backend names accepted by --backends, and the engine configuration each one means.
BACKEND_SPECS: dict[str, dict[str, Any]] = {
    "flow": {"model": "flow"},
    "onnxruntime": {"backend": "onnxruntime", "device": "cpu"},
    "onnxruntime-cuda": {"backend": "onnxruntime", "device": "cuda"},
    "torch": {"backend": "torch", "device": "cpu"},
    "torch-cuda": {"backend": "torch", "device": "cuda", "precision": "fp16"},
    "tensorrt": {"backend": "tensorrt", "device": "cuda", "precision": "fp16"},
}
MESSAGE_STAGES = ("msg_in", "msg_out", "serialize")
NETWORK_STAGES = ("encoder", "decoder")
MODEL_LOAD_RETRIES = 3  # the model folder may be rewritten by a training run while we load it


def available_backends() -> list[str]:
    """The backends this machine can run, in the order of :data:`BACKEND_SPECS`."""
    from vos_ros.engine.backends.select import MachineCapabilities

    caps = MachineCapabilities.probe()
    present = {
        "flow": True,
        "onnxruntime": caps.onnxruntime,
        "onnxruntime-cuda": caps.onnxruntime_cuda,
        "torch": caps.torch,
        "torch-cuda": caps.torch_cuda,
        "tensorrt": caps.tensorrt and caps.torch_cuda,
    }
    return [name for name in BACKEND_SPECS if present[name]]


def build_bench_engine(backend: str, model: str, threads: int, **overrides: Any):
    """The engine for backend name ``backend`` (a key of :data:`BACKEND_SPECS`).

    Loading is retried a few times when the model folder fails its checksum check: a training
    run may be replacing the files at that moment.
    """
    from vos_ros.engine import EngineConfig, build_engine
    from vos_ros.engine.manifest import ModelFileError

    if backend not in BACKEND_SPECS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKEND_SPECS)}")
    spec = {"model": model, "threads": threads, **BACKEND_SPECS[backend], **overrides}
    for attempt in range(MODEL_LOAD_RETRIES):
        try:
            return build_engine(EngineConfig(**spec))
        except ModelFileError:
            if attempt == MODEL_LOAD_RETRIES - 1:
                raise
            time.sleep(2.0)
    raise AssertionError("unreachable")


def model_info(model: str) -> dict[str, Any]:
    """Name, version, checkpoint step and encoder sha256 of a model folder (read from disk)."""
    if model == "flow":
        return {"path": "flow"}
    import yaml

    manifest = yaml.safe_load((Path(model) / "model.yaml").read_text())
    files = manifest.get("files", {})
    return {
        "path": str(model),
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "checkpoint_step": (manifest.get("training") or {}).get("checkpoint_step"),
        "encoder_sha256": (files.get(manifest.get("encoder", "encoder.onnx")) or {}).get("sha256"),
    }


class MessageCodec:
    """The node's message work around the engine, without a ROS graph (needs rclpy + vos_ros.msg).

    Mirrors ``vos_ros.ros.node.VosNode._process``: decode the camera image, build the three
    published messages, and serialise them as the middleware does on publish.
    """

    def __init__(self) -> None:
        from rclpy.serialization import serialize_message
        from std_msgs.msg import Header

        from vos_ros.ros import result_msgs
        from vos_ros.ros.image_msgs import array_to_msg
        from vos_ros.ros.input_frames import frame_from_image

        self._serialize = serialize_message
        self._result_msgs = result_msgs
        self._array_to_msg = array_to_msg
        self._decode = frame_from_image
        self._header = Header(frame_id="camera")

    def image_msg(self, frame: np.ndarray):
        """The frame as a received ``sensor_msgs/Image``: data round-tripped through CDR, so it
        has the type a subscription callback gets."""
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image

        msg = self._array_to_msg(frame, "rgb8", self._header)
        return deserialize_message(self._serialize(msg), Image)

    def decode(self, msg) -> np.ndarray:
        return self._decode(msg)

    def build(self, result) -> list:
        header = self._header
        return [
            self._result_msgs.instance_mask_array(result, header),
            self._result_msgs.label_image_msg(result, header),
            self._result_msgs.detections_msg(result, header),
        ]

    def serialize(self, messages: list) -> int:
        """Serialise every message; returns the total number of bytes."""
        return sum(len(self._serialize(m)) for m in messages)


def message_codec() -> MessageCodec | None:
    """A :class:`MessageCodec`, or None where rclpy or the generated interfaces are missing."""
    try:
        return MessageCodec()
    except ImportError:
        return None


@dataclass
class CaseSpec:
    backend: str
    width: int
    height: int
    targets: int
    frames: int = 60
    warmup: int = 5
    pace_hz: float | None = None  # start each step on a tick of this rate; None = back-to-back


class Pacer:
    """Sleeps until the next tick of ``hz``; a caller that is late starts at once and the tick
    grid restarts from there (no burst of catch-up steps)."""

    def __init__(self, hz: float | None) -> None:
        if hz is not None and hz <= 0:
            raise ValueError(f"pace must be positive, got {hz} Hz")
        self._period = 0.0 if hz is None else 1.0 / hz
        self._next: float | None = None

    def wait(self) -> None:
        if not self._period:
            return
        now = time.perf_counter()
        if self._next is not None and now < self._next:
            time.sleep(self._next - now)
            now = self._next
        self._next = now + self._period


def run_case(
    spec: CaseSpec,
    engine,
    clip: BenchClip,
    codec: MessageCodec | None,
    progress: Callable[[str], None] | None = None,
    profiler: Any = None,
) -> dict[str, Any]:
    """Run one case on a freshly reset ``engine``; returns its JSON-ready record.

    :param profiler: a ``pyinstrument.Profiler`` that samples the measured frames only (its
        sessions add up over cases), or None.
    """
    from vos_ros.engine import Prompt

    engine.reset()
    load_before = load_average()
    messages = [codec.image_msg(frame) for frame in clip.frames] if codec else None
    memory = getattr(engine.predictor, "memory", None)  # None in the flow fallback

    first = engine.step(clip.frames[0], Prompt(clip.labels[0], clip.classes))
    per_frame: list[dict[str, float]] = []
    full_at: int | None = None  # first measured-or-warm-up step with every memory full
    out_bytes = 0
    wall_start = None
    pacer = Pacer(spec.pace_hz)
    for step in range(1, spec.warmup + spec.frames + 1):
        pacer.wait()
        if step == spec.warmup + 1:
            wall_start = time.perf_counter()
            if profiler is not None:
                profiler.start()
        index = clip.index(step)
        t0 = time.perf_counter()
        frame = codec.decode(messages[index]) if codec else clip.frames[index]
        t1 = time.perf_counter()
        result = engine.step(frame)
        t2 = time.perf_counter()
        row = {f"engine_{k}": v for k, v in result.timings_ms.items()}
        row["step"] = (t2 - t1) * 1e3
        if codec:
            built = codec.build(result)
            t3 = time.perf_counter()
            out_bytes = codec.serialize(built)
            t4 = time.perf_counter()
            row.update(msg_in=(t1 - t0) * 1e3, msg_out=(t3 - t2) * 1e3, serialize=(t4 - t3) * 1e3)
        if memory is not None and full_at is None and _memory_full(memory, engine.target_ids):
            full_at = step
        row["index"] = step
        if step > spec.warmup:
            per_frame.append(row)
    wall_s = time.perf_counter() - wall_start
    if profiler is not None:
        profiler.stop()
    record = _summarize_case(spec, engine, per_frame, full_at, wall_s, codec is not None)
    record["output_bytes_per_frame"] = out_bytes
    if "adapt" in first.timings_ms:  # online adaptation ran on the annotated frame (unmeasured)
        record["adapt_ms"] = first.timings_ms["adapt"]
    record["load_average"] = {"before": load_before, "after": load_average()}
    if progress:
        progress(_case_line(record))
    return record


def _memory_full(memory, ids: Sequence[int]) -> bool:
    """Every target holds its annotation plus a full ring of recent entries."""
    need = 1 + memory.ring_size
    return bool(ids) and all(memory.get(i).num_entries >= need for i in ids)


def _summarize_case(
    spec: CaseSpec,
    engine,
    rows: list[dict[str, float]],
    full_at: int | None,
    wall_s: float,
    with_messages: bool,
) -> dict[str, Any]:
    from vos_ros.engine.engine import ENGINE_STAGES, processing_size
    from vos_ros.engine.fallback import FlowPredictor

    def column(name: str) -> list[float]:
        return [r[name] for r in rows]

    stages = {name: summarize(column(f"engine_{name}")) for name in ENGINE_STAGES}
    if with_messages:
        stages.update({name: summarize(column(name)) for name in MESSAGE_STAGES})
    # Everything but the network, per frame: the step minus the encoder and decoder runs, plus
    # the message work of the node. The flow fallback has no network: all of it counts.
    extra = MESSAGE_STAGES if with_messages else ()
    network = () if isinstance(engine.predictor, FlowPredictor) else NETWORK_STAGES
    non_network = [
        r["step"] - sum(r[f"engine_{k}"] for k in network) + sum(r[k] for k in extra) for r in rows
    ]
    end_to_end = [r["step"] + sum(r[k] for k in extra) for r in rows]
    record: dict[str, Any] = {
        "backend": spec.backend,
        "engine_backend": engine.backend_name,
        "size": f"{spec.width}x{spec.height}",
        "processing_size": "x".join(
            str(v) for v in processing_size((spec.height, spec.width), engine.short_side)
        ),
        "targets": spec.targets,
        "frames": len(rows),
        "warmup": spec.warmup,
        "pace_hz": spec.pace_hz,
        "stages_ms": stages,
        "step_ms": summarize(column("step")),
        "end_to_end_ms": summarize(end_to_end),
        "non_network_ms": summarize(non_network),
        "throughput_fps": len(rows) / wall_s if wall_s > 0 else 0.0,
        "fps_from_median": 1e3 / summarize(end_to_end)["median"] if rows else 0.0,
        "messages_included": with_messages,
    }
    if not isinstance(engine.predictor, FlowPredictor):
        before = [r["step"] for r in rows if full_at is None or r["index"] < full_at]
        after = [r["step"] for r in rows if full_at is not None and r["index"] >= full_at]
        half = len(after) // 2
        record["memory"] = {
            "full_at_step": full_at,
            # cost drift while full: median of the later half of the full frames over the earlier
            "after_full_drift": (
                summarize(after[half:])["median"] / summarize(after[:half])["median"] - 1.0
                if half >= 5
                else None
            ),
            "before_full_ms": summarize(before),
            "after_full_ms": summarize(after),
            "after_over_before": (
                summarize(after)["median"] / summarize(before)["median"]
                if before and after
                else None
            ),
        }
    return record


def _case_line(record: dict[str, Any]) -> str:
    e2e = record["end_to_end_ms"]
    return (
        f"{record['backend']:>12} {record['size']:>9} {record['targets']:>2} targets"
        + (f" at {record['pace_hz']:g} Hz" if record.get("pace_hz") else "")
        + ": "
        f"{e2e['median']:.1f} ms [{e2e['p5']:.1f}-{e2e['p95']:.1f}] "
        f"{record['fps_from_median']:.1f} fps, "
        f"non-network {record['non_network_ms']['median']:.1f} ms"
        + (f", online adaptation {record['adapt_ms'] / 1e3:.1f} s" if "adapt_ms" in record else "")
    )


def run_engine_bench(
    backends: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    targets: Sequence[int],
    frames: int,
    warmup: int,
    model: str,
    threads: int = 0,
    clip_length: int = 40,
    progress: Callable[[str], None] | None = None,
    profiler: Any = None,
    adapt_steps: int = 0,
    adapt_background: bool = False,
    engine_settings: dict[str, Any] | None = None,
    pace_hz: float | None = None,
) -> list[dict[str, Any]]:
    """Every case of ``backends`` x ``sizes`` x ``targets``; returns the case records.

    ``adapt_steps`` > 0: every case starts with online adaptation on its annotated frame, so
    the measured frames run the adapted network (the record gets its ``adapt_ms``); with
    ``adapt_background`` the adaptation runs on its worker thread during the measured frames
    instead (what tracking costs while the network learns).

    ``engine_settings``: more :class:`~vos_ros.engine.EngineConfig` fields for every case.

    ``pace_hz``: start every step on a tick of this rate (:class:`CaseSpec`) instead of
    back-to-back; throughput is then capped by the rate, the step times are what counts.

    A backend that cannot be built here is reported as a record with an ``error`` and skipped.
    """
    codec = message_codec()
    if progress and codec is None:
        progress("rclpy or vos_ros.msg not importable: message conversion is not measured")
    clips: dict[tuple[int, int, int], BenchClip] = {}
    records: list[dict[str, Any]] = []
    for backend in backends:
        try:
            overrides: dict[str, Any] = dict(engine_settings or {})
            if adapt_steps:
                overrides.update(adapt_steps=adapt_steps, adapt_background=adapt_background)
            engine = build_bench_engine(backend, model, threads, **overrides)
        except (ValueError, ImportError, OSError, RuntimeError) as exc:
            records.append({"backend": backend, "error": str(exc)})
            if progress:
                progress(f"{backend}: cannot run here: {exc}")
            continue
        for width, height in sizes:
            for count in targets:
                key = (width, height, count)
                if key not in clips:
                    clips[key] = make_clip(width, height, count, clip_length)
                spec = CaseSpec(backend, width, height, count, frames, warmup, pace_hz)
                records.append(run_case(spec, engine, clips[key], codec, progress, profiler))
        del engine
    return records


def _find(records, backend: str, size: str, targets: int) -> dict[str, Any] | None:
    for r in records:
        if (
            "error" not in r
            and r["backend"] == backend
            and r["size"] == size
            and r["targets"] == targets
        ):
            return r
    return None


def engine_target_checks(
    records: list[dict[str, Any]], backend: str = "onnxruntime", size: str = "854x480"
) -> list[dict[str, Any]]:
    """The issue's engine-side targets, evaluated on ``backend`` at ``size`` (ONNX Runtime,
    480p by default). Targets whose case was not run are left out."""
    checks: list[dict[str, Any]] = []
    one = _find(records, backend, size, 1)
    three = _find(records, backend, size, 3)
    ten = _find(records, backend, size, 10)
    for rec, goal in ((one, 15.0), (three, 8.0)):
        if rec:
            fps = rec["fps_from_median"]
            checks.append(
                {
                    "target": f"engine {backend} {size} {rec['targets']} target(s) ≥ {goal:g} fps",
                    "measured": f"{fps:.1f} fps ({fps / goal:.2f}x the goal)",
                    "value": fps,
                    "met": fps >= goal,
                }
            )
    if one:
        non_net = one["non_network_ms"]["median"]
        what = "incl. messages" if one["messages_included"] else "engine only, no rclpy here"
        checks.append(
            {
                "target": f"everything except the network ≤ 3 ms/frame ({backend} {size}, "
                "1 target)",
                "measured": f"{non_net:.2f} ms median ({what})",
                "value": non_net,
                "met": non_net <= 3.0,
            }
        )
    for other in (three, ten):
        if one and other:
            base = one["end_to_end_ms"]["median"]
            extra = (other["end_to_end_ms"]["median"] - base) / (other["targets"] - 1)
            ratio = extra / base
            checks.append(
                {
                    "target": f"each added target ≤ 30% of a one-target frame (1 → "
                    f"{other['targets']} targets, {backend} {size})",
                    "measured": f"+{extra:.1f} ms per target = {ratio * 100:.0f}% of {base:.1f} ms",
                    "value": ratio,
                    "met": ratio <= 0.30,
                }
            )
    for rec in (one, three, ten):
        mem = rec.get("memory") if rec else None
        if mem and mem.get("after_full_drift") is not None:
            drift = mem["after_full_drift"]
            checks.append(
                {
                    "target": f"cost flat once memory is full (≤ 10% drift; {rec['targets']} "
                    f"target(s), {backend} {size})",
                    "measured": f"{drift * 100:+.1f}% (later vs earlier half of full-memory "
                    f"frames); fill step {mem['full_at_step']}, before → after full "
                    f"{mem['before_full_ms']['median']:.1f} → "
                    f"{mem['after_full_ms']['median']:.1f} ms",
                    "value": drift,
                    "met": drift <= 0.10,
                }
            )
    return checks
