"""Publish a synthetic clip (vos_ros.synthetic) as sensor_msgs/Image, like a camera driver.

Run by the node tests in its own process::

    python test/clip_player.py --width 640 --height 480 --frames 60 --rate 10

Frames are rendered before publishing starts, so the publishing rate is steady. Stamps are the
clip's own (``SyntheticFrame.stamp_ns``: frame i at 1 s + i / fps), or the wall-clock time of
publishing with ``--wall-stamps`` (for latency measurements). QoS: sensor data (best effort,
depth 1), as camera drivers publish.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="/camera/image_raw")
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=10.0, help="clip frame rate (stamps)")
    parser.add_argument("--rate", type=float, default=10.0, help="publishing rate (Hz)")
    parser.add_argument("--loops", type=int, default=1, help="play the clip this many times")
    parser.add_argument("--wall-stamps", action="store_true")
    parser.add_argument("--min-subscribers", type=int, default=1)
    parser.add_argument("--wait", type=float, default=30.0, help="max wait for subscribers (s)")
    parser.add_argument(
        "--linger", type=float, default=1.0, help="keep the publisher this long after the end (s)"
    )
    args = parser.parse_args()
    # `kill -USR1 <pid>` prints the stack: a test that times out waiting for the player shows it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from vos_ros.benchmark.matched_publisher import open_for_player
    from vos_ros.ros.image_msgs import array_to_msg
    from vos_ros.synthetic import SceneConfig, generate

    scene = generate(
        SceneConfig(
            width=args.width,
            height=args.height,
            frames=args.frames,
            objects=args.objects,
            seed=args.seed,
            fps=args.fps,
        )
    )
    messages = []
    for frame in scene.frames():
        sec, nanosec = divmod(frame.stamp_ns, 1_000_000_000)
        header = Header(frame_id=args.frame_id)
        header.stamp.sec, header.stamp.nanosec = sec, nanosec
        messages.append(array_to_msg(frame.image, "rgb8", header))

    print(f"rendered {len(messages)} frames of {args.width}x{args.height}", flush=True)
    publisher = open_for_player(
        "clip_player",
        Image,
        args.topic,
        qos_profile_sensor_data,
        min_subscribers=args.min_subscribers,
        wait_s=args.wait,
    )
    print(f"publishing {len(messages)} frames x {args.loops} at {args.rate} Hz", flush=True)

    period = 1.0 / args.rate
    start = time.monotonic()
    count = 0
    for _ in range(args.loops):
        for message in messages:
            delay = start + count * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing a fixed-rate stream, like a camera
            if args.wall_stamps:
                message.header.stamp = publisher.now_msg()
            publisher.publish(message)
            count += 1
    print(f"published {count} frames in {time.monotonic() - start:.2f} s", flush=True)
    # Fast DDS hands a sample to its transport (shared memory or TCP with LARGE_DATA) and
    # delivers it asynchronously: destroying the participant at once can lose the last frame.
    time.sleep(args.linger)
    return publisher.finish(0)


if __name__ == "__main__":
    sys.exit(main())
