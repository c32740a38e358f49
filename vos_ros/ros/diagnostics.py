"""Run-time statistics of the node and their ``diagnostic_msgs/DiagnosticArray`` form.

:class:`NodeStats` is thread-safe: the subscription callback counts received and dropped frames,
the inference thread records per-frame latency, engine time and where each frame's time went
(:data:`NODE_STAGES`), and a timer publishes a snapshot on ``/diagnostics`` (the topic
``diagnostic_aggregator`` and ``rqt_robot_monitor`` read).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vos_ros.engine.engine import ENGINE_STAGES

# Rates and percentiles are computed over the most recent frames only, so they follow changes.
_WINDOW_FRAMES = 200
_RATE_WINDOW_S = 5.0
# WARN when the outputs come at less than this fraction of the input rate (frames skipped)
KEEP_UP_FRACTION = 0.9
KEEP_UP_MIN_FRAMES = 10

# Where one frame's time goes in the node, in order (ms). The stages from "wait" on add up to the
# receive-to-publish latency (less a few µs between them); "input_age" comes before it.
NODE_STAGES = (
    "input_age",  # header stamp -> subscription callback (DDS transport, executor; same clock only)
    "wait",  # callback -> the inference thread takes the frame (hand-over slot, thread wake-up)
    "decode",  # image message -> numpy frame
    "lock",  # waiting for the engine (a service call holding it)
    *ENGINE_STAGES,  # engine.step, from FrameResult.timings_ms
    "publish",  # build and publish the outputs
)


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the statistics at one moment (times in ms unless named _s)."""

    received: int
    processed: int
    dropped: int
    failed: int
    input_hz: float
    output_hz: float
    latency_mean_ms: float
    latency_p95_ms: float
    engine_mean_ms: float
    engine_p95_ms: float
    seconds_since_input: float | None  # None: no frame yet
    last_error: str
    seconds_since_error: float | None  # None: no error yet
    stage_median_ms: dict[str, float] = field(default_factory=dict)  # NODE_STAGES seen so far
    # resident size right after the last heap trim, between frames (None: no trim yet), and the
    # targets tracked then: what a leak raises, without a step's short-lived buffers
    heap_trims: int = 0
    resident_after_trim_mib: float | None = None
    targets_at_trim: int | None = None


