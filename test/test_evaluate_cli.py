"""``vos-ros evaluate`` and the offline protocol: prompts, fresh engines, reports, bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from vos_ros.cli import main
from vos_ros.evaluation import EvaluationOptions, evaluate
from vos_ros.evaluation.davis_folder import read_label_png, write_label_png
from vos_ros.synthetic import SceneConfig, generate, write_davis_folder
from vos_ros.types import FrameResult, TargetResult


@dataclass
class FakePrompt:
    label_image: np.ndarray
    classes: dict[int, str]
    replace: bool = False


@dataclass
class StaticEngine:
    """Keeps every target where it was prompted; records what it was given."""

    prompts: list[tuple[int, dict[int, str]]] = field(default_factory=list)
    interrupt_at: int | None = None
    _label: np.ndarray | None = None
    _classes: dict[int, str] = field(default_factory=dict)
    _frame: int = 0

    def step(self, frame, prompt=None):
        if self.interrupt_at is not None and self._frame == self.interrupt_at:
            raise KeyboardInterrupt
        if self._label is None:
            self._label = np.zeros(frame.shape[:2], np.uint16)
        if prompt is not None:
            self.prompts.append((self._frame, dict(prompt.classes)))
            self._label = np.where(prompt.label_image > 0, prompt.label_image, self._label)
            self._classes.update(prompt.classes)
        targets = [
            TargetResult(t, c, np.zeros(1, np.float32), self._label == t, (0, 0, 0, 0), 1.0, True)
            for t, c in self._classes.items()
        ]
        self._frame += 1
        return FrameResult(self._frame - 1, targets, self._label.copy())


SCENE = SceneConfig(width=128, height=96, frames=12, objects=4, seed=5)


@pytest.fixture(scope="module")
def davis_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis")
    write_davis_folder(root, generate(SCENE), "syn_a")
    write_davis_folder(root, generate(SceneConfig(width=128, height=96, frames=6, seed=6)), "syn_b")
    return root


def test_offline_protocol_prompts_each_object_on_its_first_frame(davis_dir: Path, tmp_path):
    engines: list[StaticEngine] = []

    def factory():
        engines.append(StaticEngine())
        return engines[-1]

    outcome = evaluate(
        EvaluationOptions(
            json_path=tmp_path / "r.json",
            davis=davis_dir,
            engine_factory=factory,
            prompt_type=FakePrompt,
            progress=False,
        )
    )
    assert len(engines) == 2  # a fresh engine per sequence
    scene = generate(SCENE)
    first = {oid: start for oid, start in scene.start_frames.items()}
    frames_of_prompts = {frame for frame, _ in engines[0].prompts}
    assert frames_of_prompts == {0, first[4]}
    assert engines[0].prompts[0][1] == {1: "person", 2: "car", 3: "ball"}
    assert engines[0].prompts[1][1] == {4: "animal"}
    report = outcome.report
    assert not outcome.errors and not report["meta"]["partial"]
    assert set(report["per_class_iou"]) == {"person", "car", "ball", "animal"}
    assert report["timing"]["frames"] == 18
    assert report["davis"]["per_sequence"]["syn_a_1"]["frames"] == SCENE.frames - 2
    # object 4 is scored from the frame after its prompt to the second-to-last frame
    assert report["davis"]["per_frame"]["syn_a_4"]["frames"][0] == first[4] + 1
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["davis"]["global"] == report["davis"]["global"]


def test_ctrl_c_still_writes_what_was_scored(davis_dir: Path, tmp_path):
    def factory():
        return StaticEngine(interrupt_at=7)

    outcome = evaluate(
        EvaluationOptions(
            json_path=tmp_path / "r.json",
            davis=davis_dir,
            engine_factory=factory,
            prompt_type=FakePrompt,
            progress=False,
        )
    )
    assert outcome.interrupted
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["meta"]["partial"] and saved["meta"]["interrupted"]
    row = saved["sequences"]["syn_a"]
    assert {k: row[k] for k in ("frames", "frames_seen", "complete", "error", "prompts")} == {
        "frames": 12,
        "frames_seen": 7,
        "complete": False,
        "error": "interrupted",
        "prompts": "ground truth",
    }
    assert row["objects"] == 4 and row["worker"] is None and row["seconds"] >= 0
    assert "syn_b" not in saved["sequences"]
    assert saved["davis"]["per_sequence"]["syn_a_1"]["frames"] == 6


def _predictions_from_gt(davis_dir: Path, out: Path) -> Path:
    for seq in ("syn_a", "syn_b"):
        shutil.copytree(davis_dir / "Annotations" / "480p" / seq, out / seq)
    return out


def test_cli_predictions_mode_perfect_and_schema(davis_dir: Path, tmp_path, capsys):
    preds = _predictions_from_gt(davis_dir, tmp_path / "pred")
    code = main(
        [
            "evaluate",
            "--davis",
            str(davis_dir),
            "--predictions",
            str(preds),
            "--json",
            str(tmp_path / "r.json"),
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Per-class IoU" in out and "syn_a_1" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["davis"]["global"]["J&F-Mean"] == 1.0
    assert set(report["davis"]["global"]) == {
        "J&F-Mean",
        "J-Mean",
        "J-Recall",
        "J-Decay",
        "F-Mean",
        "F-Recall",
        "F-Decay",
    }
    assert all(v == 1.0 for v in report["per_class_iou"].values())
    assert set(report["timing"]) >= {"fps", "latency_ms", "dropped_frames"}
    assert set(report["meta"]) >= {"command", "machine", "date", "model", "backend"}
    assert report["meta"]["mode"] == "predictions"


def test_cli_predictions_size_mismatch_gives_a_partial_report(davis_dir: Path, tmp_path, capsys):
    preds = _predictions_from_gt(davis_dir, tmp_path / "pred")
    bad = preds / "syn_a" / "00005.png"
    write_label_png(bad, read_label_png(bad)[:, :-1])
    code = main(
        [
            "evaluate",
            "--davis",
            str(davis_dir),
            "--predictions",
            str(preds),
            "--json",
            str(tmp_path / "r.json"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "prediction is 127x96 but the ground truth is 128x96" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"]
    assert report["sequences"]["syn_a"]["complete"] is False
    assert report["sequences"]["syn_b"]["complete"] is True  # the next sequence was scored


def test_cli_bad_inputs_end_with_a_clear_message(davis_dir: Path, tmp_path, capsys):
    assert main(["evaluate", "--davis", str(tmp_path / "nope"), "--json", "x.json"]) == 2
    assert "DAVIS folder not found" in capsys.readouterr().err
    assert (
        main(["evaluate", "--davis", str(davis_dir), "--sequences", "zzz", "--json", "x.json"]) == 2
    )
    assert "unknown sequence(s) zzz" in capsys.readouterr().err
    assert main(["evaluate", "--davis", str(davis_dir), "--live", "--json", "x.json"]) == 2
    assert "--live plays bags" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bags") / "syn"
    assert (
        main(
            [
                "make-bag",
                "--synthetic",
                "--frames",
                "8",
                "--width",
                "128",
                "--height",
                "96",
                "--seed",
                "3",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    return path


def test_cli_bag_offline_with_the_flow_engine(bag_dir: Path, tmp_path):
    pytest.importorskip("vos_ros.engine")
    code = main(
        [
            "evaluate",
            "--bag",
            str(bag_dir),
            "--model",
            "flow",
            "--json",
            str(tmp_path / "r.json"),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["per_class_iou"]) == {"person", "car", "ball", "animal"}
    assert report["timing"]["frames"] == 8 and report["timing"]["fps"] > 0
    assert report["meta"]["model"] == "flow" and report["meta"]["mode"] == "offline"
    j = report["davis"]["global"]["J-Mean"]
    assert 0.3 < j <= 1.0  # the flow fallback tracks the synthetic shapes over 8 frames


def test_cli_bag_missing_topic(bag_dir: Path, tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--bag",
            str(bag_dir),
            "--gt-topic",
            "/nope",
            "--json",
            str(tmp_path / "r.json"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "no ground-truth topic '/nope'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()  # nothing scored, no report
