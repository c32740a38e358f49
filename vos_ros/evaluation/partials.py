"""Score one clip into a partial result; merge partial results into one scorer.

Every engine run goes through these two functions, in one process
(:func:`vos_ros.evaluation.session.evaluate`) and spread over a Ray cluster
(:mod:`vos_ros.evaluation.fleet`), so both give the same report by construction: each clip is
scored alone into its own :class:`~vos_ros.evaluation.scoring.DatasetScorer` (confusion counts
per class, J and F per object and frame, timings), and the merge adds the confusion counts by
class name and appends sequences, objects and frame timings in the clips' order, not in the
order the clips finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vos_ros.evaluation.clips import Clip
from vos_ros.evaluation.scoring import DatasetScorer

ScoreFn = Callable[[Clip, DatasetScorer], None]


@dataclass
class ClipResult:
    """What scoring one clip (a bag, a DAVIS sequence) left: picklable, so it can come back from
    a Ray worker.

    :ivar scorer: the clip's own scores (its frames up to an error are kept).
    :ivar error: why the clip stopped early (names the clip), or None.
    :ivar interrupted: Ctrl-C stopped it.
    :ivar seconds: wall time of opening, running and scoring the clip.
    :ivar cpu_seconds: CPU time of the process meanwhile (the clip's cost on a core of its own).
    :ivar worker: ``host:pid`` of the Ray worker, None in the driver's process.
    """

    name: str
    scorer: DatasetScorer
    error: str | None = None
    interrupted: bool = False
    seconds: float = 0.0
    worker: str | None = None
    cpu_seconds: float = 0.0


def failed_result(name: str, error: str, seconds: float = 0.0) -> ClipResult:
    """A clip that could not be scored at all: one empty sequence that carries the error, so
    the report still has a row for it."""
    error = _named(name, error)
    scorer = DatasetScorer()
    scorer.sequence(name).finish(complete=False, error=error)
    return ClipResult(name, scorer, error=error, seconds=seconds)


def score_clip(
    name: str,
    open_clip: Callable[[], Clip],
    score: ScoreFn,
    on_open: Callable[[Clip], None] | None = None,
) -> ClipResult:
    """Open one clip and score it into a fresh scorer.

    Malformed input (``ValueError``: a corrupt bag, a missing topic, a bad frame) is recorded in
    the result instead of raised, so the other clips still score; Ctrl-C is recorded as
    ``interrupted`` and the caller stops.

    :param score: runs the clip into the scorer, e.g. through
        :func:`~vos_ros.evaluation.runner.run_engine_on_clip`.
    :param on_open: called with the opened clip before scoring (progress bars, overlays).
    """
    start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        clip = open_clip()
    except ValueError as exc:
        return failed_result(name, str(exc) or type(exc).__name__, time.perf_counter() - start)
    scorer = DatasetScorer()
    result = ClipResult(name, scorer)
    try:
        if on_open is not None:
            on_open(clip)
        score(clip, scorer)
    except ValueError as exc:
        result.error = _named(name, str(exc) or type(exc).__name__)
        if not scorer.sequences:  # failed before its first frame: keep a row for it
            scorer.sequence(name).finish(complete=False, error=result.error)
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = time.process_time() - cpu_start
    return result


def merge_results(results: Iterable[ClipResult]) -> tuple[DatasetScorer, list[str]]:
    """One scorer holding every clip's scores, in the order given, and the clips' errors."""
    merged = DatasetScorer()
    errors: list[str] = []
    for result in results:
        for seq in result.scorer.sequences:
            seq.info.seconds = round(result.seconds, 3)
            seq.info.worker = result.worker
        merged.merge(result.scorer)
        if result.error is not None:
            errors.append(result.error)
    return merged, errors


def _named(name: str, message: str) -> str:
    return message if name in message else f"{name}: {message}"
