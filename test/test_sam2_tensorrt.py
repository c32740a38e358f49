"""The sam2 family on TensorRT, tested here without TensorRT: optimization profiles derived from
the model and the exported graphs cover every shape the streaming tracker feeds (1 and 3
targets, a full memory), a shape outside them is a clear error, engines are keyed, built once
and reused, and ``backend: tensorrt`` on a machine without TensorRT / CUDA fails at configure.

Most tests run a SAM 2.1-tiny with seeded random weights (sam2_testlib) at a 256 x 256 input:
the same networks and memory settings as at 1024, with 16 x 16 instead of 64 x 64 feature maps,
so a full memory (7 frames, 16 object pointers) is reached in seconds on a CPU. The engines are
FakeTensorRT's (tensorrt_testlib), which run each graph in ONNX Runtime on the bound addresses.
Only the parity test needs TensorRT and a CUDA GPU, and is skipped without them.
"""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest
from sam2_testlib import (  # noqa: F401  (pytest fixture)
    CONFIG,
    engine_against_cuda_fp32,
    iou,
    sam2_checkpoint,
    scripted_stream,
)
from tensorrt_testlib import FakeTensorRT, FakeToolchain, machine, tensorrt_gpu_reason

from vos_ros.cli import main as cli_main
from vos_ros.engine.backends.base import BackendError
from vos_ros.engine.backends.select import MachineCapabilities
from vos_ros.engine.backends.tensorrt_backend import EngineCache, tensorrt_importable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SIZE = 256  # model input; feature maps 16 x 16
SIDE = SIZE // 16
CHECKPOINT_SHA = "c" * 64


def small_model(checkpoint):
    """The official video model at a 256 x 256 input (rotary encodings sized to match)."""
    from sam2.build_sam import build_sam2_video_predictor

    rope = f"[{SIDE},{SIDE}]"
    overrides = [
        f"++model.image_size={SIZE}",
        f"++model.memory_attention.layer.self_attention.feat_sizes={rope}",
        f"++model.memory_attention.layer.cross_attention.feat_sizes={rope}",
    ]
    return build_sam2_video_predictor(
        CONFIG, str(checkpoint), device="cpu", hydra_overrides_extra=overrides
    )


@pytest.fixture(scope="module")
def graphs(sam2_checkpoint, tmp_path_factory):  # noqa: F811
    from vos_ros.trackers.sam2_onnx import export_graphs

    return export_graphs(small_model(sam2_checkpoint), tmp_path_factory.mktemp("graphs") / "g")


@pytest.fixture(scope="module")
def sam2_folder(sam2_checkpoint, tmp_path_factory):  # noqa: F811
    from vos_ros.pretrained.install import fetch_model

    root = tmp_path_factory.mktemp("sam2_trt")
    return str(fetch_model("sam2.1-hiera-tiny", root, checkpoint=sam2_checkpoint, quiet=True))


def test_profiles_follow_the_model_and_the_graphs(sam2_checkpoint, graphs):  # noqa: F811
    from vos_ros.trackers.sam2_tensorrt import profiles

    model = small_model(sam2_checkpoint)
    assert (model.num_maskmem, model.max_obj_ptrs_in_encoder) == (7, 16)
    assert (model.hidden_dim, model.mem_dim) == (256, 64)  # a pointer is 4 memory tokens
    p = profiles(model, graphs, max_targets=5)
    hw = SIDE * SIDE
    full = 7 * hw + 16 * 4  # prompt frame + 6 recent frames, prompt pointer + 15 recent ones
    assert p["memory_attention"]["memory"] == ((hw + 4, 1, 64), (full, 2, 64), (full, 5, 64))
    assert p["memory_attention"]["obj_ptr_marker"] == ((4,), (64,), (64,))
    assert p["memory_attention"]["curr"] == ((hw, 1, 256), (hw, 2, 256), (hw, 5, 256))
    assert p["image_encoder"] == {"image": ((1, 3, SIZE, SIZE),) * 3}
    assert p["memory_encoder"]["masks"] == (
        (1, 1, SIZE, SIZE),
        (2, 1, SIZE, SIZE),
        (5, 1, SIZE, SIZE),
    )
    decoder = p["mask_decoder"]
    assert decoder["sparse"] == ((1, 2, 256), (2, 2, 256), (5, 2, 256))  # a padding point + pad
    assert decoder["image_pe"] == ((1, 256, SIDE, SIDE),) * 3  # static in the graph
    assert decoder["high_res_0"][2] == (5, 32, 4 * SIDE, 4 * SIDE)
    assert set(p) == {"image_encoder", "memory_attention", "memory_encoder", "mask_decoder"}


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    base = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8), (0, 0), 5)
    return [np.roll(base, 3 * i, axis=1) for i in range(count)]


