"""``vos-ros evaluate --ray``: bags scored on a local Ray cluster give exactly the report of one
process; a corrupt bag is named and the others score; a dying worker is retried; Ctrl-C keeps
what was scored; bad settings give clear errors.

One Ray cluster (2 CPUs) serves the whole module: starting Ray takes seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from vos_ros.cli import main
from vos_ros.evaluation import EvaluationInputError, EvaluationOptions, evaluate

ray = pytest.importorskip("ray")
pytest.importorskip("rosbags")

SEEDS = range(6)
# what legitimately differs between two runs: measured times, the worker, and run metadata
RUN_SPECIFIC = ("seconds", "worker")


@pytest.fixture(scope="module")
def ray_cluster():
    # address="local": a cluster of its own, even beside another one on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    """Six small synthetic bags (different seeds) and one corrupt bag in one folder."""
    root = tmp_path_factory.mktemp("fleet")
    for seed in SEEDS:
        args = ["make-bag", "--synthetic", "--seed", str(seed), "--frames", "10"]
        args += ["--width", "160", "--height", "120", "--objects", "2"]
        assert main([*args, "--out", str(root / f"seed_{seed}")]) == 0
    (root / "seed_9.mcap").write_bytes(b"not an mcap file")  # corrupt: cannot be opened
    return root


def _run(tmp_path: Path, name: str, **options: Any) -> dict:
    options.setdefault("progress", False)
    outcome = evaluate(EvaluationOptions(json_path=tmp_path / f"{name}.json", **options))
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved == outcome.report
    return saved


def _scores(report: dict) -> dict:
    """Every number of the report except measured times and run metadata."""
    out = {k: v for k, v in report.items() if k not in ("meta", "timing")}
    out["sequences"] = {
        name: {k: v for k, v in row.items() if k not in RUN_SPECIFIC}
        for name, row in report["sequences"].items()
    }
    out["timing"] = {"frames": report["timing"]["frames"]}
    out["errors"] = report["meta"]["errors"]
    return out


@pytest.mark.timeout(300)
def test_ray_report_equals_the_single_process_report(ray_cluster, fleet, tmp_path):
    bags = fleet / "seed_?"  # the six good bags
    here = _run(tmp_path, "here", bag=bags, frames_parquet=tmp_path / "here.parquet")
    on_ray = _run(
        tmp_path, "ray", bag=bags, ray="local", workers=2, frames_parquet=tmp_path / "ray.parquet"
    )
    assert _scores(on_ray) == _scores(here)
    assert list(on_ray["sequences"]) == [f"seed_{s}" for s in SEEDS]
    assert len(on_ray["davis"]["per_sequence"]) == 12 and not on_ray["meta"]["partial"]
    assert on_ray["timing"]["frames"] == 60
    workers = {row["worker"] for row in on_ray["sequences"].values()}
    assert len(workers) == 2 and None not in workers  # both workers scored bags
    assert all(row["worker"] is None for row in here["sequences"].values())
    ray_meta = on_ray["meta"]["ray"]
    assert ray_meta["workers"] == 2 and ray_meta["threads_per_worker"] == 1
    assert ray_meta["not_scored"] == []

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ray.parquet")
    assert table.equals(pq.read_table(tmp_path / "here.parquet"))
    frames = on_ray["davis"]["per_frame"]
    assert table.num_rows == sum(len(v["J"]) for v in frames.values())
    rows = table.to_pylist()
    first = frames["seed_0_1"]
    assert [r["J"] for r in rows if r["name"] == "seed_0_1"] == first["J"]
    assert [r["frame"] for r in rows if r["name"] == "seed_0_1"] == first["frames"]


@pytest.mark.timeout(300)
def test_a_corrupt_bag_is_named_and_the_others_score(ray_cluster, fleet, tmp_path):
    here = _run(tmp_path, "here", bag=fleet)
    on_ray = _run(tmp_path, "ray", bag=fleet, ray="local", workers=2)
    assert _scores(on_ray) == _scores(here)
    (error,) = on_ray["meta"]["errors"]
    assert "seed_9" in error and "cannot open bag" in error
    assert on_ray["meta"]["partial"]
    row = on_ray["sequences"]["seed_9"]
    assert row["frames_seen"] == 0 and row["error"] == error and not row["complete"]
    good = [row for name, row in on_ray["sequences"].items() if name != "seed_9"]
    assert len(good) == 6 and all(row["complete"] and row["frames_seen"] == 10 for row in good)


@pytest.mark.timeout(300)
def test_a_dying_worker_is_retried(ray_cluster, fleet, tmp_path):
    from vos_ros.bag_io import BagClip, find_bags
    from vos_ros.evaluation.fleet import EngineSpec, RaySettings, score_clip_task, score_on_ray

    marker = tmp_path / "died_once"

    def dies_once(name, open_clip, spec, model):  # pickled by value: defined in a function
        if name == "seed_1" and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies in the middle of the task
        return score_clip_task(name, open_clip, spec, model)

    bags = find_bags(fleet / "seed_[0-2]")
    sources = [(bag.name, functools.partial(BagClip, bag)) for bag in bags]
    outcome = score_on_ray(
        sources, EngineSpec(), RaySettings(workers=2), progress=False, task=dies_once
    )
    assert marker.exists()
    assert [r.name for r in outcome.results] == ["seed_0", "seed_1", "seed_2"]
    assert all(r.error is None and r.scorer.frames_scored == 10 for r in outcome.results)


@pytest.mark.timeout(300)
def test_ctrl_c_writes_what_was_scored(ray_cluster, fleet, tmp_path, monkeypatch):
    real_wait = ray.wait
    calls = []

    def wait_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray, "wait", wait_then_interrupt)
    outcome = evaluate(
        EvaluationOptions(
            json_path=tmp_path / "r.json",
            bag=fleet / "seed_?",
            ray="local",
            workers=1,
            progress=False,
        )
    )
    assert outcome.interrupted
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["meta"]["interrupted"] and saved["meta"]["partial"]
    assert list(saved["sequences"]) == ["seed_0", "seed_1"]
    assert saved["meta"]["ray"]["not_scored"] == ["seed_2", "seed_3", "seed_4", "seed_5"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "--workers must be at least 1"),
        ({"ray": "no-port-here"}, "expected 'local', 'auto', HOST:PORT"),
        ({"ray": "127.0.0.1:1"}, "cannot reach the Ray cluster at 127.0.0.1:1"),
        ({"bag": "nothing/here_*"}, "no bag matches nothing/here_*"),
        ({"live": True}, "--live and --predictions run here"),
    ],
)
def test_bad_settings_give_clear_errors(fleet, tmp_path, options, message):
    settings = {"json_path": tmp_path / "r.json", "bag": fleet, "ray": "local", **options}
    with pytest.raises(EvaluationInputError, match=message.replace("*", r"\*")):
        evaluate(EvaluationOptions(**settings, progress=False))
    assert not (tmp_path / "r.json").exists()


@pytest.mark.timeout(300)
def test_cli_scores_a_glob_on_ray_and_prints_a_row_per_bag(ray_cluster, fleet, tmp_path, capsys):
    args = ["evaluate", "--bag", str(fleet / "seed_[45]"), "--ray", "--workers", "2"]
    args += ["--frames-parquet", str(tmp_path / "f.parquet"), "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    table = out[out.index("Per bag (Ray)") :]
    assert "seed_4" in table and "seed_5" in table and " ok" in table
    assert (tmp_path / "f.parquet").is_file()


def test_cli_rejects_workers_below_one(fleet, tmp_path, capsys):
    args = ["evaluate", "--bag", str(fleet), "--ray", "--workers", "0"]
    assert main([*args, "--json", str(tmp_path / "r.json")]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_davis_sequences_on_ray_equal_one_process(ray_cluster, davis_val_dir, tmp_path):
    options = {"davis": davis_val_dir, "sequences": ["blackswan", "car-shadow"], "max_frames": 6}
    here = _run(tmp_path, "here", **options)
    on_ray = _run(tmp_path, "ray", ray="local", workers=2, **options)
    assert _scores(on_ray) == _scores(here)
    assert list(on_ray["sequences"]) == ["blackswan", "car-shadow"]


@pytest.mark.timeout(300)
def test_a_network_model_on_ray_equals_one_process(ray_cluster, fleet, tmp_path):
    model = Path(__file__).resolve().parents[1] / "models" / "protonet-s"
    if not (model / "model.yaml").is_file():
        pytest.skip("models/protonet-s is not in this checkout")
    options = {"bag": fleet / "seed_[01]", "model": str(model), "backend": "onnxruntime"}
    here = _run(tmp_path, "here", **options)
    on_ray = _run(tmp_path, "ray", ray="local", workers=2, **options)
    assert _scores(on_ray) == _scores(here)
    assert on_ray["timing"]["frames"] == 20 and not on_ray["meta"]["errors"]


@pytest.mark.timeout(300)
def test_the_model_reaches_the_workers_checked_against_its_manifest(tmp_path):
    from vos_ros.engine.manifest import ModelFileError
    from vos_ros.evaluation.model_package import pack_model, unpack_model

    model = Path(__file__).resolve().parents[1] / "models" / "protonet-s"
    if not (model / "model.yaml").is_file():
        pytest.skip("models/protonet-s is not in this checkout")
    package = pack_model(str(model))
    assert "model.yaml" in package.files and len(package.files) > 1
    folder = unpack_model(package, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(package.files)
    assert unpack_model(package, tmp_path) == folder  # once per machine

    name = next(n for n in package.files if n.endswith(".onnx"))
    damaged = dict(package.files)
    damaged[name] = damaged[name][:-1] + bytes([damaged[name][-1] ^ 1])
    bad = type(package)(package.name, package.digest, damaged)
    with pytest.raises(ModelFileError, match=name):
        unpack_model(bad, tmp_path / "elsewhere")


@pytest.mark.timeout(300)
def test_fleet_benchmark_measures_runs_merge_and_projection(ray_cluster, fleet):
    from vos_ros.benchmark import fleet_bench

    sources = fleet_bench.bag_sources(fleet / "seed_[0-3]")
    row, results = fleet_bench.time_ray(sources, "flow", 2)
    assert row["frames"] == 40 and row["wall_s"] > 0 and not row["errors"]
    merge = fleet_bench.time_merge(results, repeats=1)
    assert merge["merge_s"] > 0 and merge["partials_bytes"] > 0
    args = argparse.Namespace(
        project_bags=1000, project_minutes=5.0, project_hz=30.0, project_workers=[1, 8]
    )
    one, eight = fleet_bench.project(0.02, 1e-4, args)
    assert one["hours"] == pytest.approx((9_000_000 * 0.02 + 900) / 3600)
    assert eight["hours"] == pytest.approx((9_000_000 * 0.02 / 8 + 900) / 3600)
