"""Soak: the node for minutes at camera rate, with targets added and removed by service.

A player process (:mod:`vos_ros.benchmark.frame_player`) feeds ``vos_node`` (its own process, as
the launch file starts it) at ``rate`` Hz. This process subscribes to ``~/instances`` and
``/diagnostics`` and, every ``change_every`` seconds, changes the targets through the node's
services: starting from one target (``~/set_initial_mask``), it adds a target by box
(``~/add_objects``, the box of a ground-truth object on a frame the node has output) twice, then
removes the added ones (``~/remove_objects``) one by one, and so on — between one and three
targets at any time. Once a second it samples:

- the node's resident memory (``VmRSS`` of ``/proc/<pid>/status``),
- stamp-to-arrival latency and output frame rate over that second,
- the node's diagnostics counters (received, processed, dropped, failed).

The report (nothing is asserted) gives RSS growth after warm-up (three views, in
:mod:`vos_ros.benchmark.soak_rss`), the trend of latency p95 (slope and later vs earlier third),
and whether any output was older than one published before it (with the node's drop counter:
frames replaced before the engine took them).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.benchmark.clips import BenchClip, make_clip
from vos_ros.benchmark.node_bench import set_targets, start_vos_node
from vos_ros.benchmark.ros_procs import (
    BenchClient,
    Child,
    TopicLog,
    isolated_env,
    ns_to_time,
    player_command,
    player_progress,
    player_published,
    published_at,
    rss_kib,
    rss_parts_kib,
    transport_label,
    vos_node_command,
)
from vos_ros.benchmark.soak_rss import (
    RSS_KIND_NAMES,
    limit_check,
    rss_analysis,
    rss_block_lines,
    rss_checks,
    steady_samples,
    trim_readings,
    warmup_seconds,
)
from vos_ros.benchmark.stats import load_average, summarize

SOAK_OBJECTS = 4  # objects in the clip: one is the permanent target, the others come and go
MAX_TARGETS = 3
WINDOW_S = 10.0  # latency p95 / frame rate windows for the trend


class TargetCycler:
    """Adds targets by box up to :data:`MAX_TARGETS`, then removes them, and again."""

    def __init__(self, client: BenchClient, log: TopicLog, clip: BenchClip, node: str) -> None:
        self._client = client
        self._log = log
        self._clip = clip
        self._node = node
        self._added: list[int] = []  # ids the node gave to targets added by box, oldest first
        self._adding = True
        self._next_object = itertools.cycle(range(2, SOAK_OBJECTS + 1))
        self.events: list[dict[str, Any]] = []

    def step(self, t_s: float) -> None:
        """One change at ``t_s`` seconds into the soak."""
        if self._adding and len(self._added) >= MAX_TARGETS - 1:
            self._adding = False
        elif not self._adding and not self._added:
            self._adding = True
        start = time.perf_counter()
        event = self._add() if self._adding else self._remove()
        event["call_ms"] = round((time.perf_counter() - start) * 1e3, 1)
        event["t_s"] = round(t_s, 2)
        self.events.append(event)

    def _add(self) -> dict[str, Any]:
        from sensor_msgs.msg import RegionOfInterest

        from vos_ros.srv import AddObjects

        latest = self._log.latest()
        if latest is None or latest.index < 0:
            return {"action": "add", "success": False, "message": "no output yet"}
        boxes = self._clip.boxes(latest.index)
        for _ in range(SOAK_OBJECTS):
            object_id = next(self._next_object)
            if object_id in boxes:
                break
        else:
            return {"action": "add", "success": False, "message": "no object on the frame"}
        x0, y0, x1, y1 = boxes[object_id]
        request = AddObjects.Request(
            stamp=ns_to_time(latest.stamp_ns),
            boxes=[RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)],
            class_labels=[self._clip.classes[object_id]],
        )
        response = self._client.call(AddObjects, f"/{self._node}/add_objects", request)
        if response.success:
            self._added.extend(int(i) for i in response.new_ids)
        return {
            "action": "add",
            "success": bool(response.success),
            "message": response.message,
            "tracked": list(response.tracked_ids),
        }

    def _remove(self) -> dict[str, Any]:
        from vos_ros.srv import RemoveObjects

        target_id = self._added.pop()
        request = RemoveObjects.Request(ids=[target_id])
        response = self._client.call(RemoveObjects, f"/{self._node}/remove_objects", request)
        return {
            "action": "remove",
            "success": bool(response.success),
            "message": response.message,
            "tracked": list(response.tracked_ids),
        }


def run_soak(
    backend: str,
    model: str,
    size: tuple[int, int],
    minutes: float,
    rate: float,
    change_every: float,
    threads: int = 0,
    plot_path: Path | None = None,
    log_dir: Path | None = None,
    progress: Callable[[str], None] = print,
    clip_length: int = 60,
    fastdds_profile: str | Path | None = None,
    fastdds_transports: str | None = None,
) -> dict[str, Any]:
    """Run the soak; returns a JSON-ready record (``error`` set when the run broke off)."""
    width, height = size
    clip = make_clip(width, height, SOAK_OBJECTS, clip_length)
    folder = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="vos_soak_"))
    folder.mkdir(parents=True, exist_ok=True)
    clip_path = folder / "clip.npz"
    clip.save(clip_path)
    duration = minutes * 60.0
    result: dict[str, Any] = {
        "backend": backend,
        "size": f"{width}x{height}",
        "transport": transport_label(fastdds_profile, fastdds_transports),
        "rate_hz": rate,
        "minutes": minutes,
        "change_every_s": change_every,
        "log_dir": str(folder),
    }
    env = isolated_env(profile=fastdds_profile, transports=fastdds_transports)
    client = BenchClient(env)
    children: list[Child] = []
    samples: list[dict[str, Any]] = []
    cycler = None
    log = None
    player = None
    try:
        client.watch_diagnostics()
        log = client.watch_instances("/vos_node/instances")
        player = Child("player", player_command(clip_path, rate), env, folder)
        children.append(player)
        command = vos_node_command(backend, model, threads, folder / "params")
        node, result["node_start_attempts"] = start_vos_node(
            command, env, folder, log, children, connect_timeout=45.0
        )
        result["set_initial_mask"] = set_targets(client, log, clip.with_targets(1), "vos_node")
        cycler = TargetCycler(client, log, clip, "vos_node")
        start = time.time()
        result["start_unix_s"] = start
        next_change = start + change_every
        next_sample = start + 1.0
        while time.time() - start < duration:
            for child in children:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
            now = time.time()
            if now >= next_change:
                cycler.step(now - start)
                next_change += change_every
            if now >= next_sample:
                samples.append(_sample(now - start, node.pid, log, client, next_sample))
                next_sample += 1.0
                if len(samples) % 30 == 0:
                    last = samples[-1]
                    progress(
                        f"{last['t_s']:.0f} s: RSS {last['rss_mib']:.1f} MiB, "
                        f"{last['output_hz']:.1f} Hz, latency p95 {last['latency_p95_ms']:.1f} ms, "
                        f"targets {last['targets']}"
                    )
            time.sleep(0.05)
    except (RuntimeError, TimeoutError) as exc:
        result["error"] = str(exc)
        progress(f"soak failed: {exc}")
    finally:
        final_diag = client.diagnostics_of("vos_node")
        for child in reversed(children):
            child.stop()
        client.close()
    result["frames_published"] = player_published(player.log_path) if player else None
    result["samples"] = samples
    result["events"] = cycler.events if cycler else []
    result["final_diagnostics"] = final_diag
    result["load_average_end"] = load_average()
    start_ns = int(result.get("start_unix_s", 0.0) * 1e9)
    result["analysis"] = analyze(samples, log, duration, final_diag, start_ns)
    if result["frames_published"] and "frames_received" in result["analysis"]:
        received = result["analysis"]["frames_received"]
        result["analysis"]["frames_published"] = result["frames_published"]
        # counted from the player's start, so it includes the frames sent before the node ran
        result["analysis"]["input_loss_since_player_start"] = (
            1.0 - received / result["frames_published"]
        )
    if player:
        result["analysis"].update(intake_loss(samples, player_progress(player.log_path)))
    if plot_path and samples:
        plot_soak(samples, result["events"], plot_path)
        result["plot"] = str(plot_path)
    result["checks"] = soak_checks(result["analysis"])
    return result


def intake_loss(samples: list[dict[str, Any]], progress: list[tuple[int, int]]) -> dict[str, Any]:
    """Frames lost before the node's image callback while the soak ran (start-up excluded).

    The node's received count comes with each diagnostics message, the player's published count
    once a second; the player's count is interpolated at the times the diagnostics arrived, and
    the first and last such pair within the soak are compared.
    """
    pairs = []
    for s in samples:
        published = published_at(progress, s.get("diag_ns", 0))
        if published is not None and s["received"] > 0:
            pairs.append((published, s["received"]))
    if len(pairs) < 2 or pairs[-1][0] - pairs[0][0] < 1:
        return {}
    sent = pairs[-1][0] - pairs[0][0]
    got = pairs[-1][1] - pairs[0][1]
    return {
        "window_frames_sent": round(sent),
        "window_frames_received": got,
        "input_loss": 1.0 - got / sent,
    }


def _sample(t_s: float, pid: int, log: TopicLog, client: BenchClient, end: float) -> dict[str, Any]:
    arrivals = log.between(int((end - 1.0) * 1e9), int(end * 1e9))
    latencies = [a.latency_ms for a in arrivals]
    diag = client.diagnostics_of("vos_node")
    rss = rss_kib(pid)
    parts = rss_parts_kib(pid)
    nan = float("nan")
    sample = {
        "t_s": round(t_s, 2),
        "rss_mib": rss / 1024 if rss is not None else nan,
        "rss_anon_mib": parts["anon"] / 1024 if "anon" in parts else nan,
        "rss_file_mib": parts["file"] / 1024 if "file" in parts else nan,
        "output_hz": float(len(arrivals)),
        "latency_median_ms": float(np.median(latencies)) if latencies else float("nan"),
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "targets": arrivals[-1].instances if arrivals else None,
        "dropped": int(diag.get("frames_dropped", "0") or 0),
        "processed": int(diag.get("frames_processed", "0") or 0),
        "received": int(diag.get("frames_received", "0") or 0),
        "diag_ns": int(diag.get("_received_ns", "0") or 0),  # when those counts arrived
        # the node's own reading right after its last heap trim, between frames
        "heap_trims": int(diag.get("heap_trims", "0") or 0),
        "resident_after_trim_mib": float(diag.get("resident_after_trim_mib") or nan),
        "targets_at_trim": int(diag["targets_at_trim"]) if diag.get("targets_at_trim") else None,
        "load_1min": load_average()[0] if load_average() else None,
    }
    return sample


def analyze(
    samples: list[dict[str, Any]],
    log: TopicLog | None,
    duration: float,
    diag: dict[str, str],
    start_ns: int,
) -> dict[str, Any]:
    """RSS growth after warm-up, latency p95 trend, frame rate, ordering of outputs.

    :param start_ns: wall-clock start of the soak (the first target set); times are relative to it.
    """
    out: dict[str, Any] = {}
    if not samples:
        return out
    warmup_s = warmup_seconds(duration)
    out["warmup_s"] = warmup_s
    out.update(rss_analysis(steady_samples(samples, warmup_s)))
    if log is not None:
        arrivals = log.between(start_ns, 2**63 - 1)
        stamps = [a.stamp_ns for a in arrivals]
        out["outputs"] = len(arrivals)
        out["out_of_order_outputs"] = sum(1 for a, b in itertools.pairwise(stamps) if b <= a)
        # latency p95 per window after warm-up, and its trend
        windows = []
        if arrivals:
            span_s = (arrivals[-1].arrival_ns - start_ns) / 1e9
            edges = np.arange(warmup_s, span_s, WINDOW_S)
            for lo in edges:
                hi = lo + WINDOW_S
                lat = [a.latency_ms for a in arrivals if lo <= (a.arrival_ns - start_ns) / 1e9 < hi]
                if len(lat) >= 5:
                    windows.append(
                        {
                            "t_s": float(lo + WINDOW_S / 2),
                            "p95_ms": float(np.percentile(lat, 95)),
                            "median_ms": float(np.median(lat)),
                            "fps": len(lat) / WINDOW_S,
                        }
                    )
        out["windows"] = windows
        if len(windows) >= 3:
            t = np.array([w["t_s"] for w in windows]) / 60.0
            p95 = np.array([w["p95_ms"] for w in windows])
            out["latency_p95_slope_ms_per_min"] = float(np.polyfit(t, p95, 1)[0])
            third = max(1, len(windows) // 3)
            early, late = float(np.median(p95[:third])), float(np.median(p95[-third:]))
            out["latency_p95_early_ms"] = early
            out["latency_p95_late_ms"] = late
            out["latency_p95_late_over_early"] = late / early - 1.0
            out["fps"] = summarize([w["fps"] for w in windows])
        steady_arrivals = [a for a in arrivals if (a.arrival_ns - start_ns) / 1e9 >= warmup_s]
        if len(steady_arrivals) >= 2:
            gaps = np.diff([a.arrival_ns for a in steady_arrivals])
            out["max_output_gap_ms"] = float(np.max(gaps) / 1e6)
        out["latency_ms"] = summarize([a.latency_ms for a in steady_arrivals])
    for key in ("frames_received", "frames_processed", "frames_dropped", "frames_failed"):
        if key in diag:
            out[key] = int(diag[key])
    return out


def soak_checks(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The soak's checks on what :func:`analyze` measured (those it could measure)."""
    checks = rss_checks(analysis)
    if "latency_p95_late_over_early" in analysis:
        creep = analysis["latency_p95_late_over_early"]
        measured = (
            f"{analysis['latency_p95_early_ms']:.1f} → {analysis['latency_p95_late_ms']:.1f} ms "
            f"({creep * 100:+.0f}%), slope {analysis['latency_p95_slope_ms_per_min']:+.2f} ms/min"
        )
        target = "latency p95 does not creep (last third ≤ first third + 10%)"
        checks.append(limit_check(target, measured, creep, 0.10))
    if "out_of_order_outputs" in analysis:
        bad = analysis["out_of_order_outputs"]
        measured = (
            f"{bad} outputs older than an earlier output of {analysis['outputs']}; node dropped "
            f"{analysis.get('frames_dropped', '?')} of {analysis.get('frames_received', '?')} "
            "received frames (replaced by newer ones)"
        )
        checks.append(limit_check("no frame older than the newest is processed", measured, bad, 0))
    return checks


