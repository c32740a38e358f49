"""Property-based tests of the node's service handlers with generated requests.

Each example starts from a node state with two tracked targets (ids 1 and 2) on a 64x48 stream,
in one process with the real flow engine behind the node's resolution adapter. For every
generated request:

- no exception escapes a handler (every problem is ``success = false`` with a message);
- a rejected request leaves the tracked targets exactly as they were (engine and response agree);
- an accepted request does what it says; an independent oracle decides which requests are
  acceptable, so wrongly refused requests fail the test too.

Profiles: see test/hypothesis_profiles.py (``HYPOTHESIS_PROFILE=long`` for the long run).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import hypothesis_profiles  # noqa: F401 - loads the settings profile
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from ros_harness import require_ros

require_ros()

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from sensor_msgs.msg import Image, RegionOfInterest  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from vos_ros.engine import EngineConfig, build_engine  # noqa: E402
from vos_ros.frame_buffer import FrameBuffer  # noqa: E402
from vos_ros.image_conversion import array_to_image_fields  # noqa: E402
from vos_ros.ros.input_frames import LABEL_ENCODINGS, frame_from_image, labels_from_image  # noqa: E402
from vos_ros.ros.params import NodeConfig  # noqa: E402
from vos_ros.ros.services import TargetServices  # noqa: E402
from vos_ros.ros.stream_size import ResolutionAdapter  # noqa: E402
from vos_ros.srv import AddObjects, AddPoints, RemoveObjects, SetInitialMask  # noqa: E402

H, W = 48, 64  # the stream's size
SMALL_H, SMALL_W = 32, 40  # a buffered frame after the camera changed resolution
MAX_TARGETS = 5
NS = 1_000_000_000
# stamp (s) -> what is buffered there; 0 = "newest", 9 = never received
FRAME_STAMPS = {1: "frame", 2: "frame", 3: "small", 4: "bad"}
STAMPS = [0, 1, 2, 3, 4, 9]
NEWEST = 2  # stamp 0 resolves to the newest buffered frame: the last one put


@dataclass
class NodeUnderTest:
    engine: ResolutionAdapter
    services: TargetServices

    @property
    def tracked(self) -> list[int]:
        return sorted(self.engine.target_ids)


def _frame_msg(stamp_s: int, kind: str) -> Image:
    rng = np.random.default_rng(stamp_s)
    if kind == "small":
        msg = Image(
            **array_to_image_fields(rng.integers(0, 255, (SMALL_H, SMALL_W, 3), np.uint8), "rgb8")
        )
    else:
        msg = Image(**array_to_image_fields(rng.integers(0, 255, (H, W, 3), np.uint8), "rgb8"))
        if kind == "bad":
            msg.encoding = "yuv422"
    msg.header.stamp = Time(sec=stamp_s)
    return msg


def make_node() -> NodeUnderTest:
    """Targets 1 ("cup") and 2 ("dog") tracked on a 64x48 stream, four frames buffered."""
    engine = ResolutionAdapter(build_engine(EngineConfig(model="flow", processing_short_side=64)))
    frames: FrameBuffer = FrameBuffer(8)
    for stamp_s in (3, 4, 1, 2):  # put order: stamp 2 is the newest
        frames.put(stamp_s * NS, _frame_msg(stamp_s, FRAME_STAMPS[stamp_s]))
    config = NodeConfig.from_values({"engine.max_targets": MAX_TARGETS, "box_prompt.method": "box"})
    services = TargetServices(
        engine, threading.Lock(), frames, frame_from_image, labels_from_image, config
    )
    labels = np.zeros((H, W), np.uint16)
    labels[4:20, 4:24] = 1
    labels[26:44, 36:60] = 2
    frame = frame_from_image(_frame_msg(1, "frame"))
    engine.add_targets(frame, labels, {1: "cup", 2: "dog"})
    engine.step(frame_from_image(_frame_msg(2, "frame")))
    return NodeUnderTest(engine, services)


def _frame_size(stamp_s: int) -> tuple[int, int] | None:
    """(H, W) of the frame a request with this stamp refers to; None = no usable frame."""
    kind = FRAME_STAMPS.get(stamp_s or NEWEST)
    return {"frame": (H, W), "small": (SMALL_H, SMALL_W)}.get(kind)


# -- set_initial_mask ---------------------------------------------------------------------------

ID_POOL = [0, 1, 2, 3, 4, 5, 6, 7, 255, 256, 65535, 70_000, 2**32 - 1]


def _mostly(draw, likely, otherwise):
    """``likely`` four times out of five, else a draw from ``otherwise`` (a strategy)."""
    return likely if draw(st.integers(0, 4)) else draw(otherwise)


@st.composite
def label_images(draw, shape: tuple[int, int]):
    """(msg, uint16 array, or None when the message is malformed or of another encoding)."""
    encoding = _mostly(
        draw,
        draw(st.sampled_from(LABEL_ENCODINGS)),
        st.sampled_from(["rgb8", "32FC1", "bgr8", "mono16 ", "MONO8"]),
    )
    wide = encoding in ("mono16", "16UC1")
    values = [v for v in [0, 1, 2, 3, 4, 5, 6, 7, 255, 256, 65535] if wide or v <= 255]
    labels = np.zeros(shape, np.uint16)
    for _ in range(draw(st.integers(0, 4))):
        value = draw(st.sampled_from(values))
        y0, x0 = draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))
        y1 = draw(st.integers(y0 + 1, shape[0]))
        x1 = draw(st.integers(x0 + 1, shape[1]))
        labels[y0:y1, x0:x1] = value
    if encoding in ("rgb8", "bgr8"):
        return Image(**array_to_image_fields(np.zeros((*shape, 3), np.uint8), encoding)), None
    if encoding == "32FC1":
        return Image(**array_to_image_fields(labels.astype(np.float32), encoding)), None
    as_16_bit = wide or encoding == "mono16 "
    fields = array_to_image_fields(
        labels.astype(np.uint16 if as_16_bit else np.uint8), "mono16" if as_16_bit else "mono8"
    )
    fields["encoding"] = encoding
    msg = Image(**fields)
    if draw(st.integers(0, 9)) == 0:  # truncated data
        msg.data = bytes(msg.data)[: draw(st.integers(0, max(0, len(msg.data) - 1)))]
        return msg, None
    return msg, (labels if encoding in LABEL_ENCODINGS else None)


@st.composite
def mask_requests(draw):
    """Mostly well-formed requests (so that acceptance is tested too), each part sometimes off."""
    stamp_s = _mostly(draw, draw(st.sampled_from([0, 1, 2, 3])), st.sampled_from([4, 9]))
    shape = _mostly(
        draw,
        _frame_size(stamp_s) or (H, W),
        st.sampled_from([(H, W), (SMALL_H, SMALL_W), (H, W - 1), (1, 1), (H + 2, W)]),
    )
    msg, labels = draw(label_images(shape))
    present = sorted(set(np.unique(labels).tolist()) - {0}) if labels is not None else []
    ids = _mostly(
        draw,
        draw(st.lists(st.sampled_from(present), max_size=3)) if present else [],
        st.lists(st.sampled_from(ID_POOL), max_size=4),
    )
    n_labels = _mostly(draw, len(ids), st.sampled_from([max(0, len(ids) - 1), len(ids) + 1]))
    class_labels = draw(st.lists(st.text(max_size=6), min_size=n_labels, max_size=n_labels))
    replace = draw(st.booleans())
    request = SetInitialMask.Request(
        label_image=msg,
        ids=ids,
        class_labels=class_labels,
        stamp=Time(sec=stamp_s),
        replace=replace,
    )
    return request, labels


def expected_after_mask(request, labels, before: list[int]) -> list[int] | None:
    """The oracle: ids tracked after the request, or None when it must be refused."""
    size = _frame_size(request.stamp.sec)
    if size is None or labels is None or labels.shape != size:
        return None
    ids = [int(i) for i in request.ids]
    if len(ids) != len(request.class_labels):
        return None
    present = set(np.unique(labels).tolist()) - {0}
    if not set(ids) <= present:
        return None
    if not present:  # an empty mask never drops the targets, not even with replace
        return None
    if request.replace:
        return sorted(present) if len(present) <= MAX_TARGETS else None
    if present & set(before) or len(before) + len(present) > MAX_TARGETS:
        return None
    return sorted(set(before) | present)


@given(mask_requests())
def test_set_initial_mask_accepts_exactly_the_valid_requests(case):
    request, labels = case
    node = make_node()
    before = node.tracked
    response = node.services.set_initial_mask(request, SetInitialMask.Response())
    expected = expected_after_mask(request, labels, before)
    assert response.message
    if expected is None:
        assert not response.success, f"accepted: {response.message}"
        assert node.tracked == before and list(response.tracked_ids) == before
        return
    assert response.success, f"refused: {response.message}"
    assert node.tracked == expected == list(response.tracked_ids)
    given_classes = dict(zip([int(i) for i in request.ids], request.class_labels, strict=True))
    result = node.engine.step(frame_from_image(_frame_msg(2, "frame")))
    classes = {t.target_id: t.class_label for t in result.targets}
    for target_id in set(np.unique(labels).tolist()) - {0}:
        assert classes[target_id] == given_classes.get(target_id, "")
    if not request.replace:  # the old targets keep their classes
        assert {classes[1], classes[2]} == {"cup", "dog"}


# -- add_objects ----------------------------------------------------------------------------------


@st.composite
def box_requests(draw):
    """Mostly boxes inside the frame; sometimes outside, empty, huge or too many."""
    stamp_s = _mostly(draw, draw(st.sampled_from([0, 1, 2, 3])), st.sampled_from([4, 9]))
    count = _mostly(draw, draw(st.integers(1, 3)), st.integers(0, 5))
    boxes = []
    for _ in range(count):
        x, y = draw(st.integers(0, W - 1)), draw(st.integers(0, H - 1))
        width, height = draw(st.integers(1, 30)), draw(st.integers(1, 30))
        if not draw(st.integers(0, 5)):  # one part off
            off = st.sampled_from([0, W, 2**31, 2**32 - 1])
            part = draw(st.sampled_from(["x", "y", "width", "height"]))
            value = draw(off)
            x, y, width, height = (
                value if part == "x" else x,
                value if part == "y" else y,
                value if part == "width" else width,
                value if part == "height" else height,
            )
        boxes.append(RegionOfInterest(x_offset=x, y_offset=y, width=width, height=height))
    n_labels = _mostly(draw, draw(st.sampled_from([0, len(boxes)])), st.just(len(boxes) + 1))
    labels = draw(st.lists(st.text(max_size=5), min_size=n_labels, max_size=n_labels))
    return AddObjects.Request(boxes=boxes, class_labels=labels, stamp=Time(sec=stamp_s))


def boxes_acceptable(request, before: list[int]) -> bool:
    size = _frame_size(request.stamp.sec)
    boxes = list(request.boxes)
    if size is None or not boxes or len(request.class_labels) not in (0, len(boxes)):
        return False
    height, width = size
    painted = np.zeros(size, np.int32)
    for index, roi in enumerate(boxes):
        if roi.width == 0 or roi.height == 0 or roi.x_offset >= width or roi.y_offset >= height:
            return False
        y1 = min(height, roi.y_offset + roi.height)
        x1 = min(width, roi.x_offset + roi.width)
        painted[roi.y_offset : y1, roi.x_offset : x1] = index + 1
    if len(before) + len(boxes) > MAX_TARGETS:
        return False
    return set(np.unique(painted).tolist()) - {0} == set(range(1, len(boxes) + 1))


@given(box_requests())
def test_add_objects_accepts_exactly_the_valid_requests(request):
    node = make_node()
    before = node.tracked
    first_free = node.engine.next_free_id()
    response = node.services.add_objects(request, AddObjects.Response())
    assert response.message
    if not boxes_acceptable(request, before):
        assert not response.success, f"accepted: {response.message}"
        assert node.tracked == before and list(response.tracked_ids) == before
        return
    assert response.success, f"refused: {response.message}"
    new_ids = list(range(first_free, first_free + len(request.boxes)))
    assert list(response.new_ids) == new_ids
    assert node.tracked == sorted(before + new_ids) == list(response.tracked_ids)


@given(
    st.lists(
        st.tuples(*[st.floats(allow_nan=True, allow_infinity=True, width=32)] * 4), max_size=3
    ),
    st.sampled_from(STAMPS),
)
def test_prompt_boxes_from_a_detector_never_escape_as_other_errors(boxes, stamp_s):
    node = make_node()
    before = node.tracked
    try:
        new_ids = node.services.add_prompt_boxes(Time(sec=stamp_s), boxes, ["x"] * len(boxes))
    except ValueError as exc:  # the node logs it (throttled) and counts an error
        assert str(exc)
        assert node.tracked == before
        return
    assert boxes and node.tracked == sorted(before + new_ids)


# -- add_points ------------------------------------------------------------------------------------

COORDINATES = st.one_of(
    st.floats(-5, W + 5),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -1.0, 0.0]),
)


@st.composite
def points_requests(draw):
    """Mostly clicks inside the frame with matching 0/1 labels; sometimes a box, clicks
    outside or not finite, labels that do not pair or are neither 0 nor 1, other target ids."""
    stamp_s = _mostly(draw, draw(st.sampled_from([0, 1, 2, 3])), st.sampled_from([4, 9]))
    count = _mostly(draw, draw(st.integers(1, 3)), st.integers(0, 4))
    inside = st.tuples(st.floats(0, SMALL_W - 1), st.floats(0, SMALL_H - 1))
    anywhere = st.tuples(COORDINATES, COORDINATES)
    points = [_mostly(draw, draw(inside), anywhere) for _ in range(count)]
    labels = [_mostly(draw, draw(st.sampled_from([1, 1, 0])), st.integers(0, 255)) for _ in points]
    if not draw(st.integers(0, 5)):
        labels = labels[:-1] if labels else [1]
    request = AddPoints.Request(
        stamp=Time(sec=stamp_s),
        points=[Point(x=x, y=y) for x, y in points],
        labels=labels,
        class_label=draw(st.text(max_size=5)),
        target_id=_mostly(draw, 0, st.sampled_from([1, 2, 7, 2**32 - 1])),
    )
    if not draw(st.integers(0, 3)):
        x, y = draw(st.integers(0, W + 10)), draw(st.integers(0, H + 10))
        request.box = RegionOfInterest(
            x_offset=x, y_offset=y, width=draw(st.integers(0, 30)), height=draw(st.integers(0, 30))
        )
    return request


def clicks_acceptable(request, before: list[int]) -> bool | None:
    """True / False, or None where GrabCut decides (a box with only negative clicks)."""
    size = _frame_size(request.stamp.sec)
    points = [(p.x, p.y) for p in request.points]
    labels = list(request.labels)
    if size is None or len(points) != len(labels) or any(v not in (0, 1) for v in labels):
        return False
    height, width = size
    for x, y in points:
        if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < width and 0 <= y < height):
            return False
    box = request.box
    has_box = box.width > 0 and box.height > 0
    if has_box and (box.x_offset >= width or box.y_offset >= height):
        return False
    if not has_box and 1 not in labels:
        return False
    if request.target_id and request.target_id not in before:
        return False
    if not request.target_id and len(before) + 1 > MAX_TARGETS:
        return False
    return None if points and 1 not in labels else True


@given(points_requests())
def test_add_points_accepts_exactly_the_valid_requests(request):
    node = make_node()
    before = node.tracked
    first_free = node.engine.next_free_id()
    response = node.services.add_points(request, AddPoints.Response())
    assert response.message
    acceptable = clicks_acceptable(request, before)
    if acceptable is None:  # GrabCut decides; either way the answer and the engine agree
        acceptable = response.success
    if not acceptable:
        assert not response.success, f"accepted: {response.message}"
        if not request.target_id:  # a refused restart may have dropped its target (says so)
            assert node.tracked == before and list(response.tracked_ids) == before
        else:
            assert list(response.tracked_ids) == node.tracked
        return
    assert response.success, f"refused: {response.message}"
    expected_id = request.target_id or first_free
    assert response.target_id == expected_id
    assert node.tracked == sorted(set(before) | {expected_id}) == list(response.tracked_ids)


# -- remove_objects / reset -----------------------------------------------------------------------


@given(st.lists(st.sampled_from(ID_POOL), max_size=6))
def test_remove_objects_removes_the_tracked_ids_and_names_the_others(ids):
    node = make_node()
    before = node.tracked
    response = node.services.remove_objects(
        RemoveObjects.Request(ids=ids), RemoveObjects.Response()
    )
    if not ids:
        assert not response.success and node.tracked == before
        return
    removed = sorted(set(ids) & set(before))
    assert response.success and list(response.removed_ids) == removed
    assert node.tracked == sorted(set(before) - set(removed)) == list(response.tracked_ids)
    unknown = sorted(set(ids) - set(before))
    if unknown:
        assert str(unknown) in response.message


# -- random sequences of calls and frames ---------------------------------------------------------

OPERATIONS = st.sampled_from(
    ["mask", "boxes", "clicks", "remove", "reset", "frame", "frame", "small_frame", "bad_request"]
)


@given(st.lists(st.tuples(OPERATIONS, st.integers(0, 2**16)), min_size=1, max_size=12))
def test_random_call_sequences_keep_node_and_engine_in_step(operations):
    """Services and frames in any order (also across a resolution change) never disagree about
    the tracked targets, and every frame's outputs show only tracked ids at the frame's size."""
    node = make_node()
    model = set(node.tracked)
    for operation, seed in operations:
        rng = np.random.default_rng(seed)
        if operation == "mask":
            labels = np.zeros((H, W), np.uint8)
            new_id = int(rng.integers(1, 9))
            labels[rng.integers(0, 30) :][:10, rng.integers(0, 50) :][:, :10] = new_id
            response = node.services.set_initial_mask(
                SetInitialMask.Request(
                    label_image=Image(**array_to_image_fields(labels, "mono8")),
                    stamp=Time(sec=1),
                    replace=bool(rng.integers(0, 2)),
                ),
                SetInitialMask.Response(),
            )
            if response.success:
                model = set(response.tracked_ids)
        elif operation == "boxes":
            x, y = (int(v) for v in rng.integers(0, 50, 2))
            response = node.services.add_objects(
                AddObjects.Request(
                    boxes=[RegionOfInterest(x_offset=x, y_offset=y, width=9, height=7)]
                ),
                AddObjects.Response(),
            )
            if response.success:
                model |= set(response.new_ids)
        elif operation == "clicks":
            x, y = (float(v) for v in rng.integers(0, 40, 2))
            target_id = int(rng.choice([0, 0, 1, 2]))
            response = node.services.add_points(
                AddPoints.Request(
                    points=[Point(x=x, y=y)], labels=[1], target_id=target_id, stamp=Time(sec=1)
                ),
                AddPoints.Response(),
            )
            if response.success:
                model.add(response.target_id)
            else:
                model = set(response.tracked_ids)  # a refused restart says what it left
        elif operation == "remove":
            ids = [int(v) for v in rng.integers(0, 10, 2)]
            response = node.services.remove_objects(
                RemoveObjects.Request(ids=ids), RemoveObjects.Response()
            )
            model -= set(ids)
        elif operation == "reset":
            response = node.services.reset(Trigger.Request(), Trigger.Response())
            model = set()
        elif operation == "bad_request":
            response = node.services.set_initial_mask(
                SetInitialMask.Request(label_image=Image(), replace=True), SetInitialMask.Response()
            )
            assert not response.success
        else:
            kind = "small" if operation == "small_frame" else "frame"
            frame = frame_from_image(_frame_msg(int(rng.integers(1, 3)), kind))
            if node.engine.target_ids:  # the node skips the engine while nothing is tracked
                result = node.engine.step(frame)
                assert result.label_image.shape == frame.shape[:2]
                assert set(np.unique(result.label_image).tolist()) - {0} <= model
                assert sorted(t.target_id for t in result.targets) == sorted(model)
        assert node.tracked == sorted(model), operation