class NodeStats:
    """Counters and sliding windows of the node's per-frame timings (thread-safe)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._received = 0
            self._processed = 0
            self._dropped = 0
            self._failed = 0
            self._input_times: deque[float] = deque(maxlen=_WINDOW_FRAMES)
            self._output_times: deque[float] = deque(maxlen=_WINDOW_FRAMES)
            self._latency_ms: deque[float] = deque(maxlen=_WINDOW_FRAMES)
            self._engine_ms: deque[float] = deque(maxlen=_WINDOW_FRAMES)
            self._stage_ms = {name: deque(maxlen=_WINDOW_FRAMES) for name in NODE_STAGES}
            self._last_error = ""
            self._last_error_time: float | None = None
            self._heap_trims = 0
            self._resident_after_trim_mib: float | None = None
            self._targets_at_trim: int | None = None

    def frame_received(self) -> None:
        with self._lock:
            self._received += 1
            self._input_times.append(self._clock())

    def frame_dropped(self) -> None:
        """A frame was replaced in the hand-over slot before the engine could take it."""
        with self._lock:
            self._dropped += 1

    def frame_processed(
        self,
        latency_ms: float,
        engine_ms: float | None,
        stages_ms: Mapping[str, float] | None = None,
    ) -> None:
        """One frame's outputs were published; latency = receipt to publish.

        ``engine_ms`` is None when the engine had nothing to do (no targets yet). ``stages_ms``:
        the frame's time per stage of :data:`NODE_STAGES` (others are ignored; a stage the frame
        did not go through is left out).
        """
        with self._lock:
            self._processed += 1
            self._output_times.append(self._clock())
            self._latency_ms.append(latency_ms)
            if engine_ms is not None:
                self._engine_ms.append(engine_ms)
            for name, value in (stages_ms or {}).items():
                window = self._stage_ms.get(name)
                if window is not None:
                    window.append(value)

    def heap_trimmed(self, resident_mib: float | None, targets: int) -> None:
        """The inference thread trimmed the heap between frames; ``resident_mib`` is the
        resident size read right after (None where it cannot be read)."""
        with self._lock:
            self._heap_trims += 1
            self._resident_after_trim_mib = resident_mib
            self._targets_at_trim = targets

    def frame_failed(self, reason: str) -> None:
        with self._lock:
            self._failed += 1
        self.error(reason)

    def error(self, reason: str) -> None:
        with self._lock:
            self._last_error = reason
            self._last_error_time = self._clock()

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            now = self._clock()
            return StatsSnapshot(
                received=self._received,
                processed=self._processed,
                dropped=self._dropped,
                failed=self._failed,
                input_hz=_rate(self._input_times, now),
                output_hz=_rate(self._output_times, now),
                latency_mean_ms=_mean(self._latency_ms),
                latency_p95_ms=_p95(self._latency_ms),
                engine_mean_ms=_mean(self._engine_ms),
                engine_p95_ms=_p95(self._engine_ms),
                seconds_since_input=now - self._input_times[-1] if self._input_times else None,
                last_error=self._last_error,
                seconds_since_error=(
                    now - self._last_error_time if self._last_error_time is not None else None
                ),
                stage_median_ms={
                    name: float(np.median(window))
                    for name, window in self._stage_ms.items()
                    if window
                },
                heap_trims=self._heap_trims,
                resident_after_trim_mib=self._resident_after_trim_mib,
                targets_at_trim=self._targets_at_trim,
            )


def _rate(times: deque[float], now: float) -> float:
    recent = [t for t in times if now - t <= _RATE_WINDOW_S]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0])
    return (len(recent) - 1) / span if span > 0 else 0.0


def _mean(values: deque[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _p95(values: deque[float]) -> float:
    return float(np.percentile(values, 95)) if values else 0.0


@dataclass(frozen=True)
class DiagnosticThresholds:
    latency_warn_ms: float
    stale_input_s: float
    error_hold_s: float  # an error keeps the status at ERROR for this long


def status_level(
    snapshot: StatsSnapshot,
    active: bool,
    thresholds: DiagnosticThresholds,
    input_publishers: int | None = None,
) -> tuple[int, str]:
    """``(level, message)`` with level 0 = OK, 1 = WARN, 2 = ERROR (``DiagnosticStatus``).

    :param input_publishers: publishers of the image topic in the ROS graph (None: unknown). A
        publisher that is seen but delivers nothing points at the DDS transports, not the camera.
    """
    if snapshot.seconds_since_error is not None and (
        snapshot.seconds_since_error <= thresholds.error_hold_s
    ):
        return 2, f"error: {snapshot.last_error}"
    if not active:
        return 1, "inactive: not subscribed to images (lifecycle state is not active)"
    if snapshot.seconds_since_input is None:
        return 1, "active, waiting for the first image" + _publishers_hint(input_publishers)
    if snapshot.seconds_since_input > thresholds.stale_input_s:
        return 1, (
            f"no image for {snapshot.seconds_since_input:.1f} s"
            + _publishers_hint(input_publishers)
        )
    if _falls_behind(snapshot):
        return 1, (
            f"the model keeps up with {snapshot.output_hz:.1f} of the camera's "
            f"{snapshot.input_hz:.1f} Hz: the node skips frames and works on the newest "
            f"({snapshot.dropped} skipped so far)"
        )
    if snapshot.latency_p95_ms > thresholds.latency_warn_ms:
        return 1, (
            f"latency p95 {snapshot.latency_p95_ms:.0f} ms above "
            f"{thresholds.latency_warn_ms:.0f} ms"
        )
    return 0, f"running at {snapshot.output_hz:.1f} Hz"


def _falls_behind(snapshot: StatsSnapshot) -> bool:
    """Outputs at clearly less than the input rate, judged once enough frames came in."""
    return (
        snapshot.received >= KEEP_UP_MIN_FRAMES
        and snapshot.dropped > 0
        and snapshot.output_hz < KEEP_UP_FRACTION * snapshot.input_hz
    )


def _publishers_hint(input_publishers: int | None) -> str:
    if not input_publishers:
        return "" if input_publishers is None else " (no publisher on the image topic)"
    return (
        f" although {input_publishers} publisher(s) of the image topic are in the graph: "
        "their samples do not arrive (DDS transports, README 'DDS transports')"
    )


def build_diagnostic_array(
    snapshot: StatsSnapshot,
    *,
    name: str,
    hardware_id: str,
    backend: str,
    model: str,
    target_ids: list[int],
    lifecycle_state: str,
    active: bool,
    thresholds: DiagnosticThresholds,
    stamp,
    adaptation: str = "off",
    input_publishers: int | None = None,
):
    """A ``DiagnosticArray`` with one status for the node (``stamp``: builtin_interfaces/Time)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level, message = status_level(snapshot, active, thresholds, input_publishers)
    values = {
        "lifecycle_state": lifecycle_state,
        "model": model,
        "backend": backend,
        "targets": str(len(target_ids)),
        "target_ids": " ".join(str(i) for i in target_ids),
        "input_hz": f"{snapshot.input_hz:.2f}",
        "output_hz": f"{snapshot.output_hz:.2f}",
        "latency_mean_ms": f"{snapshot.latency_mean_ms:.1f}",
        "latency_p95_ms": f"{snapshot.latency_p95_ms:.1f}",
        "engine_mean_ms": f"{snapshot.engine_mean_ms:.1f}",
        "engine_p95_ms": f"{snapshot.engine_p95_ms:.1f}",
        "frames_received": str(snapshot.received),
        "frames_processed": str(snapshot.processed),
        "frames_dropped": str(snapshot.dropped),
        "frames_failed": str(snapshot.failed),
        "last_error": snapshot.last_error,
        "online_adaptation": adaptation,
        "input_publishers": "" if input_publishers is None else str(input_publishers),
        "heap_trims": str(snapshot.heap_trims),
        "resident_after_trim_mib": _optional(snapshot.resident_after_trim_mib, "{:.1f}"),
        "targets_at_trim": _optional(snapshot.targets_at_trim, "{}"),
    }
    values.update(
        {f"stage_{name}_median_ms": f"{ms:.2f}" for name, ms in snapshot.stage_median_ms.items()}
    )
    status = DiagnosticStatus(
        level=bytes([level]),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
    return DiagnosticArray(header=_header(stamp), status=[status])


def _optional(value: float | int | None, form: str) -> str:
    return "" if value is None else form.format(value)


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp)


def values_of(status) -> dict[str, str]:
    """``{key: value}`` of a ``DiagnosticStatus`` (for tests and tools)."""
    return {kv.key: kv.value for kv in status.values}
