"""TensorRT engine cache, profiles and backend choice; runs on CPU without TensorRT.

Tests that need TensorRT and a GPU run when both exist and are skipped with the reason otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_testlib import write_model_dir
from tensorrt_testlib import FakeTensorRT, machine, tensorrt_gpu_reason

from vos_ros.cli import main as cli_main
from vos_ros.engine import EngineConfig, build_engine
from vos_ros.engine.backends.base import BackendError
from vos_ros.engine.backends.select import choose_backend, resolve_precision
from vos_ros.engine.backends.tensorrt_backend import (
    CacheKey,
    EngineCache,
    check_within,
    load_or_build,
    profile_shapes,
    tensorrt_importable,
)
from vos_ros.model import contract

PROFILE = profile_shapes(288, max_targets=8, max_memory_frames=6, opt_memory_frames=5, c4=32, c8=64)


def _key(**changes) -> CacheKey:
    fields = {
        "model_sha256": "a" * 64,
        "graph": "decoder",
        "tensorrt_version": "10.3.0",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "precision": "fp16",
        "profile": PROFILE["decoder"],
    }
    fields.update(changes)
    return CacheKey.create(**fields)


def test_cache_key_changes_with_every_component():
    base = _key()
    other_profile = profile_shapes(320, 8, 6, 5, 32, 64)["decoder"]
    variants = [
        _key(model_sha256="b" * 64),
        _key(graph="encoder"),
        _key(tensorrt_version="10.4.0"),
        _key(gpu_name="NVIDIA GeForce RTX 4090"),
        _key(compute_capability="8.9"),
        _key(precision="fp32"),
        _key(profile=other_profile),
    ]
    digests = {base.digest()} | {v.digest() for v in variants}
    assert len(digests) == 1 + len(variants)
    assert _key().digest() == base.digest()  # deterministic
    assert len({base.file_stem()} | {v.file_stem() for v in variants}) == 1 + len(variants)


def test_profile_shapes_cover_the_engine_shapes():
    enc, dec = PROFILE["encoder"], PROFILE["decoder"]
    assert enc["image"] == ((1, 3, 288, 288), (1, 3, 288, 512), (1, 3, 736, 736))
    ppf = contract.PROTOS_PER_FRAME
    assert dec["proto_fg"] == ((1, ppf, 64), (2, 5 * ppf, 64), (8, 6 * ppf, 64))
    assert dec["prev_mask"][1] == (2, 1, 72, 128)
    assert dec["key"][1] == (1, contract.KEY_DIM, 36, 64) and dec["f4"][1] == (1, 32, 72, 128)
    # landscape and portrait 854x480 streams fit; more targets than max_targets do not
    check_within(enc, {"image": (1, 3, 288, 512)})
    check_within(enc, {"image": (1, 3, 512, 288)})
    check_within(dec, {"proto_fg": (3, 2 * ppf, 64), "prev_mask": (3, 1, 72, 128)})
    with pytest.raises(BackendError, match="outside the engine's profile"):
        check_within(dec, {"proto_fg": (9, ppf, 64)})
    with pytest.raises(ValueError, match="multiple of 32"):
        profile_shapes(300, 8, 6, 5, 32, 64)


def test_cache_hit_after_first_build(tmp_path):
    cache, trt, key = EngineCache(tmp_path), FakeTensorRT(), _key()
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and trt.builds == 1 and engine == {"engine": 104}
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert not built and trt.builds == 1
    meta = json.loads(cache.paths(key)[1].read_text())
    assert meta["key"]["gpu_name"] == "NVIDIA H100 80GB HBM3" and meta["bytes"] == 104


def test_stale_key_is_rebuilt(tmp_path):
    cache, trt, key = EngineCache(tmp_path), FakeTensorRT(), _key()
    load_or_build(cache, key, trt.build, trt.deserialize)
    meta_path = cache.paths(key)[1]
    meta = json.loads(meta_path.read_text())
    meta["key"]["tensorrt_version"] = "9.9.9"  # e.g. a file copied from another machine
    meta_path.write_text(json.dumps(meta))
    _, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and trt.builds == 2
    assert json.loads(meta_path.read_text())["key"]["tensorrt_version"] == "10.3.0"


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta_garbage", "meta_missing"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, damage):
    cache, trt, key = EngineCache(tmp_path), FakeTensorRT(), _key()
    load_or_build(cache, key, trt.build, trt.deserialize)
    engine_path, meta_path = cache.paths(key)
    if damage == "truncate":
        engine_path.write_bytes(engine_path.read_bytes()[:10])
    elif damage == "flip":
        engine_path.write_bytes(b"XLAN" + engine_path.read_bytes()[4:])
    elif damage == "meta_garbage":
        meta_path.write_text("{not json")
    else:
        meta_path.unlink()
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and trt.builds == 2 and engine == {"engine": 104}
    assert cache.lookup(key) is not None  # the entry was replaced by a good one


def test_deserialize_failure_is_rebuilt_not_raised(tmp_path):
    cache, trt, key = EngineCache(tmp_path), FakeTensorRT(), _key()
    # a well-formed entry whose plan TensorRT refuses (e.g. built by an incompatible driver)
    cache.store(key, b"JUNK-PLAN")
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and engine == {"engine": 104}

    def explode(data: bytes):
        if data.startswith(b"JUNK"):
            raise RuntimeError("Serialization assertion failed")
        return trt.deserialize(data)

    cache.store(key, b"JUNK-PLAN")
    engine, built = load_or_build(cache, key, trt.build, explode)
    assert built and engine == {"engine": 104}


def test_unwritable_cache_folder_still_gives_an_engine(tmp_path, monkeypatch):
    """A read-only or full disk costs a rebuild on the next start, never the node."""
    cache, trt, key = EngineCache(tmp_path / "cache"), FakeTensorRT(), _key()

    def refuse(*_args, **_kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(cache, "store", refuse)
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and engine == {"engine": 104}
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and trt.builds == 2  # nothing was cached: built again


def test_unreadable_engine_file_is_a_cache_miss(tmp_path, monkeypatch):
    cache, trt, key = EngineCache(tmp_path), FakeTensorRT(), _key()
    load_or_build(cache, key, trt.build, trt.deserialize)
    engine_path = cache.paths(key)[0]
    real_read = Path.read_bytes

    def read_bytes(self):
        if self == engine_path:
            raise PermissionError("permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert cache.lookup(key) is None
    engine, built = load_or_build(cache, key, trt.build, trt.deserialize)
    assert built and engine == {"engine": 104}


def test_build_that_cannot_deserialize_raises(tmp_path):
    cache = EngineCache(tmp_path)
    with pytest.raises(BackendError, match="could not deserialize"):
        load_or_build(cache, _key(), lambda: b"JUNK", lambda data: None)
    assert cache.lookup(_key()) is None  # nothing bad is cached


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        (machine(tensorrt=True, torch_cuda=True), ("tensorrt", "cuda")),
        (machine(torch_cuda=True), ("torch", "cuda")),
        (machine(tensorrt=True), ("onnxruntime", "cpu")),  # TensorRT without a GPU is not usable
        (machine(onnxruntime_cuda=True), ("onnxruntime", "cuda")),  # ORT's CUDA provider, no torch
        (machine(torch_cuda=True, onnxruntime_cuda=True), ("torch", "cuda")),
        (machine(), ("onnxruntime", "cpu")),
        (machine(onnxruntime=False), ("torch", "cpu")),
    ],
)
def test_auto_picks_the_fastest_available(caps, expected):
    assert choose_backend(EngineConfig(model="m"), caps) == expected


@pytest.mark.parametrize(
    ("config", "caps", "message"),
    [
        (dict(backend="tensorrt"), machine(), "tensorrt package is not importable"),
        (dict(backend="tensorrt"), machine(tensorrt=True), "CUDA GPU"),
        (
            dict(backend="tensorrt", device="cpu"),
            machine(tensorrt=True, torch_cuda=True),
            "CUDA only",
        ),
        (dict(backend="torch", device="cuda"), machine(), "torch.cuda is unavailable"),
        (dict(backend="onnxruntime", device="cuda"), machine(), "CUDAExecutionProvider"),
        (dict(device="cuda"), machine(), "no backend here can use a CUDA GPU"),
        (dict(backend="onnxruntime"), machine(onnxruntime=False), "not installed"),
    ],
)
def test_explicit_choices_that_cannot_run_fail_loudly(config, caps, message):
    with pytest.raises(BackendError, match=message):
        choose_backend(EngineConfig(model="m", **config), caps)


def test_precision_resolution():
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(BackendError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(BackendError, match="bf16 is for the sam2 model family"):
        resolve_precision("bf16", "cuda")


@pytest.mark.skipif(tensorrt_importable(), reason="TensorRT is installed here")
def test_tensorrt_backend_absent_fails_with_a_clear_error(tmp_path):
    folder = write_model_dir(tmp_path / "tiny")
    with pytest.raises(BackendError, match="tensorrt"):
        build_engine(EngineConfig(model=str(folder), backend="tensorrt"))


@pytest.mark.skipif(tensorrt_importable(), reason="TensorRT is installed here")
def test_build_engine_command_without_tensorrt(tmp_path, capsys):
    folder = write_model_dir(tmp_path / "tiny")
    assert cli_main(["build-engine", "--model", str(folder), "--cache-dir", str(tmp_path)]) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_gpu_reason() is not None, reason=str(tensorrt_gpu_reason()))
def test_tensorrt_engine_builds_caches_and_matches_onnxruntime(tmp_path):
    import numpy as np

    from vos_ros.engine.backends.onnxruntime_backend import OnnxRuntimeBackend
    from vos_ros.engine.backends.tensorrt_backend import TensorRTBackend
    from vos_ros.engine.manifest import load_manifest

    folder = write_model_dir(tmp_path / "tiny", short_side=160)
    manifest = load_manifest(folder)
    profiles = profile_shapes(160, 4, 5, 4, c4=3, c8=3)
    first = TensorRTBackend(manifest, "fp32", profiles, str(tmp_path / "cache"))
    assert first.built == {"encoder": True, "decoder": True}
    second = TensorRTBackend(manifest, "fp32", profiles, str(tmp_path / "cache"))
    assert second.built == {"encoder": False, "decoder": False}
    ort_backend = OnnxRuntimeBackend(manifest.encoder_path, manifest.decoder_path)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 3, 160, 288)).astype(np.float32)
    fg = rng.normal(size=(2, 10, 64)).astype(np.float32)
    fg /= np.linalg.norm(fg, axis=-1, keepdims=True)
    prev = rng.uniform(size=(2, 1, 40, 72)).astype(np.float32)
    outs = []
    for backend in (second, ort_backend):
        key, f4, f8 = backend.run_encoder(image)
        outs.append(backend.run_decoder(key, f4, f8, fg, fg[::-1].copy(), prev))
    assert np.abs(outs[0] - outs[1]).max() < 1e-2