def plot_soak(samples: list[dict[str, Any]], events: list[dict[str, Any]], path: Path) -> None:
    """RSS, latency (median, p95) and frame rate over time, target changes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s["t_s"] for s in samples]) / 60.0
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, [s["rss_mib"] for s in samples], color="tab:blue", label="total (VmRSS)")
    if all("rss_anon_mib" in s for s in samples):
        anon = [s["rss_anon_mib"] for s in samples]
        files = [s["rss_file_mib"] for s in samples]
        axes[0].plot(t, anon, color="tab:cyan", label=RSS_KIND_NAMES["anon"])
        axes[0].plot(t, files, color="tab:gray", label=RSS_KIND_NAMES["file"])
    settled = trim_readings(samples)
    if settled:
        axes[0].plot(
            [r["t_s"] / 60.0 for r in settled],
            [r["rss_mib"] for r in settled],
            color="black",
            marker=".",
            markersize=4,
            label="after the node's heap trims",
        )
    axes[0].legend(loc="lower right")  # between the file-backed pages and the rest
    axes[0].set_ylabel("node RSS (MiB)")
    # markers too: a model that steps in seconds leaves most one-second samples without an
    # output (NaN), and a line alone would not show the isolated values between them
    latency = {"marker": ".", "markersize": 3}
    median = [s["latency_median_ms"] for s in samples]
    axes[1].plot(t, median, label="median", color="tab:green", **latency)
    axes[1].plot(t, [s["latency_p95_ms"] for s in samples], label="p95", color="tab:red", **latency)
    axes[1].set_ylabel("latency (ms)")
    axes[1].legend(loc="upper right")
    axes[2].plot(t, [s["output_hz"] for s in samples], color="tab:purple")
    axes[2].set_ylabel("output (frames/s)")
    axes[2].set_xlabel("time (min)")
    for event in events:
        color = "tab:green" if event["action"] == "add" else "tab:orange"
        axes[1].axvline(event["t_s"] / 60.0, color=color, alpha=0.25, linewidth=0.8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(
        "vos_node soak: memory, latency, frame rate (lines: target added green, removed orange)"
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def soak_block(result: dict[str, Any]) -> str:
    from vos_ros.benchmark.report import targets_list

    a = result.get("analysis", {})
    events = result.get("events", [])
    ok = sum(1 for e in events if e["success"])
    lines = [
        f"Input {result['size']} at {result['rate_hz']:g} Hz over "
        f"{result.get('transport', transport_label(None))} for {result['minutes']:g} min; "
        f"targets changed every {result['change_every_s']:g} s ({ok}/{len(events)} service "
        f"calls succeeded); warm-up {a.get('warmup_s', 0):g} s excluded.",
        "",
    ]
    if "latency_ms" in a:
        lat = a["latency_ms"]
        fps = a.get("fps", {})
        lines.append(
            f"- latency after warm-up: median {lat['median']:.1f} ms, p95 {lat['p95']:.1f} ms; "
            f"output {fps.get('median', 0):.1f} frames/s (median of {WINDOW_S:g} s windows)"
        )
    if "input_loss" in a:
        lines.append(
            f"- input while the soak ran: the player published {a['window_frames_sent']} frames, "
            f"the node received {a['window_frames_received']} ({a['input_loss'] * 100:.1f} % lost "
            "before the node's image callback; best-effort QoS, depth 1)"
        )
    if "input_loss_since_player_start" in a:
        lines.append(
            f"- input since the player started: {a['frames_published']} published, "
            f"{a['frames_received']} received "
            f"({a['input_loss_since_player_start'] * 100:.1f} % lost, node start-up included)"
        )
    if "max_output_gap_ms" in a:
        calls = sorted(e["call_ms"] for e in events if "call_ms" in e)
        slowest = f"; slowest service call {calls[-1]:.0f} ms" if calls else ""
        lines.append(
            f"- longest gap between two outputs after warm-up: {a['max_output_gap_ms']:.0f} ms"
            f"{slowest}"
        )
    lines += rss_block_lines(a)
    if result.get("plot"):
        lines.append(f"- plot: `{result['plot']}`")
    if result.get("error"):
        lines.append(f"- run broke off: {result['error'].splitlines()[0]}")
    checks = result.get("checks") or []
    if checks:
        lines += ["", targets_list(checks)]
    return "\n".join(lines)
