"""Bad input and failing inference never take the node down or cost it its targets.

One in-process node per test (see reliability_node.py): every case of the reliability issue for
camera frames, services and models, with the outcome the node promises: a clear, throttled log
line or service error, an ERROR on /diagnostics for frames, the node still running and the
targets it tracks kept.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from reliability_node import InProcessNode
from ros_harness import require_ros

require_ros()

from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from vos_ros.benchmark.fault_injection import FaultPlan, failing_engine_factory  # noqa: E402
from vos_ros.benchmark.ros_procs import ns_to_time  # noqa: E402
from vos_ros.heap_trim import heap_trim_available, resident_mib  # noqa: E402
from vos_ros.ros.image_msgs import array_to_msg  # noqa: E402
from vos_ros.srv import AddObjects, RemoveObjects, SetInitialMask  # noqa: E402

H, W = 96, 128
ERROR = 2


def _frame(seed: int = 0, shape=(H, W)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((*shape, 3), 90, np.uint8)
    frame += rng.integers(0, 20, frame.shape, dtype=np.uint8)
    y, x = shape[0] // 4, shape[1] // 4
    frame[y : 2 * y, x : 2 * x] = (220, 40, 40)  # the target: a red square
    return frame


def _labels(shape=(H, W)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    y, x = shape[0] // 4, shape[1] // 4
    labels[y : 2 * y, x : 2 * x] = 1
    return labels


def _track_one_target(node: InProcessNode) -> None:
    assert node.feed(array_to_msg(_frame(), "rgb8"), stamp_s=1.0) == "processed"
    response = node.call(
        "set_initial_mask",
        SetInitialMask.Request(
            label_image=array_to_msg(_labels(), "mono8"),
            ids=[1],
            class_labels=["box"],
            stamp=ns_to_time(1_000_000_000),
        ),
    )
    assert response.success, response.message
    assert node.tracked == [1]


@pytest.fixture
def node():
    node = InProcessNode({"input.max_pixels": 200_000})
    yield node
    node.close()


def _bad_frames() -> dict[str, tuple[object, str]]:
    """case -> (message, text the error must contain)."""
    frame = _frame()
    cases: dict[str, tuple[object, str]] = {}
    msg = array_to_msg(frame, "rgb8")
    msg.encoding = "yuv422_yuy2"
    cases["unknown encoding"] = (msg, "unsupported image encoding 'yuv422_yuy2'")
    cases["unsupported 16-bit frame"] = (
        array_to_msg(np.zeros((H, W), np.uint16), "mono16"),
        "unsupported image encoding 'mono16'",
    )
    cases["zero width"] = (Image(encoding="rgb8", height=H, width=0, step=0), "empty image")
    cases["zero height"] = (Image(encoding="rgb8", height=0, width=W, step=W * 3), "empty image")
    short = array_to_msg(frame, "rgb8")
    short.data = bytes(short.data)[:-7]
    cases["data shorter than step*height"] = (short, "needs 36864 data bytes")
    long = array_to_msg(frame, "rgb8")
    long.data = bytes(long.data) + b"\0" * 5
    cases["data longer than step*height"] = (long, "got 36869")
    narrow = array_to_msg(frame, "rgb8")
    narrow.step = W * 3 - 1
    cases["step smaller than a row"] = (narrow, "step 383 is smaller than one row")
    cases["too small to track"] = (
        array_to_msg(np.zeros((4, 4, 3), np.uint8), "rgb8"),
        "at least 8 pixels",
    )
    cases["larger than input.max_pixels"] = (
        array_to_msg(np.zeros((500, 500, 3), np.uint8), "rgb8"),
        "above input.max_pixels = 200000",
    )
    garbage = CompressedImage(format="jpeg")
    garbage.data = b"\xff\xd8\xff\xe0 this is not a jpeg"
    cases["compressed image that does not decode"] = (garbage, "cannot decode compressed image")
    _, png = cv2.imencode(".png", frame)
    cut = CompressedImage(format="png")
    cut.data = png.tobytes()[:200]
    cases["truncated compressed image"] = (cut, "cannot decode compressed image")
    cases["empty compressed image"] = (CompressedImage(format="png"), "empty compressed image")
    return cases


@pytest.mark.timeout(120)
def test_each_bad_frame_is_refused_with_a_reason_and_targets_are_kept(node):
    _track_one_target(node)
    for case, (msg, reason) in _bad_frames().items():
        assert node.feed(msg) == "failed", case
        level, message, values = node.status()
        assert level == ERROR and reason in message, (case, message)
        assert reason in values["last_error"], case
        assert node.tracked == [1], case
        # the next good frame is processed and still shows the target
        assert node.feed(array_to_msg(_frame(node.fed), "rgb8")) == "processed", case
        assert 1 in np.unique(node.last_label_image()), case
    _, _, values = node.status()
    assert int(values["frames_failed"]) == len(_bad_frames())


@pytest.mark.timeout(60)
def test_big_endian_flag_on_8_bit_frames_changes_nothing(node):
    _track_one_target(node)
    msg = array_to_msg(_frame(3), "rgb8")
    msg.is_bigendian = 1  # meaningless for 8-bit channels: the frame is used as it is
    assert node.feed(msg) == "processed"
    assert node.tracked == [1]


@pytest.mark.timeout(60)
def test_resolution_change_mid_stream_rescales_the_targets(node):
    _track_one_target(node)
    assert node.feed(array_to_msg(_frame(1), "rgb8")) == "processed"
    before = node.last_label_image() == 1
    # the camera switches to half the resolution (and later back)
    assert node.feed(array_to_msg(_frame(2, (H // 2, W // 2)), "rgb8")) == "processed"
    small = node.last_label_image()
    assert small.shape == (H // 2, W // 2) and node.tracked == [1]
    expected = cv2.resize(
        before.astype(np.uint8), (W // 2, H // 2), interpolation=cv2.INTER_NEAREST
    )
    overlap = np.logical_and(small == 1, expected > 0).sum() / max(1, (expected > 0).sum())
    assert overlap > 0.8
    instances = node.outputs["_instances_pub"].messages[-1]
    assert (instances.image_height, instances.image_width) == (H // 2, W // 2)
    assert [i.id for i in instances.instances] == [1]
    # a request drawn on a frame at the new size works too (scaled to the stream's size)
    assert node.feed(array_to_msg(_frame(4, (H // 2, W // 2)), "rgb8"), stamp_s=50.0) == "processed"
    labels = np.zeros((H // 2, W // 2), np.uint8)
    labels[30:40, 45:60] = 2
    response = node.call(
        "set_initial_mask",
        SetInitialMask.Request(
            label_image=array_to_msg(labels, "mono8"),
            ids=[2],
            class_labels=["cup"],
            stamp=ns_to_time(50 * 10**9),
        ),
    )
    assert response.success, response.message
    assert node.feed(array_to_msg(_frame(5), "rgb8")) == "processed"
    assert node.last_label_image().shape == (H, W) and node.tracked == [1, 2]
    # after ~/reset the stream restarts at whatever size comes next
    assert node.call("reset", Trigger.Request()).success
    assert node.feed(array_to_msg(_frame(6, (H // 2, W // 2)), "rgb8")) == "processed"


@pytest.mark.timeout(60)
def test_service_requests_with_bad_content_are_refused_and_change_nothing(node):
    empty = array_to_msg(np.zeros((H, W), np.uint8), "mono8")
    response = node.call("set_initial_mask", SetInitialMask.Request(label_image=empty))
    assert not response.success and "no frame received yet" in response.message  # before a frame
    response = node.call(
        "add_objects",
        AddObjects.Request(boxes=[RegionOfInterest(x_offset=1, y_offset=1, width=5, height=5)]),
    )
    assert not response.success and "no frame received yet" in response.message
    _track_one_target(node)
    labels = array_to_msg(_labels(), "mono8")
    many = np.zeros((H, W), np.uint8)
    for i in range(20):  # 20 targets, above engine.max_targets (16)
        many[i * 4 : i * 4 + 3, :10] = i + 2
    wrong_ids = _labels()
    wrong_ids[0:5, 0:5] = 3
    cases = {
        "wrong size": (
            "set_initial_mask",
            SetInitialMask.Request(label_image=array_to_msg(_labels((48, 64)), "mono8")),
            "label_image is 64x48 but the frame is 128x96",
        ),
        "wrong encoding": (
            "set_initial_mask",
            SetInitialMask.Request(label_image=array_to_msg(_frame(), "rgb8")),
            "label image encoding must be one of",
        ),
        "16-bit float labels": (
            "set_initial_mask",
            SetInitialMask.Request(label_image=array_to_msg(np.zeros((H, W), np.float32), "32FC1")),
            "label image encoding must be one of",
        ),
        "ids beyond engine.max_targets": (
            "set_initial_mask",
            SetInitialMask.Request(label_image=array_to_msg(many, "mono8")),
            "engine.max_targets is 16",
        ),
        "listed id beyond the label range": (
            "set_initial_mask",
            SetInitialMask.Request(
                label_image=labels, ids=[70_000], class_labels=["x"], replace=True
            ),
            "ids [70000] are listed but have no pixels",
        ),
        "labels that do not match the ids": (
            "set_initial_mask",
            SetInitialMask.Request(
                label_image=labels, ids=[1, 3], class_labels=["x"], replace=True
            ),
            "must pair up",
        ),
        "listed id without pixels": (
            "set_initial_mask",
            SetInitialMask.Request(
                label_image=array_to_msg(wrong_ids, "mono8"), ids=[4], class_labels=["x"]
            ),
            "ids [4] are listed but have no pixels",
        ),
        "empty mask": (
            "set_initial_mask",
            SetInitialMask.Request(label_image=empty),
            "no target pixels",
        ),
        "stamp not buffered": (
            "set_initial_mask",
            SetInitialMask.Request(label_image=labels, stamp=ns_to_time(77 * 10**9), replace=True),
            "buffered",
        ),
        "box outside the image": (
            "add_objects",
            AddObjects.Request(
                boxes=[RegionOfInterest(x_offset=W + 5, y_offset=0, width=9, height=9)]
            ),
            "outside",
        ),
        "box with no size": (
            "add_objects",
            AddObjects.Request(boxes=[RegionOfInterest(x_offset=5, y_offset=5, width=0, height=9)]),
            "non-positive size",
        ),
        "no boxes": ("add_objects", AddObjects.Request(), "no boxes given"),
        "box labels that do not match": (
            "add_objects",
            AddObjects.Request(
                boxes=[RegionOfInterest(x_offset=5, y_offset=5, width=9, height=9)],
                class_labels=["a", "b"],
            ),
            "1 boxes but 2 class labels",
        ),
        "remove nothing": ("remove_objects", RemoveObjects.Request(), "no ids given"),
    }
    for case, (service, request, text) in cases.items():
        response = node.call(service, request)
        assert not response.success, (case, response.message)
        assert text in response.message, (case, response.message)
        assert list(response.tracked_ids) == [1] and node.tracked == [1], case
    # unknown ids are not an error: they are named and ignored
    response = node.call("remove_objects", RemoveObjects.Request(ids=[9, 4000]))
    assert response.success and "[9, 4000]" in response.message and node.tracked == [1]


@pytest.mark.timeout(60)
def test_detector_prompts_with_negative_sizes_are_refused(node):
    from vos_ros.msg import Detection, DetectionArray

    _track_one_target(node)
    services = node.node._prompts_sub.callback
    detection = Detection(class_label="cup", center_x=50.0, center_y=40.0, size_x=-10.0, size_y=5.0)
    prompt = DetectionArray(detections=[detection])
    prompt.header.stamp = ns_to_time(int(node.fed * 1e9))
    services(prompt)
    level, _, values = node.status()
    assert level == ERROR and "~/prompts" in values["last_error"]
    assert "non-positive size" in values["last_error"] and node.tracked == [1]


@pytest.mark.timeout(120)
def test_many_service_calls_per_second_while_streaming(node):
    """Four threads hammer the services while frames stream in: every call gets an answer,
    frames keep flowing, and the node's view of the targets stays consistent."""
    _track_one_target(node)
    stop = threading.Event()
    errors: list[BaseException] = []
    answered = [0]

    def caller(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                choice = int(rng.integers(0, 4))
                if choice == 0:
                    x, y = (int(v) for v in rng.integers(0, 100, 2))
                    request = AddObjects.Request(
                        boxes=[RegionOfInterest(x_offset=x, y_offset=y % 80, width=12, height=10)]
                    )
                    response = node.call("add_objects", request)
                elif choice == 1:
                    ids = [int(v) for v in rng.integers(2, 40, 2)]
                    response = node.call("remove_objects", RemoveObjects.Request(ids=ids))
                elif choice == 2:
                    response = node.call(
                        "set_initial_mask",
                        SetInitialMask.Request(label_image=array_to_msg(_labels(), "mono8")),
                    )  # refused: id 1 is tracked
                else:
                    response = node.call(
                        "add_objects", AddObjects.Request(boxes=[RegionOfInterest()])
                    )  # refused: zero size
                assert response.message
                answered[0] += 1
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    processed = 0
    try:
        while time.monotonic() - start < 4.0:
            if node.feed(array_to_msg(_frame(node.fed), "rgb8")) == "processed":
                processed += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert answered[0] > 20 and processed > 5
    assert 1 in node.tracked  # never removed: the callers only remove ids >= 2
    _, _, values = node.status()
    assert values["target_ids"] == " ".join(str(i) for i in node.tracked)


@pytest.mark.skipif(not heap_trim_available(), reason="no malloc_trim in this C library")
def test_diagnostics_report_the_resident_size_after_heap_trims():
    """The inference thread trims the heap between frames and reads the resident size then;
    /diagnostics carry that reading, the targets tracked then and the count of trims."""
    node = InProcessNode({"memory.trim_period_s": 0.2})
    try:
        _track_one_target(node)
        tracking_from = int(node.status()[2]["heap_trims"])  # trims so far: maybe none
        deadline = time.monotonic() + 30.0
        values = node.status()[2]
        while int(values["heap_trims"]) < tracking_from + 2 and time.monotonic() < deadline:
            node.feed(array_to_msg(_frame(node.fed), "rgb8"))
            time.sleep(0.1)
            values = node.status()[2]
        assert int(values["heap_trims"]) >= tracking_from + 2
        assert values["targets_at_trim"] == "1"
        # this process's own resident size, read a moment later
        assert float(values["resident_after_trim_mib"]) == pytest.approx(resident_mib(), abs=100)
    finally:
        node.close()


# -- failing inference ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_backend_error_mid_stream_is_reported_and_the_next_frame_recovers():
    plan = FaultPlan(every=3)
    node = InProcessNode({"diagnostics.period_s": 0.5}, engine_factory=failing_engine_factory(plan))
    try:
        _track_one_target(node)  # frame 1 has no target yet: the engine is skipped
        outcomes = [node.feed(array_to_msg(_frame(i), "rgb8")) for i in range(9)]
        assert outcomes == ["processed", "processed", "failed"] * 3
        level, message, values = node.status()
        assert level == ERROR and "injected backend failure" in message
        assert values["frames_failed"] == "3" and node.tracked == [1]
        assert 1 in np.unique(node.last_label_image())
        time.sleep(2.2)  # errors hold the status at ERROR for 2 s, then it clears
        assert node.feed(array_to_msg(_frame(20), "rgb8")) == "processed"
        assert node.status()[0] == 0
    finally:
        node.close()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from engine_testlib import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("models") / "tiny")


