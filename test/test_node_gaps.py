"""Node behaviour the other node tests rely on or only touch lightly.

- compressed input (JPEG and PNG) on a running node tracks exactly like raw frames;
- the synthetic clip of the cross-process tracking test really has a target that leaves and
  re-enters the frame and two targets that cross (checked from its ground truth, without ROS);
- repeated bad frames give at most one log line per ``log_throttle_s``, also after a
  re-configure that changes it;
- many concurrent service calls while frames stream: every call is answered and the ids in the
  answers add up to the engine's final state;
- the short fault soak reports RSS samples and latency figures.
"""

from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

TEST_DIR = Path(__file__).resolve().parent
TRACKING_TEST = TEST_DIR / "test_node_tracking.py"

H, W = 96, 128
SIDE = 24  # the target: a red square of SIDE x SIDE pixels
STEP_PX = 2  # it moves this far right and down per frame
FRAMES = 6
ERROR = 2


def _ros() -> None:
    """Skip the calling test unless rclpy and the generated interfaces import."""
    from ros_harness import require_ros

    require_ros()


# -- a moving square, as raw, JPEG and PNG frames ----------------------------------------------


def _square(index: int) -> tuple[int, int]:
    """Top-left corner (y, x) of the square on frame ``index``."""
    return 24 + STEP_PX * index, 32 + STEP_PX * index


