"""The SAM 2 streaming tracker's target management: bounded memory, targets added, removed and
replaced mid-stream, batching over targets equal to one target at a time, and occlusion through
the object-score head (not visible, then back with the same id). Seeded random weights in the
official checkpoint format (sam2_testlib); no dataset needed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from sam2_testlib import CONFIG, sam2_checkpoint  # noqa: F401  (pytest fixture)

from vos_ros.trackers.sam2_memory import FrameMemory, TargetMemory
from vos_ros.trackers.sam2_stream import TrackerInputError

pytestmark = pytest.mark.slow


def _frames(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random RGB frames that drift a little from one to the next."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), np.uint8), (0, 0), 9)
    frames = []
    for index in range(count):
        shifted = np.roll(base, 6 * index, axis=1)
        noise = rng.integers(-8, 9, shifted.shape)
        frames.append(np.clip(shifted.astype(np.int32) + noise, 0, 255).astype(np.uint8))
    return frames


def _masks(size: int) -> dict[int, np.ndarray]:
    masks = {k: np.zeros((size, size), bool) for k in (1, 2, 3)}
    masks[1][100:400, 100:300] = True
    masks[2][500:900, 600:800] = True
    masks[3][700:800, 50:500] = True
    return masks


def test_target_memory_keeps_prompts_and_a_bounded_window():
    entry = FrameMemory(torch.zeros(1, 2, 2, 2), [torch.zeros(1, 2, 2, 2)], torch.zeros(1, 4),
                        torch.ones(1, 1))  # fmt: skip
    memory = TargetMemory(window=15)
    memory.add_prompt(0, entry)
    for frame in range(1, 60):
        memory.add_recent(frame, entry)
    assert list(memory.prompts) == [0]
    assert sorted(memory.recent) == list(range(45, 60))
    memory.add_prompt(59, entry)  # a prompt frame is not also a tracked frame
    assert memory.layout() == ((0, 59), tuple(range(45, 59)))


def test_batches_group_equal_memory_layouts_up_to_the_cap():
    from vos_ros.trackers.sam2_stream import batches_by_layout

    layouts = ["a", "b", "a", "a", "b"]
    assert batches_by_layout(layouts, None) == [[0, 2, 3], [1, 4]]
    assert batches_by_layout(layouts, 2) == [[0, 2], [3], [1, 4]]
    assert batches_by_layout(layouts, 1) == [[0], [2], [3], [1], [4]]
    assert batches_by_layout([], None) == []


@pytest.fixture(scope="module")
def model(sam2_checkpoint):  # noqa: F811
    from vos_ros.trackers.sam2_library import build_model

    return build_model(CONFIG, sam2_checkpoint)


def test_batched_targets_added_and_removed_mid_stream_equal_one_at_a_time(model):
    from vos_ros.trackers.sam2_stream import Sam2StreamTracker

    batched = Sam2StreamTracker(model)
    size = batched.image_size
    masks = _masks(size)
    alone = {k: Sam2StreamTracker(model) for k in masks}
    # target 1 and 3 start on frame 0 (one layout: one batch), target 2 joins on frame 2
    starts = {1: 0, 3: 0, 2: 2}
    for index, rgb in enumerate(_frames(5, size)):
        frame = batched.encode(batched.preprocess(rgb), index)
        live = [k for k, start in starts.items() if start < index]
        if live:
            logits, _ = batched.track(frame, live)
            for row, k in enumerate(live):
                single, _ = alone[k].track(frame, [k])  # the encoding holds no tracker state
                assert torch.allclose(logits[row], single[0], atol=1e-4), (index, k)
                assert 0.02 < float((logits[row] > 0).float().mean()) < 0.98
        for k, start in starts.items():
            if start == index:
                batched.add_target(frame, k, masks[k])
                alone[k].add_target(frame, k, masks[k])
        if index == 3:
            assert batched.remove_target(1)
            starts.pop(1)
    assert batched.target_ids == [3, 2]
    with pytest.raises(TrackerInputError, match=r"targets \[1\] are not tracked"):
        batched.track(frame, [1])
    batched.add_target(frame, 3, masks[3])  # replaced: its memory restarts from frame 4
    assert batched._targets[3].layout() == ((4,), ())


def test_occluded_target_is_not_visible_and_comes_back_with_its_id(sam2_checkpoint, tmp_path):  # noqa: F811
    from vos_ros.engine import EngineConfig, Prompt, build_engine
    from vos_ros.pretrained.install import fetch_model

    folder = fetch_model("sam2.1-hiera-tiny", tmp_path, checkpoint=sam2_checkpoint, quiet=True)
    engine = build_engine(EngineConfig(model=str(folder)))
    frames = _frames(4, 480)
    frames = [cv2.resize(f, (854, 480)) for f in frames]
    labels = np.zeros((480, 854), np.uint16)
    labels[100:300, 200:400] = 7
    score_bias = engine.predictor.tracker.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias
    visible = []
    for index, frame in enumerate(frames):
        occluded = index == 2  # the object-score head says "no object" on this frame
        with torch.no_grad():
            if occluded:
                score_bias.sub_(1e4)
            try:
                result = engine.step(frame, Prompt(labels) if index == 0 else None)
            finally:
                if occluded:
                    score_bias.add_(1e4)
        (target,) = result.targets
        assert target.target_id == 7
        visible.append(target.visible)
        if not target.visible:
            assert not target.mask.any() and target.box == (0, 0, 0, 0)
    assert visible == [True, True, False, True]


def test_engine_adds_replaces_and_removes_targets_mid_stream(sam2_checkpoint, tmp_path):  # noqa: F811
    """The service paths: AddObjects on the last stepped frame, a re-annotation
    (Prompt(replace=True)) and RemoveObjects reach the tracker's per-target memory."""
    from vos_ros.engine import EngineConfig, Prompt, build_engine
    from vos_ros.pretrained.install import fetch_model

    folder = fetch_model("sam2.1-hiera-tiny", tmp_path, checkpoint=sam2_checkpoint, quiet=True)
    engine = build_engine(EngineConfig(model=str(folder)))
    tracker = engine.predictor.tracker
    frames = [cv2.resize(f, (854, 480)) for f in _frames(4, 480, seed=1)]
    first = np.zeros((480, 854), np.uint16)
    first[100:300, 200:400] = 1
    engine.step(frames[0], Prompt(first))
    engine.step(frames[1])
    second = np.zeros((480, 854), np.uint16)
    second[300:450, 500:800] = 2
    assert engine.add_targets(frames[1], second, {2: "box"}) == [2]
    assert tracker._targets[2].layout() == ((1,), ())  # a prompt frame at the frame it was given
    result = engine.step(frames[2], Prompt(first, replace=True))
    assert [t.target_id for t in result.targets] == [1, 2]
    assert tracker._targets[1].layout() == ((2,), ())  # memory restarted from the new mask
    assert tracker._targets[2].layout() == ((1,), (2,))
    assert engine.remove_targets([2]) == [2]
    assert tracker.target_ids == [1]
    result = engine.step(frames[3])
    assert [t.target_id for t in result.targets] == [1]
    assert tracker._targets[1].layout() == ((2,), (3,))