NETWORK = {"backend": "onnxruntime", "engine.device": "cpu", "engine.threads": 1}


@pytest.mark.timeout(180)
def test_network_backend_failing_inside_a_step_keeps_targets_and_recovers(tiny_model):
    plan = FaultPlan(every=5)  # encoder and decoder calls: fails inside engine.step
    node = InProcessNode(
        {"model": str(tiny_model), **NETWORK, "warmup": True},
        engine_factory=failing_engine_factory(plan),
    )
    try:
        _track_one_target(node)
        outcomes = [node.feed(array_to_msg(_frame(i), "rgb8")) for i in range(12)]
        assert "failed" in outcomes and outcomes.count("processed") >= 6
        assert plan.failures >= 1 and node.tracked == [1]
        level, _, values = node.status()
        assert level == ERROR and "injected backend failure" in values["last_error"]
        while node.feed(array_to_msg(_frame(30 + node.fed), "rgb8")) != "processed":
            pass
        assert 1 in np.unique(node.last_label_image())  # still tracked after the failures
    finally:
        node.close()


@pytest.mark.timeout(120)
def test_permanently_failing_backend_recovers_after_reconfigure():
    plans = [FaultPlan(permanent_after=1), FaultPlan()]  # the first engine breaks for good
    factories = [failing_engine_factory(plan) for plan in plans]
    node = InProcessNode(engine_factory=lambda config: factories.pop(0)(config))
    try:
        _track_one_target(node)
        for i in range(3):
            assert node.feed(array_to_msg(_frame(i), "rgb8")) == "failed"
        assert node.status()[0] == ERROR
        node.deactivate()
        node.cleanup()
        assert node.configure()  # a new engine
        node.activate()
        _track_one_target(node)  # targets are given again after a re-configure
        assert node.feed(array_to_msg(_frame(9), "rgb8")) == "processed"
        assert 1 in np.unique(node.last_label_image())
    finally:
        node.close()