def _masks() -> dict[int, np.ndarray]:
    masks = {i: np.zeros((SIZE, SIZE), bool) for i in (1, 2, 3, 4)}
    masks[1][40:120, 30:110] = True
    masks[2][140:220, 60:200] = True
    masks[3][20:80, 150:240] = True
    masks[4][180:250, 10:90] = True
    return masks


def _track(model, frames: list[np.ndarray], late_at: int) -> list:
    """Targets 1-3 from frame 0 (one batch of 3), target 4 from frame ``late_at`` and target 5
    from a click on the next frame (batches of 1); logits of every tracked frame."""
    from vos_ros.trackers.sam2_stream import Sam2StreamTracker

    tracker = Sam2StreamTracker(model, "fp32")
    starts = {0: (1, 2, 3), late_at: (4,)}
    return scripted_stream(tracker, frames, _masks(), starts, (late_at + 1, 5), SIZE)


def test_tracker_shapes_fit_and_engines_run_as_the_graphs(sam2_checkpoint, graphs, tmp_path):  # noqa: F811
    """18 frames: targets 1-3 reach a full memory (frame 16 on), targets 4 and 5 run alone. Every
    shape the tracker feeds is inside the profiles, both ends of the memory range occur, and
    the engine path (inputs and outputs through bound addresses) gives what ONNX Runtime gives
    on the same graphs."""
    from vos_ros.trackers.sam2_onnx import GRAPH_IO, use_onnxruntime
    from vos_ros.trackers.sam2_tensorrt import profiles, use_tensorrt

    fake = FakeTensorRT()
    model = use_tensorrt(
        small_model(sam2_checkpoint),
        graphs,
        "fp16",
        3,
        str(tmp_path),
        CHECKPOINT_SHA,
        FakeToolchain(fake),
    )
    frames = _frames(18)
    got = _track(model, frames, late_at=4)
    expected = _track(use_onnxruntime(small_model(sam2_checkpoint), graphs), frames, late_at=4)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(a, b, atol=1e-3, err_msg=f"frame {index + 1}")
        assert 0.02 < float((b > 0).mean()) < 0.98  # real masks, not constant logits

    by_inputs = {tuple(inputs): graph for graph, (inputs, _, _) in GRAPH_IO.items()}
    seen: dict[str, list[dict]] = {}
    for inputs, shapes in fake.executions:
        seen.setdefault(by_inputs[inputs], []).append(shapes)
    assert set(seen) == set(GRAPH_IO)
    limits = profiles(small_model(sam2_checkpoint), graphs, 3)
    for graph, calls in seen.items():
        for shapes in calls:
            for name, shape in shapes.items():
                lo, _, hi = limits[graph][name]
                assert all(a <= x <= b for a, x, b in zip(lo, shape, hi, strict=True)), graph
    memory = {shapes["memory"] for shapes in seen["memory_attention"]}
    hw, full = SIDE * SIDE, 7 * SIDE * SIDE + 64
    assert (full, 3, 64) in memory  # targets 1-3, full memory
    assert (hw + 4, 1, 64) in memory  # target 4 on its first tracked frame
    assert (full, 1, 64) not in memory  # target 4 never reached it (13 frames)
    assert {s["pix_feat"][0] for s in seen["memory_encoder"]} == {1, 3}
    assert {s["sparse"][0] for s in seen["mask_decoder"]} == {1, 3}
    # batches per tracked frame: 1 (frames 1-4), 2 (frame 5), 3 (frames 6-17); the click's
    # multimask decoding on frame 5 is one more decoder call
    assert len(seen["memory_attention"]) == 4 + 2 + 12 * 3
    assert len(seen["mask_decoder"]) == 4 + 2 + 12 * 3 + 1
    assert len(seen["image_encoder"]) == 18 and fake.builds == 4


