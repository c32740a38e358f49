"""Read and write rosbag2 bags (MCAP or sqlite3) without a ROS installation, via ``rosbags``.

An evaluation bag holds:

- an image topic (``sensor_msgs/msg/Image``; rgb8, bgr8, rgba8, bgra8 or mono8);
- a ground-truth topic of label images with the same header stamps, in one of two encodings:
  ``instance`` (mono8 / mono16 / 8UC1 / 16UC1, pixel = instance id) or ``panoptic``
  (mono16 / 16UC1 / 32SC1, pixel = class*1000 + instance, 65535 = ignore);
- optionally a class-map topic (``std_msgs/msg/String`` holding JSON ``{"<id>": "<class>"}``: class
  of each instance id for ``instance``, name of each class id for ``panoptic``);
- optionally what the node was given, recorded with the frames' stamps: detector boxes on the
  prompt topic (``vos_ros/msg/DetectionArray``, as the node's ``~/prompts``) and initial masks on
  the initial-mask topic (``sensor_msgs/msg/Image`` label images, mono8/mono16, pixel = target id;
  the class of each id from the class-map topic when it names it). When either is present, the
  evaluator replays them instead of prompting with the ground truth
  (:mod:`vos_ros.evaluation.prompt_plan`).

The project's own message types (``msg/*.msg``, e.g. the node's outputs) are registered from their
text when the folder exists, so bags recorded from the node can be read and written too.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.evaluation.clips import ClipFrame
from vos_ros.evaluation.confusion import PANOPTIC_DIVISOR, decode_labels

IMAGE_TOPIC = "/camera/image_raw"
GT_TOPIC = "/camera/ground_truth"
CLASS_TOPIC = "/camera/ground_truth/classes"
PROMPT_TOPIC = "/vos_node/prompts"
INITIAL_MASK_TOPIC = "/vos_node/initial_mask"
STORAGES = ("mcap", "sqlite3")
MSG_DIR = Path(__file__).resolve().parents[1] / "msg"
PACKAGE = "vos_ros"

# encoding -> (dtype, channels)
_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("uint8", 3),
    "bgr8": ("uint8", 3),
    "rgba8": ("uint8", 4),
    "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1),
    "8UC1": ("uint8", 1),
    "mono16": ("uint16", 1),
    "16UC1": ("uint16", 1),
    "32SC1": ("int32", 1),
}
FRAME_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
LABEL_ENCODINGS = {
    "instance": ("mono8", "8UC1", "mono16", "16UC1"),
    "panoptic": ("mono16", "16UC1", "32SC1"),
}


class BagError(ValueError):
    """A bag that cannot be used: missing topic, wrong encoding, truncated file, ..."""


def project_typestore(msg_dir: Path | None = None) -> Any:
    """A ROS 2 Kilted typestore with the project's ``msg/*.msg`` types added when present."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    folder = MSG_DIR if msg_dir is None else Path(msg_dir)
    types: dict[str, Any] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    if types:
        store.register(types)
    return store


def image_message(store: Any, array: np.ndarray, stamp_ns: int, encoding: str, frame_id: str):
    """Build a ``sensor_msgs/msg/Image`` from an array (layout given by ``encoding``)."""
    if encoding not in _ENCODINGS:
        raise BagError(f"unsupported image encoding {encoding!r}; use one of {sorted(_ENCODINGS)}")
    dtype, channels = _ENCODINGS[encoding]
    arr = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] != channels:
        raise BagError(f"{encoding} needs {channels} channel(s), the array has shape {array.shape}")
    height, width = arr.shape[:2]
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        ),
        frame_id=frame_id,
    )
    return types["sensor_msgs/msg/Image"](
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels * arr.dtype.itemsize,
        data=np.frombuffer(arr.tobytes(), dtype=np.uint8),
    )


