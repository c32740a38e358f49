"""A model named by the launch file or the CLI is found outside the checkout's working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from vos_ros.engine import model_paths
from vos_ros.engine.manifest import ModelFileError, load_manifest
from vos_ros.engine.model_paths import model_candidates, resolve_model

CHECKOUT = Path(__file__).resolve().parents[1]
SHIPPED = CHECKOUT / "models" / "protonet-s"


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """An installed share folder holding models/small, and a working directory without models/."""
    share = tmp_path / "share" / "vos_ros"
    (share / "models" / "small").mkdir(parents=True)
    monkeypatch.setattr(model_paths, "model_roots", lambda: [share])
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    return share


def test_a_name_or_models_name_resolves_in_the_installed_share_folder(installed: Path):
    expected = str(installed / "models" / "small")
    assert resolve_model("small") == expected
    assert resolve_model("models/small") == expected  # the launch file's own example


def test_a_folder_relative_to_the_working_directory_wins(installed: Path):
    (Path("models") / "small").mkdir(parents=True)
    assert resolve_model("models/small") == "models/small"


def test_flow_absolute_paths_and_unknown_names_are_left_alone(installed: Path, tmp_path: Path):
    assert resolve_model("flow") == "flow"
    assert resolve_model(str(tmp_path / "nowhere")) == str(tmp_path / "nowhere")
    assert resolve_model("models/unknown") == "models/unknown"
    assert model_candidates("models/unknown") == [
        Path("models/unknown"),
        installed / "models" / "unknown",
    ]


def test_a_missing_model_names_every_place_looked_in(installed: Path):
    with pytest.raises(ModelFileError, match="'models/unknown' does not exist") as failure:
        load_manifest("models/unknown")
    assert str(installed / "models" / "unknown") in str(failure.value)


@pytest.mark.skipif(not (SHIPPED / "model.yaml").is_file(), reason="models/protonet-s not present")
def test_the_shipped_model_loads_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_manifest("protonet-s").folder == SHIPPED
    assert load_manifest("models/protonet-s").folder == SHIPPED


def test_model_root_applies_to_the_folder_the_name_resolves_to(installed: Path):
    from vos_ros.ros.params import model_path_problem

    assert model_path_problem("models/small", str(installed)) is None
    reason = model_path_problem("models/small", str(installed.parent / "other"))
    assert reason is not None and str(installed / "models" / "small") in reason


def test_a_model_family_is_read_from_the_folder_a_name_resolves_to(installed: Path):
    from vos_ros.engine.family import model_family

    (installed / "models" / "small" / "model.yaml").write_text("family: sam2\n")
    assert model_family("small") == "sam2"
    assert model_family("models/small") == "sam2"


def _field_default(cls, name: str):
    import dataclasses

    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def test_every_entry_point_defaults_to_the_same_model():
    """The node, its launch files, the evaluator, the benchmarks, the demo and the console all
    run ``DEFAULT_MODEL`` unless told otherwise (issue: whichever scores better, everywhere)."""
    import argparse
    import inspect
    import re

    from vos_ros.commands import bench, console, demo, evaluate
    from vos_ros.console.offline_jobs import JobStore
    from vos_ros.console.settings import ConsoleSettings
    from vos_ros.engine.model_paths import DEFAULT_MODEL
    from vos_ros.evaluation.fleet import EngineSpec
    from vos_ros.evaluation.live_node import LiveSettings
    from vos_ros.evaluation.session import EvaluationOptions
    from vos_ros.ros.launch_config import LAUNCH_ARGUMENTS
    from vos_ros.ros.params import PARAMETERS

    assert next(p.default for p in PARAMETERS if p.name == "model") == DEFAULT_MODEL
    assert next(a.default for a in LAUNCH_ARGUMENTS if a.name == "model") == DEFAULT_MODEL
    for command in (evaluate, console):
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        assert parser.get_default("model") == DEFAULT_MODEL, command.__name__
    assert demo.choose_model("auto", "auto")[0] == resolve_model(DEFAULT_MODEL)
    assert ConsoleSettings().model == DEFAULT_MODEL
    for options in (EvaluationOptions, LiveSettings, EngineSpec):  # the evaluator's inputs
        assert _field_default(options, "model") == DEFAULT_MODEL, options.__name__
    assert inspect.signature(JobStore).parameters["model"].default == DEFAULT_MODEL
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert parser.get_default("model") is None and bench.DEFAULT_MODEL == DEFAULT_MODEL
    multi = (CHECKOUT / "launch" / "vos_multi_camera.launch.py").read_text()
    assert re.search(r'"model", default_value="([^"]*)"', multi).group(1) == DEFAULT_MODEL
