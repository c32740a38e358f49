"""``vos-ros demo``: synthetic bag -> node in its own process (live) -> report, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vos_ros.commands import demo


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_runs_end_to_end_with_small_settings(tmp_path: Path):
    from ros_harness import isolated_env, require_ros

    require_ros()
    out = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vos_ros.cli",
            "demo",
            "--out",
            str(out),
            "--frames",
            "24",
            "--no-progress",
        ],
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=100,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    stdout = result.stdout
    assert "model: " in stdout  # says which model runs (the default one, or the flow fallback)
    assert "Per-class IoU" in stdout
    for name in ("person", "car", "ball", "animal"):
        assert name in stdout
    html = out / "report" / "report.html"
    assert f"HTML report: {html}" in stdout
    assert html.is_file() and html.stat().st_size > 10_000
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["mode"] == "live"
    assert report["timing"]["frames"] + report["timing"]["dropped_frames"] == 24
    assert report["meta"]["partial"] is False
    assert (out / "synthetic_bag" / "metadata.yaml").is_file()
    assert elapsed < 90

    # a second run replaces the previous demo's bag instead of failing on it
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "vos_ros.cli",
            "demo",
            "--out",
            str(out),
            "--frames",
            "8",
            "--model",
            "flow",
            "--no-progress",
        ],
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "model: flow (optical-flow fallback)" in again.stdout
    assert (
        json.loads((out / "report.json").read_text())["sequences"]["synthetic_bag"]["frames"] == 8
    )


def test_auto_model_is_the_default_model_and_falls_back_to_flow_saying_why(tmp_path: Path):
    model, why = demo.choose_model("auto", "auto", default="flow")
    assert model == "flow" and "the default" in why

    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "model.yaml").write_text("not: a model manifest\n")
    model, why = demo.choose_model("auto", "auto", default=str(broken))
    assert model == "flow"
    assert why.startswith("model: flow (optical-flow fallback;") and "does not load" in why

    model, why = demo.choose_model("auto", "auto", default=str(tmp_path / "nowhere"))
    assert model == "flow" and "not found" in why

    assert demo.choose_model("models/other", "auto") == (
        "models/other",
        "model: models/other (as requested)",
    )


def test_demo_refuses_to_overwrite_a_folder_that_is_not_a_bag(tmp_path: Path):
    (tmp_path / "synthetic_bag").mkdir()
    (tmp_path / "synthetic_bag" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a bag"):
        demo._new_bag_path(tmp_path)
    assert (tmp_path / "synthetic_bag" / "notes.txt").is_file()
