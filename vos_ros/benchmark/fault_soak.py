"""Soak with fault injection: the node under bad frames, failing inference and random services.

    python -m vos_ros.benchmark.fault_soak --seconds 150 --rate 15 --json soak_faults.json

The node runs in its own process exactly as the launch file starts it, except that its engine
fails every ``backend_error_every``-th inference call (:mod:`vos_ros.benchmark.faulty_node`).
This process plays a synthetic clip to it (the clip of ``vos-ros bench soak``, with its ground
truth) and, on top:

- every ``bad_every``-th frame is a bad one, in turn: unknown encoding, truncated data, zero size,
  a step smaller than a row, an image above ``input.max_pixels``, a 16-bit big-endian frame, and a
  frame at another resolution (which the node must track through, not refuse);
- a service is called ``service_hz`` times per second at random: targets added by box and removed
  again, and requests that must be refused (label image of the wrong size or encoding, a stamp
  that is not buffered, boxes outside the image or of no size, ids that are already tracked,
  unknown ids).

Two targets set at the start are never removed by the soak: a message on ``~/instances`` without
one of them is a *lost target*. Reported: crashes (the node process died; must be 0), lost
targets (must be 0), unexpected errors in the node's log, ERROR periods on ``/diagnostics`` and
whether the node returned to OK after each, service calls (refused as expected / accepted /
answered wrongly), RSS growth after warm-up, and stamp-to-output latency.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.benchmark.clips import BenchClip, make_clip
from vos_ros.benchmark.node_bench import NODE_START_TIMEOUT_S, set_targets
from vos_ros.benchmark.ros_procs import (
    FRAME_ID_PREFIX,
    IMAGE_TOPIC,
    NS_PER_S,
    BenchClient,
    Child,
    TopicLog,
    isolated_env,
    label_image_msg,
    ns_to_time,
    rss_kib,
    vos_node_command,
    wait_for,
)
from vos_ros.benchmark.stats import load_average, summarize
from vos_ros.engine.model_paths import DEFAULT_MODEL

NODE = "vos_node"
PERMANENT_TARGETS = 2  # set at the start, never removed: the ones that must not be lost
CLIP_OBJECTS = 4
MAX_ADDED = 2  # targets added by box at any time, on top of the permanent ones
BAD_FRAME_KINDS = (
    "unknown encoding",
    "truncated data",
    "zero size",
    "step smaller than a row",
    "above input.max_pixels",
    "16-bit big-endian frame",
    "other resolution",  # not an error: the node scales it and keeps tracking
)
# Random service calls: valid ones (add, remove, unknown ids) and ones that must be refused.
CALLS = (
    "add",
    "add",
    "remove",
    "remove",
    "unknown ids",
    "wrong size",
    "wrong encoding",
    "old stamp",
    "box outside",
    "box no size",
    "id tracked",
)
REFUSED = "refused"
ACCEPTED = "accepted"
WRONG = "wrong"


def faulty_node_command(
    backend: str,
    model: str,
    threads: int,
    params_dir: Path,
    backend_error_every: int,
    max_pixels: int,
) -> list[str]:
    """The node's launch command, run through :mod:`vos_ros.benchmark.faulty_node`."""
    command = vos_node_command(backend, model, threads, params_dir)
    module = command.index("vos_ros.ros.node")
    injected = [
        "vos_ros.benchmark.faulty_node",
        "--backend-error-every",
        str(backend_error_every),
        "--",
    ]
    extra = ["-p", f"input.max_pixels:={max_pixels}", "-p", "log_throttle_s:=2.0"]
    return command[:module] + injected + command[module + 1 :] + extra


