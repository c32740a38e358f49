"""Offline evaluation spread over a Ray cluster: one task per bag (or DAVIS sequence).

    vos-ros evaluate --bag 'bags/*' --ray local --workers 2 --json out.json

Each task opens its clip on a worker, runs the engine over it and scores it into a partial
result (:func:`vos_ros.evaluation.partials.score_clip`, the function the single-process run
uses); the driver merges the partials in the clips' order
(:func:`~vos_ros.evaluation.partials.merge_results`), so the report has exactly the numbers one
process gives, plus the worker and wall time of every bag.

- The model folder goes to the workers through Ray's object store and is checked against its
  manifest there (:mod:`vos_ros.evaluation.model_package`); bags are read by path, so every
  worker must see them at the same path (shared storage).
- Each task reserves ``threads`` CPUs (``--threads``, default 1) and runs the engine with that
  many threads, so Ray never places more engines on a machine than it has cores.
- A bag that cannot be scored (corrupt, a topic missing) comes back as an error row naming it;
  a worker process that dies is restarted by Ray and its task run again (``max_retries``).
- Ctrl-C cancels the tasks in flight and keeps what was scored.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vos_ros.engine.model_paths import DEFAULT_MODEL
from vos_ros.evaluation.clips import Clip
from vos_ros.evaluation.partials import ClipResult, failed_result, score_clip

NamedOpener = tuple[str, Callable[[], Clip]]


class FleetError(ValueError):
    """Ray is missing, the cluster cannot be reached, or the settings cannot work."""


@dataclass(frozen=True)
class EngineSpec:
    """What each worker builds (see ``EngineConfig``); ``threads`` 0 means 1 per worker."""

    model: str = DEFAULT_MODEL
    backend: str = "auto"
    threads: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class RaySettings:
    """Where to run and how wide.

    :ivar address: ``local`` (start Ray on this machine), ``auto`` (the cluster this machine
        belongs to), ``HOST:PORT`` of a head node, or ``ray://HOST:PORT`` (Ray client).
    :ivar workers: tasks in flight at once; None = the cluster's CPUs / threads per worker.
    :ivar max_retries: how often Ray runs a task again whose worker process died.
    """

    address: str = "local"
    workers: int | None = None
    max_retries: int = 3
    connect_timeout_s: float = 5.0


@dataclass
class FleetOutcome:
    """Partial results in the clips' order (clips not scored after Ctrl-C are absent)."""

    results: list[ClipResult]
    interrupted: bool
    meta: dict[str, Any]


TaskFn = Callable[[str, Callable[[], Clip], EngineSpec, Any], ClipResult]


