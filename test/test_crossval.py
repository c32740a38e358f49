"""k-fold cross-validation: the split, the summary, and whole runs on small synthetic folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vos_ros.cli import main
from vos_ros.model.crossval import fold_split, format_crossval, summarize_folds
from vos_ros.synthetic import SceneConfig, generate, write_davis_folder


def test_folds_are_disjoint_cover_every_sequence_and_depend_only_on_names_and_seed():
    names = [f"s{i:02d}" for i in range(30)]
    folds = fold_split(names, 5)
    assert sorted(n for fold in folds for n in fold) == sorted(names)
    assert [len(f) for f in folds] == [6] * 5
    assert fold_split(list(reversed(names)), 5) == folds  # the listing order does not matter
    assert fold_split(names, 5, seed=1) != folds
    assert [len(f) for f in fold_split(names[:7], 3)] == [3, 2, 2]
    for bad in (1, 31):
        with pytest.raises(ValueError, match=r"folds must be 2\.\.30"):
            fold_split(names, bad)


def test_summary_gives_mean_and_spread_over_folds():
    rows = [
        {"J&F-Mean": 0.5, "J-Mean": 0.6, "F-Mean": 0.4, "fold": 0, "sequences": ["a"]},
        {"J&F-Mean": 0.7, "J-Mean": 0.8, "F-Mean": 0.6, "fold": 1, "sequences": ["b", "c"]},
    ]
    summary = summarize_folds(rows)
    assert summary["J&F-Mean"]["mean"] == pytest.approx(0.6)
    assert summary["J&F-Mean"]["std"] == pytest.approx(0.1)
    assert (summary["J-Mean"]["min"], summary["J-Mean"]["max"]) == (0.6, 0.8)
    table = format_crossval({"per_fold": rows, "summary": summary})
    assert "| 1 | 2 | 0.700 | 0.800 | 0.600 |" in table
    assert "| mean ± std | | 0.600 ± 0.100 |" in table


@pytest.fixture(scope="module")
def training_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cv") / "train"
    for seed in range(4):
        scene = SceneConfig(width=128, height=96, frames=6, seed=seed, objects=1)
        write_davis_folder(root, generate(scene), f"seq{seed}")
    return root


def test_flow_crossval_scores_every_fold_and_resumes(training_folder: Path, tmp_path: Path):
    out = tmp_path / "cv-flow"
    args = ["crossval", "--data", str(training_folder), "--out", str(out), "--folds", "2",
            "--model", "flow"]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "crossval.json").read_text())
    assert [len(row["sequences"]) for row in result["per_fold"]] == [2, 2]
    assert 0.0 < result["summary"]["J&F-Mean"]["mean"] <= 1.0
    for k in range(2):
        report = json.loads((out / f"fold{k}" / "heldout.json").read_text())
        assert sorted(report["sequences"]) == sorted(result["per_fold"][k]["sequences"])

    (out / "fold0" / "heldout.json").write_text(json.dumps(report))  # a fold's report is kept
    assert main(args) == 0
    again = json.loads((out / "crossval.json").read_text())
    assert again["per_fold"][0]["J&F-Mean"] == result["per_fold"][1]["J&F-Mean"]


def test_a_changed_split_or_bad_input_is_refused(training_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "cv"
    base = ["crossval", "--data", str(training_folder), "--out", str(out), "--model", "flow"]
    assert main([*base, "--folds", "2"]) == 0
    assert main([*base, "--folds", "2", "--seed", "3"]) == 2
    assert "holds another split" in capsys.readouterr().err
    assert main([*base, "--folds", "9"]) == 2
    assert "folds must be 2..4" in capsys.readouterr().err
    assert main([*base, "--folds", "2", "--engine-set", "nonsense=1"]) == 2
    assert main([*base, "--folds", "2", "--engine-set", "fallback.nonsense=1"]) == 2
    assert "fallback.nonsense: not a fallback setting" in capsys.readouterr().err


def test_flow_crossval_takes_fallback_settings(training_folder: Path, tmp_path: Path):
    runs = {}
    for name, extra in (
        ("default", []),
        ("no-colour", ["--engine-set", "fallback.use_colour=false"]),
    ):
        out = tmp_path / name
        assert main(["crossval", "--data", str(training_folder), "--out", str(out),
                     "--folds", "2", "--model", "flow", *extra]) == 0  # fmt: skip
        runs[name] = json.loads((out / "crossval.json").read_text())
    assert runs["no-colour"]["engine_settings"] == {"fallback": [["use_colour", False]]}
    assert runs["no-colour"]["per_fold"] != runs["default"]["per_fold"]


def test_network_crossval_trains_on_the_other_folds_only(training_folder: Path, tmp_path: Path):
    pytest.importorskip("torch")
    out = tmp_path / "cv-net"
    code = main(["crossval", "--data", str(training_folder), "--out", str(out), "--folds", "2",
                 "--steps", "2", "--batch", "1", "--warmup", "1"])  # fmt: skip
    assert code == 0
    result = json.loads((out / "crossval.json").read_text())
    for k, row in enumerate(result["per_fold"]):
        manifest = (out / f"fold{k}" / "model" / "model.yaml").read_text()
        log = (out / f"fold{k}" / "run" / "train.log").read_text()
        trained_on = json.loads(log.splitlines()[0])
        assert sorted(trained_on["config"]["sequences"]) == sorted(
            result["per_fold"][1 - k]["sequences"]
        )
        assert "sequences" in manifest
        assert 0.0 <= row["J&F-Mean"] <= 1.0


def test_folds_run_separately_then_summarise(training_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "cv-split"
    base = ["crossval", "--data", str(training_folder), "--out", str(out), "--folds", "2",
            "--model", "flow"]  # fmt: skip
    assert main([*base, "--only-folds", "1"]) == 0
    assert (out / "fold1" / "heldout.json").is_file()
    assert not (out / "fold0").exists() and not (out / "crossval.json").exists()
    assert "folds without a report yet: [0]" in capsys.readouterr().out
    assert main([*base, "--only-folds", "0"]) == 0  # the last fold: the summary follows
    summary = json.loads((out / "crossval.json").read_text())
    assert [row["fold"] for row in summary["per_fold"]] == [0, 1]
    assert main(base) == 0
    assert json.loads((out / "crossval.json").read_text())["per_fold"] == summary["per_fold"]
    for bad in ("2", "-1"):
        assert main([*base, "--only-folds", bad]) == 2
    assert "folds to run must be in 0..1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage_error:
        main([*base, "--only-folds", "x"])
    assert usage_error.value.code == 2
    assert main([*base, "--models-from", str(out)]) == 2
    assert "need --model network" in capsys.readouterr().err


def test_fold_networks_are_scored_again_with_other_settings(training_folder: Path, tmp_path):
    pytest.importorskip("torch")
    trained = tmp_path / "cv-net"
    common = ["crossval", "--data", str(training_folder), "--folds", "2"]
    assert main([*common, "--out", str(trained), "--steps", "2", "--batch", "1", "--warmup", "1",
                 "--crop", "64", "64"]) == 0  # fmt: skip
    first_log = json.loads((trained / "fold0" / "run" / "train.log").read_text().splitlines()[0])
    assert (first_log["config"]["crop_w"], first_log["config"]["crop_h"]) == (64, 64)
    again = tmp_path / "cv-fused"
    args = [*common, "--out", str(again), "--models-from", str(trained),
            "--engine-set", "fuse_fallback=1"]  # fmt: skip
    assert main(args) == 0
    result = json.loads((again / "crossval.json").read_text())
    assert result["models_from"] == str(trained)
    assert result["engine_settings"] == {"fuse_fallback": 1.0}
    assert not (again / "fold0" / "run").exists()  # nothing trained
    meta = json.loads((again / "fold0" / "heldout.json").read_text())["meta"]
    assert meta["model"] == str(trained / "fold0" / "model")
    assert meta["engine_settings"] == {"fuse_fallback": 1.0}
    assert result["per_fold"] != json.loads((trained / "crossval.json").read_text())["per_fold"]
    assert main([*common, "--out", str(tmp_path / "x"), "--models-from", str(tmp_path)]) == 2