def image_array(msg: Any, topic: str = "") -> np.ndarray:
    """Decode a ``sensor_msgs/msg/Image`` to ``(H, W)`` or ``(H, W, C)`` in its own dtype.

    :raises BagError: unknown encoding or a data buffer that does not fit the header.
    """
    where = f" on {topic}" if topic else ""
    if msg.encoding not in _ENCODINGS:
        raise BagError(f"unsupported image encoding {msg.encoding!r}{where}")
    dtype_name, channels = _ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype_name).newbyteorder(">" if msg.is_bigendian else "<")
    row = msg.width * channels * dtype.itemsize
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise BagError(
            f"image{where} is truncated: {msg.width}x{msg.height} {msg.encoding} needs "
            f"{msg.step * msg.height} bytes (step {msg.step}), got {len(msg.data)}"
        )
    raw = np.asarray(msg.data, dtype=np.uint8)[: msg.step * msg.height]
    rows = raw.reshape(msg.height, msg.step)[:, :row]
    arr = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    arr = arr.astype(dtype.newbyteorder("="))
    return arr[:, :, 0] if channels == 1 else arr


def frame_rgb(msg: Any, topic: str = "") -> np.ndarray:
    """Decode a camera image to RGB ``uint8`` ``(H, W, 3)``."""
    arr = image_array(msg, topic)
    enc = msg.encoding
    if enc not in FRAME_ENCODINGS:
        raise BagError(f"camera images on {topic} must be one of {FRAME_ENCODINGS}, got {enc!r}")
    if enc == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    if enc in ("bgr8", "bgra8"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def stamp_ns(msg: Any) -> int:
    """Header stamp of a stamped message in nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@dataclass
class BagFrame:
    """One frame to write: RGB image, optional label image, and its time."""

    image: np.ndarray
    label: np.ndarray | None
    stamp_ns: int


def _open_writer(path: Path, storage: str):
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
    if path.exists():
        raise BagError(f"{path} already exists; rosbag2 writers need a new folder")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    return Writer(path, version=9, storage_plugin=plugin)


def write_bag(
    path: Path | str,
    frames: Iterable[BagFrame],
    *,
    storage: str = "mcap",
    image_topic: str = IMAGE_TOPIC,
    gt_topic: str = GT_TOPIC,
    class_topic: str | None = CLASS_TOPIC,
    gt_encoding: str = "mono16",
    class_map: Mapping[int, str] | None = None,
    frame_id: str = "camera",
) -> int:
    """Write frames (and their label images) to a new rosbag2 folder; returns the frame count.

    :param gt_encoding: ROS encoding of the label images (mono8, mono16, 16UC1 or 32SC1).
    :param class_map: written once as JSON on ``class_topic`` at the first frame's time.
    """
    path = Path(path)
    store = project_typestore()
    count = 0
    writer = _open_writer(path, storage)
    with writer:
        image_conn = writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=store)
        gt_conn = writer.add_connection(gt_topic, "sensor_msgs/msg/Image", typestore=store)
        class_conn = None
        if class_topic and class_map is not None:
            class_conn = writer.add_connection(class_topic, "std_msgs/msg/String", typestore=store)
        for frame in frames:
            if class_conn is not None and count == 0:
                text = json.dumps({str(k): v for k, v in sorted(class_map.items())})
                msg = store.types["std_msgs/msg/String"](data=text)
                writer.write(
                    class_conn, frame.stamp_ns, store.serialize_cdr(msg, "std_msgs/msg/String")
                )
            msg = image_message(store, frame.image, frame.stamp_ns, "rgb8", frame_id)
            writer.write(
                image_conn, frame.stamp_ns, store.serialize_cdr(msg, "sensor_msgs/msg/Image")
            )
            if frame.label is not None:
                if frame.label.shape != frame.image.shape[:2]:
                    raise BagError(
                        f"frame {count}: label image {frame.label.shape} does not match the "
                        f"image {frame.image.shape[:2]}"
                    )
                msg = image_message(store, frame.label, frame.stamp_ns, gt_encoding, frame_id)
                writer.write(
                    gt_conn, frame.stamp_ns, store.serialize_cdr(msg, "sensor_msgs/msg/Image")
                )
            count += 1
    return count


def write_messages(
    path: Path | str,
    topics: Mapping[str, str],
    messages: Iterable[tuple[str, int, Any]],
    storage: str = "mcap",
) -> int:
    """Write arbitrary messages (e.g. node outputs) to a new bag.

    :param topics: topic -> message type (``vos_ros/msg/InstanceMaskArray``, ...).
    :param messages: ``(topic, log time ns, message object)`` in time order.
    """
    store = project_typestore()
    writer = _open_writer(Path(path), storage)
    count = 0
    with writer:
        conns = {t: writer.add_connection(t, ty, typestore=store) for t, ty in topics.items()}
        for topic, time_ns, msg in messages:
            writer.write(conns[topic], time_ns, store.serialize_cdr(msg, topics[topic]))
            count += 1
    return count


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _mcap_file(path: Path) -> Path | None:
    """The .mcap file of a bag (folder or bare file), if it is an MCAP bag."""
    if path.is_file():
        return path if path.suffix == ".mcap" else None
    files = sorted(path.glob("*.mcap")) if path.is_dir() else []
    return files[0] if files else None


class _Cursor:
    """Little-endian reads from a bytes buffer (the MCAP record fields)."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise EOFError
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8")


def _salvage_mcap(file: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """Read an MCAP file record by record from the start, without its index or footer.

    A recorder that was killed leaves no summary, and ``rosbags`` then refuses the file; every
    complete, uncompressed chunk before the damage is still readable this way.
    Yields ``(topic, message type, log time ns, CDR bytes)``; stops at the first incomplete record.
    """
    data = file.read_bytes()
    if not data.startswith(_MCAP_MAGIC):
        return
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}

    def records(buf: memoryview) -> Iterator[tuple[int, memoryview]]:
        cur = _Cursor(buf)
        while True:
            try:
                op = cur.take(1)[0]
                body = cur.take(cur.u64())
            except EOFError:
                return
            yield op, body

    def handle(op: int, body: memoryview) -> Iterator[tuple[str, str, int, bytes]]:
        cur = _Cursor(body)
        if op == 0x03:  # schema
            sid = cur.u16()
            schemas[sid] = cur.string()
        elif op == 0x04:  # channel
            cid, sid = cur.u16(), cur.u16()
            channels[cid] = (cur.string(), schemas.get(sid, ""))
        elif op == 0x05:  # message
            cid, _seq, log_time, _pub = cur.u16(), cur.u32(), cur.u64(), cur.u64()
            if cid in channels:
                topic, msgtype = channels[cid]
                yield topic, msgtype, log_time, bytes(body[cur.pos :])
        elif op == 0x06:  # chunk
            cur.take(8 + 8 + 8 + 4)
            compression = cur.string()
            size = cur.u64()
            if compression:
                return  # compressed chunks need a codec; stop at what was read
            for sub_op, sub_body in records(cur.take(size)):
                yield from handle(sub_op, sub_body)

    for op, body in records(memoryview(data)[len(_MCAP_MAGIC) :]):
        if op == 0x02:  # footer: the file is complete
            return
        yield from handle(op, body)


def _db3_file(path: Path) -> Path | None:
    """The .db3 file of a bag (folder or bare file), if it is a sqlite3 bag."""
    if path.is_file():
        return path if path.suffix == ".db3" else None
    files = sorted(path.glob("*.db3")) if path.is_dir() else []
    return files[0] if files else None


def _salvage_sqlite(file: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """Read the messages of a damaged sqlite3 file in the order they were written.

    SQLite refuses a file shorter than its header says (a copy or download cut short), and so does
    ``rosbags``; with ``writable_schema`` it opens it (read-only) and the rows before the missing
    pages can be read. Yields like :func:`_salvage_mcap`; stops at the first unreadable page.
    """
    import sqlite3

    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA writable_schema=ON")
        rows = conn.execute("SELECT id, name, type FROM topics")
        topics = {int(tid): (str(name), str(ty)) for tid, name, ty in rows}
        rows = conn.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY rowid")
        for tid, time_ns, data in rows:
            if tid in topics:
                yield *topics[tid], int(time_ns), bytes(data)
    except sqlite3.Error:
        return
    finally:
        conn.close()


def _storage_file(path: Path) -> Path | None:
    """The .mcap or .db3 file of a bag, if it has one."""
    return _mcap_file(path) or _db3_file(path)


def _salvage(file: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """The readable messages of a damaged .mcap or .db3 file."""
    return _salvage_sqlite(file) if file.suffix == ".db3" else _salvage_mcap(file)


def read_messages(
    path: Path | str, topics: Iterable[str] | None = None
) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(topic, log time ns, message)`` from a bag, in log-time order.

    An MCAP bag without its footer (a recorder that was killed) or a cut sqlite3 file is read up
    to the damage.

    :raises BagError: the bag cannot be opened, or is cut short; the messages read before the
        damage were already yielded, so a caller can still use them.
    """
    from rosbags.rosbag2 import Reader

    path = Path(path)
    store = project_typestore()
    wanted = set(topics) if topics is not None else None
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for damaged bags
        yield from _read_damaged(path, wanted, store, exc)
        return
    count = 0
    try:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, time_ns, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            count += 1
            yield conn.topic, time_ns, msg
    except BagError:
        raise
    except Exception as exc:
        raise BagError(
            f"bag {path} is truncated or damaged after {count} message(s): {exc}"
        ) from exc
    finally:
        reader.close()


def _read_damaged(
    path: Path, wanted: set[str] | None, store: Any, cause: Exception
) -> Iterator[tuple[str, int, Any]]:
    """Salvage what an unreadable MCAP or sqlite3 bag still holds, then raise :class:`BagError`."""
    file = _storage_file(path)
    if file is None:
        raise BagError(f"cannot open bag {path}: {cause}") from cause
    count = 0
    for topic, msgtype, time_ns, raw in _salvage(file):
        if wanted is not None and topic not in wanted:
            continue
        try:
            msg = store.deserialize_cdr(raw, msgtype)
        except Exception:
            break  # the last record was cut mid-message
        count += 1
        yield topic, time_ns, msg
    raise BagError(
        f"bag {path} is truncated or damaged ({cause}); read {count} message(s) before the damage"
    ) from cause


def bag_topics(path: Path | str) -> dict[str, str]:
    """Topic -> message type of a bag (of its readable part, for a damaged bag)."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    try:
        with Reader(path) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as exc:
        file = _storage_file(path)
        topics = {t: ty for t, ty, _, _ in _salvage(file)} if file is not None else {}
        if not topics:
            raise BagError(f"cannot open bag {path}: {exc}") from exc
        return topics


def message_counts(path: Path | str) -> dict[str, int]:
    """Messages per topic (of the readable part, for a damaged bag)."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    try:
        with Reader(path) as reader:
            counts: dict[str, int] = {}
            for c in reader.connections:
                counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
            return counts
    except Exception:
        file = _storage_file(path)
        counts = {}
        for topic, _, _, _ in _salvage(file) if file is not None else ():
            counts[topic] = counts.get(topic, 0) + 1
        return counts


def is_bag(path: Path) -> bool:
    """A rosbag2 folder (metadata.yaml) or a bare .mcap/.db3 file."""
    return (path / "metadata.yaml").is_file() or (
        path.is_file() and path.suffix in (".mcap", ".db3")
    )


def find_bags(path: Path | str) -> list[Path]:
    """The bag at ``path``, every bag directly inside the folder ``path``, or every bag that
    the glob ``path`` matches (sorted)."""
    if any(ch in str(path) for ch in "*?["):
        import glob

        matches = sorted(Path(p) for p in glob.glob(str(path)))
        bags = [p for p in matches if is_bag(p)]
        if not bags:
            found = f" ({len(matches)} path(s) match, none is a rosbag2 bag)" if matches else ""
            raise BagError(f"no bag matches {path}{found}")
        return bags
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if is_bag(path):
        return [path]
    bags = sorted(p for p in path.iterdir() if is_bag(p)) if path.is_dir() else []
    if not bags:
        raise BagError(f"{path} is neither a rosbag2 bag nor a folder of bags")
    return bags


@dataclass
class BagClip:
    """A bag read as an evaluation clip: camera frames paired with ground truth by stamp.

    :ivar class_map: class names (see the module docstring); when None, the bag's class topic is
        used if it has one.
    :ivar pairing_window: how many camera frames may wait for their ground truth before they are
        scored without it (ground truth is written right after its frame, so a few are enough).
    :ivar prompt_topic, initial_mask_topic: recorded prompts (see the module docstring); None or
        absent from the bag: none. ``use_recorded_prompts=False`` ignores them.
    :ivar has_recorded_prompts: set on opening: the frames carry recorded prompts to replay.
    """

    path: Path
    image_topic: str = IMAGE_TOPIC
    gt_topic: str = GT_TOPIC
    class_topic: str | None = CLASS_TOPIC
    gt_encoding: str = "instance"
    class_map: Mapping[int, str] | None = None
    ignore_value: int | None = None
    divisor: int = PANOPTIC_DIVISOR
    load_images: bool = True
    pairing_window: int = 8
    name: str = ""
    _count: int | None = field(default=None, repr=False)
    prompt_topic: str | None = PROMPT_TOPIC
    initial_mask_topic: str | None = INITIAL_MASK_TOPIC
    use_recorded_prompts: bool = True
    has_recorded_prompts: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.name:
            self.name = self.path.stem if self.path.is_file() else self.path.name
        if self.gt_encoding not in LABEL_ENCODINGS:
            raise BagError(
                f"ground-truth encoding must be one of {sorted(LABEL_ENCODINGS)}, "
                f"got {self.gt_encoding!r}"
            )
        topics = bag_topics(self.path)
        for topic, what in ((self.image_topic, "image"), (self.gt_topic, "ground-truth")):
            if topic not in topics:
                raise BagError(
                    f"{self.path}: no {what} topic {topic!r}; the bag has: "
                    + ", ".join(f"{t} [{ty}]" for t, ty in sorted(topics.items()))
                )
            if topics[topic] != "sensor_msgs/msg/Image":
                raise BagError(
                    f"{self.path}: {what} topic {topic} is {topics[topic]}, "
                    "expected sensor_msgs/msg/Image"
                )
        self._has_class_topic = bool(self.class_topic) and self.class_topic in topics
        self._count = message_counts(self.path).get(self.image_topic, 0)
        self._prompt_topics: dict[str, str] = {}
        if self.use_recorded_prompts:
            for topic, expected in (
                (self.prompt_topic, "vos_ros/msg/DetectionArray"),
                (self.initial_mask_topic, "sensor_msgs/msg/Image"),
            ):
                if not topic or topic not in topics:
                    continue
                if topics[topic] != expected:
                    raise BagError(
                        f"{self.path}: prompt topic {topic} is {topics[topic]}, expected {expected}"
                    )
                self._prompt_topics[topic] = expected
        self.has_recorded_prompts = bool(self._prompt_topics)

    def __len__(self) -> int:
        return int(self._count or 0)

    def frames(self) -> Iterator[ClipFrame]:
        """Camera frames in order, each with the ground truth of the same stamp (or None) and
        the prompts recorded for it.

        :raises BagError: also when a recorded prompt names a stamp no camera frame has.
        """
        recorded = self._recorded_prompts() if self.has_recorded_prompts else {}
        for frame in self._paired_frames():
            if frame.stamp_ns in recorded:
                frame.recorded = recorded.pop(frame.stamp_ns)
            yield frame
        if recorded:
            stamps = ", ".join(str(s) for s in sorted(recorded)[:5])
            raise BagError(
                f"{self.path}: recorded prompts for stamps without a camera frame: {stamps} (a "
                "prompt must carry the stamp of the frame it was made on)"
            )

    def _recorded_prompts(self) -> dict[int, Any]:
        """Recorded prompts by stamp, read in one pass over the prompt topics."""
        from vos_ros.evaluation.clips import RecordedPrompt

        class_map: dict[int, str] = dict(self.class_map or {})
        if not class_map and self._has_class_topic:
            for _topic, _time, msg in read_messages(self.path, [self.class_topic]):
                class_map = _parse_class_map(msg.data, self.path)
                break
        out: dict[int, RecordedPrompt] = {}
        for topic, _time, msg in read_messages(self.path, list(self._prompt_topics)):
            stamp = stamp_ns(msg)
            if stamp == 0:
                raise BagError(
                    f"{self.path}: a prompt on {topic} has a zero stamp; recorded prompts must "
                    "carry the stamp of the frame they were made on"
                )
            if self._prompt_topics[topic] == "sensor_msgs/msg/Image":
                if msg.encoding not in LABEL_ENCODINGS["instance"]:
                    raise BagError(
                        f"{self.path}: initial mask on {topic} is {msg.encoding!r}, expected one "
                        f"of {LABEL_ENCODINGS['instance']}"
                    )
                label = np.asarray(image_array(msg, topic), np.uint16)
                ids = [int(i) for i in np.unique(label) if i > 0]
                names = {i: class_map.get(i, "object") for i in ids}
                entry = RecordedPrompt(label_image=label, classes=names)
            else:
                entry = RecordedPrompt(
                    boxes=[
                        (
                            d.center_x - d.size_x / 2.0,
                            d.center_y - d.size_y / 2.0,
                            d.center_x + d.size_x / 2.0,
                            d.center_y + d.size_y / 2.0,
                        )
                        for d in msg.detections
                    ],
                    box_classes=[str(d.class_label) for d in msg.detections],
                )
            if stamp in out:
                out[stamp].merge(entry)
            else:
                out[stamp] = entry
        return out

    def _paired_frames(self) -> Iterator[ClipFrame]:
        topics = [self.image_topic, self.gt_topic]
        if self._has_class_topic and self.class_map is None:
            topics.append(self.class_topic)
        pending: deque[tuple[int, Any]] = deque()  # (stamp, image message)
        labels: dict[int, Any] = {}
        index = 0
        class_map = dict(self.class_map) if self.class_map is not None else None
        for topic, _time, msg in read_messages(self.path, topics):
            if topic == self.class_topic and topic not in (self.image_topic, self.gt_topic):
                class_map = _parse_class_map(msg.data, self.path)
                continue
            if topic == self.image_topic:
                pending.append((stamp_ns(msg), msg))
            else:
                labels[stamp_ns(msg)] = msg
            while pending and (pending[0][0] in labels or len(pending) > self.pairing_window):
                stamp, image_msg = pending.popleft()
                yield self._frame(index, stamp, image_msg, labels.pop(stamp, None), class_map)
                index += 1
        while pending:
            stamp, image_msg = pending.popleft()
            yield self._frame(index, stamp, image_msg, labels.pop(stamp, None), class_map)
            index += 1

    def _frame(
        self,
        index: int,
        stamp: int,
        image_msg: Any,
        label_msg: Any,
        class_map: Mapping[int, str] | None,
    ) -> ClipFrame:
        image = frame_rgb(image_msg, self.image_topic) if self.load_images else None
        gt = None
        if label_msg is not None:
            allowed = LABEL_ENCODINGS[self.gt_encoding]
            if label_msg.encoding not in allowed:
                raise BagError(
                    f"{self.path}: ground truth on {self.gt_topic} is {label_msg.encoding!r}, but "
                    f"the {self.gt_encoding} encoding needs one of {allowed} "
                    "(choose the encoding with --gt-encoding)"
                )
            label = image_array(label_msg, self.gt_topic)
            if (label_msg.height, label_msg.width) != (image_msg.height, image_msg.width):
                raise BagError(
                    f"{self.path} frame {index}: image is {image_msg.width}x{image_msg.height} but "
                    f"its ground truth is {label_msg.width}x{label_msg.height}"
                )
            gt = decode_labels(label, self.gt_encoding, class_map, self.ignore_value, self.divisor)
        return ClipFrame(index, str(stamp), image, gt, stamp)


def _parse_class_map(text: str, where: Path) -> dict[int, str]:
    try:
        data = json.loads(text)
        return {int(k): str(v) for k, v in data.items()}
    except (ValueError, AttributeError) as exc:
        raise BagError(f"{where}: the class-map topic does not hold JSON {{id: class}}") from exc