def test_boxes_and_clicks_reach_the_prompt_encoder_through_the_services(
    sam2_checkpoint,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """For the sam2 family ``~/add_objects`` and ``~/add_points`` never run GrabCut: boxes and
    clicks start each target through SAM's prompt encoder (on a camera that changed size, in
    the stream's pixels). A prompt in which SAM finds nothing is refused and changes nothing."""
    import threading

    pytest.importorskip("rclpy", reason="the ROS service types need rclpy")
    from geometry_msgs.msg import Point
    from sensor_msgs.msg import RegionOfInterest

    from vos_ros.engine import EngineConfig, build_engine
    from vos_ros.engine.engine import InputError
    from vos_ros.frame_buffer import FrameBuffer
    from vos_ros.pretrained.install import fetch_model
    from vos_ros.ros import services
    from vos_ros.ros.image_msgs import array_to_msg
    from vos_ros.ros.input_frames import frame_from_image, labels_from_image
    from vos_ros.ros.params import NodeConfig
    from vos_ros.ros.stream_size import ResolutionAdapter
    from vos_ros.srv import AddObjects, AddPoints

    def no_grabcut(*args, **kwargs):
        raise AssertionError("GrabCut ran for a family with a prompt encoder")

    monkeypatch.setattr(services, "boxes_to_label_image", no_grabcut)
    monkeypatch.setattr(services, "grabcut_click_mask", no_grabcut)
    folder = fetch_model("sam2.1-hiera-tiny", tmp_path, checkpoint=sam2_checkpoint, quiet=True)
    engine = ResolutionAdapter(build_engine(EngineConfig(model=str(folder))))
    assert engine.segments_clicks
    tracker = engine.engine.predictor.tracker
    frames = [cv2.resize(f, (854, 480)) for f in _frames(3, 480, seed=2)]
    buffer = FrameBuffer(4)
    handlers = services.TargetServices(
        engine,
        threading.Lock(),
        buffer,
        frame_from_image,
        labels_from_image,
        NodeConfig.from_values({}),
    )
    engine.step(frames[0])
    buffer.put(1, array_to_msg(frames[0], "rgb8"))
    box = RegionOfInterest(x_offset=200, y_offset=100, width=200, height=200)
    response = handlers.add_objects(AddObjects.Request(boxes=[box]), AddObjects.Response())
    assert response.success and list(response.new_ids) == [1], response.message
    assert tracker._targets[1].layout() == ((0,), ())
    # the camera switches to 1280x720 while tracking: clicks are scaled to the 854x480 stream
    engine.step(cv2.resize(frames[1], (1280, 720)))
    buffer.put(2, array_to_msg(cv2.resize(frames[1], (1280, 720)), "rgb8"))
    clicks = AddPoints.Request(points=[Point(x=900.0, y=500.0)], labels=[1], class_label="b")
    response = handlers.add_points(clicks, AddPoints.Response())
    assert response.success and response.target_id == 2, response.message
    assert sorted(tracker.target_ids) == [1, 2]
    result = engine.step(cv2.resize(frames[2], (1280, 720)))
    assert [t.target_id for t in result.targets] == [1, 2]
    assert result.label_image.shape == (720, 1280)

    def nothing_found(frame, video_hw, points, labels, box=None):
        logits, memory = start(frame, video_hw, points, labels, box)
        return logits.clamp(max=-1.0), memory

    start = tracker.start_from_clicks
    monkeypatch.setattr(tracker, "start_from_clicks", nothing_found)
    with pytest.raises(InputError, match="finds no target"):
        engine.add_click_targets(frames[2], {5: services.ClickPrompt(box=(10, 10, 90, 90))})
    assert sorted(tracker.target_ids) == [1, 2] and engine.target_ids == [1, 2]
    assert not engine.engine.predictor._started
