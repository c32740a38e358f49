"""Target-selection services of the node: set_initial_mask, add_objects, add_points,
remove_objects, reset.

Boxes and clicks go through the model's own prompt encoder where the model family has one
(SAM 2); for the others the node makes the masks by GrabCut (:mod:`vos_ros.box_prompt`,
:mod:`vos_ros.click_prompt`) outside the engine lock.

Handlers never raise: every bad request (unknown stamp, wrong size or encoding, bad box, unknown
id) comes back as ``success = false`` with a message that says what was wrong, and the targets
being tracked are left as they were. Requests are validated completely before the engine is
touched, and engine calls run under the same lock as the inference thread, so a request never
interleaves with a frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vos_ros.box_prompt import BoxError, boxes_to_label_image, validate_boxes
from vos_ros.click_prompt import ClickError, ClickPrompt, grabcut_click_mask, validate_click_prompt
from vos_ros.frame_buffer import FrameBuffer, FrameNotBufferedError, format_stamp
from vos_ros.ros.params import NodeConfig

NS_PER_S = 1_000_000_000


class RequestError(ValueError):
    """A request that cannot be carried out; the text goes back to the caller."""


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (or anything with ``sec``/``nanosec``) in nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


class TargetServices:
    """Service handlers bound to one engine, its lock and the node's buffer of recent frames.

    :param engine: the :mod:`vos_ros.engine` engine (``add_targets``, ``remove_targets``,
        ``reset``, ``target_ids``, ``next_free_id``).
    :param engine_lock: held by the inference thread around every ``engine.step``.
    :param frames: recent input messages keyed by stamp (ns).
    :param decode_frame: input message -> RGB uint8 ``(H, W, 3)``; raises ValueError for bad input.
    :param decode_labels: ``sensor_msgs/Image`` -> uint16 ``(H, W)``; raises ValueError.
    :param on_change: called with a short text after every successful change (for logging).
    """

    def __init__(
        self,
        engine: Any,
        engine_lock: threading.Lock,
        frames: FrameBuffer,
        decode_frame: Callable[[Any], np.ndarray],
        decode_labels: Callable[[Any], np.ndarray],
        config: NodeConfig,
        on_change: Callable[[str], None] = lambda text: None,
    ) -> None:
        self._engine = engine
        self._lock = engine_lock
        self._frames = frames
        self._decode_frame = decode_frame
        self._decode_labels = decode_labels
        self._config = config
        self._on_change = on_change

    # -- services -------------------------------------------------------------------------------

    def set_initial_mask(self, request, response):
        """``SetInitialMask``: label image (+ classes) on a buffered frame, replace or add."""
        try:
            stamp_ns, frame = self._frame_for(request.stamp)
            labels = self._labels_for(request.label_image, frame.shape[:2])
            classes = _classes_for(labels, request.ids, request.class_labels)
            if not classes:  # with replace=true this would silently drop every target
                raise RequestError(
                    "label image has no target pixels (all zero); to stop tracking every "
                    "target call ~/reset"
                )
            with self._lock:
                current = list(self._engine.target_ids)
                if not request.replace:
                    clash = sorted(set(classes) & set(current))
                    if clash:
                        raise RequestError(
                            f"ids {clash} are already tracked; use replace=true, remove them "
                            "first, or pick free ids (next free id: "
                            f"{self._engine.next_free_id()})"
                        )
                kept = 0 if request.replace else len(current)
                self._check_capacity(kept + len(classes))
                if request.replace and current:
                    self._engine.remove_targets(current)
                try:
                    self._engine.add_targets(frame, labels, classes)
                except Exception as exc:  # the request was checked; this is the engine failing
                    if request.replace and current:
                        raise RequestError(
                            f"engine failed to add the new targets ({exc}); the previous "
                            f"targets {current} were already removed"
                        ) from None
                    raise
                tracked = sorted(self._engine.target_ids)
        except ValueError as exc:  # RequestError, FrameNotBufferedError, engine errors
            return _fail(response, exc, self._tracked())
        verb = "replaced targets with" if request.replace else "added"
        response.success = True
        response.message = (
            f"{verb} ids {sorted(classes)} on frame {format_stamp(stamp_ns)}; tracking {tracked}"
        )
        response.tracked_ids = tracked
        self._on_change(response.message)
        return response

    def add_objects(self, request, response):
        """``AddObjects``: pixel boxes (+ classes) on a buffered frame become new targets."""
        try:
            boxes = [_roi_to_box(roi) for roi in request.boxes]
            labels_in = list(request.class_labels)
            if not boxes:
                raise RequestError("no boxes given")
            if labels_in and len(labels_in) != len(boxes):
                raise RequestError(
                    f"got {len(boxes)} boxes but {len(labels_in)} class labels; give one label "
                    "per box or none"
                )
            new_ids = self._add_boxes(request.stamp, boxes, labels_in or [""] * len(boxes))
        except ValueError as exc:
            return _fail(response, exc, self._tracked())
        response.success = True
        response.new_ids = new_ids
        tracked = self._tracked()
        response.tracked_ids = tracked
        response.message = f"added ids {new_ids}; tracking {tracked}"
        self._on_change(response.message)
        return response

    def add_points(self, request, response):
        """``AddPoints``: clicks (+ an optional box) become one new target, or restart a
        tracked one."""
        try:
            prompt = ClickPrompt(
                tuple((float(p.x), float(p.y)) for p in request.points),
                tuple(int(v) for v in request.labels),
                _roi_to_box(request.box) if request.box.width and request.box.height else None,
            )
            target_id = self._add_clicks(
                request.stamp, prompt, str(request.class_label), int(request.target_id)
            )
        except ValueError as exc:
            return _fail(response, exc, self._tracked())
        tracked = self._tracked()
        response.success = True
        response.target_id = target_id
        response.tracked_ids = tracked
        verb = "restarted" if int(request.target_id) else "added"
        count = len(prompt.points)
        given = [f"{count} click" + "s" * (count != 1)] if count else []
        given += ["a box"] if prompt.box else []
        response.message = (
            f"{verb} ids [{target_id}] from {' and '.join(given)}; tracking {tracked}"
        )
        self._on_change(response.message)
        return response

    def remove_objects(self, request, response):
        """``RemoveObjects``: stop tracking ids; unknown ids are ignored and named."""
        requested = [int(i) for i in request.ids]
        if not requested:
            return _fail(response, RequestError("no ids given"), self._tracked())
        try:
            with self._lock:
                tracked = set(self._engine.target_ids)
                removable = [i for i in dict.fromkeys(requested) if i in tracked]
                removed = list(self._engine.remove_targets(removable)) if removable else []
                now = sorted(self._engine.target_ids)
        except ValueError as exc:
            return _fail(response, exc, self._tracked())
        unknown = sorted(set(requested) - set(removed))
        response.success = True
        response.removed_ids = sorted(removed)
        response.tracked_ids = now
        response.message = f"removed ids {sorted(removed)}; tracking {now}"
        if unknown:
            response.message += f"; ignored ids that are not tracked: {unknown}"
        self._on_change(response.message)
        return response

    def reset(self, request, response):
        """``std_srvs/Trigger``: forget every target (the stream goes on)."""
        with self._lock:
            count = len(self._engine.target_ids)
            self._engine.reset()
        response.success = True
        response.message = f"removed all {count} targets"
        self._on_change(response.message)
        return response

    def add_prompt_boxes(self, stamp, boxes: Sequence[tuple], class_labels: Sequence[str]):
        """Boxes from the ``~/prompts`` topic; returns the new ids (raises ValueError)."""
        return self._add_boxes(stamp, list(boxes), list(class_labels))

    # -- helpers ----------------------------------------------------------------------------------

    def _add_clicks(self, stamp, prompt: ClickPrompt, class_label: str, target_id: int) -> int:
        """One target from clicks on a buffered frame; ``target_id`` 0 = the next free id, a
        tracked id = restart that target. Returns the id."""
        _, frame = self._frame_for(stamp)
        try:
            prompt = validate_click_prompt(prompt, frame.shape[:2])
        except ClickError as exc:
            raise _on_frame(exc, frame) from None
        mask = None
        if not self._engine.segments_clicks:  # GrabCut takes tens of ms: outside the lock
            iterations = self._config.box_prompt_grabcut_iterations
            try:
                if prompt.points:
                    mask = grabcut_click_mask(frame, prompt, iterations)
                else:  # a box alone: as ~/add_objects makes it (box_prompt.method)
                    method = self._config.box_prompt_method
                    mask = boxes_to_label_image(frame, [prompt.box], [1], method, iterations) == 1
            except (ClickError, BoxError) as exc:
                raise RequestError(str(exc)) from None
        with self._lock:
            current = list(self._engine.target_ids)
            restart = target_id in current
            if target_id and not restart:
                raise RequestError(
                    f"id {target_id} is not tracked; give 0 for a new target or one of {current}"
                )
            if not restart:
                (target_id,) = self._next_ids(1)
            classes = {target_id: class_label}
            if restart:  # keep its class label unless a new one is given
                classes[target_id] = class_label or self._engine.class_of(target_id)
                self._engine.remove_targets([target_id])
            try:
                if mask is None:
                    self._engine.add_click_targets(frame, {target_id: prompt}, classes)
                else:
                    labels = np.where(mask, target_id, 0).astype(np.uint16)
                    self._engine.add_targets(frame, labels, classes)
            except ValueError as exc:
                if restart:
                    raise RequestError(f"{exc}; target {target_id} was removed") from None
                raise
        return target_id

    def _add_boxes(self, stamp, boxes: list[tuple], class_labels: list[str]) -> list[int]:
        _, frame = self._frame_for(stamp)
        if self._engine.segments_clicks:
            return self._add_boxes_by_prompt_encoder(frame, boxes, class_labels)
        # Masks are made outside the engine lock (GrabCut takes tens of ms) with placeholder
        # ids 1..n, then mapped to the engine's next free ids under the lock.
        try:
            placeholder = boxes_to_label_image(
                frame,
                boxes,
                list(range(1, len(boxes) + 1)),
                method=self._config.box_prompt_method,
                grabcut_iterations=self._config.box_prompt_grabcut_iterations,
            )
        except BoxError as exc:
            raise _on_frame(exc, frame) from None
        with self._lock:
            new_ids = self._next_ids(len(boxes))
            lookup = np.zeros(len(boxes) + 1, np.uint16)
            lookup[1:] = new_ids
            labels = lookup[placeholder]
            present = set(np.unique(labels).tolist()) - {0}
            lost = [i for i in new_ids if i not in present]
            if lost:
                raise RequestError(
                    f"boxes for ids {lost} are completely covered by later boxes; "
                    "send overlapping boxes in separate requests"
                )
            classes = dict(zip(new_ids, class_labels, strict=True))
            self._engine.add_targets(frame, labels, classes)
        return new_ids

    def _add_boxes_by_prompt_encoder(
        self, frame: np.ndarray, boxes: list[tuple], class_labels: list[str]
    ) -> list[int]:
        """Boxes through the model's prompt encoder (SAM 2), one target each."""
        try:
            checked = validate_boxes(boxes, frame.shape[:2])
        except BoxError as exc:
            raise _on_frame(exc, frame) from None
        with self._lock:
            new_ids = self._next_ids(len(boxes))
            prompts = {i: ClickPrompt(box=box) for i, box in zip(new_ids, checked, strict=True)}
            classes = dict(zip(new_ids, class_labels, strict=True))
            self._engine.add_click_targets(frame, prompts, classes)
        return new_ids

    def _frame_for(self, stamp) -> tuple[int, np.ndarray]:
        """The buffered frame for ``stamp`` (zero = newest), decoded to RGB."""
        stamp_ns = stamp_to_ns(stamp)
        try:
            if stamp_ns == 0:
                stamp_ns, message = self._frames.latest()
            else:
                stamp_ns, message = self._frames.get(stamp_ns)
        except FrameNotBufferedError as exc:
            raise RequestError(str(exc)) from None
        try:
            return stamp_ns, self._decode_frame(message)
        except ValueError as exc:
            raise RequestError(f"buffered frame {format_stamp(stamp_ns)}: {exc}") from None

    def _labels_for(self, image_msg, frame_shape: tuple[int, int]) -> np.ndarray:
        try:
            labels = self._decode_labels(image_msg)
        except ValueError as exc:
            raise RequestError(f"label_image: {exc}") from None
        if labels.shape != frame_shape:
            raise RequestError(
                f"label_image is {labels.shape[1]}x{labels.shape[0]} but the frame is "
                f"{frame_shape[1]}x{frame_shape[0]}; draw the mask at the camera resolution"
            )
        return labels

    def _next_ids(self, count: int) -> list[int]:
        """Ids for ``count`` new targets, checked against ``engine.max_targets`` (call under
        the engine lock)."""
        self._check_capacity(len(self._engine.target_ids) + count)
        first = int(self._engine.next_free_id())
        return list(range(first, first + count))

    def _check_capacity(self, count: int) -> None:
        limit = self._config.engine_max_targets
        if count > limit:
            raise RequestError(
                f"request would track {count} targets but engine.max_targets is {limit}"
            )

    def _tracked(self) -> list[int]:
        with self._lock:
            return sorted(self._engine.target_ids)


