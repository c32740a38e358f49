"""Clicks and boxes through SAM's prompt encoder without adding targets
(:meth:`VosEngine.preview_clicks`), and the console's offline page, which uses it for a sam2
model instead of GrabCut: the masks equal the engine's, nothing is tracked, bad clicks are
refused with the engine's reason. Seeded random weights (sam2_testlib); no dataset needed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from console_testlib import first_object_box, write_webm
from sam2_testlib import sam2_checkpoint  # noqa: F401  (pytest fixture)

from vos_ros.click_prompt import ClickPrompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sam2_folder(sam2_checkpoint, tmp_path_factory):  # noqa: F811
    from vos_ros.pretrained.install import fetch_model

    root = tmp_path_factory.mktemp("sam2_preview")
    return str(fetch_model("sam2.1-hiera-tiny", root, checkpoint=sam2_checkpoint, quiet=True))


def _frames(count: int = 2) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(5)
    base = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 5)
    return [np.roll(base, 4 * i, axis=1) for i in range(count)]


def test_preview_gives_the_masks_and_changes_nothing(sam2_folder):
    from vos_ros.engine import EngineConfig, InputError, Prompt, build_engine

    engine = build_engine(EngineConfig(model=sam2_folder))
    frames = _frames()
    label = np.zeros((240, 320), np.uint16)
    label[40:120, 60:160] = 1
    engine.step(frames[0], Prompt(label))
    prompts = {2: ClickPrompt(box=(150, 100, 260, 200)), 3: ClickPrompt(((80.0, 60.0),), (1,))}
    first = engine.preview_clicks(frames[0], prompts)
    assert sorted(first) == [2, 3]
    assert all(m.shape == (240, 320) and m.any() for m in first.values())
    again = engine.preview_clicks(frames[0], prompts)
    assert all(np.array_equal(first[i], again[i]) for i in prompts)
    assert engine.target_ids == [1] and engine.predictor.tracker.target_ids == [1]
    # adding the same box afterwards starts the target from the same prompt encoder output
    assert engine.add_click_targets(frames[0], {2: prompts[2]}) == [2]
    assert engine.target_ids == [1, 2]
    with pytest.raises(InputError, match="already tracked"):
        engine.preview_clicks(frames[0], {2: prompts[2]})
    with pytest.raises(InputError, match="outside"):
        engine.preview_clicks(frames[0], {4: ClickPrompt(((400.0, 10.0),), (1,))})
    with pytest.raises(InputError, match="last stepped frame"):
        engine.preview_clicks(frames[1], {4: prompts[3]})
    assert engine.target_ids == [1, 2]
    flow = build_engine(EngineConfig(model="flow"))
    flow.step(frames[0])
    with pytest.raises(InputError, match="no prompt encoder"):
        flow.preview_clicks(frames[0], {1: prompts[3]})


def test_offline_page_segments_boxes_and_clicks_with_the_prompt_encoder(
    sam2_folder, tmp_path, monkeypatch
):
    from vos_ros.console import offline_routes
    from vos_ros.console.offline_jobs import JobError, JobStore
    from vos_ros.console.request_models import OfflineTarget
    from vos_ros.console.selections import SelectionError
    from vos_ros.console.uploads import STORED_NAMES
    from vos_ros.engine import EngineConfig, build_engine

    def no_grabcut(*args, **kwargs):
        raise AssertionError("GrabCut ran for a model with a prompt encoder")

    monkeypatch.setattr(offline_routes, "box_mask", no_grabcut)
    monkeypatch.setattr(offline_routes, "points_mask", no_grabcut)

    def new_job(store: JobStore):
        folder = store.new_folder()
        upload = folder / STORED_NAMES["webm"]
        shutil.copy(write_webm(tmp_path / "clip.webm"), upload)
        return store.add(folder, upload)

    store = JobStore(max_frames=12, model=sam2_folder)
    job = new_job(store)
    frame = store.first_frame(job)
    encoder = store.prompt_encoder(job)
    assert encoder is not None
    x0, y0, x1, y1 = first_object_box()
    box = OfflineTarget(kind="box", box=(x0, y0, x1, y1))
    centre = {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2}
    points = OfflineTarget(kind="points", points=[centre, {"x": 5, "y": 5, "positive": False}])
    got = [offline_routes._offline_mask(frame, t, encoder) for t in (box, points)]

    reference = build_engine(EngineConfig(model=sam2_folder))
    reference.step(frame)
    want = reference.preview_clicks(
        frame,
        {
            1: ClickPrompt(box=(x0, y0, x1, y1)),
            2: ClickPrompt(((centre["x"], centre["y"]), (5.0, 5.0)), (1, 0)),
        },
    )
    assert np.array_equal(got[0], want[1]) and np.array_equal(got[1], want[2])
    negative_only = OfflineTarget(kind="points", points=[{"x": 5, "y": 5, "positive": False}])
    with pytest.raises(SelectionError, match="positive point"):
        offline_routes._offline_mask(frame, negative_only, encoder)
    outside = OfflineTarget(kind="box", box=(400, 300, 500, 400))
    with pytest.raises(SelectionError, match="outside"):
        offline_routes._offline_mask(frame, outside, encoder)
    assert store.prompt_encoder(job) is not None  # the same engine, still stepped on frame 0
    with store._running:  # a job is running: refused at once, not a wait of minutes
        with pytest.raises(JobError, match="busy"):
            store.prompt_encoder(job)
        with pytest.raises(JobError, match="busy"):
            encoder(ClickPrompt(box=(x0, y0, x1, y1)))
    store.remove(job.job_id)
    assert store._prompt_engine is None  # dropped with its job
    store.close()
    flow_store = JobStore(max_frames=12, model="flow")
    assert flow_store.prompt_encoder(job) is None  # GrabCut, as the node does for that family
    flow_store.close()
