"""Which targets a clip hands to the tracker, frame by frame, and which object each one follows.

Two protocols, one interface (used by offline mode, the live player and live scoring alike):

- *ground truth* (DAVIS-2017 style, the default): every ground-truth object is prompted with its
  ground-truth mask on the first frame where it appears; target ids 1, 2, ... in order of
  appearance, each following the object it was made from.
- *recorded prompts*: when a bag holds what a user or a detector gave the node (label images of a
  ``~/set_initial_mask`` call on the initial-mask topic, detector boxes on the ``~/prompts``
  topic), exactly those are replayed on the frames they were made on. Boxes become masks as the
  node makes them (:mod:`vos_ros.box_prompt`, GrabCut by default); ids are the next free ones,
  as the node assigns them. Each prompted target is then matched to the ground-truth object it
  overlaps most (IoU at least ``MIN_MATCH_IOU``) on the first frame with ground truth from its
  prompt on; a target that matches nothing is scored as a false positive of its class, and an
  object no prompt matched as missed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vos_ros.evaluation.clips import ClipFrame, RecordedPrompt
from vos_ros.evaluation.confusion import DecodedLabels

MAX_TARGET_ID = 65535  # label images are uint16
MIN_MATCH_IOU = 0.3
DEFAULT_CLASS = "object"

PromptType = Callable[..., Any]


def prompt_for_new_objects(
    gt: DecodedLabels,
    new_keys: list[int],
    target_of: dict[int, int],
    target_classes: dict[int, str],
    prompt_cls: PromptType,
) -> Any:
    """Assign target ids to objects first seen on this frame; their ground truth is the prompt.

    Target ids are 1, 2, ... in order of appearance (``target_of`` and ``target_classes`` are
    updated). Offline the prompt goes to ``engine.step``; live mode sends the same label image to
    the node's ``~/set_initial_mask``.

    :returns: ``prompt_cls(label_image=uint16 (H, W), classes={id: class}, replace=False)``.
    """
    label = np.zeros(gt.instances.shape, dtype=np.uint16)
    classes: dict[int, str] = {}
    for key in sorted(new_keys):
        target = len(target_of) + 1
        if target > MAX_TARGET_ID:
            raise ValueError(f"more than {MAX_TARGET_ID} objects in one sequence")
        target_of[key] = target
        name = gt.instance_classes[key]
        target_classes[target] = name
        classes[target] = name
        label[gt.instances == key] = target
    return prompt_cls(label_image=label, classes=classes, replace=False)


class PromptPlan:
    """The protocol for one clip: call :meth:`prompt` before a frame is tracked and
    :meth:`observe` with the prediction for it; :attr:`target_of` maps ground-truth keys to the
    target ids that follow them, as the scorer needs.

    :param recorded: replay the clip's recorded prompts instead of its ground truth.
    :param box_method: how recorded boxes become masks (``grabcut`` or ``box``), as the node's
        ``box_prompt.method``.
    """

    def __init__(
        self, recorded: bool = False, box_method: str = "grabcut", grabcut_iterations: int = 5
    ) -> None:
        self.recorded = recorded
        self.box_method = box_method
        self.grabcut_iterations = grabcut_iterations
        self.target_of: dict[int, int] = {}
        self.target_classes: dict[int, str] = {}
        self._unmatched: list[int] = []  # recorded targets not matched to an object yet

    def prompt(self, frame: ClipFrame, prompt_cls: PromptType) -> Any | None:
        """The prompt to give with ``frame`` (``prompt_cls(label_image, classes, replace)``), or
        None.

        :raises ValueError: for a recorded prompt that cannot be applied (bad box, id clash).
        """
        if not self.recorded:
            if frame.gt is None:
                return None
            new = [k for k in frame.gt.instance_classes if k not in self.target_of]
            if not new:
                return None
            return prompt_for_new_objects(
                frame.gt, new, self.target_of, self.target_classes, prompt_cls
            )
        recorded = frame.recorded
        if recorded is None:
            return None
        label, classes = self._recorded_label_image(frame, recorded)
        self.target_classes.update(classes)
        self._unmatched += sorted(classes)
        return prompt_cls(label_image=label, classes=classes, replace=False)

    def observe(self, frame: ClipFrame, predicted: np.ndarray) -> None:
        """Match recorded targets that still follow no object, on the first frame with ground
        truth since their prompt (the prediction of a prompt frame is the prompt itself)."""
        if not self._unmatched or frame.gt is None:
            return
        taken = set(self.target_of)
        for target, key in match_targets(predicted, frame.gt, self._unmatched, taken).items():
            self.target_of[key] = target
        self._unmatched = []

    def _recorded_label_image(
        self, frame: ClipFrame, recorded: RecordedPrompt
    ) -> tuple[np.ndarray, dict[int, str]]:
        from vos_ros.box_prompt import boxes_to_label_image

        if frame.image is None:
            raise ValueError(f"frame {frame.name}: recorded prompts need the frame's image")
        shape = frame.image.shape[:2]
        label = np.zeros(shape, np.uint16)
        classes: dict[int, str] = {}
        used = set(self.target_classes)
        if recorded.label_image is not None:
            if recorded.label_image.shape != shape:
                raise ValueError(
                    f"frame {frame.name}: recorded initial mask is "
                    f"{recorded.label_image.shape[1]}x{recorded.label_image.shape[0]}, the frame "
                    f"{shape[1]}x{shape[0]}"
                )
            ids = [int(i) for i in np.unique(recorded.label_image) if i > 0]
            clash = sorted(set(ids) & used)
            if clash:
                raise ValueError(
                    f"frame {frame.name}: recorded initial mask gives ids {clash} again; "
                    "replaying a re-annotation is not supported"
                )
            label[:] = recorded.label_image
            for i in ids:
                classes[i] = recorded.classes.get(i, DEFAULT_CLASS)
        if recorded.boxes:
            first = max(used | set(classes), default=0) + 1
            ids = list(range(first, first + len(recorded.boxes)))
            if ids[-1] > MAX_TARGET_ID:
                raise ValueError(f"more than {MAX_TARGET_ID} targets in one sequence")
            boxes = boxes_to_label_image(
                frame.image, recorded.boxes, ids, self.box_method, self.grabcut_iterations
            )
            label = np.where(boxes > 0, boxes, label).astype(np.uint16)
            for i, name in zip(ids, recorded.box_classes, strict=True):
                classes[i] = name or DEFAULT_CLASS
        present = {int(i) for i in np.unique(label) if i > 0}
        return label, {i: c for i, c in classes.items() if i in present}


def match_targets(
    predicted: np.ndarray, gt: DecodedLabels, targets: list[int], taken: set[int]
) -> dict[int, int]:
    """Greedy one-to-one matching of ``targets`` to ground-truth objects by IoU.

    :param predicted: ``(H, W)`` predicted label image (pixel = target id).
    :param taken: ground-truth keys already followed by a target.
    :returns: target id -> ground-truth key, for pairs with IoU >= ``MIN_MATCH_IOU``.
    """
    pairs: list[tuple[float, int, int]] = []
    for target in targets:
        mask = (predicted == target) & ~gt.ignore
        area = int(mask.sum())
        if area == 0:
            continue
        for key in gt.instance_classes:
            if key in taken:
                continue
            obj = gt.instances == key
            inter = int(np.logical_and(mask, obj).sum())
            if inter:
                pairs.append((inter / float(area + int(obj.sum()) - inter), target, key))
    matches: dict[int, int] = {}
    used: set[int] = set()
    for iou, target, key in sorted(pairs, reverse=True):
        if iou < MIN_MATCH_IOU or target in matches or key in used:
            continue
        matches[target] = key
        used.add(key)
    return matches
