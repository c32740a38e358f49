"""Live mode of ``vos-ros evaluate``: a bag played over ROS topics to the node in its own process.

The acceptance test plays short synthetic bags (seeds 0 and 1) slowly enough that the node drops
nothing and checks that live and offline mode give the same per-class IoU (within 0.005) with the
flow fallback. The other tests cover what the live scorer does with dropped frames and prompt frames
(no ROS needed) and the messages when the node does not come up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vos_ros.evaluation.live_scoring import (
    ClipPlayback,
    NodeOutput,
    PlayedFrame,
    label_image_from_instances,
    score_playback,
)
from vos_ros.evaluation.scoring import DatasetScorer

FRAMES, WIDTH, HEIGHT, FPS = 32, 320, 240, 15.0
RATE = 0.4  # 6 frames/s: the flow fallback needs ~10 ms a frame, nothing is dropped
MAX_CLASS_IOU_GAP = 0.005


def _cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vos_ros.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ros_env() -> dict[str, str]:
    from ros_harness import isolated_env, require_ros

    require_ros()
    return isolated_env()


@pytest.fixture(scope="module")
def make_synthetic_bag(tmp_path_factory):
    """``seed`` -> path of a synthetic bag (made once per seed)."""
    from vos_ros.cli import main

    bags: dict[int, Path] = {}

    def make(seed: int) -> Path:
        if seed not in bags:
            bag = tmp_path_factory.mktemp(f"live{seed}") / "synthetic"
            args = ["make-bag", "--synthetic", "--frames", str(FRAMES), "--fps", str(FPS)]
            args += ["--width", str(WIDTH), "--height", str(HEIGHT), "--seed", str(seed)]
            assert main([*args, "--out", str(bag)]) == 0
            bags[seed] = bag
        return bags[seed]

    return make


@pytest.fixture(scope="module")
def synthetic_bag(make_synthetic_bag) -> Path:
    return make_synthetic_bag(0)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [0, 1])
def test_live_mode_matches_offline_on_a_synthetic_bag(make_synthetic_bag, seed: int, tmp_path):
    env = _ros_env()
    synthetic_bag = make_synthetic_bag(seed)
    offline_json = str(tmp_path / "offline.json")
    offline = _cli(
        ["evaluate", "--bag", str(synthetic_bag), "--model", "flow", "--json", offline_json],
        env,
        60,
    )
    assert offline.returncode == 0, offline.stderr
    started = time.monotonic()
    live_json = tmp_path / "live.json"
    live = _cli(
        [
            "evaluate",
            "--bag",
            str(synthetic_bag),
            "--live",
            "--model",
            "flow",
            "--rate",
            str(RATE),
            "--json",
            str(live_json),
            "--no-progress",
        ],
        env,
        100,
    )
    elapsed = time.monotonic() - started
    assert live.returncode == 0, f"{live.stdout}\n{live.stderr}"

    off = json.loads((tmp_path / "offline.json").read_text())
    rep = json.loads(live_json.read_text())
    assert rep["meta"]["mode"] == "live" and rep["meta"]["partial"] is False
    assert rep["meta"]["live"]["rate"] == RATE
    assert Path(rep["meta"]["live"]["node_log"]).is_file()
    timing = rep["timing"]
    assert timing["dropped_frames"] == 0, "played slowly, the node must not drop a frame"
    assert timing["frames"] == FRAMES
    assert 0 < timing["latency_ms"]["p50"] < 1000
    assert rep["sequences"]["synthetic"]["complete"] is True

    assert (
        set(rep["per_class_iou"])
        == set(off["per_class_iou"])
        == {
            "person",
            "car",
            "ball",
            "animal",
        }
    )
    gaps = {
        name: abs(rep["per_class_iou"][name] - iou) for name, iou in off["per_class_iou"].items()
    }
    assert max(gaps.values()) <= MAX_CLASS_IOU_GAP, (gaps, off["per_class_iou"])
    # the same objects are scored on the same frames in both modes
    assert {k: v["frames"] for k, v in rep["davis"]["per_sequence"].items()} == {
        k: v["frames"] for k, v in off["davis"]["per_sequence"].items()
    }
    assert "Per-class IoU" in live.stdout
    # playing 32 frames at 6 frames/s takes ~5.3 s; start-up and scoring add a few seconds
    assert elapsed < 90


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_live_mode_says_when_the_node_does_not_come_up(synthetic_bag: Path, tmp_path: Path):
    env = _ros_env()
    sleeper = f"{sys.executable} -c 'import time; time.sleep(120)'"
    started = time.monotonic()
    result = _cli(
        [
            "evaluate",
            "--bag",
            str(synthetic_bag),
            "--live",
            "--node-cmd",
            sleeper,
            "--node-timeout",
            "3",
            "--json",
            str(tmp_path / "x.json"),
        ],
        env,
        50,
    )
    assert result.returncode == 2
    assert "did not come up within 3 s" in result.stderr
    assert "service /vos_node/set_initial_mask" in result.stderr  # says what was missing
    assert time.monotonic() - started < 40  # the sleeping "node" was stopped, not waited for
    assert not (tmp_path / "x.json").exists()


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_live_mode_reports_a_node_that_exits(synthetic_bag: Path, tmp_path: Path):
    env = _ros_env()
    crasher = f"{sys.executable} -c 'import sys; print(\"bad parameter\"); sys.exit(3)'"
    result = _cli(
        [
            "evaluate",
            "--bag",
            str(synthetic_bag),
            "--live",
            "--node-cmd",
            crasher,
            "--json",
            str(tmp_path / "x.json"),
        ],
        env,
        50,
    )
    assert result.returncode == 2
    assert "the node exited while starting (status 3)" in result.stderr
    assert "bad parameter" in result.stderr  # the end of its log is shown


# -- scoring of recorded outputs (no ROS) ---------------------------------------------------------


def _instances_message(label: np.ndarray, classes: dict[int, str], stamp: int):
    """An InstanceMaskArray look-alike: masks cropped to their boxes, as the node publishes."""
    instances = []
    for target, name in sorted(classes.items()):
        mask = label == target
        if not mask.any():
            box = SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0)
            crop = np.zeros((0, 0), np.uint8)
            visible = False
        else:
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            box = SimpleNamespace(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)
            crop = mask[y0:y1, x0:x1].astype(np.uint8) * 255
            visible = True
        image = SimpleNamespace(
            encoding="mono8",
            height=crop.shape[0],
            width=crop.shape[1],
            step=crop.shape[1],
            is_bigendian=0,
            data=crop.tobytes(),
        )
        instances.append(
            SimpleNamespace(id=target, class_label=name, visible=visible, box=box, mask=image)
        )
    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp // 10**9, nanosec=stamp % 10**9))
    return SimpleNamespace(
        header=header, image_height=label.shape[0], image_width=label.shape[1], instances=instances
    )


def test_instance_masks_are_pasted_back_at_their_boxes():
    label = np.zeros((20, 30), np.uint16)
    label[2:6, 3:9] = 1
    label[10:19, 20:29] = 2
    label[12, 22] = 0  # a hole stays background
    message = _instances_message(label, {1: "car", 2: "person", 3: "ball"}, 5)
    decoded, classes = label_image_from_instances(message, (20, 30))
    np.testing.assert_array_equal(decoded, label)
    assert classes == {1: "car", 2: "person", 3: "ball"}  # 3 is tracked but not visible
    with pytest.raises(ValueError, match="output is 30x20 but the frame is 40x20"):
        label_image_from_instances(message, (20, 40))


def test_dropped_frames_score_as_empty_and_prompt_frames_as_given():
    from vos_ros.synthetic import SceneConfig, synthetic_clip

    clip = synthetic_clip(SceneConfig(width=96, height=72, frames=12, seed=0), name="syn")
    frames = list(clip.frames())
    late = next(f for f in frames if 4 in f.gt.instance_classes)  # object 4 appears later
    classes = {1: "person", 2: "car", 3: "ball", 4: "animal"}
    target_of = {}
    playback = ClipPlayback()
    for frame in frames:
        stamp = 1_000 + frame.index
        new = [k for k in frame.gt.instance_classes if k not in target_of]
        prompt = None
        if new:  # targets are numbered by order of appearance, as the evaluator prompts them
            for key in sorted(new):
                target_of[key] = len(target_of) + 1
            prompt = np.zeros(frame.gt.instances.shape, np.uint16)
            for key in new:
                prompt[frame.gt.instances == key] = target_of[key]
        playback.frames.append(PlayedFrame(frame.index, stamp, float(frame.index), prompt))
        # The node outputs the ground truth, except: frames 5 and 6 are dropped, and on the late
        # object's prompt frame it publishes before the prompt arrives (without that object).
        if frame.index in (5, 6):
            continue
        output = np.zeros(frame.gt.instances.shape, np.uint16)
        for key, target in target_of.items():
            if frame.index == late.index and key == 4:
                continue
            output[frame.gt.instances == key] = target
        known = {target_of[k]: classes[k] for k in target_of}
        message = _instances_message(output, known, stamp)
        playback.outputs[stamp] = NodeOutput(frame.index + 0.25, message)

    class StampedClip:
        name = "syn"

        def __len__(self) -> int:
            return len(frames)

        def frames(self):
            for f in frames:
                f.stamp_ns = 1_000 + f.index
                yield f

    scorer = DatasetScorer()
    score_playback(StampedClip(), playback, scorer, None, None)
    timing = scorer.timing.summary()
    assert timing["dropped_frames"] == 2
    assert timing["frames"] == len(frames) - 2
    assert timing["latency_ms"]["p50"] == pytest.approx(250.0)

    counts = scorer.confusion.counts()
    for name in classes.values():
        assert counts[name]["fp"] == 0
    # Missed pixels are exactly those of the two dropped frames: the prompt frame counts as given.
    for key, name in classes.items():
        dropped = sum(int((frames[i].gt.instances == key).sum()) for i in (5, 6))
        assert counts[name]["fn"] == dropped, name
    seq = scorer.sequences[0]
    assert seq.info.complete
    j = dict(zip(seq.objects[1].frames, seq.objects[1].j, strict=True))
    assert j[5] == 0.0 and j[6] == 0.0 and j[4] == 1.0


# -- a node that runs but never connects is started again (no ROS) ------------------------------


class _UnconnectedUntil:
    """RosEndpoints stand-in: the node's topics stay missing until its ``connect_on``-th start."""

    def __init__(self, player, connect_on: int | None) -> None:
        self._player = player
        self._connect_on = connect_on

    def missing_connections(self) -> list[str]:
        starts = self._player.node.starts
        connected = self._connect_on is not None and starts >= self._connect_on
        return [] if connected else ["subscriber of /camera/image_raw"]

    def output_publisher_count(self) -> int:
        return 1

    def spin(self, timeout_s: float) -> None:
        time.sleep(timeout_s)

    def close(self) -> None:
        pass


