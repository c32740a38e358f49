"""k-fold cross-validation over the training sequences: an honest estimate on unseen video.

Scores on the validation set overstate a model once settings or checkpoints are chosen by them.
Here every fold's held-out sequences are scored by a network trained on the other folds only
(``model="network"``: train, export, evaluate), or by the training-free fallback
(``model="flow"``: nothing to train), with the project's evaluator. Each fold keeps its run
folder, so a stopped run resumes where it was (training resumes from its ``last.pt``; a fold
with a report is not run again).

Layout of ``out``::

    folds.json                 the split (fixed by the sequence names and the seed)
    fold<k>/run/               training run (network only)
    fold<k>/model/             exported model folder (network only)
    fold<k>/heldout.json       the evaluator's report on the held-out sequences
    cache/                     the resized training frames of each fold (network only)
    crossval.json              per-fold J&F, J, F and their mean and spread

Folds are independent: processes given disjoint ``only_folds`` can train them side by side
into the same folder (one core each), and a last run without it writes the summary. A folder's
fold networks can be scored again with other engine settings (``models_from``), without
training them again.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.model.data import list_sequences

MODELS = ("network", "flow")
SCORES = ("J&F-Mean", "J-Mean", "F-Mean")


def fold_split(names: list[str], folds: int, seed: int = 0) -> list[list[str]]:
    """``names`` in ``folds`` disjoint folds of (nearly) equal size, by a seeded shuffle.

    :raises ValueError: unless 2 <= folds <= len(names).
    """
    if not 2 <= folds <= len(names):
        raise ValueError(f"folds must be 2..{len(names)} for {len(names)} sequences, got {folds}")
    order = np.random.default_rng(seed).permutation(sorted(names))
    return [sorted(str(n) for n in order[k::folds]) for k in range(folds)]


def summarize_folds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (population standard deviation, min, max) of each score over the folds."""
    out: dict[str, Any] = {}
    for score in SCORES:
        values = [float(row[score]) for row in rows]
        out[score] = {
            "mean": statistics.fmean(values),
            "std": statistics.pstdev(values),
            "min": min(values),
            "max": max(values),
        }
    return out


def _heldout_scores(report_path: Path) -> dict[str, float]:
    global_row = json.loads(report_path.read_text())["davis"]["global"]
    return {score: float(global_row[score]) for score in SCORES}


def _train_fold(
    data: Path, train_names: list[str], run_dir: Path, model_dir: Path, train: dict[str, Any]
) -> None:
    from vos_ros.model.export import export_model
    from vos_ros.model.train import train as train_network
    from vos_ros.model.train_config import TrainConfig

    if (model_dir / "model.yaml").is_file():
        return
    cfg = TrainConfig(data=str(data), out=str(run_dir), sequences=train_names, **train)
    train_network(cfg, resume="auto", progress=False)
    export_model(run_dir / "last.pt", model_dir)  # writes model.yaml last: complete when present


