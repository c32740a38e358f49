"""The SAM 2 streaming tracker and the engine's sam2 family against the official
``SAM2VideoPredictor`` (CPU, fp32), with seeded random weights in the official checkpoint
format (see sam2_testlib): mask prompts, and clicks and a box, on frame 0 of a DAVIS clip, 8 frames,
1 and 3 targets.
Skipped when ../shared/data/vos or the sam2 package is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sam2_testlib import (  # noqa: F401  (pytest fixtures)
    CONFIG,
    SEQUENCE,
    TRACKED_FRAMES,
    click_prompts,
    iou,
    official_click_run,
    official_run,
    sam2_checkpoint,
)

# the official reference run alone takes minutes on 2 busy cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def sam2_model_folder(sam2_checkpoint, tmp_path_factory):  # noqa: F811
    from vos_ros.pretrained.install import fetch_model

    root = tmp_path_factory.mktemp("models")
    return fetch_model("sam2.1-hiera-tiny", root, checkpoint=sam2_checkpoint, quiet=True)


def test_reference_masks_are_not_trivial(official_run):  # noqa: F811
    """The comparison below means something: partial masks, spread logits, prompt-dependent."""
    logits = official_run.logits[1:]
    coverage = (logits > 0).mean(axis=(2, 3))
    assert coverage.min() > 0.05 and coverage.max() < 0.95, coverage
    assert logits.std(axis=(2, 3)).min() > 0.5
    for row, (_, prompt) in enumerate(sorted(official_run.prompts.items())):
        inside = (logits[:, row][:, prompt] > 0).mean()
        outside = (logits[:, row][:, ~prompt] > 0).mean()
        assert abs(inside - outside) > 0.05, (row, inside, outside)


def test_stream_tracker_matches_official_one_target(sam2_checkpoint, official_run):  # noqa: F811
    from pathlib import Path

    from vos_ros.trackers.sam2_library import build_model
    from vos_ros.trackers.sam2_stream import Sam2StreamTracker

    tracker = Sam2StreamTracker(build_model(CONFIG, Path(sam2_checkpoint)))
    size = tracker.image_size
    prompt = official_run.prompts[1]
    height, width = prompt.shape
    for index in range(TRACKED_FRAMES):
        from PIL import Image

        square = np.asarray(Image.fromarray(official_run.frame(index)).resize((size, size)))
        frame = tracker.encode(tracker.preprocess(square), index)
        if index == 0:
            tracker.add_target(frame, 1, prompt)
            continue
        logits, scores = tracker.track(frame, [1])
        video = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        ours = video[0, 0].numpy()
        official = official_run.logits[index, 0]
        assert np.abs(ours - official).max() < 1e-3, index
        assert iou(ours > 0, official > 0) >= 0.99, index
        assert scores.shape == (1,) and torch.isfinite(scores).all()
    # bounded memory: the prompt frame plus at most `window` tracked frames
    memory = tracker._targets[1]
    assert list(memory.prompts) == [0] and len(memory.recent) <= tracker.window


def test_engine_matches_official_three_targets(sam2_model_folder, official_run):  # noqa: F811
    from vos_ros.engine import EngineConfig, Prompt, build_engine

    engine = build_engine(EngineConfig(model=str(sam2_model_folder), backend="torch"))
    first = official_run.frame(0)
    labels = np.zeros(first.shape[:2], np.uint16)
    for target_id, mask in official_run.prompts.items():
        labels[mask] = target_id
    for index in range(TRACKED_FRAMES):
        prompt = Prompt(labels, {1: "dog", 2: "dog", 3: "ground"}) if index == 0 else None
        result = engine.step(official_run.frame(index), prompt)
        assert [t.target_id for t in result.targets] == [1, 2, 3]
        if index == 0:
            assert np.array_equal(result.label_image, labels)
            continue
        # Each target's own mask (its probability > 0.5) against the official per-object mask
        # (logit > 0): both are independent per target, as the official masks may overlap.
        for row, target in enumerate(result.targets):
            expected = official_run.logits[index, row] > 0
            assert iou(target.prob > 0.5, expected) >= 0.99, (index, target.target_id)
            assert target.visible == bool(expected.any())
        # The label image gives each pixel to at most one target; with random weights the three
        # targets' logits are nearly equal, so which one wins a pixel is ill-conditioned, but
        # the pixels that go to some target are those of the official masks.
        tracked = result.label_image > 0
        assert iou(tracked, official_run.label_image(index) > 0) >= 0.99, index
        assert set(result.timings_ms) >= {"encoder", "decoder", "total"}


def test_cli_fetch_model_then_evaluate_scores_the_official_masks(
    sam2_checkpoint,  # noqa: F811
    official_run,  # noqa: F811
    tmp_path,
):
    """``vos-ros fetch-model --checkpoint`` then ``vos-ros evaluate --backend torch`` on a DAVIS
    folder whose ground truth is the official predictor's masks (1 target, 8 frames)."""
    import json

    from vos_ros.cli import main
    from vos_ros.evaluation.davis_folder import write_label_png

    reference = tmp_path / "reference"
    images = reference / "JPEGImages" / "480p" / "dog"
    annotations = reference / "Annotations" / "480p" / "dog"
    images.mkdir(parents=True)
    for index in range(TRACKED_FRAMES):
        (images / f"{index:05d}.jpg").symlink_to(
            (official_run.frames_dir / f"{index}.jpg").resolve()
        )
        truth = official_run.prompts[1] if index == 0 else official_run.logits[index, 0] > 0
        write_label_png(annotations / f"{index:05d}.png", truth.astype(np.uint8))
    models = tmp_path / "models"
    fetch = ["fetch-model", "sam2.1-hiera-tiny", "--out", str(models), "--quiet"]
    assert main([*fetch, "--checkpoint", str(sam2_checkpoint)]) == 0
    report_path = tmp_path / "report.json"
    model = str(models / "sam2.1-hiera-tiny")
    evaluate = ["evaluate", "--davis", str(reference), "--model", model, "--backend", "torch"]
    code = main([*evaluate, "--json", str(report_path), "--no-progress"])
    assert code == 0
    scores = json.loads(report_path.read_text())["davis"]["global"]
    assert scores["J-Mean"] >= 0.98, scores