def test_shape_outside_the_profile_is_a_clear_error(sam2_checkpoint, graphs, tmp_path):  # noqa: F811
    from vos_ros.trackers.sam2_tensorrt import use_tensorrt

    model = use_tensorrt(
        small_model(sam2_checkpoint), graphs, "fp32", 2, str(tmp_path), CHECKPOINT_SHA,
        FakeToolchain(),
    )  # fmt: skip
    with pytest.raises(BackendError) as info:
        _track(model, _frames(2), late_at=99)  # 3 targets, engines built for at most 2
    message = str(info.value)
    assert "memory_attention input curr has shape (256, 3, 256)" in message
    assert "outside the engine's profile (256, 1, 256)..(256, 2, 256)" in message


def test_cache_keys_differ_per_graph_precision_and_profile(sam2_checkpoint, graphs):  # noqa: F811
    from vos_ros.trackers.sam2_tensorrt import profiles

    model = small_model(sam2_checkpoint)
    toolchain = FakeToolchain()
    keys = {}
    for max_targets in (3, 4):
        limits = profiles(model, graphs, max_targets)
        for graph, profile in limits.items():
            for precision in ("fp32", "fp16", "bf16"):
                key = toolchain.key(CHECKPOINT_SHA, graph, precision, profile)
                keys[graph, precision, max_targets] = key.digest()
                assert key.model_sha256 == CHECKPOINT_SHA and key.gpu_name == "Fake GPU"
    # the image encoder has no targets axis: its profile, hence its key, ignores max_targets
    distinct = {k: v for k, v in keys.items() if not (k[0] == "image_encoder" and k[2] == 4)}
    assert len(set(distinct.values())) == len(distinct) == 4 * 3 * 2 - 3
    assert keys["image_encoder", "fp16", 3] == keys["image_encoder", "fp16", 4]
    again = toolchain.key(
        CHECKPOINT_SHA, "mask_decoder", "fp16", profiles(model, graphs, 4)["mask_decoder"]
    )
    assert again.digest() == keys["mask_decoder", "fp16", 4]
    other = FakeToolchain(gpu_name="Other GPU").key(
        CHECKPOINT_SHA, "mask_decoder", "fp16", profiles(model, graphs, 4)["mask_decoder"]
    )
    assert other.digest() != again.digest()


