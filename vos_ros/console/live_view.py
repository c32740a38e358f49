"""The live view without ROS: pair each camera frame with the node's masks for it, draw them,
and hand the newest JPEG to the browsers.

Why pairing: the node publishes a frame's masks some milliseconds after the frame itself. A frame
is drawn with *its own* masks when they arrive within a short wait (adapted to how late they
usually come, at most ``pair_wait_max_s``); otherwise (the node dropped that frame, or is slow)
with the newest masks it has, and the header says which stamp they came from. Whatever waits is
only ever the newest frame: a frame that was not drawn before a newer one arrived is skipped, so
latency never builds up in the console.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from vos_ros.evaluation.overlays import colour_of  # the offline page's colours too

NS_PER_S = 1_000_000_000


@dataclass
class CameraFrame:
    """A camera frame as received: ``decode()`` gives RGB uint8 (H, W, 3) (decoded lazily, on the
    render thread, so the ROS callback stays short)."""

    stamp_ns: int
    decode: Callable[[], np.ndarray]
    received_wall: float  # time.time() at receipt
    frame_id: str = ""
    received: float = field(default_factory=time.monotonic)


@dataclass
class TargetView:
    """One target of the node's ``~/instances``: mask cropped to its box (bool), as published."""

    target_id: int
    class_label: str
    score: float
    visible: bool
    box: tuple[int, int, int, int]  # x, y, width, height
    mask: np.ndarray | None


@dataclass
class InstancesView:
    stamp_ns: int
    targets: list[TargetView]
    received: float = field(default_factory=time.monotonic)


@dataclass
class ViewFrame:
    """A drawn frame ready for the browsers."""

    version: int
    stamp_ns: int
    jpeg: bytes
    header: dict


