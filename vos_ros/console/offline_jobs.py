"""Offline jobs of the console: one upload each, in its own temporary folder.

Upload -> first frame -> the user's targets -> the engine over the whole clip on a worker thread
(progress readable at any time) -> outputs: overlay video (WebM, VP8: browsers play it), masks
(one PNG label image per frame, zipped), box-centre trajectory plot, and the JSON report of the
evaluator (DAVIS J&F, per-class IoU, ... when the bag has ground truth; timing and trajectories
otherwise) plus its HTML report. The folder is removed with the job, with the oldest job when
there are too many, and when the server stops.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vos_ros.click_prompt import ClickPrompt
from vos_ros.console.offline_clips import ClipInfo, PromptedClip, first_frame, open_upload
from vos_ros.console.selections import SelectionError
from vos_ros.console.uploads import STORED_NAMES
from vos_ros.engine.model_paths import DEFAULT_MODEL

MAX_JOBS = 4
# name served to the page -> file in the job folder
OUTPUT_FILES = {
    "overlay.webm": "overlay.webm",
    "trajectory.png": "trajectory.png",
    "report.json": "report.json",
    "report.html": "report/report.html",
    "masks.zip": "masks.zip",
}
VIDEO_MAX_WIDTH = 854


class JobError(ValueError):
    """A request about a job that cannot be served (unknown job, wrong state)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One upload and what became of it."""

    job_id: str
    folder: Path
    kind: str
    info: ClipInfo
    state: str = "ready"  # ready -> running -> done | failed
    done_frames: int = 0
    total_frames: int = 0
    message: str = ""
    targets: dict[int, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)

    @property
    def upload(self) -> Path:
        return self.folder / STORED_NAMES[self.kind]

    def as_json(self) -> dict[str, Any]:
        outputs = [n for n, rel in OUTPUT_FILES.items() if (self.folder / rel).is_file()]
        return {
            "id": self.job_id,
            "state": self.state,
            "kind": self.kind,
            "frames": self.info.frames,
            "width": self.info.width,
            "height": self.info.height,
            "fps": self.info.fps,
            "has_ground_truth": self.info.has_ground_truth,
            "notes": self.info.notes,
            "progress": {"done": self.done_frames, "total": self.total_frames},
            "message": self.message,
            "targets": {str(k): v for k, v in self.targets.items()},
            "summary": self.summary,
            "outputs": outputs if self.state == "done" else [],
        }


class JobStore:
    """The jobs of this server (at most :data:`MAX_JOBS`; one runs at a time)."""

    def __init__(self, max_frames: int, model: str = DEFAULT_MODEL) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="vos_console_"))
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._running = threading.Lock()  # the engine runs one job at a time (2 cores)
        self.max_frames = max_frames
        self.model = model
        # (job id, engine stepped on its first frame) for the prompt encoder of a sam2 model
        self._prompt_engine: tuple[str, Any] | None = None

    def new_folder(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="job_", dir=self._root))

    def add(self, folder: Path, upload: Path) -> Job:
        """Register an upload (already stored in ``folder``) once it opens as a clip.

        :raises JobError: 422 when the file cannot be read as what its content says it is.
        """
        kind = next(k for k, name in STORED_NAMES.items() if name == upload.name)
        try:
            clip, has_gt, notes = open_upload(upload, kind, self.max_frames)
            frame = first_frame(clip)
        except Exception as exc:  # readers raise many types for damaged files
            shutil.rmtree(folder, ignore_errors=True)
            raise JobError(f"cannot read the {kind} upload: {exc}", 422) from None
        if len(clip) >= self.max_frames:
            notes.append(f"only the first {self.max_frames} frames are used")
        height, width = frame.image.shape[:2]
        fps = float(getattr(clip, "fps", 0.0) or 0.0) or 15.0
        info = ClipInfo(kind, len(clip), width, height, fps, has_gt, notes)
        cv2.imwrite(str(folder / "first.jpg"), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        np.save(folder / "first.npy", frame.image)
        job = Job(secrets.token_hex(8), folder, kind, info, total_frames=len(clip))
        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > MAX_JOBS:
                oldest = min(
                    (j for j in self._jobs.values() if j.state != "running"),
                    key=lambda j: j.created,
                    default=None,
                )
                if oldest is None:
                    break
                self._drop(oldest.job_id)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError(f"no job {job_id!r} (finished jobs are removed after a while)", 404)
        return job

    def first_frame(self, job: Job) -> np.ndarray:
        return np.load(job.folder / "first.npy")

    def output(self, job: Job, name: str) -> Path:
        rel = OUTPUT_FILES.get(name)
        if rel is None:
            raise JobError(f"no output named {name!r}; there are {sorted(OUTPUT_FILES)}", 404)
        path = job.folder / rel
        if job.state != "done" or not path.is_file():
            raise JobError(f"{name} is not available for this job (state {job.state})", 404)
        return path

    def prompt_encoder(self, job: Job) -> Callable[[ClickPrompt], np.ndarray] | None:
        """The model's prompt encoder on the job's first frame, as ``ClickPrompt -> bool mask``;
        None when the model family has none (the caller makes the mask by GrabCut, as the node
        does for such a family). The engine is built and stepped on the first frame once per
        job (seconds for SAM 2 on a CPU) and kept until another job asks.

        The function raises :class:`~vos_ros.console.selections.SelectionError` for clicks the
        engine refuses or in which the model finds nothing.

        :raises JobError: 409 while another job runs (one engine at a time).
        :raises SelectionError: a model folder that cannot be loaded.
        """
        from vos_ros.engine import EngineConfig, InputError, build_engine
        from vos_ros.engine.family import model_family

        try:
            if model_family(self.model) != "sam2":
                return None
            with self._engine_free():
                if self._prompt_engine is None or self._prompt_engine[0] != job.job_id:
                    self._prompt_engine = None  # the other job's engine goes first (memory)
                    engine = build_engine(EngineConfig(model=self.model))
                    engine.step(self.first_frame(job))
                    self._prompt_engine = (job.job_id, engine)
                engine = self._prompt_engine[1]
        except (JobError, SelectionError):
            raise
        except Exception as exc:  # a broken model folder: the page says why
            raise SelectionError(f"the model cannot segment boxes or clicks: {exc}") from None

        def segment(prompt: ClickPrompt) -> np.ndarray:
            with self._engine_free():
                try:
                    return engine.preview_clicks(self.first_frame(job), {1: prompt})[1]
                except InputError as exc:
                    raise SelectionError(str(exc)) from None

        return segment

    @contextlib.contextmanager
    def _engine_free(self) -> Iterator[None]:
        """Hold the engine lock, or refuse at once while a job runs (minutes, not a wait)."""
        if not self._running.acquire(blocking=False):
            raise JobError("the engine is busy with another job; try again when it has finished")
        try:
            yield
        finally:
            self._running.release()

    def start(self, job: Job, masks: list[np.ndarray], classes: list[str]) -> None:
        """Run the engine over the job's clip on a worker thread."""
        from vos_ros.console.selections import label_image

        with self._lock:
            if job.state == "running":
                raise JobError("this job is already running")
            labels = label_image(masks, (job.info.height, job.info.width))
            job.state, job.done_frames, job.message, job.summary = "running", 0, "", {}
            job.targets = {i + 1: c or "object" for i, c in enumerate(classes)}
        thread = threading.Thread(
            target=self._run, args=(job, labels), name=f"offline_{job.job_id}", daemon=True
        )
        thread.start()

    def remove(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobError(f"no job {job_id!r}", 404)
            if job.state == "running":
                raise JobError("the job is running; wait for it to finish")
            self._drop(job_id)

    def close(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._prompt_engine = None
        shutil.rmtree(self._root, ignore_errors=True)

    def _drop(self, job_id: str) -> None:
        if self._prompt_engine is not None and self._prompt_engine[0] == job_id:
            self._prompt_engine = None
        job = self._jobs.pop(job_id)
        shutil.rmtree(job.folder, ignore_errors=True)

    # -- the run ----------------------------------------------------------------------------------

    def _run(self, job: Job, labels: np.ndarray) -> None:
        with self._running:
            try:
                job.summary = run_offline(job, labels, self.model)
                job.state = "done"
                job.message = "done"
            except Exception as exc:  # the page shows why; the server keeps running
                job.state = "failed"
                job.message = f"failed: {exc}"


def run_offline(job: Job, labels: np.ndarray, model: str) -> dict[str, Any]:
    """Engine over the clip with the user's first-frame targets; writes every output of the job.

    Reuses the evaluator: :func:`~vos_ros.evaluation.runner.run_engine_on_clip` with its prompt
    plan and scorer, :func:`~vos_ros.evaluation.report.build_report`, its plots and HTML report,
    and :func:`~vos_ros.evaluation.overlays.overlay` for the video.
    """
    from vos_ros.engine import EngineConfig, build_engine
    from vos_ros.evaluation.html import write_html_report
    from vos_ros.evaluation.overlays import OverlayRecorder
    from vos_ros.evaluation.plots import plot_trajectories, write_plots
    from vos_ros.evaluation.report import build_report, default_meta, write_json
    from vos_ros.evaluation.runner import run_engine_on_clip
    from vos_ros.evaluation.scoring import DatasetScorer

    clip, _has_gt, _notes = open_upload(job.upload, job.kind, job.total_frames)
    prompted = PromptedClip(clip, labels, dict(job.targets))
    scorer = DatasetScorer()
    outputs = OutputWriter(job.folder, job.info.fps)
    thumbnails = OverlayRecorder()
    thumbnails.expect(clip.name, len(clip))

    def on_frame(sequence: str, frame, label: np.ndarray) -> None:
        outputs.add(frame.index, frame.image, label)
        thumbnails.on_frame(sequence, frame, label)
        job.done_frames = frame.index + 1

    try:
        run_engine_on_clip(
            prompted, lambda: build_engine(EngineConfig(model=model)), scorer, on_frame=on_frame
        )
    finally:
        outputs.close()
    meta = default_meta(model, "auto", "console offline", f"uploaded {job.kind}")
    report = build_report(scorer, meta)
    report["console"] = {
        "targets": {str(k): v for k, v in job.targets.items()},
        "target_trajectories": outputs.trajectories_json(),
    }
    write_json(report, job.folder / "report.json")
    plots = write_plots(report, job.folder / "report")
    write_html_report(report, plots, thumbnails.thumbnails, job.folder / "report" / "report.html")
    # with ground truth: the evaluator's plot (prediction against ground truth per object);
    # without: every target's own track
    plot_source = report if report["trajectories"] else outputs.trajectory_report(clip.name)
    plot_trajectories(plot_source, clip.name, job.folder / "trajectory.png")
    outputs.zip_masks(job.folder / "masks.zip")
    davis = report["davis"]["global"]
    return {
        "frames": report["timing"]["frames"],
        "fps": report["timing"]["fps"],
        "J&F-Mean": davis.get("J&F-Mean") if report["trajectories"] else None,
        "mean_class_iou": report.get("mean_class_iou"),
    }


class OutputWriter:
    """Per frame: the label image as PNG, the overlay into the WebM video, box centres."""

    def __init__(self, folder: Path, fps: float) -> None:
        self.mask_dir = folder / "masks"
        self.mask_dir.mkdir(exist_ok=True)
        self.video_path = folder / "overlay.webm"
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._tracks: dict[int, dict[int, tuple[float, float]]] = {}
        self._frames: list[int] = []

    def add(self, index: int, image: np.ndarray, label: np.ndarray) -> None:
        from vos_ros.evaluation.overlays import overlay
        from vos_ros.evaluation.scoring import box_centre

        png = label.astype(np.uint8) if int(label.max(initial=0)) < 256 else label
        cv2.imwrite(str(self.mask_dir / f"{index:05d}.png"), png)
        drawn = overlay(image, label)
        height, width = drawn.shape[:2]
        if width > VIDEO_MAX_WIDTH:
            size = (VIDEO_MAX_WIDTH, round(height * VIDEO_MAX_WIDTH / width) // 2 * 2)
            drawn = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA)
        if self._writer is None:
            self._writer = cv2.VideoWriter(
                str(self.video_path),
                cv2.VideoWriter_fourcc(*"VP80"),
                self.fps,
                (drawn.shape[1], drawn.shape[0]),
            )
            if not self._writer.isOpened():
                raise ValueError("this OpenCV cannot write WebM (VP8) video")
        self._writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        self._frames.append(index)
        for target_id in (int(v) for v in np.unique(label) if v > 0):
            centre = box_centre(label == target_id)
            if centre is not None:
                self._tracks.setdefault(target_id, {})[index] = centre

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def trajectories_json(self) -> dict[str, dict[str, list]]:
        return {
            str(tid): {"frames": sorted(track), "centre": [list(track[i]) for i in sorted(track)]}
            for tid, track in sorted(self._tracks.items())
        }

    def trajectory_report(self, sequence: str) -> dict[str, Any]:
        """The targets' tracks in the report's trajectory layout (no ground truth), for
        :func:`vos_ros.evaluation.plots.plot_trajectories`."""
        frames = self._frames
        return {
            "trajectories": {
                f"{sequence}_target {tid}": {
                    "frames": frames,
                    "gt": [None] * len(frames),
                    "pred": [list(track[i]) if i in track else None for i in frames],
                }
                for tid, track in sorted(self._tracks.items())
            }
        }

    def zip_masks(self, path: Path) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed
            for png in sorted(self.mask_dir.glob("*.png")):
                archive.write(png, f"masks/{png.name}")
