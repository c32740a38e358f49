"""config/fastdds_shm_udp.xml: a well-formed profile that carries camera-sized images.

The profile is the single-host alternative to LARGE_DATA (README, "DDS transports"). The second
test plays VGA frames between two processes that both load it, as a camera and the node would.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from ros_harness import require_ros

from vos_ros.benchmark.ros_procs import isolated_env

PROFILE = Path(__file__).resolve().parents[1] / "config" / "fastdds_shm_udp.xml"
NS = {"dds": "http://www.eprosima.com"}
FRAME_BYTES = 854 * 480 * 3

SUBSCRIBER = """
import sys, time, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("profile_sub")
got = []
node.create_subscription(Image, "/profile_test", lambda m: got.append(len(m.data)),
                         qos_profile_sensor_data)
print("ready", flush=True)
end = time.monotonic() + 40
while time.monotonic() < end and len(got) < 30:
    rclpy.spin_once(node, timeout_sec=0.05)
print("received", len(got), min(got) if got else 0, flush=True)
"""

PUBLISHER = """
import time, numpy as np, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("profile_pub")
pub = node.create_publisher(Image, "/profile_test", qos_profile_sensor_data)
end = time.monotonic() + 30
while pub.get_subscription_count() == 0 and time.monotonic() < end:
    time.sleep(0.05)
time.sleep(1.0)
data = np.zeros((480, 854, 3), np.uint8).tobytes()
msg = Image(height=480, width=854, encoding="rgb8", step=854 * 3, data=data)
for _ in range(60):
    pub.publish(msg)
    time.sleep(1 / 30)
"""


def test_profile_uses_large_shared_memory_segments_and_no_builtin_transports():
    root = ET.parse(PROFILE).getroot()
    shm = [
        d
        for d in root.iterfind(".//dds:transport_descriptor", NS)
        if d.findtext("dds:type", namespaces=NS) == "SHM"
    ]
    assert len(shm) == 1
    assert int(shm[0].findtext("dds:segment_size", namespaces=NS)) >= 8 * FRAME_BYTES
    participant = root.find(".//dds:participant", NS)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext(".//dds:useBuiltinTransports", namespaces=NS) == "false"
    used = {t.text for t in participant.iterfind(".//dds:userTransports/dds:transport_id", NS)}
    declared = {t.text for t in root.iterfind(".//dds:transport_descriptor/dds:transport_id", NS)}
    assert used == declared


def test_vga_frames_cross_processes_with_the_profile():
    require_ros()
    env = isolated_env(profile=str(PROFILE))
    sub = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sub.stdout.readline().strip() == "ready"
        subprocess.run([sys.executable, "-c", PUBLISHER], env=env, timeout=90, check=True)
        out, _ = sub.communicate(timeout=60)
    finally:
        sub.kill()
    words = out.split()
    assert words[0] == "received", out
    received, size = int(words[1]), int(words[2])
    # best effort on one host: with Fast DDS's defaults 2 of these 60 frames arrived
    assert received >= 30 and size == FRAME_BYTES, out
