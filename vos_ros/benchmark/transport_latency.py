"""Image latency through Fast DDS between two processes, per transport setting and image size.

What the ROS transport alone costs a camera frame: the camera player
(:mod:`vos_ros.benchmark.frame_player`) publishes noise frames of each size at ``--rate`` Hz in its
own process; this process subscribes (sensor-data QoS, as the node) and records arrival minus
header stamp. Settings are ``FASTDDS_BUILTIN_TRANSPORTS`` values; ``default`` is the launch file's
(:data:`vos_ros.ros.launch_config.FASTDDS_TRANSPORT_ENV`). ``--publisher-transports`` gives the
player another setting than the subscriber (e.g. a camera driver with plain LARGE_DATA).
Rounds alternate the settings, so a change of machine speed hits all of them alike.

    python -m vos_ros.benchmark.transport_latency --sizes 64x48,854x480,1280x720 \\
        --transports 'LARGE_DATA,LARGE_DATA?max_msg_size=4MB' --rounds 2 \\
        --json runs/bench/transport.json

``max_msg_size`` is the largest message Fast DDS sends whole; larger ones go in 64 KB fragments
(its default), even through shared memory. Fast DDS sizes its socket buffers to it, so it must not
exceed ``net.core.rmem_max`` / ``wmem_max`` (4 MiB on the development machine): 8MB there makes
participant creation fail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.benchmark.clips import BenchClip, size_list
from vos_ros.benchmark.ros_procs import (
    BenchClient,
    Child,
    isolated_env,
    player_command,
    wait_for,
)
from vos_ros.benchmark.stats import load_average, summarize
from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV
from vos_ros.ros.services import stamp_to_ns

TOPIC = "/bench/transport/image"
DEFAULT = "default"  # the launch file's setting
TRANSPORT_KEY = FASTDDS_TRANSPORT_ENV[0]  # FASTDDS_BUILTIN_TRANSPORTS


def resolve(transports: str) -> str:
    return FASTDDS_TRANSPORT_ENV[1] if transports == DEFAULT else transports


def noise_clip(width: int, height: int, frames: int = 4) -> BenchClip:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return BenchClip(images, np.zeros((frames, height, width), np.uint16), {})


def _watch_images(client: BenchClient, latencies: list[float]) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    def callback(msg: Image) -> None:
        latencies.append((time.time_ns() - stamp_to_ns(msg.header.stamp)) / 1e6)

    client.node.create_subscription(Image, TOPIC, callback, qos_profile_sensor_data)


def measure(
    clip_path: Path,
    client: BenchClient,
    latencies: list[float],
    publisher_env: dict[str, str],
    folder: Path,
    *,
    rate: float,
    seconds: float,
    warmup_s: float = 1.0,
    connect_timeout: float = 60.0,
) -> dict[str, Any]:
    """Play ``clip_path`` to ``client`` for ``warmup_s + seconds``; latency of the last part."""
    latencies.clear()
    command = player_command(clip_path, rate, TOPIC)
    with Child("player", command, publisher_env, folder) as player:
        try:
            wait_for(lambda: bool(latencies), connect_timeout, "the first frame", [player])
        except RuntimeError as exc:
            return {"frames": 0, "error": str(exc).splitlines()[0]}
        time.sleep(warmup_s)
        start = len(latencies)
        time.sleep(seconds)
        window = latencies[start:]
    return {
        "frames": len(window),
        "expected_frames": round(rate * seconds),
        "latency_ms": summarize(window),
    }


def run(
    sizes: list[tuple[int, int]],
    transports: list[str],
    publisher_transports: str | None,
    rounds: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vos_transport_"))
    clips = {}
    for width, height in sizes:
        clips[(width, height)] = folder / f"noise_{width}x{height}.npz"
        noise_clip(width, height).save(clips[(width, height)])
    records = []
    for index in range(rounds):
        for setting in transports:
            subscriber_env = isolated_env(transports=resolve(setting))
            publisher_env = dict(subscriber_env)
            if publisher_transports:
                publisher_env[TRANSPORT_KEY] = resolve(publisher_transports)
            client = BenchClient(subscriber_env, name="transport_latency")
            latencies: list[float] = []
            try:
                _watch_images(client, latencies)
                for (width, height), clip_path in clips.items():
                    result = measure(
                        clip_path, client, latencies, publisher_env, folder,
                        rate=rate, seconds=seconds,
                    )  # fmt: skip
                    record = {
                        "round": index,
                        "transports": subscriber_env[TRANSPORT_KEY],
                        "publisher_transports": publisher_env[TRANSPORT_KEY],
                        "size": f"{width}x{height}",
                        "megabytes": round(width * height * 3 / 1e6, 2),
                        "load_1min": (load_average() or [None])[0],
                        **result,
                    }
                    print(json.dumps(record), flush=True)
                    records.append(record)
            finally:
                client.close()
    return {"rate_hz": rate, "seconds": seconds, "rounds": rounds, "records": records}


def table(summary: dict[str, Any]) -> str:
    """Markdown: per setting and size, the median of the rounds' latency medians."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in summary["records"]:
        key = (record["publisher_transports"], record["transports"], record["size"])
        groups.setdefault(key, []).append(record)
    lines = [
        "| publisher | subscriber | size | MB | frames received | latency ms, median of rounds "
        "[round medians] | p95 (median of rounds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (publisher, subscriber, size), records in groups.items():
        measured = [r for r in records if r.get("latency_ms")]
        medians = [r["latency_ms"]["median"] for r in measured]
        p95 = [r["latency_ms"]["p95"] for r in measured]
        received = "/".join(f"{r['frames']}" for r in records)
        head = f"| `{publisher}` | `{subscriber}` | {size} | {records[0]['megabytes']} | "
        if not medians:  # no round got a frame
            lines.append(head + f"{received} | – | – |")
            continue
        spread = ", ".join(f"{m:.2f}" for m in medians)
        lines.append(
            head + f"{received} of {records[0].get('expected_frames', '?')} | "
            f"{np.median(medians):.2f} [{spread}] | {np.median(p95):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=size_list, default=[(854, 480)], help="WxH,... (854x480)")
    parser.add_argument(
        "--transports",
        default="LARGE_DATA,LARGE_DATA?max_msg_size=4MB",
        help=f"FASTDDS_BUILTIN_TRANSPORTS values, comma-separated; '{DEFAULT}' is the launch "
        "file's (LARGE_DATA,LARGE_DATA?max_msg_size=4MB)",
    )
    parser.add_argument(
        "--publisher-transports", default=None, help="the player's setting (default: the same)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case")
    parser.add_argument("--json", type=Path, help="write the records here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.rate <= 0:
        parser.error("--rounds, --seconds and --rate must be positive")
    summary = run(
        args.sizes, args.transports.split(","), args.publisher_transports,
        args.rounds, args.rate, args.seconds,
    )  # fmt: skip
    print(table(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    failed = [r for r in summary["records"] if not r["frames"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