def test_engines_are_built_once_then_reused(sam2_checkpoint, graphs, tmp_path):  # noqa: F811
    from vos_ros.trackers.sam2_tensorrt import load_engines

    model = small_model(sam2_checkpoint)
    first = FakeTensorRT()
    engines, limits, cache = load_engines(
        model, graphs, "fp16", 4, str(tmp_path), CHECKPOINT_SHA, FakeToolchain(first)
    )
    assert first.builds == 4 and all(built for _, built in engines.values())
    for plan in first.built:  # each graph built with its own profile and the fp16 flag
        graph = next(g for g, p in limits.items() if set(p) == set(plan["inputs"]))
        assert plan["flags"] == ["FP16"]
        assert plan["profile"] == {n: [list(s) for s in r] for n, r in limits[graph].items()}
    assert len(list(tmp_path.glob("*.engine"))) == 4 and len(list(tmp_path.glob("*.json"))) == 4
    assert len(list(tmp_path.glob("timing-trt10.0.0-fake-*.cache"))) == 1

    second = FakeTensorRT()  # a new process: everything comes from the cache
    engines, _, _ = load_engines(
        model, graphs, "fp16", 4, str(tmp_path), CHECKPOINT_SHA, FakeToolchain(second)
    )
    assert second.builds == 0 and not any(built for _, built in engines.values())
    assert isinstance(cache, EngineCache) and cache.folder == tmp_path

    for precision, flags in (("fp32", []), ("bf16", ["BF16"])):
        fake = FakeTensorRT()
        load_engines(
            model, graphs, precision, 4, str(tmp_path), CHECKPOINT_SHA, FakeToolchain(fake)
        )
        assert fake.builds == 4 and all(plan["flags"] == flags for plan in fake.built)
    with pytest.raises(BackendError, match="precision must be one of fp32, fp16, bf16"):
        load_engines(model, graphs, "int8", 4, str(tmp_path), CHECKPOINT_SHA, FakeToolchain())


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        (machine(), "tensorrt package is not importable"),
        (machine(tensorrt=True), "needs a CUDA GPU"),
    ],
)
def test_backend_tensorrt_without_tensorrt_or_cuda_fails_at_configure(
    sam2_folder, monkeypatch, caps, message
):
    from vos_ros.engine import EngineConfig, build_engine

    monkeypatch.setattr(MachineCapabilities, "probe", classmethod(lambda cls: caps))
    with pytest.raises(BackendError, match=message):
        build_engine(EngineConfig(model=sam2_folder, backend="tensorrt"))


@pytest.mark.skipif(
    tensorrt_gpu_reason() is None,
    reason="TensorRT and a CUDA GPU are here: test_tensorrt_fp16_matches_torch_fp32 runs instead",
)
def test_backend_tensorrt_on_this_machine_fails_at_configure(sam2_folder):
    """The real probe: without TensorRT or a GPU a BackendError, never a fallback."""
    from vos_ros.engine import EngineConfig, build_engine

    with pytest.raises(BackendError, match="CUDA only"):
        build_engine(EngineConfig(model=sam2_folder, backend="tensorrt", device="cpu"))
    with pytest.raises(BackendError, match=r"tensorrt package is not importable|CUDA GPU"):
        build_engine(EngineConfig(model=sam2_folder, backend="tensorrt"))


def test_auto_keeps_torch_even_with_tensorrt_importable(sam2_folder, monkeypatch):
    from vos_ros.engine import EngineConfig, build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert tensorrt_importable()
    engine = build_engine(EngineConfig(model=sam2_folder, device="cpu"))
    assert engine.backend_name == "torch"


def test_build_engine_command_on_a_sam2_folder(sam2_folder, tmp_path, monkeypatch, capsys):
    args = ["build-engine", "--model", sam2_folder, "--cache-dir", str(tmp_path)]
    monkeypatch.setattr(MachineCapabilities, "probe", classmethod(lambda cls: machine()))
    assert cli_main(args) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err
    # with TensorRT and a GPU the sam2 branch is taken: it refuses options of the other family
    full = machine(tensorrt=True, torch_cuda=True)
    monkeypatch.setattr(MachineCapabilities, "probe", classmethod(lambda cls: full))
    assert cli_main([*args, "--short-side", "512"]) == 2
    assert "do not apply to a sam2 model" in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_gpu_reason() is not None, reason=str(tensorrt_gpu_reason()))
@pytest.mark.parametrize("targets", [1, 3])
def test_tensorrt_fp16_matches_torch_fp32(sam2_folder, tmp_path, targets):
    """Real engines on a GPU: per frame and target IoU >= 0.98 against torch fp32 on CUDA."""
    settings = {"backend": "tensorrt", "precision": "fp16", "cache_dir": str(tmp_path)}
    trt = engine_against_cuda_fp32(sam2_folder, targets, **settings)
    assert trt.backend_name == "tensorrt-fp16"
