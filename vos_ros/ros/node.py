"""``vos_node``: the ROS 2 lifecycle node around the segmentation engine.

Lifecycle (``ros2 lifecycle set /vos_node <transition>``):

- configure: read and validate the parameters (FAILURE names the bad parameter), build the engine
  and warm it up;
- activate: subscribe to the camera, create the output publishers and the target services, start
  the inference thread;
- deactivate: stop the inference thread, destroy subscriptions, publishers and services (targets
  are kept, so activate resumes where it stopped);
- cleanup / shutdown: also release the engine.

With ``autostart`` (default true) a one-shot timer runs configure and activate right after start-up,
so ``ros2 run vos_ros vos_node`` just works.

Real time: the image callback only stores the message and puts it into a one-element hand-over
slot; the inference thread always takes the newest frame. A frame replaced in the slot before the
engine took it is dropped and counted, so latency never builds up behind a slow engine.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.logging import get_logger
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from vos_ros.engine.engine import ENGINE_STAGES
from vos_ros.frame_buffer import NS_PER_S, FrameBuffer
from vos_ros.heap_trim import HeapTrimmer
from vos_ros.msg import DetectionArray, InstanceMaskArray
from vos_ros.ros import result_msgs
from vos_ros.ros.diagnostics import DiagnosticThresholds, NodeStats, build_diagnostic_array
from vos_ros.ros.input_frames import frame_from_compressed, frame_from_image, labels_from_image
from vos_ros.ros.launch_config import NODE_ACTIVE_LOG
from vos_ros.ros.params import (
    SPECS_BY_NAME,
    NodeConfig,
    check_parameter_update,
    declare_parameters,
    read_config,
)
from vos_ros.ros.services import TargetServices, stamp_to_ns
from vos_ros.ros.stream_size import ResolutionAdapter
from vos_ros.ros.teardown import shutdown_executor
from vos_ros.srv import AddObjects, AddPoints, RemoveObjects, SetInitialMask
from vos_ros.types import FrameResult

NODE_NAME = "vos_node"
_WARMUP_SHAPE = (480, 640, 3)


class LatestSlot:
    """One-element hand-over between the image callback and the inference thread.

    ``put`` never blocks: it replaces whatever is waiting (the replaced item is a dropped frame).
    ``take`` blocks until an item is there, the timeout passes, or the slot is closed.
    """

    def __init__(self) -> None:
        self._item: Any = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Any) -> bool:
        """Store ``item``; True when it replaced an item that was never taken."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, timeout: float) -> Any:
        """The waiting item (and empty the slot), or None after ``timeout`` s or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()


class VosNode(LifecycleNode):
    """Lifecycle node: camera in; instance masks, label image, detections and overlay out.

    :param engine_factory: ``NodeConfig -> engine``, called at configure (default: build and warm
        up the engine the parameters describe). Only Python code that constructs the node can
        set it (tests and the fault-injection benchmark wrap the engine); no parameter or
        message reaches it.
    """

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        engine_factory: Callable[[NodeConfig], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self._engine_factory = engine_factory or build_node_engine
        self._rejected_parameters = declare_parameters(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._config: NodeConfig | None = None
        self._engine: Any = None
        self._engine_lock = threading.Lock()
        self._frames: FrameBuffer | None = None
        self._stats = NodeStats()
        self._slot: LatestSlot | None = None
        self._worker: threading.Thread | None = None
        self._active = False
        self._state_label = "unconfigured"  # for diagnostics; updated by the transitions
        self._throttled_logger = self.get_logger()  # replaced at every configure

        self._image_sub = None
        self._prompts_sub = None
        self._instances_pub = None
        self._label_pub = None
        self._detections_pub = None
        self._overlay_pub = None
        self._target_srvs: list[Any] = []

        # Diagnostics run in every state, so a failed configure is visible on /diagnostics.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = self.get_parameter("diagnostics.period_s").value
        # Wall-clock timers: with use_sim_time a paused bag stops ROS time, and neither the
        # diagnostics nor the start-up may wait for it.
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_timer = self.create_timer(
            period, self._publish_diagnostics, clock=self._steady_clock
        )

        self._autostart_timer = None
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(
                0.0, self._autostart_cb, clock=self._steady_clock
            )

    # -- lifecycle --------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, build the engine: SUCCESS -> inactive, FAILURE -> unconfigured."""
        try:
            config = read_config(self, self._rejected_parameters)
        except ValueError as exc:
            return self._configure_failed(f"invalid parameter: {exc}")
        try:
            engine = self._engine_factory(config)
        except (ValueError, OSError, ImportError, RuntimeError) as exc:
            return self._configure_failed(
                f"cannot build the engine for model={config.model!r} "
                f"backend={config.backend!r}: {exc}"
            )
        self._config = config
        # rclpy fixes the throttle of each logging call site at its first call and raises if it
        # changes: a fresh logger per configure lets a new log_throttle_s take effect.
        self._throttled_logger = get_logger(self.get_logger().name)
        # The adapter keeps targets when the camera changes resolution (see stream_size.py).
        self._engine = ResolutionAdapter(engine, on_change=self._on_resolution_change)
        self._frames = FrameBuffer(
            config.frame_buffer_size, int(config.frame_buffer_tolerance_ms * 1e6)
        )
        self._stats.reset()
        self._state_label = "inactive"
        self.get_logger().info(
            f"configured: model={config.model} backend={_backend_name(engine, config)} "
            f"input={'image/compressed' if config.input_compressed else 'image'}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create publishers, services and the camera subscription; start inference."""
        config = self._config
        output_qos = QoSProfile(
            depth=config.output_depth,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
        )
        self._instances_pub = self.create_publisher(InstanceMaskArray, "~/instances", output_qos)
        self._label_pub = self.create_publisher(Image, "~/label_image", output_qos)
        self._detections_pub = self.create_publisher(
            result_msgs.detections_type(), "~/detections", output_qos
        )
        self._overlay_pub = self.create_publisher(Image, "~/overlay", output_qos)

        handlers = TargetServices(
            self._engine,
            self._engine_lock,
            self._frames,
            self._decode_frame,
            labels_from_image,
            config,
            on_change=lambda text: self.get_logger().info(text),
        )
        self._target_srvs = [
            self.create_service(
                SetInitialMask,
                "~/set_initial_mask",
                _guarded(handlers.set_initial_mask, self),
            ),
            self.create_service(
                AddObjects,
                "~/add_objects",
                _guarded(handlers.add_objects, self),
            ),
            self.create_service(AddPoints, "~/add_points", _guarded(handlers.add_points, self)),
            self.create_service(
                RemoveObjects,
                "~/remove_objects",
                _guarded(handlers.remove_objects, self),
            ),
            self.create_service(Trigger, "~/reset", _guarded(handlers.reset, self)),
        ]
        if config.prompts_enabled:
            self._prompts_sub = self.create_subscription(
                DetectionArray,
                "~/prompts",
                lambda msg: self._prompts_cb(msg, handlers),
                output_qos,
            )

        self._slot = LatestSlot()
        self._worker = threading.Thread(
            target=self._inference_loop, args=(self._slot,), name="vos_inference", daemon=True
        )
        self._worker.start()

        input_qos = QoSProfile(
            depth=config.input_depth,
            history=HistoryPolicy.KEEP_LAST,
            reliability=(
                ReliabilityPolicy.BEST_EFFORT
                if config.input_reliability == "best_effort"
                else ReliabilityPolicy.RELIABLE
            ),
        )
        if config.input_compressed:
            self._image_sub = self.create_subscription(
                CompressedImage,
                "image/compressed",
                self._image_cb,
                input_qos,
            )
        else:
            self._image_sub = self.create_subscription(Image, "image", self._image_cb, input_qos)
        self._active = True
        self._state_label = "active"
        self.get_logger().info(f"{NODE_ACTIVE_LOG} {self._image_sub.topic_name}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop inference and release topics and services; targets are kept."""
        self._release_io()
        self._state_label = "inactive"
        self.get_logger().info("inactive: released topics and services (targets kept)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the engine and the frame buffer: back to unconfigured."""
        self._release_all()
        self._state_label = "unconfigured"
        self.get_logger().info("unconfigured: engine released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from whichever state: -> finalized."""
        self._release_all()
        self._state_label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything after an exception in a transition: SUCCESS -> unconfigured."""
        self._release_all()
        self._state_label = "unconfigured"
        self._stats.error(f"lifecycle error while {state.label}; released all resources")
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.get_logger().error(f"configure failed: {reason}")
        self._stats.error(f"configure failed: {reason}")
        return TransitionCallbackReturn.FAILURE

    def _release_io(self) -> None:
        self._active = False
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        if self._slot is not None:
            self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        self._slot = None
        if self._prompts_sub is not None:
            self.destroy_subscription(self._prompts_sub)
            self._prompts_sub = None
        for service in self._target_srvs:
            self.destroy_service(service)
        self._target_srvs = []
        for name in ("_instances_pub", "_label_pub", "_detections_pub", "_overlay_pub"):
            publisher = getattr(self, name)
            if publisher is not None:
                self.destroy_publisher(publisher)
                setattr(self, name, None)

    def _release_all(self) -> None:
        self._release_io()
        with self._engine_lock:
            if self._engine is not None:
                # stops a background online adaptation, which would otherwise run to its end
                _reset_quietly(self._engine)
            self._engine = None
        self._frames = None
        self._config = None

    def _autostart_cb(self) -> None:
        # One shot: configure and activate once, after the executor started spinning.
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        self._autostart_timer = None
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- parameters -------------------------------------------------------------------------------

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Reject run-time changes that are out of range; accepted ones apply at configure."""
        for parameter in parameters:
            if parameter.name in SPECS_BY_NAME:
                reason = check_parameter_update(parameter.name, parameter.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # -- frames -----------------------------------------------------------------------------------

    def _image_cb(self, msg) -> None:
        """Store the message and hand it to the inference thread; never blocks."""
        received = time.perf_counter()
        self._stats.frame_received()
        frames, slot = self._frames, self._slot
        if frames is None or slot is None:
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        # The node's clock, so the age is right under use_sim_time too (stamps from the bag).
        input_age_ms = (self.get_clock().now().nanoseconds - stamp_ns) / 1e6
        frames.put(stamp_ns, msg)
        if slot.put((msg, received, input_age_ms)):
            self._stats.frame_dropped()

    def _decode_frame(self, msg) -> Any:
        max_pixels = self._config.input_max_pixels if self._config else None
        if isinstance(msg, CompressedImage):
            return frame_from_compressed(msg, max_pixels)
        return frame_from_image(msg, max_pixels)

    def _on_resolution_change(self, text: str) -> None:
        self.get_logger().warning(text)

    def _inference_loop(self, slot: LatestSlot) -> None:
        trimmer = HeapTrimmer(self._config.memory_trim_period_s)
        while True:
            if trimmer.maybe_trim():  # between frames, so no frame waits for it
                self._stats.heap_trimmed(trimmer.resident_mib, self._target_count())
            item = slot.take(timeout=0.5)
            if slot.closed:
                return  # deactivate
            if item is None:
                continue
            msg, received, input_age_ms = item
            try:
                self._process(msg, received, input_age_ms)
            except Exception as exc:  # the thread must survive any frame
                if not self.context.ok():
                    return  # shut down (Ctrl-C) while this frame was published: not an error
                self._stats.frame_failed(f"unexpected error: {exc}")
                self._throttled_logger.error(
                    f"unexpected error on a frame: {exc!r}",
                    throttle_duration_sec=self._config.log_throttle_s,
                )

    def _target_count(self) -> int:
        with self._engine_lock:
            return len(self._engine.target_ids) if self._engine is not None else 0

    def _process(self, msg, received: float, input_age_ms: float) -> None:
        """The hot path: decode, engine step, publish; every stage timed (NODE_STAGES)."""
        config = self._config
        taken = time.perf_counter()
        try:
            frame = self._decode_frame(msg)
        except ValueError as exc:
            self._reject_frame(f"bad image: {exc}")
            return
        decoded = time.perf_counter()
        with self._engine_lock:
            engine = self._engine
            if engine is None:
                return
            start = time.perf_counter()
            engine_ms = None
            try:
                if engine.target_ids:
                    result = engine.step(frame)
                    engine_ms = (time.perf_counter() - start) * 1e3
                else:  # nothing to track: publish empty outputs, skip the engine's work
                    result = _empty_result(frame.shape[:2])
            except ValueError as exc:  # engine errors are ValueError subclasses
                self._reject_frame(f"engine rejected the frame: {exc}")
                return

        stepped = time.perf_counter()
        header = msg.header
        self._instances_pub.publish(result_msgs.instance_mask_array(result, header))
        # The derived outputs are built only for someone: the label image alone is a frame-sized
        # message, serialised by rclpy whether or not anything receives it.
        if self._label_pub.get_subscription_count() > 0:
            self._label_pub.publish(
                result_msgs.label_image_msg(result, header, config.output_label_encoding)
            )
        if self._detections_pub.get_subscription_count() > 0:
            self._detections_pub.publish(result_msgs.detections_msg(result, header))
        if self._overlay_pub.get_subscription_count() > 0:
            overlay = result_msgs.overlay_image(frame, result, config.output_overlay_alpha)
            self._overlay_pub.publish(result_msgs.image_msg(header, overlay, "rgb8"))
        done = time.perf_counter()
        stages_ms = {
            "input_age": input_age_ms,
            "wait": (taken - received) * 1e3,
            "decode": (decoded - taken) * 1e3,
            "lock": (start - decoded) * 1e3,
            **{k: v for k, v in result.timings_ms.items() if k in ENGINE_STAGES},
            "publish": (done - stepped) * 1e3,
        }
        self._stats.frame_processed((done - received) * 1e3, engine_ms, stages_ms)

    def _reject_frame(self, reason: str) -> None:
        self._stats.frame_failed(reason)
        self._throttled_logger.warning(
            f"{reason} (frame skipped; targets kept)",
            throttle_duration_sec=self._config.log_throttle_s,
        )

    def _prompts_cb(self, msg, handlers: TargetServices) -> None:
        """Boxes published on ~/prompts become new targets, like ~/add_objects."""
        boxes, labels = [], []
        for det in msg.detections:
            x0 = det.center_x - det.size_x / 2.0
            y0 = det.center_y - det.size_y / 2.0
            boxes.append((x0, y0, x0 + det.size_x, y0 + det.size_y))
            labels.append(det.class_label)
        if not boxes:
            return
        try:
            new_ids = handlers.add_prompt_boxes(msg.header.stamp, boxes, labels)
        except ValueError as exc:
            self._stats.error(f"~/prompts: {exc}")
            self._throttled_logger.warning(
                f"~/prompts rejected: {exc}", throttle_duration_sec=self._config.log_throttle_s
            )
            return
        self.get_logger().info(f"~/prompts: added ids {new_ids}")

    # -- diagnostics ------------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        config = self._config
        engine = self._engine
        with self._engine_lock:
            target_ids = sorted(engine.target_ids) if engine is not None else []
        thresholds = DiagnosticThresholds(
            latency_warn_ms=(config or NodeConfig.defaults()).diagnostics_latency_warn_ms,
            stale_input_s=(config or NodeConfig.defaults()).diagnostics_stale_input_s,
            error_hold_s=max(2.0, 2 * self._diagnostics_timer.timer_period_ns / NS_PER_S),
        )
        array = build_diagnostic_array(
            self._stats.snapshot(),
            name=f"{self.get_name()}: video object segmentation",
            hardware_id=self.get_fully_qualified_name(),
            backend=_backend_name(engine, config) if engine is not None else "",
            model=config.model if config else self.get_parameter("model").value,
            target_ids=target_ids,
            lifecycle_state=self._state_label,
            active=self._active,
            thresholds=thresholds,
            stamp=self.get_clock().now().to_msg(),
            adaptation=_adaptation_state(engine),
            input_publishers=self._input_publishers(),
        )
        self._diagnostics_pub.publish(array)

    def _input_publishers(self) -> int | None:
        """Publishers of the subscribed image topic in the graph; None while not subscribed."""
        subscription = self._image_sub
        if subscription is None:
            return None
        return self.count_publishers(subscription.topic_name)


def _guarded(handler, node: VosNode):
    """Wrap a service handler so an unexpected exception becomes an error response."""

    def call(request, response):
        try:
            return handler(request, response)
        except Exception as exc:  # a service call must never kill the node
            node.get_logger().error(f"service handler failed: {exc!r}")
            response.success = False
            response.message = f"internal error: {exc}"
            if hasattr(response, "tracked_ids"):  # the caller must not read "no targets"
                with node._engine_lock:
                    engine = node._engine
                    response.tracked_ids = sorted(engine.target_ids) if engine is not None else []
            return response

    return call


def _fuse_weight(config: NodeConfig) -> float | None:
    """engine.fuse_fallback for a network (-1: None, the model decides); the flow fallback
    alone has nothing to fuse."""
    from vos_ros.engine.model_paths import FLOW

    if config.model == FLOW or config.engine_fuse_fallback < 0:
        return None
    return config.engine_fuse_fallback


def _with_fallback_settings(engine_config, config: NodeConfig):
    """``engine_config`` with the flow fallback's settings the node's parameters change, when
    the fallback runs (alone or fused with a network; a network alone has none)."""
    from vos_ros.engine.build import resolve_fusion
    from vos_ros.engine.fallback import ROUND_TRIP_PX

    engine_config = resolve_fusion(engine_config)
    if engine_config.runs_fallback and config.engine_flow_round_trip:
        return replace(engine_config, fallback=(("uncovered_px", ROUND_TRIP_PX),))
    return engine_config


def build_node_engine(config: NodeConfig):
    """Build and (optionally) warm up the engine described by ``config``."""
    from vos_ros.engine import EngineConfig, Prompt, build_engine

    engine_config = _with_fallback_settings(
        EngineConfig(
            model=config.model,
            backend=config.backend,
            device=config.engine_device,
            precision=config.engine_precision,
            threads=config.engine_threads,
            processing_short_side=config.engine_processing_short_side or None,
            max_targets=config.engine_max_targets,
            flow_preset=config.engine_flow_preset,
            fuse_fallback=_fuse_weight(config),
            decoder_window_scale=config.engine_decoder_window_scale,
            lost_search_every=config.engine_lost_search_every,
            adapt_steps=config.engine_adapt_steps,
            adapt_scope=config.engine_adapt_scope,
            adapt_background=config.engine_adapt_background,
            cache_dir=config.engine_tensorrt_cache_dir or None,
        ),
        config,
    )
    engine = build_engine(engine_config)
    if config.warmup:
        # Two frames with one square target run every stage once (flow, memory, decoding).
        blank = np.zeros(_WARMUP_SHAPE, np.uint8)
        labels = np.zeros(_WARMUP_SHAPE[:2], np.uint16)
        height, width = labels.shape
        labels[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 1
        with engine.adaptation_paused():  # no fine-tuning on a blank frame
            engine.step(blank, Prompt(labels, {1: "warmup"}))
            engine.step(blank)
        engine.reset()
    return engine


def _reset_quietly(engine: Any) -> None:
    """``engine.reset()`` for engines that have one (test doubles may not)."""
    reset = getattr(engine, "reset", None)
    if callable(reset):
        # an engine being released must not fail the transition
        with contextlib.suppress(Exception):
            reset()


def _adaptation_state(engine: Any) -> str:
    """The engine's online adaptation state (through the resolution adapter), or ``off``."""
    inner = getattr(engine, "engine", engine)
    state = getattr(inner, "adaptation_state", "off")
    return state if isinstance(state, str) else "off"


def _empty_result(shape: tuple[int, int]) -> FrameResult:
    """The result for a frame while no target is tracked."""
    return FrameResult(frame_index=-1, targets=[], label_image=np.zeros(shape, np.uint16))


def _backend_name(engine: Any, config: NodeConfig | None) -> str:
    """The backend the engine actually uses (engines may expose it), else the configured one."""
    name = getattr(engine, "backend_name", None) or getattr(engine, "backend", None)
    if isinstance(name, str) and name:
        return name
    return config.backend if config else ""


MAX_DISPATCH_FAILURES = 20  # in a row: rclpy itself is broken, the node exits


def spin_resiliently(executor: Any, logger: Any, ok: Callable[[], bool]) -> None:
    """``executor.spin()`` that survives an exception out of rclpy's take-and-dispatch.

    Seen under fault injection: ``RuntimeError: Unable to convert call argument '0' to Python
    object`` raised by ``take_message`` for one image message, which ended ``spin()`` and with it
    the node and every target it tracked. Such an error now costs that message only; after
    ``MAX_DISPATCH_FAILURES`` failures in a row the error is raised (the node exits).
    """
    failures = 0
    while ok():
        try:
            executor.spin_once(timeout_sec=0.5)
            failures = 0
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as exc:  # rclpy raises RuntimeError and pybind11's own types
            failures += 1
            logger.error(f"taking or dispatching a ROS message failed ({failures} in a row): {exc}")
            if failures >= MAX_DISPATCH_FAILURES:
                raise


def main(
    args: list[str] | None = None, engine_factory: Callable[[NodeConfig], Any] | None = None
) -> int:
    """Entry point of ``vos_node`` / ``vos-ros node``: spin the node until interrupted.

    ``engine_factory``: see :class:`VosNode` (the console scripts never pass one).
    """
    # `kill -USR1 <pid>` prints every thread's stack: the way to see where a node hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=args)
    node = VosNode(engine_factory=engine_factory)
    # One thread for every ROS callback: the engine has its own thread, so callbacks are short,
    # and a service call holds up image intake only while it runs (a box prompt's GrabCut, tens
    # of ms; the newest frame is taken afterwards). rclpy's MultiThreadedExecutor lost seconds
    # of images after service calls (its spin loop re-queues tasks its pool has not started,
    # ros2/rclpy#1452); docs/benchmarks.md, "Stalls at target changes", has the measurements.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_resiliently(executor, node.get_logger(), lambda: rclpy.ok(context=node.context))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._release_all()
        shutdown_executor(executor)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
