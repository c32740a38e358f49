"""Live-view latency of the console: camera stamp to display in a real browser.

    python -m vos_ros.console.bench --width 854 --height 480 --rate 30 --seconds 30

A player process publishes a synthetic clip at ``--rate`` with wall-clock stamps, a ``vos_node``
process tracks ``--targets`` objects of it (added through the console, as a user would), the
console runs in this process and headless chromium shows its live page. The page measures, for
every frame it draws, ``Date.now()`` minus the frame's stamp (same machine, same clock): capture
to display, through the node's masks, the pairing, drawing, JPEG, WebSocket and decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NODE = "/vos_node"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--targets", type=int, default=1)
    parser.add_argument(
        "--model",
        default="flow",
        help="the node's model: flow, or a network's folder or name (run by ONNX Runtime)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the record here")
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="keep the logs here (default: removed)"
    )
    args = parser.parse_args(argv)
    record = run(args)
    text = json.dumps(record, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from vos_ros.benchmark.clips import make_clip
    from vos_ros.benchmark.ros_procs import (
        Child,
        isolated_env,
        player_command,
        vos_node_command,
        wait_for,
    )
    from vos_ros.console.browser import start_chromium
    from vos_ros.console.server import BackgroundServer
    from vos_ros.console.settings import ConsoleSettings
    from vos_ros.evaluation.report import machine_description
    from vos_ros.ros.launch_config import NODE_ACTIVE_LOG

    folder = args.log_dir or Path(tempfile.mkdtemp(prefix="vos_console_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.width, args.height, args.targets)
    clip.save(folder / "clip.npz")
    env = isolated_env()
    children: list[Child] = []
    server = driver = None
    try:
        node = Child(
            "vos_node",
            vos_node_command(
                "flow" if args.model == "flow" else "onnxruntime", args.model, 0, folder / "params"
            ),
            env,
            folder,
            dumps_stacks=True,
        )
        children.append(node)
        wait_for(lambda: NODE_ACTIVE_LOG in node.log(), 60, "vos_node active", children)
        player = Child("player", player_command(folder / "clip.npz", args.rate), env, folder)
        children.append(player)
        server = BackgroundServer(ConsoleSettings(port=0, domain_id=int(env["ROS_DOMAIN_ID"])))
        console = server.console
        wait_for(
            lambda: (
                console.view.frame is not None
                and float(console.bridge.status.values.get("output_hz", "0") or 0) > 0
            ),
            90,
            "the node processing the stream",
            children,
        )
        _add_targets(httpx, server.url, console, clip, args.targets)
        driver = start_chromium(folder / "profile")
        driver.get(server.url + "/")
        wait_for(
            lambda: driver.execute_script("return window.consoleStats.drawn") > 10,
            30,
            "frames in the browser",
            children,
        )
        time.sleep(args.warmup)
        load_before = [round(v, 2) for v in os.getloadavg()]
        start = driver.execute_script("return [window.consoleStats.latencies.length, Date.now()]")
        time.sleep(args.seconds)
        latencies, source, end_ms = driver.execute_script(
            "const s = window.consoleStats; return [s.latencies, s.latencySource, Date.now()]"
        )
        measured = np.asarray(latencies[start[0] :], np.float64)
        status = console.bridge.status.values
        return {
            "command": "python -m vos_ros.console.bench " + " ".join(sys.argv[1:]),
            "machine": machine_description(),
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "size": f"{args.width}x{args.height}",
            "camera_hz": args.rate,
            "targets": args.targets,
            "model": args.model,
            "latency_source": source,
            "frames_shown": int(measured.size),
            "view_fps": round(measured.size / ((end_ms - start[1]) / 1000.0), 2),
            "latency_ms": {
                "median": round(float(np.median(measured)), 1),
                "p95": round(float(np.percentile(measured, 95)), 1),
                "max": round(float(measured.max()), 1),
            },
            "console_render_ms_median": _median(console.pairer.render_ms),
            "load_average": {
                "before": load_before,
                "after": [round(v, 2) for v in os.getloadavg()],
            },
            "node": {
                key: status.get(key)
                for key in ("output_hz", "latency_mean_ms", "latency_p95_ms", "frames_dropped")
            },
        }
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.close()
        for child in reversed(children):
            child.stop()
        if args.log_dir is None:  # the clip alone is tens of MB
            shutil.rmtree(folder, ignore_errors=True)


def _add_targets(httpx: Any, url: str, console: Any, clip: Any, count: int) -> None:
    """Box ``count`` objects on a shown frame through the console, as a user would: on a frame
    the node drew masks for (so it surely has it; best-effort transport may lose others)."""
    from vos_ros.benchmark.ros_procs import FRAME_ID_PREFIX

    for object_id in range(1, count + 1):
        deadline = time.monotonic() + 10.0
        while True:  # a frame the node drew masks for, with this object in it
            frame = console.view.frame
            index = int(frame.header["frame_id"].removeprefix(FRAME_ID_PREFIX))
            box = clip.boxes(index).get(object_id)
            if frame.header["masks_exact"] and box is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"object {object_id} was not shown on a processed frame")
            time.sleep(0.02)
        response = httpx.post(
            url + "/api/live/box",
            json={"stamp": frame.header["stamp"], "box": list(box), "class_label": "object"},
            timeout=30,
        )
        if response.status_code != 200:
            raise RuntimeError(f"adding a target failed: {response.text}")


def _median(values) -> float | None:
    values = list(values)
    return round(float(np.median(values)), 2) if values else None


if __name__ == "__main__":
    sys.exit(main())
