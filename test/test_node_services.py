"""Service handlers and output conversion, in one process with the real flow engine."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from ros_harness import require_ros

require_ros()

from geometry_msgs.msg import Point  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from vos_ros.engine import EngineConfig, build_engine  # noqa: E402
from vos_ros.frame_buffer import FrameBuffer  # noqa: E402
from vos_ros.ros import result_msgs  # noqa: E402
from vos_ros.ros.image_msgs import array_to_msg, msg_to_array  # noqa: E402
from vos_ros.ros.input_frames import frame_from_image, labels_from_image  # noqa: E402
from vos_ros.ros.params import NodeConfig  # noqa: E402
from vos_ros.ros.services import TargetServices  # noqa: E402
from vos_ros.srv import AddObjects, AddPoints, RemoveObjects, SetInitialMask  # noqa: E402

H, W = 96, 128
STAMP = 5_000_000_000


@pytest.fixture
def setup():
    engine = build_engine(EngineConfig(model="flow"))
    frames: FrameBuffer = FrameBuffer(4)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    message = array_to_msg(frame, "rgb8")
    message.header.stamp.sec = STAMP // 1_000_000_000
    frames.put(STAMP, message)
    handlers = TargetServices(
        engine,
        threading.Lock(),
        frames,
        frame_from_image,
        labels_from_image,
        NodeConfig.from_values({"engine.max_targets": 3}),
    )
    return engine, handlers, frame


def _labels() -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[10:40, 10:50] = 1
    labels[50:90, 70:120] = 7
    return labels


def test_set_initial_mask_add_remove_reset(setup):
    engine, handlers, frame = setup
    request = SetInitialMask.Request(
        label_image=array_to_msg(_labels(), "mono8"), ids=[1, 7], class_labels=["cup", "dog"]
    )
    request.stamp.sec = 5
    response = handlers.set_initial_mask(request, SetInitialMask.Response())
    assert response.success, response.message
    assert list(response.tracked_ids) == [1, 7]

    add = AddObjects.Request(
        boxes=[RegionOfInterest(x_offset=60, y_offset=5, width=30, height=30)],
        class_labels=["ball"],
    )
    response = handlers.add_objects(add, AddObjects.Response())
    assert response.success, response.message
    assert list(response.new_ids) == [8]  # never reuses an id
    assert list(response.tracked_ids) == [1, 7, 8]

    response = handlers.add_objects(add, AddObjects.Response())  # a fourth target: over the limit
    assert not response.success and "max_targets" in response.message
    assert list(response.tracked_ids) == [1, 7, 8]

    result = engine.step(frame)
    assert {t.target_id: t.class_label for t in result.targets} == {1: "cup", 7: "dog", 8: "ball"}

    response = handlers.remove_objects(RemoveObjects.Request(ids=[7, 42]), RemoveObjects.Response())
    assert response.success and list(response.removed_ids) == [7]
    assert "42" in response.message and list(response.tracked_ids) == [1, 8]

    response = handlers.reset(Trigger.Request(), Trigger.Response())
    assert response.success and engine.target_ids == []


def test_replace_and_errors_leave_targets_alone(setup):
    engine, handlers, _ = setup
    labels = array_to_msg(_labels(), "mono8")
    ok = handlers.set_initial_mask(
        SetInitialMask.Request(label_image=labels, ids=[1], class_labels=["cup"]),
        SetInitialMask.Response(),
    )
    assert ok.success, ok.message
    assert list(ok.tracked_ids) == [1, 7]  # 7 has pixels but no class entry: class ""
    bad_requests = {
        "already tracked": SetInitialMask.Request(label_image=labels),
        "pair up": SetInitialMask.Request(label_image=labels, ids=[1, 7], class_labels=["a"]),
        "no pixels": SetInitialMask.Request(label_image=labels, ids=[3], class_labels=["a"]),
        "is not buffered": SetInitialMask.Request(
            label_image=labels, replace=True, stamp=Header().stamp.__class__(sec=9)
        ),
        "64x48": SetInitialMask.Request(
            label_image=array_to_msg(np.zeros((48, 64), np.uint8), "mono8"), replace=True
        ),
    }
    for expected, request in bad_requests.items():
        response = handlers.set_initial_mask(request, SetInitialMask.Response())
        assert not response.success and expected in response.message, response.message
        assert list(response.tracked_ids) == [1, 7]
    replaced = handlers.set_initial_mask(
        SetInitialMask.Request(label_image=labels, replace=True), SetInitialMask.Response()
    )
    assert replaced.success and list(replaced.tracked_ids) == [1, 7]
    assert engine.target_ids == [1, 7]


def _points_request(points, labels, box=None, target_id=0, label="") -> AddPoints.Request:
    request = AddPoints.Request(
        points=[Point(x=float(x), y=float(y)) for x, y in points],
        labels=list(labels),
        class_label=label,
        target_id=target_id,
    )
    if box is not None:
        x0, y0, x1, y1 = box
        request.box = RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)
    return request


def test_add_points_adds_and_restarts_a_target_by_grabcut_for_the_flow_family(setup):
    engine, handlers, frame = setup
    assert not engine.segments_clicks  # no prompt encoder: GrabCut seeded with the clicks
    frame[20:60, 30:80] = (250, 40, 40)  # a red object on the random background
    handlers._frames.put(STAMP, array_to_msg(frame, "rgb8"))
    request = _points_request([(50, 40), (5, 5)], [1, 0], label="cup")
    response = handlers.add_points(request, AddPoints.Response())
    assert response.success, response.message
    assert response.target_id == 1 and list(response.tracked_ids) == [1]
    result = engine.step(frame)
    mask = result.targets[0].mask
    assert mask[40, 50] and not mask[5, 5] and result.targets[0].class_label == "cup"
    # a tracked id starts again from new clicks (a box this time) and keeps its class
    again = _points_request([], [], box=(30, 20, 80, 60), target_id=1)
    response = handlers.add_points(again, AddPoints.Response())
    assert response.success and response.target_id == 1, response.message
    assert engine.target_ids == [1] and engine.step(frame).targets[0].class_label == "cup"
    bad_requests = {
        "one label per point": _points_request([(5, 5)], []),
        "neither 1": _points_request([(5, 5)], [2]),
        "outside the 128x96 frame": _points_request([(500, 5)], [1]),
        "at least one positive point": _points_request([(5, 5)], [0]),
        "is not tracked": _points_request([(5, 5)], [1], target_id=9),
        "lies outside": _points_request([], [], box=(200, 200, 220, 220)),
    }
    for expected, request in bad_requests.items():
        response = handlers.add_points(request, AddPoints.Response())
        assert not response.success and expected in response.message, response.message
        assert list(response.tracked_ids) == [1]


def test_result_messages_carry_masks_boxes_and_header(setup):
    engine, handlers, frame = setup
    handlers.set_initial_mask(
        SetInitialMask.Request(label_image=array_to_msg(_labels(), "mono8"), ids=[1, 7],
                               class_labels=["cup", "dog"]),
        SetInitialMask.Response(),
    )  # fmt: skip
    result = engine.step(frame)
    header = Header(frame_id="cam")
    header.stamp.sec = 5
    instances = result_msgs.instance_mask_array(result, header)
    assert [i.id for i in instances.instances] == [1, 7]
    for inst in instances.instances:
        crop = msg_to_array(inst.mask)
        full = np.zeros((H, W), bool)
        box = inst.box
        full[box.y_offset : box.y_offset + box.height, box.x_offset : box.x_offset + box.width] = (
            crop > 0
        )
        assert np.array_equal(full, result.label_image == inst.id)
        assert inst.mask.header == header
    label = result_msgs.label_image_msg(result, header)
    assert label.encoding == "mono8" and np.array_equal(msg_to_array(label), result.label_image)
    assert result_msgs.label_image_msg(result, header, "mono16").encoding == "mono16"
    detections = result_msgs.detections_msg(result, header)
    assert detections.header == header and len(detections.detections) == 2
    overlay = result_msgs.overlay_image(frame, result)
    assert overlay.shape == frame.shape and not np.array_equal(overlay, frame)


def _published_values(snapshot, target_ids: list[int], thresholds=None) -> dict[str, str]:
    """The values of the node's status as ``build_diagnostic_array`` publishes them."""
    from vos_ros.ros.diagnostics import DiagnosticThresholds, build_diagnostic_array, values_of

    array = build_diagnostic_array(
        snapshot,
        name="vos_node",
        hardware_id="/vos_node",
        backend="flow",
        model="flow",
        target_ids=target_ids,
        lifecycle_state="active",
        active=True,
        thresholds=thresholds or DiagnosticThresholds(1000.0, 5.0, 2.0),
        stamp=Header().stamp,
    )
    return values_of(array.status[0])


