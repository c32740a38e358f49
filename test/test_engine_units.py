"""Unit tests of the engine's parts: config, manifest, memory, aggregation, prior."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from engine_testlib import write_model_dir

from vos_ros.engine import ConfigError, EngineConfig, Prompt, build_engine
from vos_ros.engine.aggregation import argmax_channels, mask_box, soft_aggregate
from vos_ros.engine.engine import VosEngine, processing_size
from vos_ros.engine.manifest import ModelFileError, load_manifest
from vos_ros.engine.memory import MemoryBank
from vos_ros.engine.prior import apply_box_prior, enlarged_box
from vos_ros.model.contract import KEY_DIM, PROTOS_PER_FRAME


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backend", "tflite", "backend must be one of"),
        ("processing_short_side", 16, "at least 32"),
        ("threads", -1, "threads must be at least 0"),
        ("max_targets", 0, "max_targets must be at least 1"),
        ("prior_scale", 0.5, "prior_scale must be in"),
        ("use_flow", "yes", "use_flow must be true or false"),
        ("memory_size", 2.5, "memory_size must be an integer"),
        ("model", "", "model must be"),
        ("decoder_window_scale", 0.5, "0 \\(off\\) or at least 1"),
        ("decoder_window_min", 1.5, "decoder_window_min must be in"),
        ("lost_search_every", 0, "lost_search_every must be at least 1"),
        ("fallback", (("motion_kap", 2.0),), "fallback.motion_kap: not a fallback setting"),
        ("fallback", (("redetect", 1),), "fallback.redetect must be true or false"),
        ("fallback", (("motion_cap", "2"),), "fallback.motion_cap must be a number"),
        ("fallback", (("motion_cap", float("nan")),), "fallback.motion_cap must be finite"),
        ("fallback", ("motion_cap",), "fallback: "),
        # out of range: each would give NaN or infinite log-odds, or a meaningless share
        ("fallback", (("prior_inside", 1.5),), "fallback.prior_inside must be in"),
        ("fallback", (("prior_outside", 0.0),), "fallback.prior_outside must be in"),
        ("fallback", (("prior_outside", 0.95),), "must be below fallback.prior_inside"),
        ("fallback", (("motion_min_spread", 0.0),), "fallback.motion_min_spread must be in"),
        ("fallback", (("refine_eps", 0.0),), "fallback.refine_eps must be in"),
        ("fallback", (("motion_inside_weight", 1.2),), "fallback.motion_inside_weight must be"),
        ("fallback", (("colour_weight", -1.0),), "fallback.colour_weight must be in"),
        ("fallback", (("redetect_min_area", 4.0),), "must not exceed fallback.redetect_max_area"),
        ("fallback", (("uncovered_weight", 2.0),), "fallback.uncovered_weight must be in"),
    ],
)
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig(**{field: value})


def test_fallback_settings_reach_the_fallback_and_only_it(tmp_path):
    engine = build_engine(EngineConfig(fallback=(("motion_cap", 2), ("redetect", False))))
    settings = engine.predictor.settings
    assert settings.motion_cap == 2.0 and settings.redetect is False
    assert settings.prior_sigma == 8.0  # the rest keep their defaults
    with pytest.raises(ConfigError, match="model 'flow' or a network with fuse_fallback > 0"):
        # a network that runs alone (its manifest sets no fusion): refused when it is built
        build_engine(
            EngineConfig(
                model=str(write_model_dir(tmp_path / "tiny")), fallback=(("motion_cap", 2),)
            )
        )


def test_flow_preset_auto_is_medium_for_the_fallback_and_ultrafast_for_networks(tmp_path):
    network = str(write_model_dir(tmp_path / "tiny"))
    assert EngineConfig().dis_preset == "medium"
    assert EngineConfig(model=network).dis_preset == "ultrafast"
    assert EngineConfig(model=network, flow_preset="medium").dis_preset == "medium"
    assert EngineConfig(flow_preset="fast").dis_preset == "fast"
    finest = {}
    for preset in ("auto", "ultrafast"):
        engine = build_engine(EngineConfig(flow_preset=preset))
        engine.step(np.zeros((96, 128, 3), np.uint8))  # the stream (and its flow) starts here
        finest[preset] = engine._warper._dis.getFinestScale()
    assert finest == {"auto": 1, "ultrafast": 2}  # medium refines down to half resolution


def test_node_flow_round_trip_and_fuse_fallback_parameters_reach_the_right_engine(tmp_path):
    pytest.importorskip("rclpy")
    from vos_ros.engine.fallback import ROUND_TRIP_PX
    from vos_ros.ros.node import build_node_engine
    from vos_ros.ros.params import NodeConfig

    def node_engine(**values):
        return build_node_engine(NodeConfig.from_values({"warmup": False, **values}))

    flow = {"model": "flow"}
    assert node_engine(**flow).predictor.settings.uncovered_px == 0.0  # off by default
    on = node_engine(**flow, **{"engine.flow_round_trip": True})
    assert on.predictor.settings.uncovered_px == ROUND_TRIP_PX > 0
    # the default model (protonet-s) runs fused: its fallback takes it too
    default = node_engine(**{"engine.flow_round_trip": True}).predictor
    assert default.fallback.settings.uncovered_px == ROUND_TRIP_PX
    # a network has no fallback settings: the parameter is ignored, not an error
    network = str(write_model_dir(tmp_path / "tiny"))
    engine = node_engine(model=network, **{"engine.flow_round_trip": True})
    assert engine.config.fallback == ()
    # fused with a network, the fallback takes it
    fused = node_engine(
        model=network, **{"engine.flow_round_trip": True, "engine.fuse_fallback": 2.0}
    )
    assert fused.predictor.weight == 2.0
    assert fused.predictor.fallback.settings.uncovered_px == ROUND_TRIP_PX
    # the fallback alone has nothing to fuse: the weight is ignored, not an error
    assert node_engine(**flow, **{"engine.fuse_fallback": 2.0}).config.fuse_fallback == 0.0


def test_short_sides_round_to_the_stride():
    assert EngineConfig.round_short_side(360) == 352
    assert EngineConfig.round_short_side(480) == 480
    assert EngineConfig.round_short_side(40) == 32
    engine = build_engine(EngineConfig(model="flow", processing_short_side=360))
    engine.step(np.zeros((480, 854, 3), np.uint8))
    assert engine.short_side == 352


def test_processing_size_keeps_aspect_and_stride():
    assert processing_size((480, 854), 288) == (512, 288)
    assert processing_size((854, 480), 288) == (288, 512)
    assert processing_size((360, 640), 352) == (640, 352)


def test_manifest_checks_checksums_sizes_and_signatures(tmp_path):
    folder = write_model_dir(tmp_path / "tiny")
    manifest = load_manifest(folder)
    assert manifest.short_side == 160 and manifest.memory_every == 3 and manifest.c4 == 3
    assert len(manifest.model_sha256) == 64

    data = (folder / "decoder.onnx").read_bytes()
    (folder / "decoder.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelFileError, match=r"decoder\.onnx: sha256 mismatch"):
        load_manifest(folder)
    (folder / "decoder.onnx").write_bytes(data[:-10])
    with pytest.raises(ModelFileError, match=r"decoder\.onnx: size is"):
        load_manifest(folder)
    (folder / "decoder.onnx").unlink()
    with pytest.raises(ModelFileError, match=r"decoder\.onnx: listed in model.yaml but missing"):
        load_manifest(folder)


def test_manifest_rejects_off_contract_graphs_and_fields(tmp_path):
    good = write_model_dir(tmp_path / "a")
    other = write_model_dir(tmp_path / "b")
    # swap the graphs: names no longer follow the contract
    raw = yaml.safe_load((good / "model.yaml").read_text())
    (good / "decoder.onnx").write_bytes((other / "encoder.onnx").read_bytes())
    raw["files"]["decoder.onnx"] = raw["files"]["encoder.onnx"]
    (good / "model.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelFileError, match=r"decoder\.onnx: inputs are \['image'\]"):
        load_manifest(good)
    raw = yaml.safe_load((other / "model.yaml").read_text())
    raw["input"]["std"] = [0.2, 0.2]
    (other / "model.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelFileError, match=r"input\.std must be 3 numbers"):
        load_manifest(other)
    (other / "model.yaml").write_text("- not: a mapping")
    with pytest.raises(ModelFileError, match="must be a mapping"):
        load_manifest(other)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_manifest(tmp_path / "nowhere")


def _protos(value: float) -> tuple[np.ndarray, np.ndarray]:
    fg = np.full((PROTOS_PER_FRAME, KEY_DIM), value, np.float32)
    return fg, -fg


def test_memory_budget_padding_and_cache():
    bank = MemoryBank(permanent_size=2, ring_size=3, every=5)
    bank.get(1).add_permanent(*_protos(1.0))
    for v in (2.0, 3.0, 4.0, 5.0):
        bank.get(1).add_recent(*_protos(v))
    bank.get(2).add_permanent(*_protos(9.0))
    fg, _ = bank.gather([1, 2])
    assert fg.shape == (2, 4 * PROTOS_PER_FRAME, KEY_DIM) and fg.flags.c_contiguous
    firsts = fg[0, ::PROTOS_PER_FRAME, 0].tolist()
    assert firsts[0] == 1.0 and sorted(firsts[1:]) == [3.0, 4.0, 5.0]  # oldest recent dropped
    assert (fg[1] == 9.0).all()  # padded with its own annotation
    assert bank.gather([1, 2])[0] is fg  # cached until memory changes
    bank.get(2).add_recent(*_protos(7.0))
    assert bank.gather([1, 2])[0] is not fg
    nbytes = bank.nbytes()
    for v in range(50):
        bank.get(1).add_recent(*_protos(float(v)))
    assert bank.nbytes() == nbytes
    bank.get(1).add_permanent(*_protos(8.0), replace=True)
    assert bank.get(1).num_entries == 1


def test_soft_aggregation_is_a_partition():
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=(3, 20, 30)).astype(np.float32)
    agg = soft_aggregate(probs)
    assert agg.shape == (4, 20, 30)
    np.testing.assert_allclose(agg.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(argmax_channels(agg), np.argmax(agg, axis=0))
    # a confident target beats an unsure one on the same pixel; order of targets does not matter
    two = np.stack([np.full((2, 2), 0.9), np.full((2, 2), 0.6)]).astype(np.float32)
    assert (argmax_channels(soft_aggregate(two)) == 1).all()
    assert (argmax_channels(soft_aggregate(two[::-1].copy())) == 2).all()
    assert soft_aggregate(np.zeros((0, 4, 4), np.float32))[0].min() == 1.0


def test_mask_box_and_prior():
    mask = np.zeros((10, 20), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == (3, 2, 9, 5)
    assert mask_box(np.zeros((4, 4), bool)) == (0, 0, 0, 0)
    prev = np.zeros((1, 40, 40), np.float32)
    prev[0, 10:20, 10:30] = 1.0
    assert enlarged_box(prev[0], 1.25) == (7, 8, 33, 22)
    probs = np.zeros((1, 40, 40), np.float32)
    probs[0, 0:3, 0:3] = 0.6  # weak response far away: dropped
    probs[0, 35:38, 35:38] = 0.95  # strong one: kept
    probs[0, 12:18, 12:28] = 0.8  # inside the box: kept
    apply_box_prior(probs, prev, np.array([True]), 1.25, 0.9)
    assert probs[0, :3, :3].max() == 0 and probs[0, 36, 36] == np.float32(0.95)
    assert probs[0, 15, 15] == np.float32(0.8)


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_argmax_in_winning_regions_equals_the_dense_argmax(n):
    import cv2

    from vos_ros.engine.aggregation import winning_regions

    rng = np.random.default_rng(n)
    h, w, out_h, out_w = 36, 64, 121, 230  # odd scale factors on purpose
    probs = np.zeros((n, h, w), np.float32)
    for i in range(n):  # one blob per target, some overlapping, plus weak noise
        y, x = rng.integers(0, h), rng.integers(0, w)
        probs[i, max(0, y - 6) : y + 6, max(0, x - 8) : x + 8] = rng.uniform(0.5, 1.0)
        probs[i] += rng.uniform(0, 0.05, (h, w)).astype(np.float32)
    agg = soft_aggregate(np.clip(probs, 0, 1))
    full = np.stack([cv2.resize(c, (out_w, out_h), interpolation=cv2.INTER_LINEAR) for c in agg])
    dense = argmax_channels(full)
    sparse = argmax_channels(full, regions=winning_regions(agg, (out_h, out_w)))
    np.testing.assert_array_equal(sparse, dense)
    np.testing.assert_array_equal(dense, np.argmax(full, axis=0))


@pytest.mark.parametrize("n", [2, 5, 12])
def test_masks_from_winning_regions_equal_full_frame_masks(n):
    import cv2

    from vos_ros.engine.aggregation import region_mask, winning_regions

    rng = np.random.default_rng(n)
    h, w, out_h, out_w = 36, 64, 121, 230
    probs = np.zeros((n, h, w), np.float32)
    for i in range(n):
        y, x = rng.integers(0, h), rng.integers(0, w)
        probs[i, max(0, y - 6) : y + 6, max(0, x - 8) : x + 8] = rng.uniform(0.5, 1.0)
        probs[i] += rng.uniform(0, 0.05, (h, w)).astype(np.float32)
    agg = soft_aggregate(np.clip(probs, 0, 1))
    full = np.stack([cv2.resize(c, (out_w, out_h), interpolation=cv2.INTER_LINEAR) for c in agg])
    regions = winning_regions(agg, (out_h, out_w))
    index = argmax_channels(full, regions=regions)
    for slot in range(n):
        mask, box = region_mask(index, slot + 1, regions[slot])
        np.testing.assert_array_equal(mask, index == slot + 1)
        assert box == mask_box(index == slot + 1)
    empty, box = region_mask(index, n + 1, (0, 0, 0, 0))
    assert not empty.any() and empty.shape == index.shape and box == (0, 0, 0, 0)


def test_prepare_normalises_like_the_training_pipeline():
    from vos_ros.engine.predictor import NetworkPredictor

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    backend = type("Backend", (), {"name": "none", "device": "cpu"})()
    predictor = NetworkPredictor(backend, MemoryBank(1, 1, 1), mean, std, "local-bg")
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    expected = (rgb.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
    got = predictor.prepare(rgb)
    assert got.shape == (1, 3, 64, 96) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected.transpose(2, 0, 1), atol=1e-5)


def test_single_target_result_matches_its_label_image():
    engine = build_engine(EngineConfig(model="flow", processing_short_side=64))
    labels = np.zeros((72, 128), np.uint16)
    labels[20:50, 30:80] = 1
    frame = np.random.default_rng(1).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    engine.step(frame, Prompt(labels))
    result = engine.step(frame)
    (target,) = result.targets
    assert target.mask.dtype == bool
    np.testing.assert_array_equal(target.mask, result.label_image == 1)
    assert target.box == mask_box(target.mask)


def test_network_engine_runs_numpy_blas_on_one_thread(tmp_path):
    # Memory writes multiply small matrices; a BLAS split over busy cores stalls (cpu_threads).
    from threadpoolctl import threadpool_info

    build_engine(EngineConfig(model=str(write_model_dir(tmp_path / "tiny"))))
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)


def test_flow_runs_at_the_mask_resolution(tmp_path):
    engine = build_engine(EngineConfig(model=str(write_model_dir(tmp_path / "tiny"))))
    frame = np.zeros((180, 320, 3), np.uint8)
    labels = np.zeros((180, 320), np.uint16)
    labels[40:120, 100:200] = 1
    engine.step(frame, Prompt(labels))
    assert engine._flow_wh == engine._mask_wh


def _three_targets(tmp_path, every: int):
    model = str(write_model_dir(tmp_path / "tiny"))
    engine = build_engine(EngineConfig(model=model, lost_search_every=every))
    frame = np.zeros((180, 320, 3), np.uint8)
    labels = np.zeros((180, 320), np.uint16)
    labels[20:80, 20:100], labels[100:160, 20:100], labels[20:80, 200:300] = 1, 2, 3
    engine.step(frame, Prompt(labels))
    return engine, frame


def test_lost_targets_are_searched_after_the_loss_then_every_kth_frame(tmp_path):
    engine, _ = _three_targets(tmp_path, every=3)
    engine._frame_index = now = 20  # late enough in the stream for every loss start below
    slots = np.arange(3)
    expected = {1: True, 2: False, 3: False, 4: True, 5: False, 7: True}  # frames lost so far
    for frames_lost, searched in expected.items():
        engine._lost_since = np.array([-1, now - frames_lost, now - frames_lost])
        assert engine._searched(slots).tolist() == [True, searched, searched], frames_lost


def test_a_lost_target_skipped_on_a_frame_stays_tracked_and_invisible(tmp_path):
    engine, frame = _three_targets(tmp_path, every=3)
    decoded: list[list[int]] = []
    predict = engine.predictor.predict

    def recording_predict(features, ids, previous, windows=None):
        decoded.append(list(ids))
        return predict(features, ids, previous, windows)

    for _ in range(3):
        engine.step(frame)
    engine.predictor.predict = recording_predict
    engine._lost_since = np.array([-1, -1, engine._frame_index - 2])  # lost 2 frames: skipped
    result = engine.step(frame)
    assert decoded == [[1, 2]]
    third = next(t for t in result.targets if t.target_id == 3)
    assert not third.visible and not third.mask.any()
    assert engine._lost_since[2] == engine._frame_index - 3  # the loss goes on, same start


def test_loss_starts_are_the_same_when_a_frame_is_settled_twice():
    since = np.array([-1, -1, 4])
    visible = np.array([True, False, False])
    once = VosEngine._loss_starts(since, visible, 9)
    assert once.tolist() == [-1, 9, 4]
    assert VosEngine._loss_starts(once, visible, 9).tolist() == once.tolist()


def test_lost_search_every_one_decodes_every_target_each_frame(tmp_path):
    model = str(write_model_dir(tmp_path / "tiny"))
    engine = build_engine(EngineConfig(model=model, lost_search_every=1))
    engine._lost_since = np.array([-1, 5])
    engine._frame_index = 7
    assert engine._searched(np.array([0, 1])).all()