# -- model files ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["missing", "truncated", "checksum", "no manifest", "outside"])
def test_bad_model_files_fail_configure_naming_the_file(tiny_model, tmp_path, damage):
    import shutil

    folder = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model, folder)
    decoder = folder / "decoder.onnx"
    data = decoder.read_bytes()
    parameters = {"model": str(folder), **NETWORK}
    expected = str(decoder)
    if damage == "missing":
        decoder.unlink()
    elif damage == "truncated":
        decoder.write_bytes(data[: len(data) // 2])
    elif damage == "checksum":
        decoder.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "no manifest":
        (folder / "model.yaml").unlink()
        expected = str(folder / "model.yaml")
    else:  # a model outside the allowed folder, reached with '..'
        parameters["model_root"] = str(tmp_path / "models" / "allowed")
        parameters["model"] = str(tmp_path / "models" / "allowed" / ".." / "tiny")
        expected = "outside model_root"
    node = InProcessNode(parameters, activate=False)
    try:
        assert not node.configure()
        level, _, values = node.status()
        assert level == ERROR and expected in values["last_error"], values["last_error"]
        assert values["lifecycle_state"] == "unconfigured"
    finally:
        node.close()


@pytest.mark.timeout(180)
def test_backend_failing_during_a_request_answers_with_an_error(tiny_model):
    plan = FaultPlan()
    node = InProcessNode(
        {"model": str(tiny_model), **NETWORK}, engine_factory=failing_engine_factory(plan)
    )
    try:
        _track_one_target(node)
        plan.permanent_after = plan.calls + 1  # the GPU is gone from now on
        box = RegionOfInterest(x_offset=70, y_offset=60, width=20, height=20)
        response = node.call("add_objects", AddObjects.Request(boxes=[box]))
        assert not response.success and "internal error" in response.message
        assert "injected backend failure" in response.message
        assert list(response.tracked_ids) == node.tracked == [1]
        # replace=true had removed the old targets before the engine failed: the answer says so
        labels = np.zeros((H, W), np.uint8)
        labels[60:80, 70:90] = 5
        response = node.call(
            "set_initial_mask",
            SetInitialMask.Request(
                label_image=array_to_msg(labels, "mono8"), ids=[5], class_labels=["x"], replace=True
            ),
        )
        assert not response.success and "were already removed" in response.message
        assert list(response.tracked_ids) == node.tracked == []
    finally:
        node.close()


def test_derived_outputs_are_built_only_for_subscribers(node):
    """~/instances always; ~/label_image, ~/detections and ~/overlay only while subscribed."""
    _track_one_target(node)
    for name in ("_label_pub", "_detections_pub", "_overlay_pub"):
        node.outputs[name].get_subscription_count = lambda: 0
    before = {name: len(capture.messages) for name, capture in node.outputs.items()}
    assert node.feed(array_to_msg(_frame(1), "rgb8"), stamp_s=2.0) == "processed"
    after = {name: len(capture.messages) for name, capture in node.outputs.items()}
    assert after["_instances_pub"] == before["_instances_pub"] + 1
    for name in ("_label_pub", "_detections_pub", "_overlay_pub"):
        assert after[name] == before[name], name