def bad_frame(kind: str, frame: np.ndarray):
    """A ``sensor_msgs/Image`` of ``kind`` (see :data:`BAD_FRAME_KINDS`) made from ``frame``."""
    import cv2
    from sensor_msgs.msg import Image

    from vos_ros.ros.image_msgs import array_to_msg

    height, width = frame.shape[:2]
    if kind == "unknown encoding":
        msg = array_to_msg(frame, "rgb8")
        msg.encoding = "yuv422_yuy2"
    elif kind == "truncated data":
        msg = array_to_msg(frame, "rgb8")
        msg.data = bytes(msg.data)[: len(msg.data) // 2]
    elif kind == "zero size":
        msg = Image(encoding="rgb8", height=0, width=width, step=width * 3)
    elif kind == "step smaller than a row":
        msg = array_to_msg(frame, "rgb8")
        msg.step = width * 3 - 3
    elif kind == "above input.max_pixels":
        msg = array_to_msg(cv2.resize(frame, (width * 2, height * 2)), "rgb8")
    elif kind == "16-bit big-endian frame":
        big = (frame[:, :, 0].astype(">u2") << 8).astype(">u2")
        msg = Image(encoding="mono16", height=height, width=width, step=width * 2, is_bigendian=1)
        msg.data = big.tobytes()
    elif kind == "other resolution":
        msg = array_to_msg(cv2.resize(frame, (width // 2, height // 2)), "rgb8")
    else:
        raise ValueError(f"unknown bad frame kind {kind!r}")
    return msg


class FramePublisher(threading.Thread):
    """Publishes the clip at ``rate`` Hz (stamp = wall clock, frame_id = clip index), every
    ``bad_every``-th frame replaced by a bad one."""

    def __init__(self, client: BenchClient, clip: BenchClip, rate: float, bad_every: int) -> None:
        super().__init__(name="fault_soak_frames", daemon=True)
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from vos_ros.ros.image_msgs import array_to_msg

        self._clip = clip
        self._period = 1.0 / rate
        self._bad_every = bad_every
        self._publisher = client.node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        self._good = [
            array_to_msg(frame, "rgb8", Header(frame_id=f"{FRAME_ID_PREFIX}{i}"))
            for i, frame in enumerate(clip.frames)
        ]
        self._bad = [bad_frame(kind, clip.frames[0]) for kind in BAD_FRAME_KINDS]
        for msg in self._bad:
            msg.header.frame_id = "bad"
        self.stop_event = threading.Event()
        self.published = 0
        self.bad_sent: dict[str, int] = dict.fromkeys(BAD_FRAME_KINDS, 0)

    def subscribed(self) -> bool:
        return self._publisher.get_subscription_count() > 0

    def run(self) -> None:
        next_time = time.monotonic()
        step = 0
        while not self.stop_event.is_set():
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self._period:
                next_time = time.monotonic()
            step += 1
            if self._bad_every and step % self._bad_every == 0:
                kind_index = (step // self._bad_every) % len(self._bad)
                message = self._bad[kind_index]
                self.bad_sent[BAD_FRAME_KINDS[kind_index]] += 1
            else:
                message = self._good[self._clip.index(step)]
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                time.time_ns(), NS_PER_S
            )
            self._publisher.publish(message)
            self.published += 1
            next_time += self._period


class RandomServiceCaller:
    """Calls a random service; knows which calls must be refused and checks the answers."""

    def __init__(self, client: BenchClient, log: TopicLog, clip: BenchClip, seed: int) -> None:
        self._client = client
        self._log = log
        self._clip = clip
        self._rng = random.Random(seed)
        self.added: list[int] = []
        self.permanent: list[int] = []
        self.outcomes: dict[str, dict[str, int]] = {}

    def _record(self, name: str, outcome: str) -> None:
        self.outcomes.setdefault(name, {REFUSED: 0, ACCEPTED: 0, WRONG: 0})[outcome] += 1

    def call_one(self) -> None:
        from sensor_msgs.msg import RegionOfInterest

        from vos_ros.srv import AddObjects, RemoveObjects, SetInitialMask

        latest = self._log.latest()
        if latest is None or latest.index < 0:
            return
        stamp = ns_to_time(latest.stamp_ns)
        height, width = self._clip.labels.shape[1:]
        choice = self._rng.choice(CALLS)
        if choice == "add":
            boxes = self._clip.boxes(latest.index)
            free = [i for i in boxes if i > PERMANENT_TARGETS]
            if len(self.added) >= MAX_ADDED or not free:
                choice = "remove"
            else:
                x0, y0, x1, y1 = boxes[self._rng.choice(free)]
                request = AddObjects.Request(
                    stamp=stamp,
                    boxes=[
                        RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)
                    ],
                )
                response = self._call(AddObjects, "add_objects", request)
                if response.success:
                    self.added.extend(int(i) for i in response.new_ids)
                self._record(choice, ACCEPTED if response.success else REFUSED)
                return
        if choice == "remove":
            if not self.added:
                return
            target = self.added.pop(0)
            response = self._call(
                RemoveObjects, "remove_objects", RemoveObjects.Request(ids=[target])
            )
            self._record(choice, ACCEPTED if target in response.removed_ids else WRONG)
            return
        if choice == "unknown ids":
            request = RemoveObjects.Request(ids=[60_000 + self._rng.randrange(1000)])
            response = self._call(RemoveObjects, "remove_objects", request)
            ok = response.success and not list(response.removed_ids)
            self._record(choice, ACCEPTED if ok else WRONG)
            return
        labels = np.zeros((height, width), np.uint8)
        labels[: height // 4, : width // 4] = 1
        request: Any
        if choice == "wrong size":
            service, kind = "set_initial_mask", SetInitialMask
            request = SetInitialMask.Request(
                label_image=label_image_msg(labels[:, :-3]), stamp=stamp
            )
        elif choice == "wrong encoding":
            service, kind = "set_initial_mask", SetInitialMask
            image = label_image_msg(labels)
            image.encoding = "rgb8"
            request = SetInitialMask.Request(label_image=image, stamp=stamp)
        elif choice == "old stamp":
            service, kind = "set_initial_mask", SetInitialMask
            request = SetInitialMask.Request(
                label_image=label_image_msg(labels), stamp=ns_to_time(NS_PER_S)
            )
        elif choice == "id tracked":
            service, kind = "set_initial_mask", SetInitialMask
            request = SetInitialMask.Request(
                label_image=label_image_msg(labels), ids=[1], class_labels=["x"], stamp=stamp
            )
        elif choice == "box outside":
            service, kind = "add_objects", AddObjects
            request = AddObjects.Request(
                stamp=stamp,
                boxes=[RegionOfInterest(x_offset=width + 10, y_offset=0, width=20, height=20)],
            )
        else:  # box of no size
            service, kind = "add_objects", AddObjects
            request = AddObjects.Request(
                stamp=stamp, boxes=[RegionOfInterest(x_offset=5, y_offset=5, width=0, height=10)]
            )
        response = self._call(kind, service, request)
        self._record(choice, WRONG if response.success else REFUSED)

    def _call(self, kind, service: str, request):
        return self._client.call(kind, f"/{NODE}/{service}", request, timeout=60.0)


class InstanceIds:
    """The ids listed by every ``~/instances`` message: (arrival ns, stamp ns, ids)."""

    def __init__(self, client: BenchClient) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from vos_ros.msg import InstanceMaskArray

        self.entries: list[tuple[int, int, frozenset[int]]] = []
        self._lock = threading.Lock()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        client.node.create_subscription(InstanceMaskArray, f"/{NODE}/instances", self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        stamp = int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)
        with self._lock:
            self.entries.append((time.time_ns(), stamp, frozenset(i.id for i in msg.instances)))

    def since(self, start_ns: int) -> list[tuple[int, int, frozenset[int]]]:
        with self._lock:
            return [e for e in self.entries if e[0] >= start_ns]


class DiagnosticsLevels:
    """Every ``/diagnostics`` status of the node: (time, level, message)."""

    def __init__(self, client: BenchClient) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.entries: list[tuple[float, int, str]] = []
        self._lock = threading.Lock()
        client.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_msg, 10)

    def _on_msg(self, msg) -> None:
        with self._lock:
            for status in msg.status:
                if status.name.startswith(NODE):
                    self.entries.append((time.time(), status.level[0], status.message))

    def summary(self) -> dict[str, Any]:
        """ERROR periods, and whether the status came back below ERROR after each one."""
        with self._lock:
            entries = list(self.entries)
        periods, in_error, recovered = 0, False, 0
        messages: dict[str, int] = {}
        for _, level, message in entries:
            if level >= 2 and not in_error:
                periods += 1
                in_error = True
            elif level < 2 and in_error:
                in_error = False
                recovered += 1
            if level >= 2:
                key = message.split("(")[0][:80]
                messages[key] = messages.get(key, 0) + 1
        return {
            "statuses": len(entries),
            "error_periods": periods,
            "recovered_from_error": recovered,
            "in_error_at_end": in_error,
            "error_messages": dict(sorted(messages.items(), key=lambda kv: -kv[1])[:12]),
        }


def run_fault_soak(
    seconds: float = 150.0,
    rate: float = 15.0,
    size: tuple[int, int] = (320, 240),
    model: str = "flow",
    backend: str = "flow",
    threads: int = 1,
    bad_every: int = 10,
    backend_error_every: int = 40,
    service_hz: float = 2.0,
    seed: int = 0,
    log_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the soak with faults; returns a JSON-ready record (see the module text)."""
    width, height = size
    clip = make_clip(width, height, CLIP_OBJECTS, 60)
    folder = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="vos_fault_soak_"))
    folder.mkdir(parents=True, exist_ok=True)
    max_pixels = int(width * height * 1.5)  # the "above input.max_pixels" frames are 4x
    result: dict[str, Any] = {
        "model": model,
        "backend": backend,
        "size": f"{width}x{height}",
        "rate_hz": rate,
        "seconds": seconds,
        "bad_every": bad_every,
        "backend_error_every": backend_error_every,
        "service_hz": service_hz,
        "log_dir": str(folder),
        "crashes": 0,
    }
    env = isolated_env()
    client = BenchClient(env, name="fault_soak_client")
    node = None
    frames = None
    caller = None
    samples: list[dict[str, Any]] = []
    log = client.watch_instances(f"/{NODE}/instances")
    ids_log = InstanceIds(client)
    levels = DiagnosticsLevels(client)
    rng = random.Random(seed)
    client.watch_diagnostics()
    lost_messages = 0
    checked = 0
    start = time.time()
    try:
        command = faulty_node_command(
            backend, model, threads, folder / "params", backend_error_every, max_pixels
        )
        node = Child(NODE, command, env, folder, dumps_stacks=True)
        frames = FramePublisher(client, clip, rate, bad_every)
        wait_for(frames.subscribed, NODE_START_TIMEOUT_S, "the node's image subscription", [node])
        frames.start()
        wait_for(lambda: log.count() > 0, NODE_START_TIMEOUT_S, "vos_node output", [node])
        result["set_initial_mask"] = set_targets(
            client, log, clip.with_targets(PERMANENT_TARGETS), NODE
        )
        caller = RandomServiceCaller(client, log, clip, seed)
        caller.permanent = list(range(1, PERMANENT_TARGETS + 1))
        start = time.time()
        start_ns = time.time_ns()
        next_sample = start + 1.0
        next_call = start
        while time.time() - start < seconds:
            if not node.alive():
                result["crashes"] = 1
                result["crash_log"] = node.log_tail(40)
                progress(f"the node died:\n{node.log_tail(20)}")
                break
            now = time.time()
            if now >= next_call:
                caller.call_one()
                next_call = now + rng.expovariate(service_hz)
            if now >= next_sample:
                rss = rss_kib(node.pid)
                samples.append({"t_s": round(now - start, 1), "rss_mib": (rss or 0) / 1024})
                next_sample += 1.0
                if len(samples) % 30 == 0:
                    rss_now = samples[-1]["rss_mib"]
                    progress(f"{now - start:.0f} s: RSS {rss_now:.1f} MiB, {log.count()} outputs")
            time.sleep(0.02)
        # Lost targets: every output after the start must list the permanent targets.
        permanent = set(range(1, PERMANENT_TARGETS + 1))
        for _, _, ids in ids_log.since(start_ns + NS_PER_S):
            checked += 1
            lost_messages += not permanent <= ids
        result["final_tracked"] = _tracked_ids(client)
    except (RuntimeError, TimeoutError) as exc:
        result["error"] = str(exc)
        progress(f"fault soak broke off: {exc}")
    finally:
        final_diag = client.diagnostics_of(NODE)
        if frames is not None:
            frames.stop_event.set()
            if frames.ident is not None:  # started: a failed start must not hide its error
                frames.join(5)
        exit_code = node.stop() if node is not None else None
        node_log = (folder / f"{NODE}.log").read_text(errors="replace") if node else ""
        client.close()
    result["node_exit_code"] = exit_code
    result["final_diagnostics"] = final_diag
    result["diagnostics"] = levels.summary()
    result["frames_published"] = frames.published if frames else 0
    result["bad_frames_sent"] = frames.bad_sent if frames else {}
    result["service_calls"] = caller.outcomes if caller else {}
    result["wrong_service_answers"] = sum(o[WRONG] for o in result["service_calls"].values())
    final = result.get("final_tracked") or []
    permanent_missing = [i for i in range(1, PERMANENT_TARGETS + 1) if i not in final]
    result["targets_lost"] = len(permanent_missing) if "final_tracked" in result else None
    result["outputs_checked"] = checked
    result["outputs_missing_a_target"] = lost_messages
    lines = node_log.splitlines()
    result["unexpected_errors_in_log"] = sum(
        1 for line in lines if "unexpected error" in line and "injected backend failure" not in line
    )
    result["tracebacks_in_log"] = node_log.count("Traceback")
    result["internal_service_errors"] = node_log.count("service handler failed")
    result["injected_failures"] = _injected_failures(lines)
    result["resolution_notices"] = node_log.count("camera resolution changed")
    result["rss"] = _rss_growth(samples)
    result["samples"] = samples
    lat = [a.latency_ms for a in log.between(int(start * 1e9) + NS_PER_S, 2**63 - 1)]
    result["latency_ms"] = summarize(lat)
    result["load_average_end"] = load_average()
    for key in ("frames_received", "frames_processed", "frames_dropped", "frames_failed"):
        if key in final_diag:
            result[key] = int(final_diag[key])
    return result


def _injected_failures(lines: list[str]) -> int | None:
    """The count the faulty node prints at exit ("fault injection: N failures in M calls")."""
    for line in reversed(lines):
        if line.startswith("fault injection:"):
            return int(line.split()[2])
    return None


def _tracked_ids(client: BenchClient) -> list[int]:
    from vos_ros.srv import RemoveObjects

    # Removing an id that is never used answers with the tracked ids and changes nothing.
    response = client.call(
        RemoveObjects, f"/{NODE}/remove_objects", RemoveObjects.Request(ids=[65_000])
    )
    return sorted(int(i) for i in response.tracked_ids)


def _rss_growth(samples: list[dict[str, Any]]) -> dict[str, float]:
    """RSS after a warm-up (the first fifth of the run, at least 20 s) and at the end."""
    if len(samples) < 30:
        return {}
    warmup = max(20.0, samples[-1]["t_s"] / 5)
    steady = [s["rss_mib"] for s in samples if s["t_s"] >= warmup]
    if len(steady) < 10:
        return {}
    first = float(np.median(steady[:5]))
    last = float(np.median(steady[-5:]))
    return {
        "warmup_s": warmup,
        "after_warmup_mib": first,
        "end_mib": last,
        "growth_mib": last - first,
        "growth_percent": (last / first - 1.0) * 100.0,
        "max_mib": max(steady),
    }


def fault_soak_block(result: dict[str, Any]) -> str:
    """A Markdown summary of a run (for docs/reliability.md)."""
    rss = result.get("rss", {})
    lat = result.get("latency_ms", {})
    diag = result.get("diagnostics", {})
    calls = result.get("service_calls", {})
    refused = sum(o[REFUSED] for o in calls.values())
    accepted = sum(o[ACCEPTED] for o in calls.values())
    lines = [
        f"- input: {result['size']} at {result['rate_hz']:g} Hz for {result['seconds']:g} s, "
        f"model `{result['model']}`; a bad frame every {result['bad_every']} frames "
        f"({sum(result.get('bad_frames_sent', {}).values())} sent), an injected backend error "
        f"every {result['backend_error_every']} inference calls "
        f"({result.get('injected_failures')} injected), services at "
        f"{result['service_hz']:g} calls/s ({accepted} accepted, {refused} refused as expected, "
        f"{result.get('wrong_service_answers', 0)} wrong answers)",
        f"- crashes: **{result['crashes']}** (node exit code {result.get('node_exit_code')}); "
        f"targets lost: **{result.get('targets_lost')}** (outputs missing a permanent target: "
        f"{result.get('outputs_missing_a_target')} of {result.get('outputs_checked')}); unexpected "
        f"errors in the log: {result.get('unexpected_errors_in_log')}; internal service errors: "
        f"{result.get('internal_service_errors')}",
        f"- frames: {result.get('frames_received', '?')} received, "
        f"{result.get('frames_processed', '?')} processed, {result.get('frames_failed', '?')} "
        f"refused or failed, {result.get('frames_dropped', '?')} dropped (replaced by newer); "
        f"/diagnostics: {diag.get('error_periods', '?')} ERROR periods, "
        f"{diag.get('recovered_from_error', '?')} back to OK/WARN afterwards",
    ]
    if rss:
        lines.append(
            f"- RSS after {rss['warmup_s']:.0f} s warm-up: {rss['after_warmup_mib']:.1f} MiB → "
            f"{rss['end_mib']:.1f} MiB at the end ({rss['growth_mib']:+.1f} MiB, "
            f"{rss['growth_percent']:+.1f}%)"
        )
    if lat.get("n"):
        lines.append(
            f"- latency (stamp to ~/instances): median {lat['median']:.1f} ms, p95 "
            f"{lat['p95']:.1f} ms over {lat['n']} outputs"
        )
    if result.get("error"):
        lines.append(f"- run broke off: {result['error'].splitlines()[0]}")
    return "\n".join(lines)


def add_fault_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options only the fault soak has (for ``vos-ros bench faults`` to add to its parser)."""
    parser.add_argument(
        "--bad-every", type=int, default=10, help="faults: a bad frame every N (10)"
    )
    parser.add_argument(
        "--backend-error-every", type=int, default=40, help="faults: inference call N fails (40)"
    )
    parser.add_argument(
        "--service-hz", type=float, default=2.0, help="faults: random service calls/s (2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="faults: random seed (0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All options of ``python -m vos_ros.benchmark.fault_soak``."""
    parser.add_argument("--seconds", type=float, default=150.0, help="duration (150)")
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second (15)")
    parser.add_argument("--size", default="320x240", help="WxH of the clip (320x240)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"'flow' or a model folder ({DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--backend", default="flow", help="benchmark backend name: flow, onnxruntime, ... (flow)"
    )
    parser.add_argument("--threads", type=int, default=1, help="engine threads (1)")
    add_fault_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="write the record here")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the node's log here")


def run(args: argparse.Namespace) -> int:
    """Run from parsed arguments; exit code 1 when the node crashed, lost targets or
    answered a service wrongly."""
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must look like 320x240, got {args.size!r}", file=sys.stderr)
        return 2
    if args.seconds <= 0 or args.rate <= 0 or args.service_hz <= 0 or min(width, height) < 32:
        message = "--seconds, --rate, --service-hz must be positive, --size at least 32x32"
        print(f"error: {message}", file=sys.stderr)
        return 2
    result = run_fault_soak(
        seconds=args.seconds,
        rate=args.rate,
        size=(width, height),
        model=args.model,
        backend=args.backend,
        threads=args.threads,
        bad_every=args.bad_every,
        backend_error_every=args.backend_error_every,
        service_hz=args.service_hz,
        seed=args.seed,
        log_dir=args.log_dir,
    )
    print(fault_soak_block(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.json}")
    healthy = (
        result["crashes"] == 0
        and result.get("targets_lost") == 0
        and result.get("outputs_missing_a_target") == 0
        and result.get("wrong_service_answers") == 0
        and not result.get("error")
    )
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vos_ros.benchmark.fault_soak", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
