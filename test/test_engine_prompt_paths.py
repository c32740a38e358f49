"""``add_targets`` on the last stepped frame == a ``Prompt`` on that frame.

The ROS node steps every frame as it arrives and adds targets from a service call afterwards
(``step(frame)`` then ``add_targets(frame, ...)``), while the offline evaluator prompts the frame
directly (``step(frame, Prompt(...))``). Both must leave the engine in the same state, so live
and offline evaluation agree. Each clip is run both ways and every later frame must match.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_testlib import Sprite, iou, render, write_model_dir

from vos_ros.engine import EngineConfig, Prompt, build_engine

H, W = 120, 192
FRAMES = 24
ADD_AT = 10  # a memory frame (memory_every=5): its recent entries must see the new target too

SPRITES = [
    Sprite(1, (220, 40, 40), 30, lambda t: (20 + 3 * t, 30)),
    Sprite(2, (40, 60, 220), 26, lambda t: (140 - 2 * t, 70)),
    # drawn on top of target 1 when added: the pixels it takes must leave target 1's state
    Sprite(3, (240, 220, 30), 22, lambda t: (40 + 3 * t, 40) if t >= ADD_AT - 2 else None),
]
CLASSES = {1: "red", 2: "blue", 3: "yellow"}


@pytest.fixture(scope="module")
def clip() -> list[tuple[np.ndarray, np.ndarray]]:
    return [render(SPRITES, t, H, W) for t in range(FRAMES)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(write_model_dir(tmp_path_factory.mktemp("models") / "tiny"))


def _only(labels: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    return np.where(np.isin(labels, ids), labels, 0).astype(np.uint16)


def _classes(ids: tuple[int, ...]) -> dict[int, str]:
    return {i: CLASSES[i] for i in ids}


def _run(config: EngineConfig, clip, as_node: bool) -> list:
    """Targets 1 and 2 from frame 0, target 3 from frame ``ADD_AT``; results of every frame.

    ``as_node``: step each frame first, then add the targets on it (the node's service calls);
    otherwise give them as the frame's ``Prompt`` (the offline evaluator).
    """
    engine = build_engine(config)
    results = []
    for t, (frame, labels) in enumerate(clip):
        new = (1, 2) if t == 0 else (3,) if t == ADD_AT else ()
        if not new:
            results.append(engine.step(frame))
        elif as_node:
            results.append(engine.step(frame))
            assert engine.add_targets(frame, _only(labels, new), _classes(new)) == list(new)
        else:
            prompt = Prompt(_only(labels, new), _classes(new), replace=False)
            results.append(engine.step(frame, prompt))
    assert engine.target_ids == [1, 2, 3]
    return results


def _configs(tiny_model: str) -> dict[str, EngineConfig]:
    return {
        "flow": EngineConfig(model="flow", memory_every=5),
        "tiny model": EngineConfig(
            model=tiny_model, backend="onnxruntime", threads=1, memory_every=5
        ),
        "tiny model fused": EngineConfig(
            model=tiny_model, backend="onnxruntime", threads=1, memory_every=5, fuse_fallback=3.0
        ),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine_kind", ["flow", "tiny model", "tiny model fused"])
def test_add_targets_on_the_last_frame_equals_a_prompt_on_it(engine_kind, clip, tiny_model):
    config = _configs(tiny_model)[engine_kind]
    offline = _run(config, clip, as_node=False)
    live = _run(config, clip, as_node=True)
    for t, (off, node) in enumerate(zip(offline, live, strict=True)):
        if t in (0, ADD_AT):
            continue  # the node published these before the targets were added
        np.testing.assert_array_equal(node.label_image, off.label_image, err_msg=f"frame {t}")
        for a, b in zip(node.targets, off.targets, strict=True):
            assert (a.target_id, a.class_label, a.visible) == (
                b.target_id,
                b.class_label,
                b.visible,
            )
            np.testing.assert_array_equal(a.prob, b.prob, err_msg=f"frame {t}, id {a.target_id}")
    # the clip is tracked, so the comparison is about real masks
    last_labels = clip[-1][1]
    for target_id in (1, 2, 3):
        assert iou(offline[-1].label_image == target_id, last_labels == target_id) > 0.5


@pytest.mark.timeout(60)
def test_add_targets_on_an_older_frame_tracks_from_the_next_step(clip):
    engine = build_engine(EngineConfig(model="flow", memory_every=5))
    for t in range(ADD_AT + 2):
        frame, labels = clip[t]
        result = engine.step(
            frame, Prompt(_only(labels, (1, 2)), _classes((1, 2))) if t == 0 else None
        )
    before = result.label_image
    old_frame, old_labels = clip[ADD_AT]  # two frames back, still in the node's buffer
    assert engine.add_targets(old_frame, _only(old_labels, (3,)), {3: "yellow"}) == [3]
    assert engine.target_ids == [1, 2, 3]
    assert np.array_equal(before, result.label_image)  # nothing published changes
    for t in range(ADD_AT + 2, FRAMES):
        result = engine.step(clip[t][0])
        assert iou(result.label_image == 3, clip[t][1] == 3) > 0.5, t
