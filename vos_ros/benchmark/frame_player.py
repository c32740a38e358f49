"""Play a benchmark clip as ``sensor_msgs/Image`` (rgb8) at a fixed rate, like a camera driver.

Run as its own process by the node benchmarks::

    python -m vos_ros.benchmark.frame_player --clip CLIP.npz --rate 30 --topic /bench/image_raw

The clip (:class:`vos_ros.benchmark.clips.BenchClip`) is played back and forth until SIGINT or
``--max-seconds``. Each message is stamped with the wall clock at publishing (so a subscriber on the
same machine measures stamp-to-arrival latency) and carries its clip index in ``frame_id``
(``bench/<index>``). QoS: sensor data (best effort, depth 1). Messages are built before playing
starts, so the rate is steady; a publisher that falls more than one period behind skips ahead
instead of bursting (counted as ``late``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--topic", default="/bench/image_raw")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--wait", type=float, default=120.0, help="max wait for a subscriber")
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from vos_ros.benchmark.clips import BenchClip
    from vos_ros.benchmark.matched_publisher import open_for_player
    from vos_ros.benchmark.ros_procs import FRAME_ID_PREFIX, NS_PER_S
    from vos_ros.ros.image_msgs import array_to_msg

    clip = BenchClip.load(args.clip)
    messages = [
        array_to_msg(frame, "rgb8", Header(frame_id=f"{FRAME_ID_PREFIX}{i}"))
        for i, frame in enumerate(clip.frames)
    ]
    stop = False

    def on_signal(_sig, _frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    publisher = open_for_player(
        "bench_frame_player",
        Image,
        args.topic,
        qos_profile_sensor_data,
        wait_s=args.wait,
        stop=lambda: stop,
        init_options={"signal_handler_options": rclpy.signals.SignalHandlerOptions.NO},
    )
    print(f"playing {len(messages)} frames back and forth at {args.rate} Hz", flush=True)

    period = 1.0 / args.rate
    start = time.monotonic()
    next_time = start
    next_progress = start + 1.0
    step = late = 0
    while not stop and time.monotonic() - start < args.max_seconds:
        delay = next_time - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            late += 1
            next_time = time.monotonic()
        message = messages[clip.index(step)]
        now = time.time_ns()
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(now, NS_PER_S)
        publisher.publish(message)
        step += 1
        next_time += period
        if time.monotonic() >= next_progress:
            # once a second: lets a benchmark count the frames sent in any time window
            print(f"progress {now} ns {step} frames", flush=True)
            next_progress += 1.0
    elapsed = time.monotonic() - start
    print(f"published {step} frames in {elapsed:.1f} s ({step / elapsed:.2f} Hz), late {late}")
    return publisher.finish(0)


if __name__ == "__main__":
    sys.exit(main())
