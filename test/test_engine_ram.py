"""Cost and RAM stay flat over a long stream: memory has a fixed budget, nothing accumulates."""

from __future__ import annotations

import os

import numpy as np
from engine_testlib import Sprite, render, write_model_dir

from vos_ros.engine import EngineConfig, Prompt, build_engine

H, W = 64, 96


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_ram_after_5000_frames_within_5_percent_of_500(tmp_path):
    model = write_model_dir(tmp_path / "tiny", short_side=64)
    engine = build_engine(
        EngineConfig(
            model=str(model), backend="onnxruntime", threads=1, memory_every=2, memory_size=3
        )
    )
    sprites = [
        Sprite(1, (220, 40, 40), 14, lambda t: (10 + (t % 40), 10)),
        Sprite(2, (40, 60, 220), 12, lambda t: (70 - (t % 40), 40)),
    ]
    # a few distinct frames, cycled: rendering must not dominate the test's run time
    frames = [render(sprites, t, H, W) for t in range(40)]
    engine.step(frames[0][0], Prompt(frames[0][1]))
    rss_500 = memory_500 = None
    for t in range(1, 5001):
        result = engine.step(frames[t % 40][0])
        assert len(result.targets) == 2
        if t == 500:
            rss_500 = _rss_bytes()
            memory_500 = engine.predictor.memory_nbytes()
    rss_5000 = _rss_bytes()
    assert engine.predictor.memory_nbytes() == memory_500  # preallocated ring: no growth at all
    assert abs(rss_5000 - rss_500) <= 0.05 * rss_500, (rss_500, rss_5000)


def test_memory_ring_keeps_annotation_and_bounded_recent_entries(tmp_path):
    model = write_model_dir(tmp_path / "tiny", short_side=64)
    engine = build_engine(
        EngineConfig(
            model=str(model), backend="onnxruntime", threads=1, memory_every=1, memory_size=2
        )
    )
    frame, labels = render([Sprite(1, (220, 40, 40), 14, lambda t: (10, 10))], 0, H, W)
    engine.step(frame, Prompt(labels))
    memory = engine.predictor.memory
    annotated_fg = memory.get(1).entries()[0][0].copy()
    for _ in range(10):
        engine.step(frame)
    fg, _ = memory.get(1).entries()
    assert fg.shape[0] == 1 + 2  # annotation + ring of 2
    np.testing.assert_array_equal(fg[0], annotated_fg)


def _anon_mib_after_trim() -> float:
    from vos_ros.benchmark.ros_procs import rss_parts_kib
    from vos_ros.heap_trim import trim_heap

    trim_heap()  # what the node does every few seconds
    return rss_parts_kib(os.getpid())["anon"] / 1024


def _retained_after_a_peak(memory_arena: bool) -> float:
    """MiB still resident after one rare large decoder run (eight lost targets searched on the
    whole frame at once) that followed small ones."""
    from pathlib import Path

    from vos_ros.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = Path(__file__).resolve().parents[1] / "models" / "protonet-s"
    backend = OnnxRuntimeBackend(
        model / "encoder.onnx", model / "decoder.onnx", threads=1, memory_arena=memory_arena
    )
    rng = np.random.default_rng(0)
    key, f4, f8 = backend.run_encoder(rng.random((1, 3, 288, 512), np.float32))

    def decode(n: int) -> None:
        protos = rng.random((2, n, 5, 64), np.float32)
        backend.run_decoder(
            key, f4, f8, protos[0], protos[1], rng.random((n, 1, 72, 128), np.float32)
        )

    for _ in range(5):
        decode(1)
    before = _anon_mib_after_trim()
    decode(8)
    return _anon_mib_after_trim() - before


def test_a_rare_large_decoder_run_leaves_no_resident_memory_behind():
    # Without the arena the peak goes back to the system; with it (the control: the
    # measurement sees the step the soak found) ~27 MiB stay for good.
    assert _retained_after_a_peak(memory_arena=False) < 3.0
    assert _retained_after_a_peak(memory_arena=True) > 10.0


def test_the_engine_setting_reaches_every_onnx_runtime_session(tmp_path):
    model = write_model_dir(tmp_path / "tiny", short_side=64)
    for arena in (False, True):
        config = EngineConfig(model=str(model), backend="onnxruntime", cpu_memory_arena=arena)
        backend = build_engine(config).predictor.backend
        sessions = [backend._encoder, backend._decoder, backend._decoder_single]
        for session in filter(None, sessions):
            assert session.get_session_options().enable_cpu_mem_arena is arena