def run_crossval(
    data: str | Path,
    out: str | Path,
    folds: int = 5,
    model: str = "network",
    seed: int = 0,
    train: dict[str, Any] | None = None,
    engine_settings: dict[str, Any] | None = None,
    threads: int = 1,
    log: Callable[[str], None] = print,
    only_folds: list[int] | None = None,
    models_from: str | Path | None = None,
) -> dict[str, Any] | None:
    """Run (or resume) the cross-validation; returns what it writes to ``out/crossval.json``,
    or None when ``only_folds`` left folds without a report (no summary yet).

    :param train: :class:`~vos_ros.model.train_config.TrainConfig` fields for every fold's run
        (``steps``, ``batch``, ...); ignored for ``model="flow"``.
    :param engine_settings: extra :class:`~vos_ros.engine.EngineConfig` fields for scoring.
    :param only_folds: train and score these folds only (others are left as they are).
    :param models_from: a cross-validation folder of the same split whose fold networks are
        scored here instead of training new ones (``model="network"`` only).
    """
    from vos_ros.evaluation import EvaluationOptions, evaluate

    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    data, out = Path(data), Path(out)
    split = fold_split(list_sequences(data), folds, seed)
    chosen = _check_folds(only_folds, folds)
    source = _check_models_from(models_from, model, split, out, chosen)
    out.mkdir(parents=True, exist_ok=True)
    split_file = out / "folds.json"
    if split_file.is_file() and json.loads(split_file.read_text()) != split:
        raise ValueError(f"{split_file} holds another split: use a new --out for new folds")
    split_file.write_text(json.dumps(split, indent=1))

    rows = []
    for k, held in enumerate(split):
        fold_dir = out / f"fold{k}"
        report = fold_dir / "heldout.json"
        if k not in chosen:
            if report.is_file():
                rows.append({"fold": k, "sequences": held, **_heldout_scores(report)})
            continue
        if not report.is_file():
            model_name = model
            if model == "network" and source is not None:
                model_name = str(source / f"fold{k}" / "model")
            elif model == "network":
                rest = [name for j, fold in enumerate(split) if j != k for name in fold]
                log(f"fold {k}: training on {len(rest)} sequences")
                fold_train = {"cache_dir": str(out / "cache"), **(train or {})}
                _train_fold(data, rest, fold_dir / "run", fold_dir / "model", fold_train)
                model_name = str(fold_dir / "model")
            log(f"fold {k}: scoring {len(held)} held-out sequences with {model}")
            outcome = evaluate(
                EvaluationOptions(
                    json_path=report.with_suffix(".tmp.json"),
                    davis=data,
                    sequences=held,
                    model=model_name,
                    threads=threads,
                    engine_settings=dict(engine_settings or {}),
                    progress=False,
                )
            )
            if outcome.errors:
                raise RuntimeError(f"fold {k}: {'; '.join(outcome.errors)}")
            report.with_suffix(".tmp.json").replace(report)
        rows.append({"fold": k, "sequences": held, **_heldout_scores(report)})
        log(f"fold {k}: J&F {rows[-1]['J&F-Mean']:.3f}")

    if len(rows) < folds:
        missing = sorted(set(range(folds)) - {row["fold"] for row in rows})
        log(f"folds without a report yet: {missing}; no summary")
        return None
    result = {
        "data": str(data),
        "model": model,
        "folds": folds,
        "seed": seed,
        "train": train or {},
        "engine_settings": engine_settings or {},
        "models_from": str(source) if source is not None else None,
        "per_fold": rows,
        "summary": summarize_folds(rows),
    }
    (out / "crossval.json").write_text(json.dumps(result, indent=1))
    return result


def _check_folds(only_folds: list[int] | None, folds: int) -> set[int]:
    """The folds to run: all, or ``only_folds`` (each in ``0..folds-1``)."""
    if only_folds is None:
        return set(range(folds))
    bad = [k for k in only_folds if not 0 <= k < folds]
    if bad or not only_folds:
        raise ValueError(f"folds to run must be in 0..{folds - 1}, got {only_folds}")
    return set(only_folds)


def _check_models_from(
    models_from: str | Path | None,
    model: str,
    split: list[list[str]],
    out: Path,
    chosen: set[int],
) -> Path | None:
    """The folder whose fold networks are scored, checked: a network cross-validation of the
    same split with a model in every ``chosen`` fold, not ``out`` itself."""
    if models_from is None:
        return None
    source = Path(models_from)
    if model != "network":
        raise ValueError("models from another cross-validation need --model network")
    if source.resolve() == out.resolve():
        raise ValueError(f"{source} is the output folder itself")
    split_file = source / "folds.json"
    if not split_file.is_file() or json.loads(split_file.read_text()) != split:
        raise ValueError(f"{source} is not a cross-validation of the same split ({split_file})")
    missing = [k for k in sorted(chosen) if not (source / f"fold{k}/model/model.yaml").is_file()]
    if missing:
        raise ValueError(f"{source} has no trained model for folds {missing}")
    return source


def format_crossval(result: dict[str, Any]) -> str:
    """A Markdown table: one row per fold, then mean ± std."""
    lines = ["| fold | sequences | J&F | J | F |", "|---|---|---|---|---|"]
    for row in result["per_fold"]:
        scores = " | ".join(f"{row[s]:.3f}" for s in SCORES)
        lines.append(f"| {row['fold']} | {len(row['sequences'])} | {scores} |")
    summary = result["summary"]
    mean = " | ".join(f"{summary[s]['mean']:.3f} ± {summary[s]['std']:.3f}" for s in SCORES)
    lines.append(f"| mean ± std | | {mean} |")
    return "\n".join(lines)
