"""Live mode: play a bag to a running ``vos_node`` over ROS topics and score what it publishes.

    from vos_ros.evaluation import EvaluationOptions, evaluate
    evaluate(EvaluationOptions(json_path=Path("out.json"), bag=Path("bag"), live=True, rate=0.5))

What happens (see docs/evaluation.md, "Live mode"):

1. The node runs in its own process (:class:`~vos_ros.evaluation.live_node.NodeProcess`, started
   like the launch file starts it, with ``use_sim_time`` true), or an already-running one is used
   (``--namespace``). Both sides use the ``LARGE_DATA`` Fast DDS transport and one
   ``ROS_DOMAIN_ID``; the evaluator's ROS side is :mod:`vos_ros.evaluation.live_ros`.
2. :class:`LivePlayer` publishes each camera frame of the bag on the bag's image topic, paced by
   the recorded stamps (times a rate factor), with ``/clock`` set to the frame's stamp just
   before it. It records every ``~/instances`` message of the node with its arrival time.
3. Prompts follow the offline protocol: each ground-truth object is given on the first frame where
   it appears, as ``~/set_initial_mask`` with that frame's stamp (``replace`` true for the first
   prompt of a bag, false after). The request needs the frame in the node's buffer, so the player
   first waits (bounded) for the node's output of that frame, then calls the service, and only then
   publishes the next frame: the targets are tracked from the next frame on, as offline.
4. Scoring (:mod:`vos_ros.evaluation.live_scoring`) reads the clip a second time and pairs every
   frame with the output of the same header stamp. A frame without an output was dropped by the
   node: it is scored as an empty prediction and counted in ``timing.dropped_frames``. On a prompt
   frame the prompted masks are pasted over the node's output, because offline the engine's result
   on that frame shows them exactly as given (the node published that frame before the prompt).

Latency of a frame: wall time from publishing the image to the arrival of the matching output
(``time.perf_counter`` in this process). rclpy is imported only when a player starts: the rest of
the evaluation package imports without ROS.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.evaluation.clips import Clip, ClipFrame
from vos_ros.evaluation.live_node import (
    LiveError,
    LiveSettings,
    NodeProcess,
    default_node_command,
    ros_domain_id,
)
from vos_ros.evaluation.live_ros import RosEndpoints
from vos_ros.evaluation.live_scoring import (
    ClipPlayback,
    NodeOutput,
    PlayedFrame,
    PromptRequest,
    score_playback,
)
from vos_ros.evaluation.prompt_plan import PromptPlan
from vos_ros.evaluation.scoring import DatasetScorer
from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV, random_domain_id

__all__ = ["LiveError", "LivePlayer", "LiveSettings", "run_node_on_clip"]


class LivePlayer:
    """Plays clips to the node and records its outputs; owns the node process and ROS endpoints.

    Use as a context manager; it starts the node (unless told to use a running one), waits until
    the node offers its services and is connected to the image topic, and stops the node on exit.

    :raises LiveError: the node does not come up within ``startup_timeout_s`` (with its log), or
        dies. A node started here that is active but never connects is started again (at most
        ``node_starts`` starts; :meth:`_wait_until_ready`).
    """

    def __init__(self, settings: LiveSettings) -> None:
        if settings.rate <= 0:
            raise LiveError(f"--rate must be positive, got {settings.rate}")
        self.settings = settings
        self.domain_id = 0
        self.node: NodeProcess | None = None
        self.startup_s = 0.0
        self._ros: Any = None  # RosEndpoints
        self._outputs: dict[int, NodeOutput] = {}
        self._last_output: float = 0.0
        self._parameters_dir: tempfile.TemporaryDirectory | None = None

    # -- set-up and tear-down -------------------------------------------------------------------

    def __enter__(self) -> LivePlayer:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        key, value = FASTDDS_TRANSPORT_ENV
        # Fast DDS reads the transport when a participant is created: set it before ours, and for
        # the node, so that both ends use shared memory for images (UDP loses large ones).
        os.environ.setdefault(key, value)
        domain, chosen_here = ros_domain_id(self.settings)
        for _ in range(5):
            self._ros = RosEndpoints(domain, self.settings, self._on_output)
            if not (chosen_here and self.settings.start_node and self._ros.domain_is_busy()):
                break
            self._ros.close()
            domain = random_domain_id()
        self.domain_id = domain
        started = time.monotonic()
        if self.settings.start_node:
            self.node = self._start_node()
        self._wait_until_ready(started)
        self.startup_s = time.monotonic() - started

    def _start_node(self) -> NodeProcess:
        settings = self.settings
        log_path = settings.log_path or Path("vos_node.log")
        # The launch-argument parameter file of the default command lives as long as the run.
        self._parameters_dir = tempfile.TemporaryDirectory(prefix="vos_ros_live_")
        command = settings.node_command or default_node_command(
            settings, Path(self._parameters_dir.name)
        )
        env = dict(os.environ)
        env["ROS_DOMAIN_ID"] = str(self.domain_id)
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        return NodeProcess(command, env, log_path)

    def _wait_until_ready(self, started: float) -> None:
        """Wait until the node is connected; start a node of ours again when it logged "active"
        but stays unconnected for ``connect_timeout_s``: with LARGE_DATA a participant joining
        a running graph now and then never connects over TCP although it runs
        (docs/benchmarks.md, "Known limits")."""
        settings = self.settings
        deadline = started + settings.startup_timeout_s
        active_since: float | None = None
        ros = self._ros
        while True:
            missing = ros.missing_connections()
            if not missing:
                break
            self._check_node_alive("while starting")
            now = time.monotonic()
            node = self.node
            if node is not None and active_since is None and node.logged_active():
                active_since = now
            if (
                node is not None
                and active_since is not None
                and now - active_since > settings.connect_timeout_s
                and node.starts < settings.node_starts
            ):
                waited = settings.connect_timeout_s
                print(
                    f"the node is active but not connected after {waited:g} s (missing: "
                    f"{', '.join(missing)}; start {node.starts}): starting it again",
                    file=sys.stderr,
                )
                node.restart()
                deadline, active_since = time.monotonic() + settings.startup_timeout_s, None
                continue
            if now > deadline:
                where = (
                    f"the node started with: {' '.join(node.command)}\nits log "
                    f"({node.log_path}, start {node.starts}) ends with:\n{node.log_tail()}"
                    if node is not None
                    else "no node was started (--namespace): is it running, active, and on "
                    f"ROS_DOMAIN_ID={self.domain_id} with the same RMW?"
                )
                raise LiveError(
                    f"the node {settings.node_path} did not come up within "
                    f"{settings.startup_timeout_s:.0f} s on ROS_DOMAIN_ID={self.domain_id} "
                    f"(missing: {', '.join(missing)}); {where}"
                )
            ros.spin(0.1)
        if ros.output_publisher_count() > 1:
            raise LiveError(
                f"{ros.output_publisher_count()} nodes publish {ros.output_topic} on "
                f"ROS_DOMAIN_ID={self.domain_id}; stop the others or choose another ROS_DOMAIN_ID"
            )

    def _check_node_alive(self, when: str) -> None:
        if self.node is not None and not self.node.alive():
            raise LiveError(
                f"the node exited {when} (status {self.node.process.returncode}); its log "
                f"({self.node.log_path}) ends with:\n{self.node.log_tail()}"
            )

    def close(self) -> None:
        """Stop the node (if started here) and release the ROS context."""
        if self.node is not None:
            self.node.stop()
        if self._ros is not None:
            self._ros.close()
            self._ros = None
        if self._parameters_dir is not None:
            self._parameters_dir.cleanup()
            self._parameters_dir = None

    # -- playing --------------------------------------------------------------------------------

    def _on_output(self, message: Any) -> None:
        now = time.perf_counter()
        stamp = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
        self._outputs.setdefault(stamp, NodeOutput(now, message))
        self._last_output = now

    def reset_node(self) -> None:
        """Forget all targets (``~/reset``) so that every clip starts from scratch."""
        self._ros.call_reset(self.settings.request_timeout_s)

    def play(
        self,
        clip: Clip,
        playback: ClipPlayback,
        on_published: Callable[[], None] | None = None,
    ) -> None:
        """Publish the frames of ``clip`` in real time and record the node's outputs.

        ``playback`` is filled as the clip plays, so after an error or Ctrl-C it holds what was
        played up to then.

        :raises LiveError: the node died, or refused or did not answer a prompt.
        """
        self._outputs = playback.outputs
        ros = self._ros
        plan = PromptPlan(recorded=bool(getattr(clip, "has_recorded_prompts", False)))
        anchor: tuple[float, int] | None = None  # (wall time, stamp) the schedule counts from
        first_prompt = True
        seen_stamps: set[int] = set()
        playback.started = time.perf_counter()
        for frame in clip.frames():
            stamp = _frame_stamp(clip, frame)
            if stamp in seen_stamps:
                raise LiveError(
                    f"{clip.name}: two frames share the stamp {stamp} ns; live mode pairs outputs "
                    "with frames by stamp"
                )
            seen_stamps.add(stamp)
            image = _frame_image(clip, frame)
            message = ros.image_message(image, stamp)
            prompt = plan.prompt(frame, PromptRequest)

            # Pace by the recorded stamps; never send faster than that (a late frame moves the
            # schedule instead of causing a burst).
            if anchor is None:
                anchor = (time.perf_counter(), stamp)
            due = anchor[0] + (stamp - anchor[1]) / 1e9 / self.settings.rate
            ros.spin_until(lambda due=due: time.perf_counter() >= due, due)
            now = time.perf_counter()
            if now > due + 0.002:
                anchor = (now, stamp)
            self._check_node_alive(f"while playing {clip.name}")

            ros.publish_clock(stamp)
            published = time.perf_counter()
            ros.publish_image(message)
            played = PlayedFrame(frame.index, stamp, published)
            playback.frames.append(played)
            if on_published is not None:
                on_published()
            if prompt is not None:
                played.prompt = prompt.label_image
                self._send_prompt(clip, frame, message, prompt, replace=first_prompt)
                first_prompt = False
                anchor = None  # the next frame goes out now, the schedule restarts from it
        self._wait_for_late_outputs(playback)
        newest_publish = playback.frames[-1].published if playback.frames else playback.started
        playback.finished = max(self._last_output, newest_publish)

    def _send_prompt(
        self, clip: Clip, frame: ClipFrame, message: Any, prompt: PromptRequest, replace: bool
    ) -> None:
        """``~/set_initial_mask`` on the frame just published, once the node has processed it.

        The request names the frame by stamp, so the node must have received it. Images travel
        best-effort: when no output for the frame comes within ``output_timeout_s``, the frame is
        sent once more (a lost frame is then received; a merely slow node sees it twice).
        """
        ros = self._ros
        stamp = int(frame.stamp_ns)  # checked by _frame_stamp
        for attempt in range(2):
            if attempt:
                ros.publish_image(message)
            wait_until = time.perf_counter() + self.settings.output_timeout_s
            if ros.spin_until(lambda: stamp in self._outputs, wait_until):
                break
            self._check_node_alive(f"while playing {clip.name}")
        ok, text = ros.call_set_initial_mask(
            prompt.label_image,
            prompt.classes,
            stamp,
            replace=replace,
            timeout_s=self.settings.request_timeout_s,
        )
        if not ok:
            raise LiveError(
                f"{clip.name} frame {frame.index}: {self.settings.node_path}/set_initial_mask "
                f"failed: {text}"
            )

    def _wait_for_late_outputs(self, playback: ClipPlayback) -> None:
        """Wait until the last frame's output arrived, or no output came for a while."""
        if not playback.frames:
            return
        last = playback.frames[-1].stamp_ns
        quiet_s = self.settings.output_timeout_s

        def done() -> bool:
            if last in self._outputs:
                return True
            newest = max(self._last_output, playback.frames[-1].published)
            return time.perf_counter() - newest > quiet_s

        self._ros.spin_until(done, time.perf_counter() + quiet_s + 60.0)


