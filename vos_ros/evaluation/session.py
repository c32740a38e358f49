"""One evaluation run end to end, as a library call (the CLI ``vos-ros evaluate`` wraps it).

    from vos_ros.evaluation import EvaluationOptions, evaluate
    outcome = evaluate(EvaluationOptions(json_path=Path("out.json"), davis=Path("data/vos")))
    print(outcome.report["davis"]["global"]["J&F-Mean"])

Inputs are read as clips (DAVIS sequences or bags), scored one after another into one
:class:`~vos_ros.evaluation.scoring.DatasetScorer`, and the report is written at the end, also
after Ctrl-C or a malformed clip (then it is marked partial and lists the errors).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vos_ros.engine.model_paths import DEFAULT_MODEL
from vos_ros.evaluation.clips import Clip, ClipFrame, LimitedClip
from vos_ros.evaluation.live import LiveError, run_node_on_clip
from vos_ros.evaluation.partials import ClipResult, merge_results, score_clip
from vos_ros.evaluation.runner import (
    Engine,
    EngineFactory,
    run_engine_on_clip,
    score_predictions_on_clip,
)
from vos_ros.evaluation.scoring import DatasetScorer


class EvaluationInputError(ValueError):
    """The inputs cannot be evaluated at all (nothing was scored)."""


@dataclass
class EvaluationOptions:
    """What to evaluate and where to write the report (see ``vos-ros evaluate --help``)."""

    json_path: Path
    davis: Path | None = None
    bag: Path | None = None
    predictions: Path | None = None
    sequences: list[str] | None = None
    classes: Path | None = None
    resolution: str | None = None
    ignore_value: int | None = None
    max_frames: int | None = None
    report_dir: Path | None = None
    overlay_video: bool = False
    progress: bool = True
    model: str = DEFAULT_MODEL
    backend: str = "auto"
    threads: int = 0
    engine_settings: dict[str, Any] = field(default_factory=dict)  # more EngineConfig fields
    image_topic: str = "/camera/image_raw"
    gt_topic: str = "/camera/ground_truth"
    class_topic: str | None = "/camera/ground_truth/classes"
    prompt_topic: str | None = "/vos_node/prompts"  # recorded boxes to replay (None: none)
    initial_mask_topic: str | None = "/vos_node/initial_mask"  # recorded masks to replay
    use_recorded_prompts: bool = True  # False: ground-truth prompts even when a bag recorded some
    gt_encoding: str = "instance"
    panoptic_divisor: int = 1000
    live: bool = False  # play the bag to a node over ROS instead of running the engine here
    rate: float = 1.0  # live: multiple of the recorded frame rate
    node_cmd: list[str] | None = None  # live: command that starts the node (default: as launched)
    namespace: str = ""  # live: namespace of the node
    use_running_node: bool = False  # live: evaluate a node that already runs (start none)
    node_timeout: float = 60.0  # live: seconds the node may take to come up
    node_log: Path | None = None  # live: the started node's output (default: next to the JSON)
    engine_factory: EngineFactory | None = None  # default: build_engine(model, backend)
    ray: str | None = None  # score one clip per Ray task: "local" or a cluster address
    workers: int | None = None  # Ray: tasks in flight (default: the cluster's CPUs / threads)
    frames_parquet: Path | None = None  # also write one row per object and frame (pyarrow)
    prompt_type: Callable[..., Any] | None = None  # default: vos_ros.engine.Prompt

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluationOptions:
        """Options from the parsed ``vos-ros evaluate`` command line."""
        sequences = (
            [s.strip() for s in args.sequences.split(",") if s.strip()]
            if getattr(args, "sequences", None)
            else None
        )
        return cls(
            json_path=args.json,
            davis=args.davis,
            bag=args.bag,
            predictions=args.predictions,
            sequences=sequences,
            classes=args.classes,
            resolution=args.resolution,
            ignore_value=args.ignore_value,
            max_frames=args.max_frames,
            report_dir=args.report_dir,
            overlay_video=args.overlay_video,
            progress=not args.no_progress,
            model=args.model,
            backend=args.backend,
            threads=args.threads,
            engine_settings=parse_engine_settings(getattr(args, "engine_set", None) or []),
            image_topic=args.image_topic,
            gt_topic=args.gt_topic,
            class_topic=args.class_topic or None,
            prompt_topic=getattr(args, "prompt_topic", None) or None,
            initial_mask_topic=getattr(args, "initial_mask_topic", None) or None,
            use_recorded_prompts=not getattr(args, "ground_truth_prompts", False),
            gt_encoding=args.gt_encoding,
            panoptic_divisor=args.panoptic_divisor,
            live=args.live,
            rate=args.rate,
            node_cmd=shlex.split(args.node_cmd) if args.node_cmd else None,
            namespace=args.namespace or "",
            use_running_node=args.namespace is not None and not args.node_cmd,
            node_timeout=args.node_timeout,
            ray=getattr(args, "ray", None),
            workers=getattr(args, "workers", None),
            frames_parquet=getattr(args, "frames_parquet", None),
        )


@dataclass
class EvaluationOutcome:
    """What a run produced. ``report`` is None only when nothing could be scored."""

    report: dict[str, Any] | None
    report_path: Path | None
    html_path: Path | None
    summary: str
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False


def _open_limited(open_clip: Callable[[], Clip], limit: int) -> Clip:
    return LimitedClip(open_clip(), limit)  # type: ignore[return-value]


NamedOpener = tuple[str, Callable[[], Clip]]


def parse_engine_settings(items: list[str]) -> dict[str, Any]:
    """``["name=value", ...]`` -> ``{name: value}`` for :class:`~vos_ros.engine.EngineConfig`
    fields; values are YAML scalars (``2.0``, ``false``, ``fast``). ``fallback.NAME=VALUE``
    items are gathered into the ``fallback`` field as ``(NAME, VALUE)`` pairs.

    :raises EvaluationInputError: for a malformed item or an unknown field name.
    """
    import yaml

    from vos_ros.engine import EngineConfig
    from vos_ros.engine.fallback import FallbackSettings

    known = set(EngineConfig.field_names()) - {"model", "backend", "threads", "fallback"}
    settings: dict[str, Any] = {}
    fallback: list[tuple[str, Any]] = []
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise EvaluationInputError(f"--engine-set {item!r}: expected NAME=VALUE")
        if name.startswith("fallback."):
            fallback.append((name.removeprefix("fallback."), yaml.safe_load(value)))
            continue
        if name not in known:
            raise EvaluationInputError(
                f"--engine-set {name}: not an engine setting; known: {', '.join(sorted(known))}"
                " and fallback.NAME"
            )
        settings[name] = yaml.safe_load(value)
    if fallback:
        try:
            FallbackSettings.from_overrides(fallback)
        except ValueError as exc:
            raise EvaluationInputError(f"--engine-set {exc}") from None
        settings["fallback"] = tuple(fallback)
    return settings


def reusing_engine_factory(
    model: str, backend: str, threads: int, settings: dict[str, Any] | None = None
) -> EngineFactory:
    """Build the engine once and hand out a reset copy per sequence (same state as a new one)."""
    holder: dict[str, Engine] = {}

    def factory() -> Engine:
        from vos_ros.engine import EngineConfig, build_engine

        engine = holder.get("engine")
        if engine is None:
            config = EngineConfig(model=model, backend=backend, threads=threads, **(settings or {}))
            engine = build_engine(config)
            holder["engine"] = engine
        else:
            engine.reset()  # type: ignore[attr-defined]
        return engine

    return factory


def clip_sources(opts: EvaluationOptions, need_images: bool) -> tuple[list[NamedOpener], list[str]]:
    """Deferred clip openers by clip name (so one bad bag does not stop the others; picklable,
    so that a Ray worker can open the clip itself), cut to ``max_frames``, and notes for the
    report."""
    sources, notes = _unlimited_sources(opts, need_images)
    if opts.max_frames is not None:
        sources = [(n, functools.partial(_open_limited, o, opts.max_frames)) for n, o in sources]
    return sources, notes


def _unlimited_sources(
    opts: EvaluationOptions, need_images: bool
) -> tuple[list[NamedOpener], list[str]]:
    notes: list[str] = []
    if opts.davis is not None:
        from vos_ros.evaluation.davis_folder import DavisFolder, PredictionFolder

        folder = DavisFolder(opts.davis, opts.resolution, opts.classes, opts.ignore_value)
        names = folder.select(opts.sequences)
        if opts.predictions is not None and not opts.sequences:
            predicted = set(PredictionFolder(opts.predictions).sequences())
            skipped = [n for n in names if n not in predicted]
            if skipped:
                notes.append("no predictions for: " + ", ".join(skipped))
            names = [n for n in names if n in predicted]
            if not names:
                raise EvaluationInputError(
                    f"no sequence of {opts.davis} has predictions in {opts.predictions}"
                )
        return [
            (n, functools.partial(folder.clip, n, load_images=need_images)) for n in names
        ], notes

    from vos_ros.bag_io import BagClip, find_bags
    from vos_ros.evaluation.davis_folder import load_class_map

    # --classes with bags: {id: class} for every bag, or DAVIS style {bag name: {id: class}}.
    shared_map: dict[int, str] | None = None
    per_bag: dict[str, dict[int, str]] = {}
    if opts.classes is not None:
        import json

        try:
            raw = json.loads(Path(opts.classes).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationInputError(f"cannot read class map {opts.classes}: {exc}") from exc
        entries = {k: v for k, v in raw.items() if not k.startswith("_")}
        if entries and all(isinstance(v, dict) for v in entries.values()):
            per_bag = load_class_map(Path(opts.classes))
        else:
            try:
                shared_map = {int(k): str(v) for k, v in entries.items()}
            except ValueError as exc:
                raise EvaluationInputError(
                    f"{opts.classes}: expected {{id: class}} or {{bag: {{id: class}}}}"
                ) from exc
    bags = find_bags(opts.bag)
    if opts.sequences:
        bags = [b for b in bags if b.name in opts.sequences or b.stem in opts.sequences]
        if not bags:
            raise EvaluationInputError(f"none of {opts.sequences} is a bag in {opts.bag}")

    def opener(path: Path) -> Callable[[], Clip]:
        # a partial of plain values (not a closure over opts): it travels to Ray workers
        return functools.partial(
            BagClip,
            path,
            opts.image_topic,
            opts.gt_topic,
            opts.class_topic,
            opts.gt_encoding,
            per_bag.get(path.name, per_bag.get(path.stem, shared_map)),
            opts.ignore_value,
            opts.panoptic_divisor,
            need_images,
            prompt_topic=opts.prompt_topic,
            initial_mask_topic=opts.initial_mask_topic,
            use_recorded_prompts=opts.use_recorded_prompts and need_images,
        )

    names = [b.stem if b.is_file() else b.name for b in bags]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EvaluationInputError(
            f"several bags are named {', '.join(twice)}: bag names must be unique "
            "(each one is a sequence of the report)"
        )
    return [(n, opener(b)) for n, b in zip(names, bags, strict=True)], notes


def evaluate(opts: EvaluationOptions) -> EvaluationOutcome:
    """Run the evaluation ``opts`` describes, write the JSON (and plots/HTML), return the outcome.

    :raises EvaluationInputError: when nothing at all could be scored (bad folder, no topic, the
        node of a live run did not come up, ...).
    """
    from vos_ros.evaluation.overlays import OverlayRecorder
    from vos_ros.evaluation.report import build_report, default_meta, format_summary, write_json

    engine_mode = opts.predictions is None
    _check_live_options(opts)
    _check_ray_options(opts)
    _check_parquet_option(opts)
    need_images = engine_mode or opts.report_dir is not None
    try:
        sources, notes = clip_sources(opts, need_images)
    except EvaluationInputError:
        raise
    except ValueError as exc:
        raise EvaluationInputError(str(exc)) from exc

    live_meta: dict[str, Any] = {}
    ray_meta: dict[str, Any] = {}
    recorder = None
    if opts.ray is not None:
        results, interrupted = _score_on_ray(opts, sources, ray_meta)
    else:
        if opts.report_dir is not None:
            video_dir = opts.report_dir / "videos" if opts.overlay_video else None
            recorder = OverlayRecorder(video_dir=video_dir)
        results, interrupted = _score_here(opts, sources, recorder, live_meta)
    scorer, errors = merge_results(results)

    if scorer.frames_scored == 0:
        why = "; ".join(errors) if errors else ("interrupted" if interrupted else "no frames")
        raise EvaluationInputError(f"nothing was scored: {why}")

    source = str(opts.davis if opts.davis is not None else opts.bag)
    mode = "predictions" if not engine_mode else ("live" if opts.live else "offline")
    external = opts.live and (opts.use_running_node or opts.node_cmd is not None)
    meta = default_meta(
        opts.model if engine_mode and not external else None,
        opts.backend if engine_mode and not external else None,
        mode,
        source,
    )
    if opts.predictions is not None:
        meta["predictions"] = str(opts.predictions)
    if opts.engine_settings:  # --engine-set: the report says what it scored
        meta["engine_settings"] = opts.engine_settings
    if opts.live:
        meta["live"] = live_meta
    if opts.ray is not None:
        meta["ray"] = ray_meta
    meta["notes"] = notes
    report = build_report(scorer, meta, errors, interrupted)
    report_path = write_json(report, opts.json_path)
    if opts.frames_parquet is not None:
        from vos_ros.evaluation.frames_table import write_frames_parquet

        write_frames_parquet(scorer, opts.frames_parquet)
    html_path = None
    if opts.report_dir is not None:
        from vos_ros.evaluation.html import write_html_report
        from vos_ros.evaluation.plots import write_plots

        plots = write_plots(report, opts.report_dir)
        html_path = write_html_report(
            report, plots, recorder.thumbnails if recorder else {}, opts.report_dir / "report.html"
        )
    return EvaluationOutcome(
        report, report_path, html_path, format_summary(report), errors, interrupted
    )


def _score_here(
    opts: EvaluationOptions,
    sources: list[NamedOpener],
    recorder: Any,
    live_meta: dict[str, Any],
) -> tuple[list[ClipResult], bool]:
    """Score the clips one after another in this process; returns their partial results and
    whether Ctrl-C stopped the run."""
    engine_mode = opts.predictions is None
    factory = opts.engine_factory or reusing_engine_factory(
        opts.model, opts.backend, opts.threads, opts.engine_settings
    )
    predictions = None
    if not engine_mode:
        from vos_ros.evaluation.davis_folder import PredictionFolder

        predictions = PredictionFolder(opts.predictions)  # type: ignore[arg-type]

    bar = _progress_bar(opts.progress)

    def on_frame(sequence: str, frame: ClipFrame, label: Any) -> None:
        if not opts.live:  # live runs advance the bar as frames are published
            bar.update(1)
        if recorder is not None:
            recorder.on_frame(sequence, frame, label)

    def on_open(clip: Clip) -> None:
        bar.set_description(clip.name)
        bar.total = (bar.total or 0) + len(clip)
        bar.refresh()
        if recorder is not None:
            recorder.expect(clip.name, len(clip))

    results: list[ClipResult] = []
    interrupted = False
    with contextlib.ExitStack() as stack:
        player = _start_player(opts, stack, live_meta) if opts.live else None
        try:
            node_lost: list[LiveError] = []
            for name, open_clip in sources:

                def score(clip: Clip, scorer: DatasetScorer, open_clip=open_clip) -> None:
                    if player is not None:
                        try:
                            run_node_on_clip(open_clip, player, scorer, bar.update, on_frame)
                        except LiveError as exc:
                            node_lost.append(exc)
                            raise
                    elif predictions is not None:
                        score_predictions_on_clip(clip, predictions, scorer, on_frame)
                    else:
                        run_engine_on_clip(clip, factory, scorer, opts.prompt_type, on_frame)

                result = score_clip(name, open_clip, score, on_open)
                results.append(result)
                if result.interrupted:
                    interrupted = True
                    break
                if node_lost:
                    break  # the node's state is unknown now: do not feed it more bags
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            if recorder is not None:
                recorder.close()
    return results, interrupted


def _score_on_ray(
    opts: EvaluationOptions, sources: list[NamedOpener], ray_meta: dict[str, Any]
) -> tuple[list[ClipResult], bool]:
    """Score one clip per Ray task (see :mod:`vos_ros.evaluation.fleet`)."""
    from vos_ros.evaluation.fleet import EngineSpec, FleetError, RaySettings, score_on_ray

    spec = EngineSpec(opts.model, opts.backend, opts.threads, dict(opts.engine_settings))
    settings = RaySettings(address=opts.ray or "local", workers=opts.workers)
    try:
        outcome = score_on_ray(sources, spec, settings, progress=opts.progress)
    except FleetError as exc:
        raise EvaluationInputError(str(exc)) from exc
    ray_meta.update(outcome.meta)
    return outcome.results, outcome.interrupted


def _check_ray_options(opts: EvaluationOptions) -> None:
    if opts.ray is None:
        if opts.workers is not None:
            raise EvaluationInputError("--workers needs --ray")
        return
    if opts.live or opts.predictions is not None:
        raise EvaluationInputError(
            "--ray runs the engine offline on each bag; --live and --predictions run here"
        )
    if opts.overlay_video:
        raise EvaluationInputError("--overlay-video is not available with --ray")
    if opts.engine_factory is not None:
        raise EvaluationInputError("--ray builds the engine on each worker (no engine_factory)")
    if opts.workers is not None and opts.workers < 1:
        raise EvaluationInputError(f"--workers must be at least 1, got {opts.workers}")


def _check_parquet_option(opts: EvaluationOptions) -> None:
    if opts.frames_parquet is None:
        return
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise EvaluationInputError(
            f"--frames-parquet needs pyarrow ({exc}); pip install -r requirements-fleet.txt"
        ) from None


def _check_live_options(opts: EvaluationOptions) -> None:
    if not opts.live:
        return
    if opts.bag is None:
        raise EvaluationInputError(
            "live mode plays bags: write the DAVIS folder as bags first "
            "(vos-ros make-bag --davis DIR --out BAGS), then use --bag BAGS --live"
        )
    if opts.predictions is not None:
        raise EvaluationInputError("--predictions and --live exclude each other")
    if opts.engine_settings:
        raise EvaluationInputError(
            "--engine-set is for offline mode; a live node takes ROS parameters (--node-cmd)"
        )
    if not opts.rate > 0:
        raise EvaluationInputError(f"--rate must be positive, got {opts.rate}")


def _start_player(
    opts: EvaluationOptions, stack: contextlib.ExitStack, live_meta: dict[str, Any]
) -> Any:
    """Start (or connect to) the node; fills ``live_meta`` for the report's ``meta.live``."""
    from vos_ros.evaluation.live import LivePlayer, LiveSettings

    log_path = opts.node_log or opts.json_path.with_name(opts.json_path.stem + ".node.log")
    settings = LiveSettings(
        rate=opts.rate,
        namespace=opts.namespace,
        start_node=not opts.use_running_node,
        node_command=opts.node_cmd,
        model=opts.model,
        backend=opts.backend,
        threads=opts.threads,
        image_topic=opts.image_topic,
        log_path=log_path,
        startup_timeout_s=opts.node_timeout,
    )
    try:
        player = stack.enter_context(LivePlayer(settings))
    except ImportError as exc:
        raise EvaluationInputError(
            f"live mode needs rclpy and the generated vos_ros interfaces ({exc}); "
            "run scripts/setup.sh"
        ) from exc
    except LiveError as exc:
        raise EvaluationInputError(str(exc)) from exc
    live_meta.update(
        {
            "rate": opts.rate,
            "node": settings.node_path,
            "node_command": player.node.command if player.node is not None else None,
            "node_log": str(player.node.log_path) if player.node is not None else None,
            "node_starts": player.node.starts if player.node is not None else None,
            "ros_domain_id": player.domain_id,
            "startup_s": round(player.startup_s, 3),
        }
    )
    return player


class _NoBar:
    total: int | None = 0

    def update(self, n: int = 1) -> None: ...

    def set_description(self, text: str) -> None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI)
    return tqdm(total=0, unit="frame", dynamic_ncols=True, leave=False, disable=None)
