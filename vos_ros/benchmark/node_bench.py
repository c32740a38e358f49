"""Node benchmark across processes: publisher -> node -> subscriber, against a pass-through node.

One run, three measurements on the same clip:

1. *engine alone*: the engine in this process (:func:`engine_bench.run_case`, with the node's
   message work, over the same frames after the prompt as the node's measured window) for every
   target count, back-to-back and paced at ``rate`` (each step on a tick
   of the input rate, as the node gets its frames: idle time between frames makes a step slower
   on a shared machine, so the paced time is the engine's share of the node's latency);
2. *pass-through*: :mod:`vos_ros.benchmark.passthrough_node` in its own process, fed by
   :mod:`vos_ros.benchmark.frame_player` at ``rate`` Hz; this process subscribes to its
   ``~/instances`` and measures stamp-to-arrival latency (the ROS transport + image conversion);
3. *node*: ``vos_node`` (started as the launch file does) in its own process, same player; targets
   are set with ``~/set_initial_mask`` (replace) on the clip frame the engine alone was prompted
   on, once the node has output it, then latency and
   output rate are measured per target count. The node's ``/diagnostics`` give its own engine time,
   dropped frames and the median of each stage of its frames (:func:`stage_breakdown`: where the
   latency goes, next to the same stages of the paced engine).

What the node adds over the engine: when the engine keeps up with the input (engine fps above the
rate), latency is compared (``node latency / engine time - 1``); when it does not, a frame may wait
for the previous one to finish, so the per-frame cost is compared instead (``engine fps / node
output fps - 1``). Both numbers are always recorded, and the latency is also compared with the
paced engine time (``latency_overhead_paced``): what the node adds beyond the engine running at
the same input rate.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.benchmark.clips import BenchClip, make_clip
from vos_ros.benchmark.engine_bench import (
    CaseSpec,
    build_bench_engine,
    message_codec,
    run_case,
)
from vos_ros.benchmark.ros_procs import (
    BenchClient,
    Child,
    TopicLog,
    isolated_env,
    label_image_msg,
    node_children,
    ns_to_time,
    passthrough_command,
    player_command,
    start_connected,
    transport_label,
    vos_node_command,
    wait_for,
)
from vos_ros.benchmark.stats import fmt_spread, load_average, summarize
from vos_ros.engine.engine import ENGINE_STAGES

NODE_START_TIMEOUT_S = 180.0  # model load + warm-up on a loaded 2-core machine
ENGINE_PROMPT_FRAME = 0  # engine_bench.run_case prompts the engine on the clip's first frame
SATURATION_MARGIN = 1.1  # the engine "keeps up" when its fps exceeds the rate by this factor


def measure_window(log: TopicLog, seconds: float, instances: int | None = None) -> dict[str, Any]:
    """Wait ``seconds`` and summarise the arrivals in that window (only messages with
    ``instances`` entries when given)."""
    start = time.time_ns()
    time.sleep(seconds)
    end = time.time_ns()
    arrivals = [a for a in log.between(start, end) if instances is None or a.instances == instances]
    stamps = [a.stamp_ns for a in arrivals]
    return {
        "messages": len(arrivals),
        "output_hz": len(arrivals) / seconds,
        "latency_ms": summarize([a.latency_ms for a in arrivals]),
        "out_of_order": sum(1 for a, b in itertools.pairwise(stamps) if b <= a),
    }


def frame_showing_all(
    log: TopicLog, clip: BenchClip, timeout: float = 10.0, frame: int | None = None
):
    """The newest output (still in the node's frame buffer) whose clip frame shows every one of
    the clip's targets: a target hidden on the prompted frame cannot be given to the node.

    ``frame``: only an output of this clip frame will do (waits for the player to show it).
    """
    ids = set(clip.classes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for arrival in log.recent(10):  # the node buffers the last 30 frames by default
            if arrival.index < 0 or (frame is not None and arrival.index != frame):
                continue
            if ids <= set(np.unique(clip.labels[arrival.index]).tolist()):
                return arrival
        time.sleep(0.02 if frame is not None else 0.1)
    wanted = "" if frame is None else f" on clip frame {frame}"
    raise RuntimeError(f"no recent output frame{wanted} shows all of targets {sorted(ids)}")


def set_targets(
    client: BenchClient, log: TopicLog, clip: BenchClip, node: str, frame: int | None = None
) -> str:
    """Replace the node's targets with the clip's labels on a recent frame it has output (on clip
    frame ``frame`` when given)."""
    from vos_ros.srv import SetInitialMask

    latest = frame_showing_all(log, clip, frame=frame)
    ids = sorted(clip.classes)
    request = SetInitialMask.Request(
        label_image=label_image_msg(clip.labels[latest.index]),
        ids=ids,
        class_labels=[clip.classes[i] for i in ids],
        stamp=ns_to_time(latest.stamp_ns),
        replace=True,
    )
    response = client.call(SetInitialMask, f"/{node}/set_initial_mask", request)
    if not response.success:
        raise RuntimeError(f"set_initial_mask failed: {response.message}")
    return response.message


def start_vos_node(
    command: list[str],
    env: dict[str, str],
    folder: Path,
    log: TopicLog,
    children: list[Child],
    connect_timeout: float = 30.0,
    progress: Callable[[str], None] = print,
) -> tuple[Child, int]:
    """Start ``vos_node`` until its ``~/instances`` reach ``log`` (:func:`start_connected`);
    returns the node and the attempt that connected."""
    return start_connected(
        node_children(command, env, folder),
        lambda: log.count() > 0,
        children,
        what="vos_node output",
        start_timeout=NODE_START_TIMEOUT_S,
        connect_timeout=connect_timeout,
        progress=progress,
    )


def run_node_bench(
    backend: str,
    model: str,
    size: tuple[int, int],
    targets: list[int],
    rate: float,
    seconds: float,
    warmup_seconds: float,
    threads: int = 0,
    log_dir: Path | None = None,
    progress: Callable[[str], None] = print,
    clip_length: int = 40,
    fastdds_profile: str | Path | None = None,
    fastdds_transports: str | None = None,
) -> dict[str, Any]:
    """Run the three measurements; returns a JSON-ready record (``error`` set on failure)."""
    width, height = size
    clip = make_clip(width, height, max(targets), clip_length)
    result: dict[str, Any] = {
        "backend": backend,
        "size": f"{width}x{height}",
        "transport": transport_label(fastdds_profile, fastdds_transports),
        "rate_hz": rate,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "targets": targets,
    }

    # 1. engine alone, same clip, same thread setting
    engine = build_bench_engine(backend, model, threads)
    codec = message_codec()
    engine_alone, engine_paced = {}, {}
    # The same frames after the prompt as the node's window: warm-up, then the measured seconds.
    # On the synthetic clip a lone target's mask grows after ~2 s, and the decoder's window with
    # it (2.1 -> 2.7-3.2 ms), so a short run would time an easier stretch than the node gets.
    warmup = max(5, int(rate * warmup_seconds))
    frames = max(30, int(rate * seconds))
    for count in targets:
        spec = CaseSpec(backend, width, height, count, frames=frames, warmup=warmup)
        engine_alone[str(count)] = run_case(spec, engine, clip.with_targets(count), codec)
        paced = dataclasses.replace(spec, pace_hz=rate)
        engine_paced[str(count)] = run_case(paced, engine, clip.with_targets(count), codec)
        progress(
            f"engine alone, {count} target(s): "
            f"{fmt_spread(engine_alone[str(count)]['end_to_end_ms'])} ms back-to-back, "
            f"{fmt_spread(engine_paced[str(count)]['end_to_end_ms'])} ms at {rate:g} Hz"
        )
    del engine
    result["engine_alone"] = engine_alone
    result["engine_alone_paced"] = engine_paced

    folder = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="vos_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    clip_path = folder / "clip.npz"
    clip.save(clip_path)
    env = isolated_env(profile=fastdds_profile, transports=fastdds_transports)
    client = BenchClient(env)
    children: list[Child] = []
    try:
        client.watch_diagnostics()
        pt_log = client.watch_instances("/passthrough_node/instances")
        node_log = client.watch_instances("/vos_node/instances")
        player = Child("player", player_command(clip_path, rate), env, folder)
        children.append(player)

        # 2. pass-through
        passthrough = Child("passthrough", passthrough_command(), env, folder)
        children.append(passthrough)
        wait_for(lambda: pt_log.count() > 0, 60.0, "pass-through output", children)
        time.sleep(warmup_seconds)
        result["passthrough"] = measure_window(pt_log, seconds)
        result["passthrough"]["load_average"] = load_average()
        progress(
            f"pass-through: {fmt_spread(result['passthrough']['latency_ms'])} ms, "
            f"{result['passthrough']['output_hz']:.1f} Hz"
        )
        passthrough.stop()
        children.remove(passthrough)

        # 3. the node
        command = vos_node_command(backend, model, threads, folder / "params")
        _, result["node_start_attempts"] = start_vos_node(
            command, env, folder, node_log, children, progress=progress
        )
        node_cases = {}
        for count in targets:
            # prompted on the frame the engine alone was prompted on: how long the decoder takes
            # depends on it (1.5-2.4 ms at 1 target over this clip's frames)
            message = set_targets(
                client, node_log, clip.with_targets(count), "vos_node", frame=ENGINE_PROMPT_FRAME
            )
            time.sleep(warmup_seconds)
            diag_before = client.diagnostics_of("vos_node")
            window = measure_window(node_log, seconds, instances=count)
            diag_after = client.diagnostics_of("vos_node")
            window["set_initial_mask"] = message
            window["diagnostics"] = _diag_delta(diag_before, diag_after)
            window["load_average"] = load_average()
            node_cases[str(count)] = window
            progress(
                f"node, {count} target(s): {fmt_spread(window['latency_ms'])} ms, "
                f"{window['output_hz']:.1f} Hz, dropped {window['diagnostics'].get('dropped')}"
            )
        result["node"] = node_cases
    except (RuntimeError, TimeoutError) as exc:
        result["error"] = str(exc)
        progress(f"node benchmark failed: {exc}")
    finally:
        for child in reversed(children):
            child.stop()
        client.close()
    result["comparison"] = _compare(result, rate)
    result["stage_breakdown"] = stage_breakdown(result)
    result["checks"] = node_target_checks(result)
    result["log_dir"] = str(folder)
    return result


def _diag_delta(before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    """Counters over the window and the node's own timings at its end."""

    def number(values: dict[str, str], key: str) -> float:
        try:
            return float(values.get(key, "nan"))
        except ValueError:
            return float("nan")

    out: dict[str, Any] = {}
    for key, name in (
        ("frames_received", "received"),
        ("frames_processed", "processed"),
        ("frames_dropped", "dropped"),
        ("frames_failed", "failed"),
    ):
        if key in after and key in before:
            out[name] = int(number(after, key) - number(before, key))
    for key in (
        "engine_mean_ms",
        "engine_p95_ms",
        "latency_mean_ms",
        "latency_p95_ms",
        "output_hz",
    ):
        if key in after:
            out[key] = number(after, key)
    # the node's per-stage medians over its last frames (vos_ros.ros.diagnostics.NODE_STAGES)
    prefix, suffix = "stage_", "_median_ms"
    stages = {
        key[len(prefix) : -len(suffix)]: number(after, key)
        for key in after
        if key.startswith(prefix) and key.endswith(suffix)
    }
    if stages:
        out["stages_median_ms"] = stages
    return out


def stage_breakdown(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Where the node's stamp-to-arrival latency goes, per target count, next to the same stages
    of the engine alone paced at the input rate (ms medians).

    ``rest`` is the subscriber's latency minus the node's stages: the transport of the output to
    the subscriber, roughly (a sum of medians is not the median of sums). The engine alone has no
    input age, hand-over or lock; its ``decode`` is the image conversion and its ``publish`` the
    message building and serialisation, without the DDS write.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for count, node in (result.get("node") or {}).items():
        stages = (node.get("diagnostics") or {}).get("stages_median_ms")
        if not stages:
            continue  # a record from before the node reported its stages
        arrival = node["latency_ms"]["median"]
        node_row = {**stages, "rest": arrival - sum(stages.values()), "stamp_to_arrival": arrival}
        entry = {"node": node_row}
        paced = (result.get("engine_alone_paced") or {}).get(count)
        if paced:
            medians = {name: value["median"] for name, value in paced["stages_ms"].items()}
            engine_row = {"decode": medians.get("msg_in", float("nan"))}
            engine_row.update({name: medians[name] for name in ENGINE_STAGES if name in medians})
            engine_row["publish"] = medians.get("msg_out", 0.0) + medians.get("serialize", 0.0)
            entry["engine_alone_paced"] = engine_row
        out[count] = entry
    return out


def breakdown_block(result: dict[str, Any]) -> str:
    """Markdown: the node's latency per stage against the paced engine ("" without stages)."""
    breakdown = result.get("stage_breakdown") or {}
    if not breakdown:
        return ""
    columns = ("input_age", "wait", "decode", "lock", *ENGINE_STAGES, "publish", "rest")
    lines = [
        "Where the latency goes (ms medians; the node's from its diagnostics over its last 200 "
        "frames, `rest` = subscriber latency − the node's stages ≈ the output's transport):",
        "",
        "| row | targets | " + " | ".join(columns) + " | stamp → arrival |",
        "|---|---|" + "---|" * (len(columns) + 1),
    ]

    def cells(row: dict[str, float]) -> str:
        return " | ".join("–" if row.get(c) is None else f"{row[c]:.2f}" for c in columns)

    for count, entry in breakdown.items():
        node = entry["node"]
        lines.append(f"| vos_node | {count} | {cells(node)} | {node['stamp_to_arrival']:.2f} |")
        engine = entry.get("engine_alone_paced")
        if engine:
            rate = result["rate_hz"]
            lines.append(f"| engine alone at {rate:g} Hz | {count} | {cells(engine)} | – |")
    return "\n".join(lines)


def _compare(result: dict[str, Any], rate: float) -> dict[str, Any]:
    """Node vs engine alone, and pass-through vs engine alone, per target count."""
    out: dict[str, Any] = {}
    passthrough = result.get("passthrough")
    for count, node in (result.get("node") or {}).items():
        alone = result["engine_alone"][count]
        engine_ms = alone["end_to_end_ms"]["median"]
        engine_fps = 1e3 / engine_ms if engine_ms else 0.0
        keeps_up = engine_fps > rate * SATURATION_MARGIN
        latency_overhead = node["latency_ms"]["median"] / engine_ms - 1.0 if engine_ms else None
        throughput_overhead = (
            engine_fps / node["output_hz"] - 1.0 if node["output_hz"] > 0 else None
        )
        entry = {
            "engine_alone_ms": engine_ms,
            "engine_alone_fps": engine_fps,
            "engine_keeps_up_with_rate": keeps_up,
            "node_output_hz": node["output_hz"],
            "node_latency_median_ms": node["latency_ms"]["median"],
            "latency_overhead": latency_overhead,
            "throughput_overhead": throughput_overhead,
            "node_adds": latency_overhead if keeps_up else throughput_overhead,
            "node_adds_basis": "latency" if keeps_up else "per-frame cost (saturated)",
        }
        paced = (result.get("engine_alone_paced") or {}).get(count)
        if paced:  # the engine at the node's input rate
            paced_ms = paced["end_to_end_ms"]["median"]
            entry["engine_alone_paced_ms"] = paced_ms
            entry["latency_overhead_paced"] = (
                node["latency_ms"]["median"] / paced_ms - 1.0 if paced_ms else None
            )
        if passthrough and passthrough["latency_ms"]["n"]:
            entry["passthrough_over_engine"] = passthrough["latency_ms"]["median"] / engine_ms
        out[count] = entry
    return out


def node_target_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    rate = result["rate_hz"]
    goals = {"1": 15.0, "3": 8.0}
    for count, entry in (result.get("comparison") or {}).items():
        if count in goals:
            hz, goal = entry["node_output_hz"], goals[count]
            capped = " (capped by the input rate)" if hz >= 0.95 * rate else ""
            checks.append(
                {
                    "target": f"through the node, {result['size']}, {count} target(s) "
                    f"≥ {goal:g} fps",
                    "measured": f"{hz:.1f} fps output at {rate:g} Hz input{capped}",
                    "value": hz,
                    "met": hz >= goal,
                }
            )
        adds = entry["node_adds"]
        if adds is not None:
            checks.append(
                {
                    "target": f"node adds ≤ 20% over the engine alone ({count} target(s))",
                    "measured": f"{adds * 100:+.0f}% by {entry['node_adds_basis']} (latency "
                    f"{entry['node_latency_median_ms']:.1f} ms vs engine "
                    f"{entry['engine_alone_ms']:.1f} ms; "
                    f"{entry['node_output_hz']:.1f} Hz vs {entry['engine_alone_fps']:.1f} fps)",
                    "value": adds,
                    "met": adds <= 0.20,
                }
            )
        paced = entry.get("latency_overhead_paced")
        if paced is not None:
            checks.append(
                {
                    "target": f"node adds ≤ 20% over the engine alone at the input rate "
                    f"({count} target(s))",
                    "measured": f"{paced * 100:+.0f}% by latency (latency "
                    f"{entry['node_latency_median_ms']:.1f} ms vs engine "
                    f"{entry['engine_alone_paced_ms']:.1f} ms paced at {rate:g} Hz)",
                    "value": paced,
                    "met": paced <= 0.20,
                }
            )
    return checks


def node_block(result: dict[str, Any]) -> str:
    """Markdown: one row for the pass-through and one per target count, then the targets."""
    from vos_ros.benchmark.report import targets_list

    lines = [
        f"Input {result['size']} rgb8 at {result['rate_hz']:g} Hz over "
        f"{result.get('transport', transport_label(None))}; {result['seconds']:g} s "
        f"measured after {result['warmup_seconds']:g} s warm-up per phase; latency = subscriber "
        "arrival - header stamp (publish time), ms median [p5–p95].",
        "",
        "| phase | targets | output Hz | latency ms | engine alone ms | engine alone at "
        f"{result['rate_hz']:g} Hz ms | node engine mean ms (diagnostics) | dropped in window | "
        "node adds | node adds over the paced engine | pass-through / engine | load 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    passthrough = result.get("passthrough")
    if passthrough:
        load = passthrough.get("load_average") or ["?"]
        lines.append(
            f"| pass-through | – | {passthrough['output_hz']:.1f} | "
            f"{fmt_spread(passthrough['latency_ms'])} | – | – | – | – | – | – | – | {load[0]} |"
        )
    for count, node in (result.get("node") or {}).items():
        comp = result["comparison"][count]
        diag = node.get("diagnostics", {})
        ratio = comp.get("passthrough_over_engine")
        load = node.get("load_average") or ["?"]
        paced_ms, paced_adds = comp.get("engine_alone_paced_ms"), comp.get("latency_overhead_paced")
        lines.append(
            f"| vos_node | {count} | {node['output_hz']:.1f} | {fmt_spread(node['latency_ms'])} | "
            f"{comp['engine_alone_ms']:.1f} | {'–' if paced_ms is None else f'{paced_ms:.1f}'} | "
            f"{diag.get('engine_mean_ms', float('nan')):.1f} | {diag.get('dropped', '?')} | "
            f"{comp['node_adds'] * 100:+.0f}% ({comp['node_adds_basis']}) | "
            f"{'–' if paced_adds is None else f'{paced_adds * 100:+.0f}%'} | "
            f"{'–' if ratio is None else f'{ratio * 100:.0f}%'} | {load[0]} |"
        )
    attempts = result.get("node_start_attempts")
    if attempts and attempts > 1:  # see ros_procs.start_connected
        lines += ["", f"vos_node connected on start attempt {attempts}."]
    if result.get("error"):
        lines += ["", f"Run failed: {result['error'].splitlines()[0]}"]
    breakdown = breakdown_block(result)
    if breakdown:
        lines += ["", breakdown]
    checks = result.get("checks") or []
    if checks:
        lines += ["", "Targets:", "", targets_list(checks)]
    return "\n".join(lines)