def _player_with_active_node(tmp_path: Path, **settings):
    from vos_ros.evaluation.live import LivePlayer, LiveSettings
    from vos_ros.ros.launch_config import NODE_ACTIVE_LOG

    # Logs "active" at once and then runs without ever connecting, like the failing participant.
    script = (
        f"import time; print({NODE_ACTIVE_LOG!r}, '/camera/image_raw', flush=True); time.sleep(60)"
    )
    player = LivePlayer(
        LiveSettings(
            node_command=[sys.executable, "-c", script],
            log_path=tmp_path / "out.node.log",
            connect_timeout_s=0.5,
            **settings,
        )
    )
    player.node = player._start_node()
    return player


@pytest.mark.timeout(60)
def test_an_active_node_that_never_connects_is_started_again(tmp_path: Path, capsys):
    player = _player_with_active_node(tmp_path)
    player._ros = _UnconnectedUntil(player, connect_on=2)
    try:
        player._wait_until_ready(time.monotonic())
        assert player.node.starts == 2
        assert player.node.log_path == tmp_path / "out.node_2.log"
        assert (tmp_path / "out.node.log").exists()  # the first start's log is kept
        assert "starting it again" in capsys.readouterr().err
    finally:
        player.close()
    assert not player.node.alive()


@pytest.mark.timeout(60)
def test_restarts_stop_after_node_starts_and_the_error_names_the_start(tmp_path: Path):
    from vos_ros.evaluation.live import LiveError

    player = _player_with_active_node(tmp_path, node_starts=2, startup_timeout_s=2.0)
    player._ros = _UnconnectedUntil(player, connect_on=None)
    try:
        with pytest.raises(LiveError, match=r"(?s)did not come up within 2 s.*, start 2\)"):
            player._wait_until_ready(time.monotonic())
        assert player.node.starts == 2
    finally:
        player.close()
