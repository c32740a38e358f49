"""Live mode, scoring: the node's outputs paired with the clip's frames by stamp.

A frame without an output was dropped by the node: it is scored as an empty prediction and counted
in ``timing.dropped_frames``. On a prompt frame the prompted masks are pasted over the node's
output: offline, the engine's result on that frame shows them exactly as given, while the node
published that frame before it received the prompt (the request needs the frame buffered).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vos_ros.evaluation.clips import Clip, ClipFrame
from vos_ros.evaluation.live_node import LiveError
from vos_ros.evaluation.prompt_plan import PromptPlan
from vos_ros.evaluation.scoring import DatasetScorer
from vos_ros.image_conversion import image_to_array


@dataclass
class PlayedFrame:
    """One published frame: where it was in the clip, its stamp, when it went out, its prompt."""

    index: int
    stamp_ns: int
    published: float  # time.perf_counter()
    prompt: np.ndarray | None = None  # uint16 (H, W) label image given on this frame


@dataclass
class NodeOutput:
    """One ``~/instances`` message and when it arrived (``time.perf_counter()``)."""

    arrived: float
    message: Any


@dataclass
class ClipPlayback:
    """What playing one clip produced."""

    frames: list[PlayedFrame] = field(default_factory=list)
    outputs: dict[int, NodeOutput] = field(default_factory=dict)  # stamp ns -> output
    started: float = 0.0
    finished: float = 0.0


@dataclass
class PromptRequest:
    """What :func:`prompt_for_new_objects` builds in live mode: the service request's content."""

    label_image: np.ndarray
    classes: dict[int, str]
    replace: bool = False


def label_image_from_instances(message: Any, shape: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """An ``InstanceMaskArray`` as a full-frame label image and the class of each id.

    Masks come cropped to their box (255 = target); they are pasted back at the box offset.

    :param shape: ``(H, W)`` the frame has; the message must say the same size.
    :returns: ``(uint16 (H, W) label image, {id: class label})``.
    :raises LiveError: the message's size differs from the frame's, or a mask does not fit its box.
    """
    height, width = shape
    if (int(message.image_height), int(message.image_width)) != (height, width):
        raise LiveError(
            f"the node's output is {message.image_width}x{message.image_height} but the frame "
            f"is {width}x{height}"
        )
    label = np.zeros(shape, np.uint16)
    classes: dict[int, str] = {}
    for inst in message.instances:
        target = int(inst.id)
        classes[target] = str(inst.class_label)
        box = inst.box
        if not inst.visible or box.width == 0 or box.height == 0:
            continue
        mask = inst.mask
        if (mask.height, mask.width) != (box.height, box.width):
            raise LiveError(
                f"instance {target}: mask is {mask.width}x{mask.height} but its box is "
                f"{box.width}x{box.height}"
            )
        crop = image_to_array(
            mask.encoding, mask.height, mask.width, mask.step, mask.is_bigendian, mask.data
        )
        y0, x0 = int(box.y_offset), int(box.x_offset)
        if y0 + box.height > height or x0 + box.width > width:
            raise LiveError(f"instance {target}: box {x0},{y0} {box.width}x{box.height} is outside")
        region = label[y0 : y0 + box.height, x0 : x0 + box.width]
        region[crop > 0] = target
    return label, classes


def score_playback(
    clip: Clip,
    playback: ClipPlayback,
    scorer: DatasetScorer,
    failure: BaseException | None,
    on_frame: Callable[[str, ClipFrame, np.ndarray], None] | None,
) -> None:
    """Score the played frames of ``clip`` (opened again) against the recorded outputs.

    :param playback: the frames that were published (in order) and the outputs by stamp.
    :param failure: why playing stopped early (None: the whole clip was played); the sequence
        is then marked incomplete with that reason.
    :param on_frame: called with (sequence, frame, scored label image), e.g. for overlays.
    :raises LiveError: the clip reads differently the second time, or an output does not fit.
    """
    seq = scorer.sequence(clip.name, len(clip))
    # The same plan as the player's: the same target ids (recorded box masks are deterministic).
    plan = PromptPlan(recorded=bool(getattr(clip, "has_recorded_prompts", False)))
    seq.info.prompts = "recorded" if plan.recorded else "ground truth"
    target_of = plan.target_of
    target_classes = plan.target_classes
    played = playback.frames
    try:
        frames: Iterator[ClipFrame] = clip.frames()
        for frame, record in zip(frames, played, strict=False):
            if frame.stamp_ns != record.stamp_ns:
                raise LiveError(
                    f"{clip.name} frame {frame.index}: the bag read differently the second time "
                    f"(stamp {frame.stamp_ns} instead of {record.stamp_ns})"
                )
            plan.prompt(frame, PromptRequest)
            shape = _frame_shape(frame)
            output = playback.outputs.get(record.stamp_ns)
            classes = dict(target_classes)
            if output is None:
                scorer.timing.dropped_frames += 1
                label = np.zeros(shape, np.uint16)
            else:
                scorer.timing.add((output.arrived - record.published) * 1000.0)
                label, node_classes = label_image_from_instances(output.message, shape)
                for target, name in node_classes.items():
                    classes.setdefault(target, name)
            if record.prompt is not None:
                # Offline, the result of a prompt frame shows the prompted masks exactly as given.
                label = np.where(record.prompt > 0, record.prompt, label).astype(np.uint16)
            plan.observe(frame, label)
            seq.add_frame(frame.index, frame.gt, label, classes, target_of)
            if on_frame is not None:
                on_frame(clip.name, frame, label)
    except BaseException as exc:
        seq.finish(complete=False, error=_describe(exc))
        raise
    if playback.frames:
        scorer.timing.wall_s += max(playback.finished - playback.frames[0].published, 0.0)
    seq.finish(complete=failure is None, error=_describe(failure) if failure else None)


def _frame_shape(frame: ClipFrame) -> tuple[int, int]:
    if frame.image is not None:
        return frame.image.shape[:2]
    if frame.gt is not None:
        return frame.gt.instances.shape
    raise LiveError(f"frame {frame.name} has neither an image nor ground truth")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__