def draw_targets(
    frame: np.ndarray, targets: list[TargetView], names: dict[int, str], alpha: float = 0.45
) -> np.ndarray:
    """The frame with every visible target tinted, boxed and labelled ``id class`` (RGB uint8).

    Masks are blended inside their boxes only (they are published cropped), which keeps drawing
    cheap at the camera's rate.
    """
    out = frame.copy()
    height, width = out.shape[:2]
    for target in targets:
        if not target.visible or target.mask is None:
            continue
        x, y, w, h = target.box
        if w <= 0 or h <= 0 or x + w > width or y + h > height or target.mask.shape != (h, w):
            continue  # a mask that does not fit this frame (resolution change): not drawn
        region = out[y : y + h, x : x + w]
        colour = np.array(colour_of(target.target_id), np.float32)
        picked = region[target.mask].astype(np.float32)
        region[target.mask] = (picked * (1.0 - alpha) + colour * alpha).astype(np.uint8)
    for target in targets:
        if not target.visible:
            continue
        x, y, w, h = target.box
        colour = colour_of(target.target_id)
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, 2)
        text = f"{target.target_id} {names.get(target.target_id, target.class_label)}".strip()
        # white text on a tag of the target's colour: readable on any background
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + base + 4), colour, -1)
        cv2.putText(
            out,
            text,
            (x + 3, top + th + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def encode_jpeg(frame_rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class LatestView:
    """The newest drawn frame, shared between the render thread and the asyncio WebSockets.

    Never a queue: :meth:`publish` replaces the frame, and each WebSocket sends the newest one when
    its browser asks for the next (see :func:`vos_ros.console.app`'s ``/ws/live``).
    """

    def __init__(self) -> None:
        self._frame: ViewFrame | None = None
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def frame(self) -> ViewFrame | None:
        return self._frame

    def publish(self, frame: ViewFrame) -> None:
        with self._lock:
            self._frame = frame
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def newer_than(self, version: int, timeout: float) -> ViewFrame | None:
        """The newest frame once its version exceeds ``version``; None after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters.add(entry)
        try:
            deadline = loop.time() + timeout
            while True:
                frame = self._frame
                if frame is not None and frame.version > version:
                    return frame
                left = deadline - loop.time()
                if left <= 0:
                    return None
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:
                    return None
        finally:
            with self._lock:
                self._waiters.discard(entry)


class FramePairer:
    """Camera frames and node results in; drawn :class:`ViewFrame` s out (on its own thread).

    Also keeps the recent camera frames by stamp (and any frame pinned while a user draws on it),
    for targets the console turns into masks itself (points).
    """

    def __init__(
        self,
        view: LatestView,
        names: dict[int, str],
        jpeg_quality: int = 80,
        pair_wait_max_s: float = 0.1,
        keep_frames: int = 45,
    ) -> None:
        self._view = view
        self._names = names
        self._quality = jpeg_quality
        self._wait_max = pair_wait_max_s
        self._keep = keep_frames
        self._cond = threading.Condition()
        self._newest: CameraFrame | None = None
        self._recent: OrderedDict[int, CameraFrame] = OrderedDict()
        self._pinned: dict[int, CameraFrame] = {}
        self._instances: OrderedDict[int, InstancesView] = OrderedDict()
        self._latest_instances: InstancesView | None = None
        self._delays: deque[float] = deque(maxlen=60)  # frame receipt -> its masks' receipt
        self._version = 0
        self._rendered_stamp: int | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="console_render", daemon=True)
        self.render_ms: deque[float] = deque(maxlen=120)
        self.last_error = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def clear(self) -> None:
        """Forget everything (another node was selected)."""
        with self._cond:
            self._newest = None
            self._recent.clear()
            self._pinned.clear()
            self._instances.clear()
            self._latest_instances = None
            self._delays.clear()

    # -- input (ROS callbacks) --------------------------------------------------------------------

    def put_frame(self, frame: CameraFrame) -> None:
        with self._cond:
            self._newest = frame
            # a repeated stamp (a replayed clip) is a new frame: older masks are not its own
            self._instances.pop(frame.stamp_ns, None)
            self._recent.pop(frame.stamp_ns, None)
            self._recent[frame.stamp_ns] = frame
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
            self._cond.notify_all()

    def put_instances(self, instances: InstancesView) -> None:
        with self._cond:
            frame = self._recent.get(instances.stamp_ns)
            if frame is not None:
                self._delays.append(instances.received - frame.received)
            self._instances[instances.stamp_ns] = instances
            while len(self._instances) > self._keep:
                self._instances.popitem(last=False)
            self._latest_instances = instances
            self._cond.notify_all()

    @property
    def latest_instances(self) -> InstancesView | None:
        return self._latest_instances

    # -- frames for target selection --------------------------------------------------------------

    def pin(self, stamp_ns: int) -> bool:
        """Keep the frame with ``stamp_ns`` while the user draws on it; False if it is gone."""
        with self._cond:
            frame = self._recent.get(stamp_ns) or self._pinned.get(stamp_ns)
            if frame is None:
                return False
            self._pinned = {stamp_ns: frame}
            return True

    def unpin(self) -> None:
        with self._cond:
            self._pinned.clear()

    def frame_at(self, stamp_ns: int) -> np.ndarray | None:
        """The RGB camera frame with ``stamp_ns``, if the console still has it."""
        with self._cond:
            frame = self._pinned.get(stamp_ns) or self._recent.get(stamp_ns)
        return frame.decode() if frame is not None else None

    # -- render thread ----------------------------------------------------------------------------

    def _pair_wait(self) -> float:
        """How long a frame waits for its masks: 1.5 x the 90th percentile of recent delays
        (+5 ms), capped; 0 while the node has delivered no masks for a received frame."""
        if not self._delays:
            return 0.0
        delays = sorted(self._delays)
        p90 = delays[min(len(delays) - 1, int(0.9 * len(delays)))]
        return min(self._wait_max, 1.5 * p90 + 0.005)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (
                    self._newest is None or self._newest.stamp_ns == self._rendered_stamp
                ):
                    self._cond.wait(0.5)
                if self._stop:
                    return
                frame = self._newest
                deadline = frame.received + self._pair_wait()
                while (
                    not self._stop
                    and frame.stamp_ns not in self._instances
                    and time.monotonic() < deadline
                ):
                    self._cond.wait(max(0.0, deadline - time.monotonic()))
                instances = self._instances.get(frame.stamp_ns)
                exact = instances is not None
                if instances is None:
                    older = [s for s in self._instances if s <= frame.stamp_ns]
                    instances = self._instances[older[-1]] if older else None
                self._rendered_stamp = frame.stamp_ns
            try:
                self._render(frame, instances, exact)
            except Exception as exc:  # a bad frame must not stop the view
                self.last_error = f"drawing the frame failed: {exc}"

    def _render(self, frame: CameraFrame, instances: InstancesView | None, exact: bool) -> None:
        start = time.perf_counter()
        image = frame.decode()
        targets = instances.targets if instances is not None else []
        drawn = draw_targets(image, targets, dict(self._names))
        jpeg = encode_jpeg(drawn, self._quality)
        self.render_ms.append((time.perf_counter() - start) * 1e3)
        self._version += 1
        sec, nanosec = divmod(frame.stamp_ns, NS_PER_S)
        header = {
            "version": self._version,
            "stamp": {"sec": sec, "nanosec": nanosec},
            "stamp_ms": frame.stamp_ns / 1e6,
            "frame_id": frame.frame_id,
            "received_ms": frame.received_wall * 1e3,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "masks_exact": exact,
            "masks_stamp_ms": instances.stamp_ns / 1e6 if instances is not None else None,
        }
        self._view.publish(ViewFrame(self._version, frame.stamp_ns, jpeg, header))


def median_or_none(values) -> float | None:
    values = list(values)
    return round(statistics.median(values), 2) if values else None