def _truth(index: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    y, x = _square(index)
    mask[y : y + SIDE, x : x + SIDE] = True
    return mask


def _rgb(index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    frame = np.full((H, W, 3), 90, np.uint8)
    frame += rng.integers(0, 20, frame.shape, dtype=np.uint8)
    frame[_truth(index)] = (220, 40, 40)
    return frame


def _message(index: int, kind: str) -> Any:
    """Frame ``index`` as ``sensor_msgs/Image`` (``raw``) or ``CompressedImage`` (jpeg/png)."""
    from sensor_msgs.msg import CompressedImage

    from vos_ros.ros.image_msgs import array_to_msg

    frame = _rgb(index)
    if kind == "raw":
        return array_to_msg(frame, "rgb8")
    ok, data = cv2.imencode(".jpg" if kind == "jpeg" else ".png", frame[:, :, ::-1])  # BGR
    assert ok
    return CompressedImage(format=kind, data=data.tobytes())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _instance_mask(instance: Any) -> np.ndarray:
    """The full-frame mask of one ``InstanceMask`` (its crop placed at its box)."""
    from vos_ros.ros.image_msgs import msg_to_array

    full = np.zeros((H, W), bool)
    box = instance.box
    crop = np.asarray(msg_to_array(instance.mask)) > 0
    full[box.y_offset : box.y_offset + box.height, box.x_offset : box.x_offset + box.width] = crop
    return full


def _track_square(kind: str) -> list[tuple[Any, Any, np.ndarray]]:
    """Select the square by service on frame 0 of a ``kind`` stream, then feed the rest.

    :returns: per frame after the first ``(input message, ~/instances message, label image)``.
    """
    from reliability_node import InProcessNode
    from sensor_msgs.msg import CompressedImage, Image

    node = InProcessNode({"input.compressed": kind != "raw"})
    try:
        # the node subscribes to the topic and type the parameter selects
        expected = (CompressedImage, "/image/compressed") if kind != "raw" else (Image, "/image")
        assert (node.node._image_sub.msg_type, node.node._image_sub.topic_name) == expected
        assert node.feed(_message(0, kind), stamp_s=1.0) == "processed"
        response = node.call("set_initial_mask", _square_request(1.0))
        assert response.success, response.message
        assert list(response.tracked_ids) == [1]
        outputs = []
        for index in range(1, FRAMES):
            msg = _message(index, kind)
            assert node.feed(msg, stamp_s=1.0 + index / 10) == "processed", (kind, index)
            outputs.append(
                (msg, node.outputs["_instances_pub"].messages[-1], node.last_label_image())
            )
        return outputs
    finally:
        node.close()


@pytest.fixture(scope="module")
def raw_tracking() -> list[tuple[Any, Any, np.ndarray]]:
    _ros()
    return _track_square("raw")


@pytest.mark.ros
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_compressed_frames_are_tracked_like_raw_frames(
    kind: str, raw_tracking: list[tuple[Any, Any, np.ndarray]]
) -> None:
    """With input.compressed the node subscribes to image/compressed, buffers the compressed
    frames for ~/set_initial_mask and tracks from them: ids, classes, stamps and masks are right
    (IoU against the known square), and PNG (lossless) gives the very masks raw frames give."""
    outputs = _track_square(kind)
    assert len(outputs) == len(raw_tracking) == FRAMES - 1
    for index, ((msg, instances, labels), (_, _, raw_labels)) in enumerate(
        zip(outputs, raw_tracking, strict=True), start=1
    ):
        assert instances.header.stamp == msg.header.stamp
        assert (instances.image_width, instances.image_height) == (W, H)
        assert [(i.id, i.class_label, i.visible) for i in instances.instances] == [(1, "box", True)]
        mask = _instance_mask(instances.instances[0])
        assert np.array_equal(mask, labels == 1)  # ~/instances and ~/label_image agree
        assert _iou(mask, _truth(index)) >= 0.8, (kind, index, _iou(mask, _truth(index)))
        if kind == "png":
            assert np.array_equal(labels, raw_labels), index
        else:
            assert _iou(labels == 1, raw_labels == 1) >= 0.9, index


# -- the scene of the cross-process tracking test -----------------------------------------------


def _tracking_test_constants() -> dict[str, Any]:
    """Module-level literal constants of test_node_tracking.py (``A, B = 1, 2`` included)."""
    constants: dict[str, Any] = {}
    for stmt in ast.parse(TRACKING_TEST.read_text()).body:
        if not isinstance(stmt, ast.Assign):
            continue
        try:
            value = ast.literal_eval(stmt.value)
        except ValueError:
            continue
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                constants[target.id] = value
            elif isinstance(target, ast.Tuple) and isinstance(value, tuple):
                for name, item in zip(target.elts, value, strict=True):
                    if isinstance(name, ast.Name):
                        constants[name.id] = item
    return constants


def _tracking_scene_config() -> Any:
    """The ``SceneConfig(...)`` that test_node_tracking._scene() builds, read from its source, so
    this test follows any change to that scene."""
    from vos_ros.synthetic import SceneConfig

    constants = _tracking_test_constants()
    tree = ast.parse(TRACKING_TEST.read_text())
    scene_fn = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "_scene"
    )
    calls = [
        node
        for node in ast.walk(scene_fn)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SceneConfig"
    ]
    assert len(calls) == 1 and not calls[0].args, "expected one SceneConfig(keyword=...) call"
    kwargs = {
        kw.arg: constants[kw.value.id]
        if isinstance(kw.value, ast.Name)
        else ast.literal_eval(kw.value)
        for kw in calls[0].keywords
    }
    return SceneConfig(**kwargs)


def test_tracking_scene_has_a_target_leaving_and_reentering_and_two_crossing() -> None:
    """The ground truth of the clip test_node_tracking.py plays (same generator call and
    parameters) has what that test claims to cover: the ball is absent for several frames and
    visible again afterwards, and the person and the car touch and swap sides (the car passes
    in front, hiding part of the person) before the car is removed."""
    from vos_ros.synthetic import generate

    constants = _tracking_test_constants()
    config = _tracking_scene_config()
    assert config.objects == 4  # what clip_player.py renders by default (the test passes none)
    scene = generate(config)
    assert scene.class_map == {1: "person", 2: "car", 3: "ball", 4: "animal"}
    labels = [frame.label for frame in scene.frames()]
    assert len(labels) == config.frames
    areas = np.array([[int((label == i).sum()) for i in range(1, 5)] for label in labels])

    # id 3 leaves and re-enters: visible, then absent for a run of frames, then visible again
    present = areas[:, 2] > 0
    gone = np.flatnonzero(~present)
    assert present[0] and gone.size >= 5, gone
    first_gone, back = int(gone[0]), int(gone[-1]) + 1
    assert np.array_equal(gone, np.arange(first_gone, back)), "one absence, not several"
    assert back < config.frames - 5 and present[back:].all(), (first_gone, back)

    # ids 1 and 2 cross while both are tracked (the test removes id 2 at REMOVE_AT_FRAME)
    kernel = np.ones((3, 3), np.uint8)
    touching = [
        bool(
            np.logical_and(cv2.dilate((label == 1).astype(np.uint8), kernel) > 0, label == 2).any()
        )
        for label in labels
    ]
    crossing = [t for t, touch in enumerate(touching) if touch]
    assert len(crossing) >= 5, crossing
    assert crossing[-1] < constants["REMOVE_AT_FRAME"], crossing
    side = [
        np.sign(np.nonzero(label == 1)[1].mean() - np.nonzero(label == 2)[1].mean())
        for label in labels
    ]
    assert side[0] < 0 and side[constants["REMOVE_AT_FRAME"]] > 0  # person left of car, then right
    # the car is nearer: the person is partly hidden while they overlap
    assert areas[crossing, 0].min() < 0.8 * areas[0, 0]
    # the target added by box mid-stream is in the frame then
    assert areas[constants["ADD_AT_FRAME"], 3] > 0 and areas[: scene.start_frames[4], 3].sum() == 0


# -- rate-limited logging -----------------------------------------------------------------------

# Runs in a child process, so the node's real console output (rcutils, on stderr) can be counted.
_LOG_SCRIPT = """
import sys, time
from reliability_node import InProcessNode
from sensor_msgs.msg import Image

for throttle, count, spacing, height in ((3600.0, 20, 0.0, 10), (0.5, 20, 0.1, 11)):
    node = InProcessNode({"log_throttle_s": throttle})
    start = time.monotonic()
    for _ in range(count):
        assert node.feed(Image(encoding="rgb8", height=height, width=0)) == "failed"
        time.sleep(spacing)
    print(f"phase {height}: {time.monotonic() - start:.3f} s, {node.counts()[1]} failed",
          file=sys.stderr, flush=True)
    node.close()
"""
_WARN = re.compile(r"\[WARN\] \[(\d+\.\d+)\] \[vos_node\]: bad image: empty image \(0x(\d+)\)")


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_repeated_bad_frames_log_at_most_once_per_log_throttle_s() -> None:
    """Twenty bad frames in a burst with log_throttle_s = 3600 print exactly one warning (all 20
    are counted); twenty over ~2 s with log_throttle_s = 0.5 print a few, at least 0.5 s apart.
    Counted on the node's real console output, in a child process."""
    _ros()
    from ros_harness import isolated_env

    env = isolated_env()
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    env.pop("RCUTILS_CONSOLE_OUTPUT_FORMAT", None)  # the default format, parsed by _WARN
    env.pop("ROS_LOG_DIR", None)
    run = subprocess.run(
        [sys.executable, "-c", _LOG_SCRIPT],
        cwd=TEST_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    phases = {
        int(m[0]): float(m[1]) for m in re.findall(r"phase (\d+): ([\d.]+) s, 20 failed", output)
    }
    assert set(phases) == {10, 11}, output  # every bad frame was counted
    times: dict[int, list[float]] = {10: [], 11: []}
    for stamp, height in _WARN.findall(output):
        times[int(height)].append(float(stamp))
    assert len(times[10]) == 1, output
    lines = times[11]
    assert 2 <= len(lines) <= math.floor(phases[11] / 0.5) + 1, (phases, lines)
    gaps = np.diff(lines)
    assert (gaps >= 0.5 - 0.02).all(), gaps


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_changing_log_throttle_s_at_reconfigure_keeps_errors_readable_and_the_worker_alive() -> (
    None
):
    """After a re-configure with another log_throttle_s, a bad frame is refused with its own
    reason and counted once, and a failing backend is reported without killing the inference
    thread (rclpy refuses a different throttle for a call site it has seen before)."""
    _ros()
    from rclpy.parameter import Parameter
    from reliability_node import InProcessNode
    from sensor_msgs.msg import Image

    from vos_ros.benchmark.fault_injection import FaultPlan, failing_engine_factory

    plan = FaultPlan(every=2)
    node = InProcessNode(engine_factory=failing_engine_factory(plan))
    try:
        for throttle in (0.2, 7.0, 30.0):
            node.deactivate()
            node.cleanup()
            assert node.node.set_parameters([Parameter("log_throttle_s", value=throttle)])[
                0
            ].successful
            assert node.configure()
            node.activate()
            _select_square(node)
            assert node.feed(Image(encoding="rgb8", height=H, width=0), timeout=5) == "failed"
            level, message, values = node.status()
            assert level == ERROR and "empty image" in message, (throttle, message)
            assert values["frames_failed"] == "1", (throttle, values)
            outcomes = [node.feed(_message(i, "raw"), timeout=5) for i in range(1, 4)]
            assert "failed" in outcomes and "processed" in outcomes, (throttle, outcomes)
            assert "injected backend failure" in node.status()[2]["last_error"]
            assert node.tracked == [1]
    finally:
        node.close()


def _square_request(stamp_s: float) -> Any:
    """``~/set_initial_mask``: the square of frame 0 as target 1, on the frame with ``stamp_s``."""
    from vos_ros.benchmark.ros_procs import ns_to_time
    from vos_ros.ros.image_msgs import array_to_msg
    from vos_ros.srv import SetInitialMask

    return SetInitialMask.Request(
        label_image=array_to_msg(_truth(0).astype(np.uint8), "mono8"),
        ids=[1],
        class_labels=["box"],
        stamp=ns_to_time(int(stamp_s * 1e9)),
    )


def _select_square(node: Any, stamp_s: float | None = None) -> None:
    """Feed frame 0 and select the square on it as target 1."""
    stamp_s = float(node.fed + 1) if stamp_s is None else stamp_s
    while node.feed(_message(0, "raw"), stamp_s=stamp_s) != "processed":
        stamp_s += 1.0  # an injected failure; the frame is buffered all the same
    response = node.call("set_initial_mask", _square_request(stamp_s))
    assert response.success, response.message


# -- many service calls per second --------------------------------------------------------------


@pytest.mark.ros
@pytest.mark.timeout(90)
def test_concurrent_service_calls_while_streaming_are_all_answered_and_consistent() -> None:
    """Six threads call add/remove/set (valid and invalid requests) as fast as they can while
    frames stream: every call returns a response with a message, refusals are clear (never an
    internal error), no exception escapes, every answer lists target 1 among sorted unique ids,
    the ids each success added or removed add up exactly to the final engine state, and frames
    are processed throughout."""
    _ros()
    from reliability_node import InProcessNode
    from sensor_msgs.msg import RegionOfInterest

    from vos_ros.benchmark.ros_procs import ns_to_time
    from vos_ros.ros.image_msgs import array_to_msg
    from vos_ros.srv import AddObjects, RemoveObjects, SetInitialMask

    node = InProcessNode()
    max_targets = 16  # engine.max_targets default
    records: list[tuple[str, Any, Any]] = []
    records_lock = threading.Lock()
    seen: list[int] = [1]  # the tracked ids of the latest answer
    errors: list[BaseException] = []
    stop = threading.Event()

    def request_for(rng: np.random.Generator) -> tuple[str, Any]:
        choice = int(rng.integers(0, 6))
        if choice in (0, 1):
            x, y = int(rng.integers(0, W - 14)), int(rng.integers(0, H - 12))
            box = RegionOfInterest(x_offset=x, y_offset=y, width=14, height=12)
            return "add_objects", AddObjects.Request(boxes=[box], class_labels=["thing"])
        if choice == 2:  # ids another caller was just told are tracked (racing), and unknown ids
            with records_lock:
                known = [i for i in seen if i != 1]
            ids = [int(v) for v in rng.choice(known, min(2, len(known)), replace=False)]
            ids.append(int(rng.integers(100, 200)))
            return "remove_objects", RemoveObjects.Request(ids=ids)
        if choice == 3:  # a new id drawn by hand: accepted unless that id is tracked already
            target_id = int(rng.integers(2, 12))
            labels = np.zeros((H, W), np.uint8)
            y, x = int(rng.integers(0, H - 8)), int(rng.integers(0, W - 8))
            labels[y : y + 8, x : x + 8] = target_id
            request = SetInitialMask.Request(
                label_image=array_to_msg(labels, "mono8"), ids=[target_id], class_labels=["hand"]
            )
            return "set_initial_mask", request
        if choice == 4:  # refused: zero size
            return "add_objects", AddObjects.Request(boxes=[RegionOfInterest(width=0, height=4)])
        request = SetInitialMask.Request(  # refused: not a buffered stamp
            label_image=array_to_msg(_truth(0).astype(np.uint8) * 30, "mono8"),
            stamp=ns_to_time(10**6),
        )
        return "set_initial_mask", request

    def caller(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                service, request = request_for(rng)
                response = node.call(service, request)
                with records_lock:
                    records.append((service, request, response))
                    seen[:] = [int(i) for i in response.tracked_ids]
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)

    try:
        _select_square(node)
        threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        processed_per_second = [0, 0, 0]
        start = time.monotonic()
        try:
            while (elapsed := time.monotonic() - start) < len(processed_per_second):
                if node.feed(_message(node.fed % FRAMES, "raw")) == "processed":
                    processed_per_second[int(elapsed)] += 1
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        assert min(processed_per_second) >= 2, processed_per_second  # frames kept flowing
        assert len(records) > 50, len(records)

        balance: dict[int, int] = {1: 1}  # adds minus removes per id; target 1 from the start
        outcomes = {True: 0, False: 0}
        removed = 0
        for service, request, response in records:
            assert response is not None and response.message, (service, response)
            assert not response.message.startswith("internal error"), response.message
            tracked = [int(i) for i in response.tracked_ids]
            assert tracked == sorted(set(tracked)) and 1 in tracked, (service, tracked)
            assert len(tracked) <= max_targets, tracked
            outcomes[bool(response.success)] += 1
            if not response.success:
                continue
            if service == "add_objects":
                added = [int(i) for i in response.new_ids]
                assert len(added) == len(request.boxes), response.message
            elif service == "set_initial_mask":
                added = [int(i) for i in request.ids]
            else:
                added = []
                for i in response.removed_ids:
                    balance[int(i)] = balance.get(int(i), 0) - 1
                    removed += 1
            for i in added:
                balance[i] = balance.get(i, 0) + 1
        assert outcomes[True] > 10 and outcomes[False] > 10 and removed > 5, (outcomes, removed)
        # each id was added and removed in turn: what was added and not removed is what is left
        assert all(count in (0, 1) for count in balance.values()), balance
        final = sorted(i for i, count in balance.items() if count == 1)
        assert node.tracked == final, (node.tracked, balance)
        response = node.call("remove_objects", RemoveObjects.Request(ids=[65_000]))
        assert list(response.tracked_ids) == final
        assert node.status()[2]["target_ids"] == " ".join(str(i) for i in final)
        assert node.feed(_message(1, "raw")) == "processed"
        instances = node.outputs["_instances_pub"].messages[-1]
        assert [i.id for i in instances.instances] == final
    finally:
        stop.set()
        node.close()


# -- the short fault soak: RSS and latency -------------------------------------------------------


def test_rss_growth_is_measured_after_the_warm_up() -> None:
    """The soak's RSS growth is the median RSS at the end minus the median after the warm-up
    (the first fifth of the run, at least 20 s), and the report prints it."""
    from vos_ros.benchmark.fault_soak import _rss_growth, fault_soak_block

    samples = [{"t_s": float(t), "rss_mib": 100.0 + 0.1 * t} for t in range(1, 61)]
    samples[30]["rss_mib"] = 500.0  # one outlier does not move a median
    rss = _rss_growth(samples)
    assert rss["warmup_s"] == 20.0
    assert rss["after_warmup_mib"] == pytest.approx(102.2)  # median of t = 20..24
    assert rss["end_mib"] == pytest.approx(105.8)  # median of t = 56..60
    assert rss["growth_mib"] == pytest.approx(3.6)
    assert rss["growth_percent"] == pytest.approx(3.6 / 102.2 * 100)
    assert rss["max_mib"] == 500.0
    assert _rss_growth(samples[:25]) == {}  # too short to have a steady state
    result = {
        "size": "160x120",
        "rate_hz": 10.0,
        "seconds": 60.0,
        "model": "flow",
        "bad_every": 3,
        "backend_error_every": 6,
        "service_hz": 4.0,
        "crashes": 0,
        "rss": rss,
        "latency_ms": {"n": 3, "median": 12.0, "p95": 30.0},
    }
    block = fault_soak_block(result)
    assert "102.2 MiB → 105.8 MiB at the end (+3.6 MiB, +3.5%)" in block, block
    assert "median 12.0 ms, p95 30.0 ms over 3 outputs" in block, block


# -- online adaptation in the node ---------------------------------------------------------------


@pytest.mark.ros
@pytest.mark.timeout(180)
def test_background_online_adaptation_never_stops_the_stream() -> None:
    """With engine.adapt_steps the node keeps processing every frame while the network learns
    the annotated frame on a worker thread; the diagnostics show the adaptation running, then
    done, and the target is tracked throughout."""
    _ros()
    from reliability_node import InProcessNode

    model = str(TEST_DIR.parent / "models" / "protonet-s")
    node = InProcessNode({"model": model, "engine.adapt_steps": 3, "engine.threads": 1})
    try:
        _select_square(node, 1.0)
        assert node.status()[2]["online_adaptation"] == "running"
        states = []
        deadline = time.monotonic() + 150
        index = 1
        while not states or states[-1] == "running":
            assert time.monotonic() < deadline, "the adaptation never finished"
            started = time.monotonic()
            msg = _message(index % FRAMES, "raw")
            assert node.feed(msg, stamp_s=1.0 + index / 10) == "processed"
            assert time.monotonic() - started < 10.0  # no frame waits for the fine-tuning
            (instance,) = node.outputs["_instances_pub"].messages[-1].instances
            assert instance.id == 1 and instance.visible
            states.append(node.status()[2]["online_adaptation"])
            index += 1
        assert states[-1] == "done", states[-1]
        for step in range(3):  # the adapted network tracks on
            assert node.feed(_message(step, "raw"), stamp_s=100.0 + step) == "processed"
            assert node.outputs["_instances_pub"].messages[-1].instances[0].visible
    finally:
        node.close()


# -- the spin loop ----------------------------------------------------------------------------


def test_spin_survives_a_failed_take_and_gives_up_on_a_broken_rclpy() -> None:
    """One exception out of rclpy's take-and-dispatch costs that message, not the node; an
    endless run of them ends the spin with the error."""
    _ros()
    from vos_ros.ros.node import MAX_DISPATCH_FAILURES, spin_resiliently

    class Executor:
        def __init__(self, script: list[str]) -> None:
            self.script, self.calls = script, 0

        def spin_once(self, timeout_sec: float) -> None:
            self.calls += 1
            if self.script[self.calls - 1] == "fail":
                raise RuntimeError("Unable to convert call argument '0' to Python object")

    class Logger:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def error(self, text: str) -> None:
            self.lines.append(text)

    executor, logger = Executor(["ok", "fail", "ok", "fail", "ok"]), Logger()
    spin_resiliently(executor, logger, lambda: executor.calls < 5)
    assert executor.calls == 5 and len(logger.lines) == 2
    assert "(1 in a row)" in logger.lines[0] and "convert call argument" in logger.lines[0]

    broken = Executor(["fail"] * (MAX_DISPATCH_FAILURES + 5))
    with pytest.raises(RuntimeError, match="convert call argument"):
        spin_resiliently(broken, Logger(), lambda: True)
    assert broken.calls == MAX_DISPATCH_FAILURES