def test_diagnostic_levels_follow_the_stats():
    from vos_ros.ros.diagnostics import DiagnosticThresholds, NodeStats, status_level

    now = [100.0]
    stats = NodeStats(clock=lambda: now[0])
    limits = DiagnosticThresholds(latency_warn_ms=50.0, stale_input_s=2.0, error_hold_s=2.0)
    assert status_level(stats.snapshot(), False, limits)[0] == 1  # inactive
    assert "waiting" in status_level(stats.snapshot(), True, limits)[1]
    # a publisher in the graph whose samples never arrive points at the DDS transports
    assert "DDS transports" in status_level(stats.snapshot(), True, limits, 1)[1]
    assert "no publisher" in status_level(stats.snapshot(), True, limits, 0)[1]
    for _ in range(3):
        stats.frame_received()
        now[0] += 0.1
    stats.frame_dropped()
    stats.frame_processed(latency_ms=20.0, engine_ms=15.0)
    stats.frame_processed(latency_ms=25.0, engine_ms=None)  # no targets: engine skipped
    assert status_level(stats.snapshot(), True, limits)[0] == 0
    stats.frame_processed(latency_ms=400.0, engine_ms=300.0)
    assert "latency" in status_level(stats.snapshot(), True, limits)[1]
    # a model slower than the camera: 30 Hz in, every third frame processed
    slow = NodeStats(clock=lambda: now[0])
    for index in range(60):
        now[0] += 1 / 30
        slow.frame_received()
        if index % 3:
            slow.frame_dropped()
        else:
            slow.frame_processed(latency_ms=20.0, engine_ms=90.0)
    level, message = status_level(slow.snapshot(), True, limits)
    assert level == 1 and "of the camera's 30.0 Hz: the node skips frames" in message, message
    stats.frame_failed("bad image: unsupported encoding")
    level, message = status_level(stats.snapshot(), True, limits)
    assert level == 2 and "unsupported encoding" in message
    now[0] += 5.0
    assert "no image" in status_level(stats.snapshot(), True, limits)[1]
    values = _published_values(stats.snapshot(), [1, 4], limits)
    assert values["frames_dropped"] == "1" and values["frames_failed"] == "1"
    assert values["engine_mean_ms"] == "157.5" and values["target_ids"] == "1 4"


