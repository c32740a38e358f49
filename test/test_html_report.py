"""The HTML report is one self-contained file, and it renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vos_ros.evaluation import EvaluationOptions, evaluate
from vos_ros.synthetic import SceneConfig, generate, write_davis_folder

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture(scope="module")
def html_report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    data = root / "davis"
    write_davis_folder(data, generate(SceneConfig(width=128, height=96, frames=10, seed=4)), "s1")
    preds = root / "pred"
    shutil.copytree(data / "Annotations" / "480p" / "s1", preds / "s1")
    outcome = evaluate(
        EvaluationOptions(
            json_path=root / "r.json",
            davis=data,
            predictions=preds,
            report_dir=root / "report",
            progress=False,
        )
    )
    assert outcome.html_path is not None
    return outcome.html_path


def test_html_is_self_contained(html_report: Path):
    text = html_report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    for heading in ("DAVIS J&amp;F", "Per-class IoU", "Per sequence and object", "Sequences"):
        assert heading in text
    assert "s1_1" in text and "person" in text
    # every image is embedded; nothing is fetched from elsewhere
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r'(href|src)="(https?:|//|file:)', text)
    assert "data:image/png;base64," in text  # plots
    assert "data:image/jpeg;base64," in text  # overlay frames
    assert "class='player'" in text


def test_plots_are_written(html_report: Path):
    folder = html_report.parent
    for name in ("class_iou.png", "per_frame_j.png", "trajectory_s1.png"):
        assert (folder / name).stat().st_size > 1000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_renders_in_headless_chromium(html_report: Path, tmp_path: Path):
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            html_report.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), result.stderr[-2000:]
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] >= 1000
    # a rendered page: text, tables and images, not a blank sheet
    assert float(np.std(image)) > 10
    assert (image < 100).mean() > 0.005


def test_frames_are_named_by_position_with_a_bag_stamp_beside_it(html_report: Path):
    """A bag frame's name is its stamp; the player must not show it as a frame number."""
    from vos_ros.evaluation.clips import ClipFrame
    from vos_ros.evaluation.html import render_html
    from vos_ros.evaluation.overlays import OverlayRecorder

    image = np.full((48, 64, 3), 90, np.uint8)
    label = np.zeros((48, 64), np.uint16)
    label[10:30, 20:40] = 1
    recorder = OverlayRecorder(per_sequence=3, width=32)
    recorder.expect("bag", 3)
    recorder.expect("folder", 3)
    for index in range(3):
        stamp = 1_000_000_000 + index * 33_333_333
        bag_frame = ClipFrame(index, str(stamp), image, None, stamp_ns=stamp)
        recorder.on_frame("bag", bag_frame, label)
        recorder.on_frame("folder", ClipFrame(index, f"{index:05d}", image, None), label)

    assert [name for name, _ in recorder.thumbnails["bag"]] == [
        "0 (stamp 1.000 s)",
        "1 (stamp 1.033 s)",
        "2 (stamp 1.067 s)",
    ]
    assert [name for name, _ in recorder.thumbnails["folder"]] == ["0", "1", "2"]

    # the fixture's report, with the bag's frames in place of its sequence's
    report = json.loads((html_report.parent.parent / "r.json").read_text())
    text = render_html(report, {}, {"s1": recorder.thumbnails["bag"]})
    assert 'title="frame 1 (stamp 1.033 s)"' in text
    assert "frame 1000000000" not in text
