"""The offline protocol: run the engine in-process over clips, or score existing predictions.

Semi-supervised, DAVIS-2017 style: every sequence gets a fresh engine; each ground-truth object
is handed to the engine as a prompt (its ground-truth mask) on the first frame where it appears,
through ``engine.step(frame, Prompt(...))``, and tracked from then on without further help. A bag
that recorded the prompts a node was given replays those instead
(:mod:`vos_ros.evaluation.prompt_plan`).

Timing: the latency of a frame is the wall time of its ``engine.step`` call
(``time.perf_counter``); frames per second is frames / total time spent in ``step``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from vos_ros.evaluation.clips import Clip, ClipFrame
from vos_ros.evaluation.davis_folder import PredictionFolder, classes_for
from vos_ros.evaluation.prompt_plan import PromptPlan
from vos_ros.evaluation.scoring import DatasetScorer


class Engine(Protocol):
    """The part of the engine API the runner uses (see ``vos_ros.engine``)."""

    def step(self, frame: np.ndarray, prompt: Any = None) -> Any: ...


EngineFactory = Callable[[], Engine]
PromptType = Callable[..., Any]
FrameCallback = Callable[[str, ClipFrame, np.ndarray], None]


def default_prompt_type() -> PromptType:
    """The engine's ``Prompt`` class (imported late: the engine pulls in heavy dependencies)."""
    from vos_ros.engine import Prompt

    return Prompt


def run_engine_on_clip(
    clip: Clip,
    engine_factory: EngineFactory,
    scorer: DatasetScorer,
    prompt_type: PromptType | None = None,
    on_frame: FrameCallback | None = None,
) -> None:
    """Run a fresh engine over one clip and score every frame.

    :param clip: the sequence; its frames must carry images.
    :param engine_factory: returns a new engine (one per sequence, so no state leaks between them).
    :param scorer: collects the scores; the sequence is closed (complete or not) even on errors.
    :param prompt_type: ``Prompt(label_image, classes, replace)``; the engine's own when None.
    :param on_frame: called with (sequence, frame, predicted label image) after each frame, e.g.
        to advance a progress bar or save overlays.
    :raises ValueError: on malformed input; what was scored before it stays in ``scorer``.
    """
    prompt_cls = prompt_type or default_prompt_type()
    seq = scorer.sequence(clip.name, len(clip))
    engine = engine_factory()
    plan = PromptPlan(recorded=bool(getattr(clip, "has_recorded_prompts", False)))
    seq.info.prompts = "recorded" if plan.recorded else "ground truth"
    target_of = plan.target_of  # ground-truth key -> engine target id
    target_classes = plan.target_classes
    try:
        for frame in clip.frames():
            if frame.image is None:
                raise ValueError(f"{clip.name} frame {frame.name}: the clip carries no image")
            prompt = plan.prompt(frame, prompt_cls)
            start = time.perf_counter()
            result = engine.step(frame.image, prompt)
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            scorer.timing.add(elapsed_ms, getattr(result, "timings_ms", None))
            label = np.asarray(result.label_image)
            plan.observe(frame, label)
            classes = dict(target_classes)
            for target in getattr(result, "targets", []):
                classes.setdefault(int(target.target_id), str(target.class_label))
            seq.add_frame(frame.index, frame.gt, label, classes, target_of)
            if on_frame is not None:
                on_frame(clip.name, frame, label)
    except BaseException as exc:
        seq.finish(complete=False, error=_describe(exc))
        raise
    seq.finish(complete=True)


def score_predictions_on_clip(
    clip: Clip,
    predictions: PredictionFolder,
    scorer: DatasetScorer,
    on_frame: FrameCallback | None = None,
) -> None:
    """Score prediction PNGs (pixel = ground-truth object id) of one clip.

    A missing PNG on the clip's first annotated frame is replaced by the ground truth (that frame
    is the given one and is not scored); a missing PNG anywhere else is an error.
    """
    seq = scorer.sequence(clip.name, len(clip))
    first_gt_seen = False
    try:
        for frame in clip.frames():
            pred = predictions.read(clip.name, frame.name)
            if pred is None:
                if frame.gt is None:
                    seq.add_frame(frame.index, None, np.zeros((1, 1), np.uint8), {})
                    continue
                if first_gt_seen:
                    raise ValueError(
                        f"{clip.name}: no prediction for frame {frame.name} "
                        f"(expected {predictions.path(clip.name, frame.name)})"
                    )
                pred = frame.gt.instances
            if frame.gt is not None:
                first_gt_seen = True
            classes = classes_for(frame.gt.instance_classes if frame.gt else None, pred)
            seq.add_frame(frame.index, frame.gt, pred, classes)
            if on_frame is not None:
                on_frame(clip.name, frame, pred)
    except BaseException as exc:
        seq.finish(complete=False, error=_describe(exc))
        raise
    seq.finish(complete=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__


def run_clips(
    clips: Iterable[Clip],
    scorer: DatasetScorer,
    score_clip: Callable[[Clip, DatasetScorer], None],
    keep_going: bool = True,
) -> list[str]:
    """Score clips one after another; returns the error messages of clips that failed.

    With ``keep_going``, a malformed clip is recorded and the next one is scored; Ctrl-C always
    stops at once (the caller then writes what was scored).
    """
    errors: list[str] = []
    for clip in clips:
        try:
            score_clip(clip, scorer)
        except ValueError as exc:
            errors.append(str(exc))
            if not keep_going:
                break
    return errors