def _classes_for(labels: np.ndarray, ids: Sequence[int], class_labels: Sequence[str]) -> dict:
    """``{id: class label}`` for every id present in ``labels``; checks the request's lists."""
    ids = [int(i) for i in ids]
    if len(ids) != len(class_labels):
        raise RequestError(
            f"ids has {len(ids)} entries but class_labels has {len(class_labels)}; "
            "they must pair up"
        )
    present = sorted(set(np.unique(labels).tolist()) - {0})
    missing = sorted(set(ids) - set(present))
    if missing:
        raise RequestError(f"ids {missing} are listed but have no pixels in label_image")
    given = dict(zip(ids, class_labels, strict=True))
    return {target_id: str(given.get(target_id, "")) for target_id in present}


def _on_frame(exc: Exception, frame: np.ndarray) -> RequestError:
    """A refused box or click, with the size of the frame it was given on."""
    return RequestError(f"{exc} (image is {frame.shape[1]}x{frame.shape[0]})")


def _roi_to_box(roi) -> tuple[int, int, int, int]:
    """``sensor_msgs/RegionOfInterest`` -> ``(x0, y0, x1, y1)``, x1/y1 exclusive."""
    x0, y0 = int(roi.x_offset), int(roi.y_offset)
    return x0, y0, x0 + int(roi.width), y0 + int(roi.height)


def _fail(response, exc: Exception, tracked: list[int]):
    response.success = False
    response.message = str(exc)
    if hasattr(response, "tracked_ids"):
        response.tracked_ids = tracked
    return response
