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