def test_engine_matches_official_clicks_and_box(
    sam2_model_folder,
    official_click_run,  # noqa: F811
    davis_val_dir,
):
    """A box, a positive and a negative click, and a single click (SAM's multimask case) on
    frame 0 through the engine's prompt encoder path, against ``add_new_points_or_box``."""
    from PIL import Image

    from vos_ros.engine import EngineConfig, build_engine

    official = official_click_run
    # the reference means something: the prompts give different masks on their frame, and
    # every mask covers part of the frame
    coverage = (official.logits > 0).mean(axis=(2, 3))
    assert coverage.min() > 0.01 and coverage.max() < 0.95, coverage
    first = official.prompts
    assert max(iou(first[1], first[2]), iou(first[1], first[3]), iou(first[2], first[3])) < 0.9
    annotation = np.array(
        Image.open(davis_val_dir / "Annotations" / "480p" / SEQUENCE / "00000.png")
    )
    engine = build_engine(EngineConfig(model=str(sam2_model_folder), backend="torch"))
    assert engine.segments_clicks
    engine.step(official.frame(0))  # the frame the user clicks on, before any target
    added = engine.add_click_targets(official.frame(0), click_prompts(annotation))
    assert added == [1, 2, 3]
    for index in range(1, TRACKED_FRAMES):
        result = engine.step(official.frame(index))
        assert [t.target_id for t in result.targets] == [1, 2, 3]
        for row, target in enumerate(result.targets):
            expected = official.logits[index, row] > 0
            assert iou(target.prob > 0.5, expected) >= 0.99, (index, target.target_id)


def test_stream_tracker_clicks_match_official_logits(
    sam2_checkpoint,  # noqa: F811
    official_click_run,  # noqa: F811
    davis_val_dir,
):
    """Logits, not only masks: on the clicked frame each target's output depends on its prompt
    (random weights make the tracked masks of all targets alike after a few frames)."""
    from pathlib import Path

    from PIL import Image

    from vos_ros.trackers.sam2_library import build_model
    from vos_ros.trackers.sam2_stream import Sam2StreamTracker

    official = official_click_run
    annotation = np.array(
        Image.open(davis_val_dir / "Annotations" / "480p" / SEQUENCE / "00000.png")
    )
    tracker = Sam2StreamTracker(build_model(CONFIG, Path(sam2_checkpoint)))
    size = tracker.image_size
    video_hw = annotation.shape
    ids = [1, 2, 3]
    for index in range(4):
        square = np.asarray(Image.fromarray(official.frame(index)).resize((size, size)))
        frame = tracker.encode(tracker.preprocess(square), index)
        if index == 0:
            rows = []
            for target_id, click in click_prompts(annotation).items():
                logits, memory = tracker.start_from_clicks(
                    frame, video_hw, np.array(click.points), np.array(click.labels), click.box
                )
                tracker.install(target_id, memory)
                rows.append(logits)
            logits = torch.cat(rows)
        else:
            logits, _ = tracker.track(frame, ids)
        video = F.interpolate(logits, size=video_hw, mode="bilinear", align_corners=False)
        for row in range(3):
            difference = np.abs(video[row, 0].numpy() - official.logits[index, row]).max()
            assert difference < 1e-3, (index, row, difference)
