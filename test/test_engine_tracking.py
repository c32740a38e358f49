"""Engine behaviour on scripted synthetic clips (tiny colour-matching model and flow fallback)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_testlib import Sprite, iou, render, write_model_dir

from vos_ros.engine import EngineConfig, InputError, Prompt, build_engine

H, W = 160, 256
RED, BLUE, YELLOW = (220, 40, 40), (40, 60, 220), (240, 220, 30)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(write_model_dir(tmp_path_factory.mktemp("models") / "tiny"))


def _engine(model: str, **kw):
    return build_engine(EngineConfig(model=model, backend="onnxruntime", threads=1, **kw))


def _check_frame_invariants(result, shape) -> None:
    assert result.label_image.shape == shape and result.label_image.dtype == np.uint16
    union = np.zeros(shape, np.int32)
    for t in result.targets:
        assert t.mask.shape == shape and t.prob.shape == shape and t.prob.dtype == np.float32
        union += t.mask
        assert np.array_equal(t.mask, result.label_image == t.target_id)
        if t.visible:
            x0, y0, x1, y1 = t.box
            ys, xs = np.nonzero(t.mask)
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert union.max() <= 1, "a pixel belongs to two targets"


def test_targets_added_mid_stream_keep_existing_ids_and_masks(tiny_model):
    sprites = [
        Sprite(1, RED, 28, lambda t: (20 + 3 * t, 30)),
        Sprite(2, BLUE, 24, lambda t: (200 - 2 * t, 100)),
        Sprite(3, YELLOW, 26, lambda t: (30, 100 - t)),
    ]
    frames = [render(sprites, t, H, W) for t in range(30)]

    def run(add_later: bool) -> list:
        engine = _engine(tiny_model)
        out = []
        for t, (frame, labels) in enumerate(frames):
            prompt = None
            if t == 0:
                only1 = np.where(labels == 1, 1, 0).astype(np.uint16)
                prompt = Prompt(only1 if add_later else labels, {1: "red"})
            elif t == 10 and add_later:
                prompt = Prompt(np.where(labels == 2, 2, 0).astype(np.uint16), {2: "blue"})
            if t == 15 and add_later:
                buffered_frame, buffered_labels = frames[13]
                added = engine.add_targets(
                    buffered_frame, np.where(buffered_labels == 3, 3, 0), {3: "yellow"}
                )
                assert added == [3]
            result = engine.step(frame, prompt)
            _check_frame_invariants(result, (H, W))
            out.append(result)
        assert engine.target_ids == [1, 2, 3]
        return out

    with_additions = run(add_later=True)
    for t, result in enumerate(with_additions):
        ids = [r.target_id for r in result.targets]
        assert ids == [1] if t < 10 else ids == [1, 2] if t < 15 else ids == [1, 2, 3]
        red = result.targets[0]
        assert red.visible and iou(red.mask, frames[t][1] == 1) > 0.6
    # the prompt frame shows the new target exactly as given
    assert np.array_equal(with_additions[10].targets[1].mask, frames[10][1] == 2)
    assert with_additions[10].targets[1].class_label == "blue"
    # target 3, added on a buffered frame, is tracked from the next step on
    for result, (_, labels) in zip(with_additions[15:], frames[15:], strict=True):
        assert iou(result.targets[2].mask, labels == 3) > 0.5
    # adding targets did not change how target 1 is segmented
    all_at_once = run(add_later=False)
    for a, b in zip(with_additions, all_at_once, strict=True):
        assert iou(a.targets[0].mask, b.targets[0].mask) > 0.9


def test_target_leaving_the_frame_comes_back_with_its_id(tiny_model):
    def away_and_back(t: int):
        if t < 12:
            return (150 + 10 * t, 60)  # walks out on the right (gone from t = 11)
        if t < 25:
            return None
        return (40 + 2 * (t - 25), 70)  # reappears elsewhere

    sprites = [Sprite(1, BLUE, 26, lambda t: (20 + t, 110)), Sprite(7, YELLOW, 28, away_and_back)]
    engine = _engine(tiny_model)
    seen_back = []
    for t in range(40):
        frame, labels = render(sprites, t, H, W)
        result = engine.step(frame, Prompt(labels, {1: "blue", 7: "yellow"}) if t == 0 else None)
        _check_frame_invariants(result, (H, W))
        assert engine.target_ids == [1, 7]
        returning = result.targets[1]
        assert returning.target_id == 7
        if 12 <= t < 25:
            assert not returning.visible and not returning.mask.any()
            assert returning.box == (0, 0, 0, 0)
        if t >= 27:
            seen_back.append(returning.visible and iou(returning.mask, labels == 7) > 0.5)
        assert iou(result.targets[0].mask, labels == 1) > 0.5
    assert all(seen_back)


def test_crossing_targets_do_not_swap(tiny_model):
    sprites = [
        Sprite(1, RED, 28, lambda t: (20 + 6 * t, 60)),
        Sprite(2, BLUE, 28, lambda t: (210 - 6 * t, 66)),
    ]
    engine = _engine(tiny_model)
    for t in range(34):
        frame, labels = render(sprites, t, H, W)
        result = engine.step(frame, Prompt(labels) if t == 0 else None)
        _check_frame_invariants(result, (H, W))
        if abs((20 + 6 * t) - (210 - 6 * t)) > 40:  # not overlapping: each keeps its own object
            assert iou(result.targets[0].mask, labels == 1) > 0.5
            assert iou(result.targets[1].mask, labels == 2) > 0.5


def test_flow_fallback_follows_a_moving_object():
    sprites = [Sprite(4, RED, 40, lambda t: (20 + 3 * t, 40 + t))]
    engine = build_engine(EngineConfig(model="flow", processing_short_side=160))
    for t in range(10):
        frame, labels = render(sprites, t, H, W)
        result = engine.step(frame, Prompt(labels, {4: "thing"}) if t == 0 else None)
        _check_frame_invariants(result, (H, W))
        target = result.targets[0]
        assert target.class_label == "thing" and target.visible
        # backward warping leaves some label behind where the object uncovers flat background
        assert iou(target.mask, labels == 4) > 0.5
        stages = {"preprocess", "encoder", "memory", "decoder", "postprocess"}
        assert set(result.timings_ms) >= stages
    # the mask moved with the object (27 px to the right by the last frame)
    assert np.nonzero(target.mask)[1].mean() > 20 + 20 + 13


def test_api_errors_and_id_bookkeeping(tiny_model):
    engine = _engine(tiny_model)
    sprites = [Sprite(1, RED, 28, lambda t: (20, 30)), Sprite(2, BLUE, 24, lambda t: (120, 90))]
    frame, labels = render(sprites, 0, H, W)
    engine.step(frame, Prompt(labels))
    assert engine.target_ids == [1, 2] and engine.next_free_id() == 3
    with pytest.raises(InputError, match="already tracked"):
        engine.step(frame, Prompt(labels))
    with pytest.raises(InputError, match="frame size changed"):
        engine.step(np.zeros((H + 32, W, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        engine.step(frame.astype(np.float32))
    with pytest.raises(InputError, match="label_image is"):
        engine.step(frame, Prompt(labels[:-1]))
    with pytest.raises(InputError, match="no pixel"):
        engine.step(frame, Prompt(np.where(labels == 9, 9, 0), {5: "x"}))
    assert engine.remove_targets([2, 42]) == [2]
    assert engine.target_ids == [1]
    assert engine.next_free_id() == 3  # ids are never reused
    result = engine.step(frame, Prompt(np.where(labels == 1, 1, 0), replace=True))
    assert [t.target_id for t in result.targets] == [1]
    engine.reset()
    assert engine.target_ids == [] and engine.next_free_id() == 1
    result = engine.step(np.zeros((H + 32, W, 3), np.uint8))  # a new stream may change size
    assert result.targets == [] and result.label_image.shape == (H + 32, W)
