"""SAM 2 test fixtures: a seeded random-weight checkpoint in the official format, a DAVIS clip
and the official ``SAM2VideoPredictor``'s masks on it, computed once per test session.

Random weights stand in for the real checkpoints (which cannot be downloaded here). PyTorch's
default initialisation gives near-constant logits (|x| < 0.25, the same mask for every target),
which a reproduction could match without running the right computation; every weight matrix is
therefore drawn from N(0, 1 / fan_in) instead, which gives logits with a spread of about 2,
masks covering a quarter to a third of the frame, and masks that differ inside and outside each
prompt. The tests check those properties before comparing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_ros.click_prompt import ClickPrompt

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SEQUENCE = "dog"
CLIP_FRAMES = 16  # the official predictor sees 16 frames: its object-pointer time scale is
# min(video length, 16), which on a stream (no length) is 16
TRACKED_FRAMES = 8
SEED = 20261206


def random_checkpoint(path: Path, seed: int = SEED) -> Path:
    """Write ``{"model": state_dict}`` of SAM 2.1-tiny with seeded N(0, 1/fan_in) matrices."""
    import torch
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    state = build_sam2(CONFIG, None, device="cpu").state_dict()
    generator = torch.Generator().manual_seed(seed)
    for tensor in state.values():
        if tensor.is_floating_point() and tensor.ndim >= 2:
            fan_in = tensor[0].numel()
            tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    torch.save({"model": state}, path)
    return path


@dataclass
class OfficialRun:
    """The official predictor's output on the first TRACKED_FRAMES frames of the clip."""

    frames_dir: Path  # CLIP_FRAMES JPEGs named 0.jpg, 1.jpg, ... (the official loader's order)
    prompts: dict[int, np.ndarray]  # target id -> (H, W) bool mask on frame 0
    logits: np.ndarray  # [TRACKED_FRAMES, N, H, W] float32 at video resolution, ids 1..N

    def frame(self, index: int) -> np.ndarray:
        """RGB uint8 frame ``index`` decoded as the official loader decodes it (PIL)."""
        with Image.open(self.frames_dir / f"{index}.jpg") as img:
            return np.array(img.convert("RGB"))

    def label_image(self, index: int) -> np.ndarray:
        """The official masks of frame ``index`` as one label image: each pixel goes to the
        target with the highest logit where that logit is > 0."""
        logits = self.logits[index]
        best = logits.argmax(axis=0)
        return np.where(logits.max(axis=0) > 0, best + 1, 0).astype(np.uint16)


def prompt_masks(annotation: np.ndarray) -> dict[int, np.ndarray]:
    """Three targets from the sequence's object: its left and right halves and a box of
    background below it (disjoint masks)."""
    obj = annotation > 0
    height, width = obj.shape
    xs = np.nonzero(obj)[1]
    middle = int(np.median(xs))
    columns = np.arange(width)[None, :]
    box = np.zeros_like(obj)
    box[int(height * 0.8) : int(height * 0.95), int(width * 0.05) : int(width * 0.3)] = True
    return {1: obj & (columns < middle), 2: obj & (columns >= middle), 3: box & ~obj}


def click_prompts(annotation: np.ndarray) -> dict[int, ClickPrompt]:
    """Three targets given as a user clicks them: the object's box; one click on the object
    and one next to it (negative); a single click on the ground below (multimask output)."""
    obj = annotation > 0
    height, width = obj.shape
    ys, xs = np.nonzero(obj)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    inside = int(np.argmin(np.abs(xs - np.median(xs)) + np.abs(ys - np.median(ys))))
    on_object = (float(xs[inside]), float(ys[inside]))
    beside = (float(max(0, box[0] - 20)), float(ys[inside]))
    ground = (width * 0.15, height * 0.9)
    return {
        1: ClickPrompt(box=box),
        2: ClickPrompt((on_object, beside), (1, 0)),
        3: ClickPrompt((ground,), (1,)),
    }


def _clip_frames(davis: Path, work: Path) -> Path:
    frames_dir = work / "official_frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    source = davis / "JPEGImages" / "480p" / SEQUENCE
    for index, name in enumerate(sorted(os.listdir(source))[:CLIP_FRAMES]):
        link = frames_dir / f"{index}.jpg"
        if not link.exists():
            link.symlink_to(source / name)
    return frames_dir