def score_on_ray(
    sources: Sequence[NamedOpener],
    spec: EngineSpec,
    settings: RaySettings,
    progress: bool = True,
    task: TaskFn | None = None,
) -> FleetOutcome:
    """Score every clip in its own Ray task and collect the partial results.

    :param sources: (clip name, picklable opener) per clip, in report order.
    :param task: the remote function body (default :func:`score_clip_task`); tests wrap it to
        inject faults.
    :raises FleetError: Ray is not installed, the address is wrong or unreachable, the cluster
        has too few CPUs, or the model folder does not match its manifest.
    """
    if settings.workers is not None and settings.workers < 1:
        raise FleetError(f"--workers must be at least 1, got {settings.workers}")
    if not sources:
        raise FleetError("no bag or sequence to score")
    ray = _import_ray()
    check_address(settings.address, settings.connect_timeout_s)
    start = time.perf_counter()
    started_here = connect(ray, settings.address)
    connect_s = time.perf_counter() - start
    try:
        threads = spec.threads or 1
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < threads:
            raise FleetError(
                f"the Ray cluster has {cpus} CPU(s); each worker needs {threads} (--threads)"
            )
        workers = settings.workers or max(1, cpus // threads)
        spec = EngineSpec(spec.model, spec.backend, threads, dict(spec.settings))
        model_ref = ray.put(_pack(spec.model)) if spec.model != "flow" else None
        remote = ray.remote(task or score_clip_task).options(
            num_cpus=threads, max_retries=settings.max_retries, retry_exceptions=False
        )
        run_start = time.perf_counter()
        results, interrupted = _drive(ray, remote, sources, spec, model_ref, workers, progress)
        meta = {
            "address": settings.address,
            "connected_here": started_here,
            "ray_version": ray.__version__,
            "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
            "cluster_cpus": cpus,
            "workers": workers,
            "threads_per_worker": threads,
            "max_retries": settings.max_retries,
            "connect_s": round(connect_s, 3),
            "run_s": round(time.perf_counter() - run_start, 3),
            "not_scored": [name for (name, _), r in zip(sources, results, strict=True) if not r],
        }
        return FleetOutcome([r for r in results if r is not None], interrupted, meta)
    finally:
        if started_here:
            ray.shutdown()


def _drive(
    ray: Any,
    remote: Any,
    sources: Sequence[NamedOpener],
    spec: EngineSpec,
    model_ref: Any,
    workers: int,
    progress: bool,
) -> tuple[list[ClipResult | None], bool]:
    """Keep ``workers`` tasks in flight until every clip is back (or Ctrl-C)."""
    from tqdm import tqdm

    results: list[ClipResult | None] = [None] * len(sources)
    pending: dict[Any, int] = {}
    queue = iter(range(len(sources)))
    failed = 0
    bar = tqdm(
        total=len(sources), unit="bag", dynamic_ncols=True, disable=None if progress else True
    )
    try:
        while True:
            while len(pending) < workers:
                index = next(queue, None)
                if index is None:
                    break
                name, opener = sources[index]
                pending[remote.remote(name, opener, spec, model_ref)] = index
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                name = sources[index][0]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # a bug, or the worker died every try
                    result = failed_result(name, f"Ray task failed: {_first_line(exc)}")
                results[index] = result
                failed += result.error is not None
                bar.set_postfix(failed=failed, refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        for ref in pending:
            with contextlib.suppress(Exception):  # already finished or gone: nothing to stop
                ray.cancel(ref, force=True)
        return results, True
    finally:
        bar.close()
    return results, False


# --- worker side ---------------------------------------------------------------------------------

_factories: dict[tuple[str, str, int, str], Any] = {}  # one engine per process and setting
_models: dict[str, str] = {}  # model package digest -> unpacked folder on this machine


def score_clip_task(
    name: str, open_clip: Callable[[], Clip], spec: EngineSpec, model: Any
) -> ClipResult:
    """The Ray task: run the engine over one clip and score it (on a worker).

    :param model: a :class:`~vos_ros.evaluation.model_package.ModelPackage` (resolved from the
        object store by Ray), or None for the flow fallback.
    """
    import cv2

    from vos_ros.evaluation.runner import run_engine_on_clip
    from vos_ros.evaluation.session import reusing_engine_factory

    cv2.setNumThreads(spec.threads)  # OpenCV's pool too stays within the task's CPUs
    model_path = spec.model
    if model is not None:
        from vos_ros.evaluation.model_package import unpack_model

        if model.digest not in _models:
            _models[model.digest] = str(unpack_model(model))
        model_path = _models[model.digest]
    key = (model_path, spec.backend, spec.threads, repr(sorted(spec.settings.items())))
    if key not in _factories:
        _factories[key] = reusing_engine_factory(
            model_path, spec.backend, spec.threads, spec.settings
        )
    factory = _factories[key]
    result = score_clip(
        name, open_clip, lambda clip, scorer: run_engine_on_clip(clip, factory, scorer)
    )
    result.worker = f"{socket.gethostname()}:{os.getpid()}"
    return result


# --- connecting ----------------------------------------------------------------------------------


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Reject a malformed address, and a head node that does not answer, before ``ray.init``
    (which would otherwise retry for minutes).

    :raises FleetError: naming the address and what is wrong.
    """
    if address in ("local", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FleetError(
            f"--ray {address!r}: expected 'local', 'auto', HOST:PORT (a head node's GCS, port "
            "6379 by default) or ray://HOST:PORT (Ray client, port 10001)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise FleetError(
            f"cannot reach the Ray cluster at {address}: {exc} (is `ray start --head` running "
            "there, and is the port open from here?)"
        ) from None


def connect(ray: Any, address: str) -> bool:
    """Join the cluster (or start a local one); returns whether this call connected (then the
    caller disconnects, which also stops a local cluster). A Ray connection this process
    already has is used as it is."""
    import logging

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address == "local":
            # address="local": a new Ray on this machine even where RAY_ADDRESS names a cluster
            ray.init(
                address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **kwargs
            )
        else:
            ray.init(address=address, **kwargs)
    except Exception as exc:  # ConnectionError, RuntimeError, ...: all mean "no cluster"
        raise FleetError(
            f"cannot connect to Ray at {address}: {_first_line(exc)} (a cluster with token "
            "authentication, which `ray start` of recent Ray versions turns on, also needs "
            "RAY_AUTH_MODE=token here and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        ) from exc
    return True


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise FleetError(
            f"--ray needs the ray package ({exc}); install it with scripts/setup.sh or "
            "pip install -r requirements-fleet.txt"
        ) from None
    return ray


def _pack(model: str) -> Any:
    from vos_ros.engine.config import EngineError
    from vos_ros.evaluation.model_package import pack_model

    try:
        return pack_model(model)
    except EngineError as exc:
        raise FleetError(str(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
