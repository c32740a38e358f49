"""EdgeTAM's graph backends, tested here without a GPU: the five exported graphs give what the
library's modules give (1 and 2 targets: the targets axis is dynamic) and use only operators
TensorRT 10 parses; the engine on ONNX Runtime matches the engine on torch; the TensorRT
profiles follow the model's config and cover every shape the streaming tracker feeds (both
ends of the memory range), engines run as the graphs, are built once, and ``build-engine``
builds them.

Seeded random weights at a 256 x 256 input (edgetam_testlib). The engines are FakeTensorRT's
(tensorrt_testlib), which run each graph in ONNX Runtime on the bound addresses.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from edgetam_testlib import SMALL, small_edgetam, small_edgetam_hiera  # noqa: F401  (fixtures)
from sam2_testlib import engine_against_cuda_fp32, iou, scripted_stream
from tensorrt_testlib import FakeTensorRT, FakeToolchain, machine, tensorrt_gpu_reason

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SIDE = SMALL // 16
CHECKPOINT_SHA = "e" * 64


def _model(folder: str):
    from vos_ros.engine.sam2_predictor import build_architecture_model
    from vos_ros.trackers.sam2_manifest import load_sam2_manifest

    return build_architecture_model(load_sam2_manifest(folder), "cpu")


@pytest.fixture(scope="module")
def graphs(small_edgetam, tmp_path_factory) -> Path:  # noqa: F811
    from vos_ros.trackers.edgetam_onnx import export_graphs

    return export_graphs(_model(small_edgetam), tmp_path_factory.mktemp("edgetam_graphs") / "g")


@pytest.fixture(scope="module")
def hiera_graphs(small_edgetam_hiera, tmp_path_factory) -> Path:  # noqa: F811
    from vos_ros.trackers.edgetam_onnx import export_graphs

    model = _model(small_edgetam_hiera)
    return export_graphs(model, tmp_path_factory.mktemp("edgetam_hiera_graphs") / "g")


@pytest.mark.parametrize("encoder", ["repvit", "hiera"])
def test_graphs_give_the_library_modules_outputs(request, encoder):
    """As published (RepViT) and with the port's default encoder (a Hiera, whose bicubic
    positional embedding is folded in)."""
    import torch

    from vos_ros.engine.onnx_ops import tensorrt_problems
    from vos_ros.trackers.edgetam_onnx import GRAPHS, _export_modules, example_inputs
    from vos_ros.trackers.onnx_graphs import OnnxRuntimeGraph

    hiera = encoder == "hiera"
    model = _model(request.getfixturevalue("small_edgetam_hiera" if hiera else "small_edgetam"))
    graphs = request.getfixturevalue("hiera_graphs" if hiera else "graphs")
    modules = _export_modules(model)
    for graph in GRAPHS:
        assert tensorrt_problems(graphs / f"{graph}.onnx") == [], graph
        session = OnnxRuntimeGraph(graphs / f"{graph}.onnx")
        for targets in (1, 2) if graph != "image_encoder" else (1,):
            inputs = example_inputs(model, targets)[graph]
            got = session(*inputs)
            with torch.no_grad():
                # the library's perceiver takes one target at a time: the reference per target
                rows = [
                    modules[graph](*(x[i : i + 1] for x in inputs)) for i in range(targets)
                ] if graph == "spatial_perceiver" else [modules[graph](*inputs)]  # fmt: skip
            want = (
                [torch.cat(parts) for parts in zip(*rows, strict=True)]
                if len(rows) > 1
                else rows[0]
            )
            want = [want] if torch.is_tensor(want) else list(want)
            assert len(got) == len(want), graph
            for a, b in zip(got, want, strict=True):
                assert a.shape == b.shape, (graph, targets)
                # relative to the output's range: the memory attention, drawn 5x larger (see
                # edgetam_testlib), has sharp softmaxes where the two runtimes' float32 kernels
                # differ by up to ~1e-3 of the range on a few elements
                error, scale = (a - b).abs(), float(b.abs().max())
                assert float(error.max()) <= 2e-3 * scale, (graph, targets)
                assert float(error.mean()) <= 1e-5 * scale, (graph, targets)


def _frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    # with these frames the random weights mostly see the targets (others read as occlusions)
    rng = np.random.default_rng(11)
    base = cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), np.uint8), (0, 0), 4)
    return [np.roll(base, 5 * i, axis=1) for i in range(count)]


def test_onnxruntime_engine_matches_torch(small_edgetam, tmp_path):  # noqa: F811
    """Two targets from frame 0, a third from frame 4: per frame and target IoU >= 0.99, the
    same visibility and logits within 1e-3; the graphs are exported once into the cache."""
    from vos_ros.engine import EngineConfig, Prompt, build_engine

    config = EngineConfig(model=small_edgetam, backend="onnxruntime", cache_dir=str(tmp_path))
    onnx = build_engine(config)
    assert onnx.backend_name == "onnxruntime"
    (folder,) = (tmp_path / "sam2-onnx").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{g}.onnx" for g in ("image_encoder", "memory_attention", "memory_encoder",
                              "spatial_perceiver", "mask_decoder")
    )  # fmt: skip
    reference = build_engine(EngineConfig(model=small_edgetam, backend="torch"))
    first = np.zeros((240, 320), np.uint16)
    first[40:120, 50:140] = 1
    first[140:220, 180:300] = 2
    later = np.zeros((240, 320), np.uint16)
    later[20:90, 200:280] = 3
    shown = 0
    for index, frame in enumerate(_frames(9, (240, 320))):
        prompt = {0: Prompt(first), 4: Prompt(later)}.get(index)
        a, b = onnx.step(frame, prompt), reference.step(frame, prompt)
        assert [t.target_id for t in a.targets] == [t.target_id for t in b.targets]
        for x, y in zip(a.targets, b.targets, strict=True):
            assert x.visible == y.visible, (index, x.target_id)
            assert float(np.abs(x.prob - y.prob).max()) <= 1e-3, (index, x.target_id)
            if y.visible:
                assert iou(x.prob > 0.5, y.prob > 0.5) >= 0.99, (index, x.target_id)
                shown += 1
    assert shown >= 15  # of 21 outputs: most are real masks, not occlusions
    # a second engine on the same cache loads the graphs instead of exporting them again
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    build_engine(config)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamp


def test_profiles_follow_the_config(small_edgetam, graphs):  # noqa: F811
    from vos_ros.trackers.edgetam_tensorrt import EDGETAM
    from vos_ros.trackers.sam2_tensorrt import profiles

    model = _model(small_edgetam)
    config = model.config
    assert (config.num_maskmem, config.max_object_pointers_in_encoder) == (7, 16)
    assert (model.hidden_dim, model.mem_dim) == (256, 64)  # a pointer is 4 memory tokens
    per_frame = 256 + 256  # the perceiver's 1D and 2D latents
    full = 7 * per_frame + 16 * 4  # prompt frame + 6 recent, prompt pointer + 15 recent
    p = profiles(model, graphs, 3, EDGETAM)
    assert set(p) == set(EDGETAM.graphs)
    attention = p["memory_attention"]
    # a batch of up to 3 targets, optimised for OPT_TARGETS (2)
    assert attention["memory"] == ((per_frame + 4, 1, 64), (full, 2, 64), (full, 3, 64))
    assert attention["frame_marker"] == ((1,), (7,), (7,))
    assert attention["obj_ptr_marker"] == ((4,), (64,), (64,))
    assert attention["curr"] == (
        (SIDE * SIDE, 1, 256),
        (SIDE * SIDE, 2, 256),
        (SIDE * SIDE, 3, 256),
    )
    assert p["image_encoder"] == {"image": ((1, 3, SMALL, SMALL),) * 3}
    assert p["spatial_perceiver"]["features"] == tuple((n, 64, SIDE, SIDE) for n in (1, 2, 3))
    assert p["mask_decoder"]["sparse"] == ((1, 1, 2, 256), (2, 1, 2, 256), (3, 1, 2, 256))


def _track(model, frames: list[np.ndarray]) -> list:
    """Targets 1 and 2 from frame 0, target 3 from frame 10, target 4 from a click on frame 11;
    the logits of every tracked frame."""
    from vos_ros.trackers.edgetam_stream import EdgeTamStreamTracker

    tracker = EdgeTamStreamTracker(model, "fp32")
    masks = {i: np.zeros((SMALL, SMALL), bool) for i in (1, 2, 3)}
    masks[1][40:120, 30:110] = True
    masks[2][140:220, 60:200] = True
    masks[3][20:80, 150:240] = True
    return scripted_stream(tracker, frames, masks, {0: (1, 2), 10: (3,)}, (11, 4), SMALL)


def test_tensorrt_engines_run_as_the_graphs(small_edgetam, graphs, tmp_path):  # noqa: F811
    """18 frames: targets 1 and 2 reach a full memory as one batch, targets 3 and 4 start
    late. Every shape the tracker feeds is inside the profiles, both ends of the memory range
    occur, and the engine path (inputs and outputs through bound addresses) gives what ONNX
    Runtime gives."""
    from vos_ros.trackers.edgetam_onnx import GRAPH_IO, use_onnxruntime
    from vos_ros.trackers.edgetam_tensorrt import EDGETAM
    from vos_ros.trackers.sam2_tensorrt import load_engines, profiles, use_tensorrt

    fake = FakeTensorRT()
    model = use_tensorrt(
        _model(small_edgetam), graphs, "fp16", 3, str(tmp_path), CHECKPOINT_SHA,
        FakeToolchain(fake), graph_set=EDGETAM,
    )  # fmt: skip
    frames = _frames(18, (SMALL, SMALL))
    got = _track(model, frames)
    expected = _track(use_onnxruntime(_model(small_edgetam), graphs), frames)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(a, b, atol=1e-3, err_msg=f"frame {index + 1}")

    by_inputs = {tuple(inputs): graph for graph, (inputs, _, _) in GRAPH_IO.items()}
    seen: dict[str, list[dict]] = {}
    for inputs, shapes in fake.executions:
        seen.setdefault(by_inputs[inputs], []).append(shapes)
    assert set(seen) == set(GRAPH_IO)
    limits = profiles(_model(small_edgetam), graphs, 3, EDGETAM)
    for graph, calls in seen.items():
        for shapes in calls:
            for name, shape in shapes.items():
                lo, _, hi = limits[graph][name]
                assert all(a <= x <= b for a, x, b in zip(lo, shape, hi, strict=True)), graph
    frames_seen = {shapes["frame_marker"][0] for shapes in seen["memory_attention"]}
    assert frames_seen == set(range(1, 8))  # the prompt frame alone, up to a full memory
    full = 7 * 512 + 64
    assert (full, 2, 64) in {shapes["memory"] for shapes in seen["memory_attention"]}
    assert len(seen["image_encoder"]) == 18 and fake.builds == 5

    again = FakeTensorRT()  # a new process: every engine comes from the cache
    engines, _, _ = load_engines(
        _model(small_edgetam), graphs, "fp16", 3, str(tmp_path), CHECKPOINT_SHA,
        FakeToolchain(again), EDGETAM,
    )  # fmt: skip
    assert again.builds == 0 and set(engines) == set(EDGETAM.graphs)


def test_build_engine_command_builds_edgetam_engines(small_edgetam, tmp_path, monkeypatch, capsys):  # noqa: F811
    """``vos-ros build-engine`` on an EdgeTAM folder: five graphs exported and built, then
    reported up to date. The model is built on the CPU here (no GPU), the engines are fakes."""
    import vos_ros.engine.sam2_predictor as predictor
    from vos_ros.cli import main
    from vos_ros.engine.backends.select import MachineCapabilities
    from vos_ros.trackers.sam2_tensorrt import Toolchain

    full = machine(tensorrt=True, torch_cuda=True)
    monkeypatch.setattr(MachineCapabilities, "probe", classmethod(lambda cls: full))
    monkeypatch.setattr(Toolchain, "open", classmethod(lambda cls: FakeToolchain()))
    build = predictor.build_architecture_model
    monkeypatch.setattr(predictor, "build_architecture_model", lambda m, device: build(m, "cpu"))
    args = ["build-engine", "--model", small_edgetam, "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for graph in ("image_encoder", "memory_attention", "memory_encoder", "spatial_perceiver",
                  "mask_decoder"):  # fmt: skip
        assert f"{graph}: built in {tmp_path}" in out
    assert "Fake GPU" in out and "fp16" in out
    assert main(args) == 0
    assert capsys.readouterr().out.count("up to date (cached)") == 5


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        (machine(), "tensorrt package is not importable"),
        (machine(tensorrt=True), "needs a CUDA GPU"),
    ],
)
def test_backend_tensorrt_without_tensorrt_or_cuda_fails_at_configure(
    small_edgetam,  # noqa: F811
    monkeypatch,
    caps,
    message,
):
    from vos_ros.engine import EngineConfig, build_engine
    from vos_ros.engine.backends.base import BackendError
    from vos_ros.engine.backends.select import MachineCapabilities

    monkeypatch.setattr(MachineCapabilities, "probe", classmethod(lambda cls: caps))
    with pytest.raises(BackendError, match=message):
        build_engine(EngineConfig(model=small_edgetam, backend="tensorrt"))


@pytest.mark.skipif(tensorrt_gpu_reason() is not None, reason=str(tensorrt_gpu_reason()))
@pytest.mark.parametrize("targets", [1, 3])
def test_tensorrt_fp16_matches_torch_fp32(small_edgetam, tmp_path, targets):  # noqa: F811
    """Real engines on a GPU: per frame and target IoU >= 0.98 against torch fp32 on CUDA."""
    settings = {"backend": "tensorrt", "precision": "fp16", "cache_dir": str(tmp_path)}
    trt = engine_against_cuda_fp32(small_edgetam, targets, **settings)
    assert trt.backend_name == "tensorrt-fp16"