def _frame_stamp(clip: Clip, frame: ClipFrame) -> int:
    if frame.stamp_ns is None:
        raise LiveError(
            f"{clip.name}: live mode needs stamped frames (bags); write DAVIS folders as bags "
            "with `vos-ros make-bag --davis DIR --out BAG` first"
        )
    return int(frame.stamp_ns)


def _frame_image(clip: Clip, frame: ClipFrame) -> np.ndarray:
    if frame.image is None:
        raise LiveError(f"{clip.name} frame {frame.name}: the clip carries no image")
    return frame.image


def run_node_on_clip(
    open_clip: Callable[[], Clip],
    player: LivePlayer,
    scorer: DatasetScorer,
    on_published: Callable[[], None] | None = None,
    on_frame: Callable[[str, ClipFrame, np.ndarray], None] | None = None,
) -> None:
    """Play one clip to the node, then score its outputs frame by frame (see the module docstring).

    :param open_clip: opens the clip; called twice (playing, then scoring), so frames are never
        all held in memory.
    :raises LiveError: the run could not go on; what was played before is scored first.
    :raises KeyboardInterrupt: after scoring what was played.
    """
    clip = open_clip()
    playback = ClipPlayback()
    failure: BaseException | None = None
    try:
        player.reset_node()
        player.play(clip, playback, on_published)
    except (ValueError, KeyboardInterrupt) as exc:
        failure = exc
    score_playback(open_clip(), playback, scorer, failure, on_frame)
    if failure is not None:
        raise failure