def run_official(checkpoint: Path, davis: Path, work: Path, clicks: bool = False) -> OfficialRun:
    """Mask prompts (or with ``clicks``, :func:`click_prompts` through
    ``add_new_points_or_box``) on frame 0, ``propagate_in_video`` over TRACKED_FRAMES frames
    (CPU). ``OfficialRun.prompts`` holds the masks, or the official masks of frame 0."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    frames_dir = _clip_frames(davis, work)
    annotation = np.array(Image.open(davis / "Annotations" / "480p" / SEQUENCE / "00000.png"))
    predictor = build_sam2_video_predictor(CONFIG, str(checkpoint), device="cpu")
    with torch.inference_mode():
        state = predictor.init_state(str(frames_dir))
        if clicks:
            for target_id, click in click_prompts(annotation).items():
                predictor.add_new_points_or_box(
                    state,
                    0,
                    target_id,
                    points=np.array(click.points, np.float32) if click.points else None,
                    labels=np.array(click.labels, np.int32) if click.points else None,
                    box=np.array(click.box, np.float32) if click.box else None,
                )
        else:
            for target_id, mask in prompt_masks(annotation).items():
                predictor.add_new_mask(state, 0, target_id, mask)
        logits = [None] * TRACKED_FRAMES
        for index, ids, masks in predictor.propagate_in_video(
            state, max_frame_num_to_track=TRACKED_FRAMES - 1
        ):
            assert list(ids) == [1, 2, 3]
            logits[index] = masks[:, 0].numpy()
    if clicks:
        prompts = {target_id: logits[0][target_id - 1] > 0 for target_id in (1, 2, 3)}
    else:
        prompts = prompt_masks(annotation)
    return OfficialRun(frames_dir, prompts, np.stack(logits))


def assert_engines_agree(engine, reference, targets: int, min_iou: float, frames: int = 8) -> None:
    """Step two engines over the same moving 854x480 frames, ``targets`` box-shaped mask prompts
    on frame 0; every target's mask on every frame must have IoU >= ``min_iou`` between them
    (the check of a lower precision or another runtime against torch fp32)."""
    import cv2

    from vos_ros.engine import Prompt

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 256, (480, 854, 3), np.uint8), (0, 0), 9)
    label = np.zeros((480, 854), np.uint16)
    boxes = [(100, 300, 200, 400), (300, 450, 500, 800), (20, 120, 600, 820)]
    for target, (y0, y1, x0, x1) in enumerate(boxes[:targets], start=1):
        label[y0:y1, x0:x1] = target
    for index in range(frames):
        frame = np.roll(base, 6 * index, axis=1)
        prompt = Prompt(label) if index == 0 else None
        a, b = engine.step(frame, prompt), reference.step(frame, prompt)
        assert [t.target_id for t in a.targets] == [t.target_id for t in b.targets]
        assert len(a.targets) == targets
        for x, y in zip(a.targets, b.targets, strict=True):
            assert iou(x.prob > 0.5, y.prob > 0.5) >= min_iou, (index, x.target_id)


def engine_against_cuda_fp32(folder: str, targets: int, **settings):
    """The engine of ``folder`` with ``settings`` (a lower precision, TensorRT) checked against
    torch fp32 on CUDA: per frame and target IoU >= 0.98 (:func:`assert_engines_agree`);
    returns it."""
    from vos_ros.engine import EngineConfig, build_engine

    engine = build_engine(EngineConfig(model=folder, **settings))
    reference = build_engine(
        EngineConfig(model=folder, backend="torch", device="cuda", precision="fp32")
    )
    assert_engines_agree(engine, reference, targets, min_iou=0.98)
    return engine


def scripted_stream(
    tracker, frames: list[np.ndarray], masks: dict[int, np.ndarray],
    starts: dict[int, tuple[int, ...]], click: tuple[int, int], side: int,
) -> list[np.ndarray]:  # fmt: skip
    """A stream tracker's logits on every tracked frame of ``frames`` (SAM 2's or EdgeTAM's):
    targets ``starts[i]`` start from their ``masks`` on frame ``i``, and target ``click[1]``
    from one positive click at (60, 200) on frame ``click[0]`` (SAM's multimask output, the
    mask decoder's other case). ``side``: the model's square input."""
    out = []
    for index, frame in enumerate(frames):
        encoded = tracker.encode(tracker.preprocess(frame), index)
        ids = list(tracker.target_ids)
        if ids:
            out.append(tracker.track(encoded, ids)[0].numpy())
        for target_id in starts.get(index, ()):
            tracker.add_target(encoded, target_id, masks[target_id])
        if index == click[0]:
            points, labels = np.array([[60.0, 200.0]]), np.array([1])
            _, memory = tracker.start_from_clicks(encoded, (side, side), points, labels)
            tracker.install(click[1], memory)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("sam2", reason="the official sam2 package is not installed")
    return random_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt")


@pytest.fixture(scope="session")
def official_run(sam2_checkpoint, davis_val_dir, tmp_path_factory) -> OfficialRun:
    return run_official(sam2_checkpoint, davis_val_dir, tmp_path_factory.mktemp("official"))


@pytest.fixture(scope="session")
def official_click_run(sam2_checkpoint, davis_val_dir, tmp_path_factory) -> OfficialRun:
    work = tmp_path_factory.mktemp("official-clicks")
    return run_official(sam2_checkpoint, davis_val_dir, work, clicks=True)
