"""Does a node that joins a running camera stream connect? Rounds of start, wait, stop.

The camera player runs for the whole command. Each round starts the pass-through node, waits for
its output, stops it, then starts ``vos_node`` and waits up to ``--wait`` seconds for its first
``~/instances`` message (the node publishes one per frame, targets or not), as the node benchmark
does. A round where nothing arrives records what the ROS graph shows at that moment: whether the
observer sees the node at all, and whether it sees the node's image subscription.

    python -m vos_ros.benchmark.node_start --rounds 10
    python -m vos_ros.benchmark.node_start --rounds 10 --profile config/fastdds_shm_udp.xml
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from vos_ros.benchmark.clips import make_clip
from vos_ros.benchmark.ros_procs import (
    IMAGE_TOPIC,
    BenchClient,
    Child,
    TopicLog,
    isolated_env,
    passthrough_command,
    player_command,
    transport_label,
    vos_node_command,
)


def _first_output_s(log: TopicLog, wait_s: float) -> float | None:
    before, start = log.count(), time.monotonic()
    while time.monotonic() - start < wait_s:
        if log.count() > before:
            return round(time.monotonic() - start, 2)
        time.sleep(0.1)
    return None


def run_rounds(
    rounds: int, wait_s: float, model: str, profile: str | None, transports: str | None = None
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vos_node_start_"))
    clip = make_clip(854, 480, 1, 40)
    clip.save(folder / "clip.npz")
    env = isolated_env(profile=profile, transports=transports)
    client = BenchClient(env)
    pt_log = client.watch_instances("/passthrough_node/instances")
    node_log = client.watch_instances("/vos_node/instances")
    player = Child("player", player_command(folder / "clip.npz", 30.0), env, folder)
    records = []
    try:
        for index in range(rounds):
            record: dict[str, Any] = {"round": index}
            with Child("passthrough", passthrough_command(), env, folder) as passthrough:
                record["passthrough_first_s"] = _first_output_s(pt_log, wait_s)
                time.sleep(2.0)
                passthrough.stop()
            command = vos_node_command("onnxruntime", model, 0, folder / "params")
            with Child(f"vos_node_{index}", command, env, folder, dumps_stacks=True) as node:
                record["node_first_s"] = _first_output_s(node_log, wait_s)
                if record["node_first_s"] is None:
                    graph = client.node
                    record["graph_nodes"] = sorted(graph.get_node_names())
                    subscriptions = graph.get_subscriptions_info_by_topic(IMAGE_TOPIC)
                    record["image_subscribers"] = sorted(info.node_name for info in subscriptions)
                node.stop()
            print(json.dumps(record), flush=True)
            records.append(record)
    finally:
        player.stop()
        client.close()
    failed = sum(r["node_first_s"] is None for r in records)
    return {
        "transport": transport_label(profile, transports),
        "rounds": rounds,
        "wait_s": wait_s,
        "node_never_connected": failed,
        "records": records,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds per node start")
    parser.add_argument("--model", default="models/protonet-s")
    parser.add_argument("--profile", help="Fast DDS XML profile instead of LARGE_DATA")
    parser.add_argument(
        "--transports", help="FASTDDS_BUILTIN_TRANSPORTS instead of the node's default"
    )
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    summary = run_rounds(args.rounds, args.wait, args.model, args.profile, args.transports)
    print(
        f"{summary['transport']}: node never connected in {summary['node_never_connected']} "
        f"of {summary['rounds']} rounds"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