def test_diagnostics_report_the_median_of_each_stage():
    from vos_ros.ros.diagnostics import NODE_STAGES, NodeStats

    stats = NodeStats()
    assert stats.snapshot().stage_median_ms == {}  # nothing processed: no stage keys
    for wait in (1.0, 2.0, 9.0):
        stats.frame_processed(
            20.0, 15.0, {"input_age": 4.0, "wait": wait, "encoder": 3.0, "adapt": 99.0}
        )
    stats.frame_processed(5.0, None, {"wait": 3.0, "publish": 0.5})  # no targets: no engine
    medians = stats.snapshot().stage_median_ms
    # the median, not the mean (9 ms is an outlier); unknown stages ("adapt") are left out
    assert medians == {"input_age": 4.0, "wait": 2.5, "encoder": 3.0, "publish": 0.5}
    assert list(medians) == [n for n in NODE_STAGES if n in medians]  # in pipeline order
    values = _published_values(stats.snapshot(), [1])
    assert values["stage_wait_median_ms"] == "2.50" and values["stage_publish_median_ms"] == "0.50"
    assert "stage_decoder_median_ms" not in values
    stats.reset()
    assert stats.snapshot().stage_median_ms == {}


def test_diagnostics_report_the_resident_size_after_the_last_heap_trim():
    from vos_ros.ros.diagnostics import NodeStats

    def values() -> dict[str, str]:
        return _published_values(stats.snapshot(), [1, 2])

    stats = NodeStats()
    before = values()  # no trim yet: empty values, not zeros
    assert before["heap_trims"] == "0"
    assert before["resident_after_trim_mib"] == before["targets_at_trim"] == ""
    stats.heap_trimmed(812.34, 3)
    stats.heap_trimmed(806.06, 2)  # the latest trim is reported
    after = values()
    assert after["heap_trims"] == "2"
    assert (after["resident_after_trim_mib"], after["targets_at_trim"]) == ("806.1", "2")
    stats.heap_trimmed(None, 2)  # no procfs: the count goes on, the size is unknown
    assert values()["resident_after_trim_mib"] == "" and values()["heap_trims"] == "3"


def test_label_image_msg_switches_to_mono16_for_ids_above_255():
    from vos_ros.types import FrameResult, TargetResult

    labels = np.zeros((4, 6), np.uint16)
    labels[1:3, 2:4] = 300
    mask = labels == 300
    target = TargetResult(300, "car", mask.astype(np.float32), mask, (2, 1, 4, 3), 1.0, True)
    result = FrameResult(frame_index=0, targets=[target], label_image=labels)
    msg = result_msgs.label_image_msg(result, Header(), "mono8")
    assert msg.encoding == "mono16" and np.array_equal(msg_to_array(msg), labels)
    empty = FrameResult(frame_index=0, targets=[], label_image=np.zeros((4, 6), np.uint16))
    assert result_msgs.label_image_msg(empty, Header()).encoding == "mono8"
