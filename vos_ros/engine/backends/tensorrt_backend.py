"""TensorRT 10 backend: engines built from the model's ONNX graphs, cached on disk.

Building a TensorRT engine takes minutes, so the serialized engine is cached. A cached engine
is only valid for the exact model, TensorRT version, GPU, precision and input-shape profile it
was built for; all of these go into its cache key. Every cache entry has a JSON sidecar with
the full key and the sha256 of the engine bytes, so

- a key mismatch (other model / TensorRT / GPU / precision / shapes) is a cache miss, and
- a truncated or corrupt engine file is detected *before* TensorRT reads it,

and in both cases the engine is rebuilt and the entry replaced; if TensorRT still cannot
deserialize an entry, it is dropped and rebuilt too. A bad cache never stops the node. The
builder's timing cache is kept next to the engines and makes rebuilds much faster.

Everything TensorRT-specific is imported lazily: the cache keys, profile shapes and cache logic
in this module work (and are tested) on machines without TensorRT or a GPU. GPU buffers are torch
CUDA tensors, so this backend needs a CUDA build of PyTorch next to TensorRT.

TensorRT 10 Python API used: ``Builder``, ``create_network``, ``OnnxParser``,
``create_builder_config``, ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``,
``create_optimization_profile`` / ``set_shape`` / ``add_optimization_profile``,
``create_timing_cache`` / ``set_timing_cache`` / ``get_timing_cache``,
``build_serialized_network``, ``Runtime.deserialize_cuda_engine``,
``create_execution_context``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vos_ros.engine.backends.base import BackendError
from vos_ros.model import contract

LOG = logging.getLogger(__name__)
CACHE_FORMAT = 1
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "vos_ros" / "tensorrt"
WORKSPACE_BYTES = 1 << 30
LONG_SIDE_FACTOR = 2.5  # profiles cover frames up to 2.5:1 (either orientation)
OPT_TARGETS = 2
# precision -> the builder flag that allows it (TensorRT 10 has FP16 and BF16)
BUILDER_FLAGS = {"fp32": None, "fp16": "FP16", "bf16": "BF16"}

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # tensor name -> (min, opt, max)


def tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- shapes
def _round32(x: float) -> int:
    return max(contract.STRIDE, round(x / contract.STRIDE) * contract.STRIDE)


def profile_shapes(
    short_side: int,
    max_targets: int,
    max_memory_frames: int,
    opt_memory_frames: int,
    c4: int,
    c8: int,
) -> dict[str, Profile]:
    """Optimization profiles (min, opt, max) of every dynamic input, per graph.

    The engine resizes frames so the short side is ``short_side`` (a multiple of 32); the long
    side is anything from ``short_side`` to ``LONG_SIDE_FACTOR`` times it, in either orientation.
    ``opt`` is the 16:9 landscape shape, ``OPT_TARGETS`` targets and ``opt_memory_frames``
    memory frames (annotation + full ring): the shapes of a typical stream.
    """
    if short_side % contract.STRIDE:
        raise ValueError(f"short_side must be a multiple of {contract.STRIDE}, got {short_side}")
    s = short_side
    long_max = -(-int(s * LONG_SIDE_FACTOR) // contract.STRIDE) * contract.STRIDE  # round up
    opt_w = _round32(s * 16 / 9)
    hw_min, hw_opt, hw_max = (s, s), (s, opt_w), (long_max, long_max)
    n_min, n_opt, n_max = 1, min(OPT_TARGETS, max_targets), max_targets
    ppf = contract.PROTOS_PER_FRAME
    p_min, p_opt, p_max = ppf, ppf * opt_memory_frames, ppf * max_memory_frames

    def scaled(hw: tuple[int, int], stride: int) -> tuple[int, int]:
        return hw[0] // stride, hw[1] // stride

    encoder: Profile = {"image": tuple((1, 3, *hw) for hw in (hw_min, hw_opt, hw_max))}  # type: ignore[dict-item]
    decoder: Profile = {}
    for name, channels, stride in (
        ("key", contract.KEY_DIM, contract.KEY_STRIDE),
        ("f4", c4, contract.SKIP_STRIDE),
        ("f8", c8, contract.KEY_STRIDE),
    ):
        decoder[name] = tuple((1, channels, *scaled(hw, stride)) for hw in (hw_min, hw_opt, hw_max))  # type: ignore[assignment]
    for name in ("proto_fg", "proto_bg"):
        decoder[name] = (
            (n_min, p_min, contract.KEY_DIM),
            (n_opt, p_opt, contract.KEY_DIM),
            (n_max, p_max, contract.KEY_DIM),
        )
    decoder["prev_mask"] = tuple(
        (n, 1, *scaled(hw, contract.SKIP_STRIDE))
        for n, hw in ((n_min, hw_min), (n_opt, hw_opt), (n_max, hw_max))
    )  # type: ignore[assignment]
    return {"encoder": encoder, "decoder": decoder}


def check_within(profile: Profile, shapes: dict[str, Shape], graph: str = "") -> None:
    """Raise :class:`BackendError` when an input shape is outside its profile range.

    TensorRT itself only logs such a shape and fails the run; this names the input, its shape
    and the range the engine was built for.
    """
    for name, shape in shapes.items():
        lo, _, hi = profile[name]
        inside = len(shape) == len(lo) and all(
            a <= x <= b for a, x, b in zip(lo, shape, hi, strict=True)
        )
        if not inside:
            where = f"{graph} " if graph else ""
            raise BackendError(
                f"TensorRT {where}input {name} has shape {tuple(shape)}, outside the engine's "
                f"profile {lo}..{hi}; rebuild with a larger max_targets / memory or other "
                "processing size"
            )


# ----------------------------------------------------------------------------- cache keys
@dataclass(frozen=True)
class CacheKey:
    """Everything a serialized engine depends on."""

    model_sha256: str  # the ONNX file's sha256
    graph: str  # encoder | decoder
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # e.g. "8.9"
    precision: str  # fp32 | fp16
    profile: tuple  # sorted ((name, (min, opt, max)), ...)

    @classmethod
    def create(
        cls,
        model_sha256,
        graph,
        tensorrt_version,
        gpu_name,
        compute_capability,
        precision,
        profile: Profile,
    ):
        frozen = tuple(
            sorted((name, tuple(tuple(s) for s in shapes)) for name, shapes in profile.items())
        )
        return cls(
            model_sha256,
            graph,
            tensorrt_version,
            gpu_name,
            str(compute_capability),
            precision,
            frozen,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "cache_format": CACHE_FORMAT,
            "model_sha256": self.model_sha256,
            "graph": self.graph,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "precision": self.precision,
            "profile": [[name, [list(s) for s in shapes]] for name, shapes in self.profile],
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def file_stem(self) -> str:
        gpu = "".join(c if c.isalnum() else "-" for c in self.gpu_name).strip("-").lower() or "gpu"
        return (
            f"{self.graph}-{self.precision}-trt{self.tensorrt_version}-{gpu}-{self.digest()[:16]}"
        )


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EngineCache:
    """Serialized engines on disk: ``<stem>.engine`` + ``<stem>.json`` (key + sha256 of bytes)."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder).expanduser() if folder else DEFAULT_CACHE_DIR

    def paths(self, key: CacheKey) -> tuple[Path, Path]:
        stem = key.file_stem()
        return self.folder / f"{stem}.engine", self.folder / f"{stem}.json"

    def lookup(self, key: CacheKey) -> bytes | None:
        """The cached engine bytes, or ``None`` (missing, stale or corrupt entries are removed)."""
        engine_path, meta_path = self.paths(key)
        if not engine_path.is_file() or not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            LOG.warning("TensorRT cache: unreadable %s (%s); rebuilding", meta_path, exc)
            self.invalidate(key)
            return None
        if not isinstance(meta, dict) or meta.get("key") != key.as_dict():
            LOG.warning(
                "TensorRT cache: %s was built for another configuration; rebuilding", engine_path
            )
            self.invalidate(key)
            return None
        try:
            data = engine_path.read_bytes()
        except OSError as exc:
            LOG.warning("TensorRT cache: cannot read %s (%s); rebuilding", engine_path, exc)
            return None
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            LOG.warning(
                "TensorRT cache: %s is corrupt (checksum mismatch); rebuilding", engine_path
            )
            self.invalidate(key)
            return None
        return data

    def store(self, key: CacheKey, data: bytes) -> Path:
        engine_path, meta_path = self.paths(key)
        _atomic_write(engine_path, data)
        meta = {
            "key": key.as_dict(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
        return engine_path

    def invalidate(self, key: CacheKey) -> None:
        for path in self.paths(key):
            path.unlink(missing_ok=True)

    def timing_cache_path(
        self, tensorrt_version: str, gpu_name: str, compute_capability: str
    ) -> Path:
        gpu = "".join(c if c.isalnum() else "-" for c in gpu_name).strip("-").lower() or "gpu"
        return self.folder / f"timing-trt{tensorrt_version}-{gpu}-sm{compute_capability}.cache"


def load_or_build(
    cache: EngineCache,
    key: CacheKey,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], Any],
) -> tuple[Any, bool]:
    """Deserialize the cached engine or build (and cache) a new one.

    :param build: returns serialized engine bytes (raises :class:`BackendError` on failure).
    :param deserialize: returns an engine object, or ``None``/raises when the bytes are unusable.
    :returns: ``(engine, built)``; ``built`` tells whether a build happened.
    """
    data = cache.lookup(key)
    if data is not None:
        try:
            engine = deserialize(data)
        except Exception as exc:  # TensorRT raises RuntimeError/TypeError on bad plans
            LOG.warning("TensorRT cache: deserializing %s failed (%s)", cache.paths(key)[0], exc)
            engine = None
        if engine is not None:
            return engine, False
        LOG.warning("TensorRT cache: dropping unusable engine %s; rebuilding", cache.paths(key)[0])
        cache.invalidate(key)
    data = build()
    engine = deserialize(data)
    if engine is None:
        raise BackendError(
            f"TensorRT could not deserialize the engine it just built for {key.graph}"
        )
    try:
        cache.store(key, data)
    except OSError as exc:  # read-only or full disk: run with the engine, rebuild next start
        LOG.warning(
            "TensorRT cache: could not save the engine in %s (%s); it will be rebuilt on the "
            "next start",
            cache.folder,
            exc,
        )
    return engine, True


# ----------------------------------------------------------------------------- toolchain
def require_tensorrt_cuda() -> tuple[Any, Any]:
    """``(tensorrt, torch)`` modules, or :class:`BackendError` saying which one is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(
            f"TensorRT is not installed ({exc}); use backend=torch or onnxruntime"
        ) from None
    try:
        import torch
    except ImportError:
        raise BackendError(
            "the TensorRT backend needs PyTorch with CUDA for its GPU buffers"
        ) from None
    if not torch.cuda.is_available():
        raise BackendError(
            "the TensorRT backend needs a CUDA GPU (torch.cuda.is_available() is False)"
        )
    return trt, torch


class Toolchain:
    """A TensorRT module with its logger and runtime, and the identity of the GPU it builds for.

    Shared by every model family that runs TensorRT engines: cache keys, engine builds (with
    the timing cache) and deserialization happen in one place. ``trt`` is the ``tensorrt``
    module in production (:meth:`open`); tests pass a stand-in, which is why nothing here
    imports TensorRT itself.
    """

    def __init__(self, trt: Any, gpu_name: str, compute_capability: str) -> None:
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.tensorrt_version = str(trt.__version__)
        self.gpu_name = gpu_name
        self.compute_capability = compute_capability

    @classmethod
    def open(cls) -> Toolchain:
        """The installed TensorRT for the current CUDA device (:class:`BackendError` if none)."""
        trt, torch = require_tensorrt_cuda()
        major, minor = torch.cuda.get_device_capability()
        return cls(trt, torch.cuda.get_device_name(), f"{major}.{minor}")

    def key(self, model_sha256: str, graph: str, precision: str, profile: Profile) -> CacheKey:
        return CacheKey.create(
            model_sha256,
            graph,
            self.tensorrt_version,
            self.gpu_name,
            self.compute_capability,
            precision,
            profile,
        )

    def deserialize(self, data: bytes) -> Any:
        return self.runtime.deserialize_cuda_engine(data)

    def load_or_build(
        self, cache: EngineCache, key: CacheKey, onnx_path: Path, profile: Profile
    ) -> tuple[Any, bool]:
        """The engine of ``key`` from ``cache``, built from ``onnx_path`` when missing/stale."""
        return load_or_build(
            cache,
            key,
            lambda: self.build(onnx_path, profile, key.precision, cache),
            self.deserialize,
        )

    def build(self, onnx_path: Path, profile: Profile, precision: str, cache: EngineCache) -> bytes:
        """Serialized engine of ``onnx_path`` with one optimization profile (minutes on a GPU).

        ``precision`` fp16 / bf16 *allows* TensorRT to pick those kernels per layer where they are
        faster; inputs and outputs keep the ONNX graph's types (float32).
        """
        trt = self.trt
        if precision not in BUILDER_FLAGS:
            raise BackendError(
                f"TensorRT precision must be one of {', '.join(BUILDER_FLAGS)}, got {precision!r}"
            )
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if BUILDER_FLAGS[precision]:
            config.set_flag(getattr(trt.BuilderFlag, BUILDER_FLAGS[precision]))
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
        timing_path = cache.timing_cache_path(
            self.tensorrt_version, self.gpu_name, self.compute_capability
        )
        timing_cache = None
        try:
            timing_bytes = timing_path.read_bytes() if timing_path.is_file() else b""
            timing_cache = config.create_timing_cache(timing_bytes)
        except Exception as exc:  # unreadable file, or TensorRT refusing corrupt bytes
            LOG.warning("TensorRT: timing cache %s unreadable (%s)", timing_path, exc)
        if timing_cache is None or not config.set_timing_cache(timing_cache, ignore_mismatch=False):
            LOG.warning("TensorRT: timing cache %s unusable; starting an empty one", timing_path)
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        LOG.info(
            "TensorRT: building %s (%s); this takes a while once per GPU", onnx_path.name, precision
        )
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see its log)")
        try:
            _atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
        except OSError as exc:
            LOG.warning("TensorRT: could not save the timing cache %s (%s)", timing_path, exc)
        return bytes(serialized)

    def torch_dtype(self, trt_dtype: Any) -> Any:
        """The torch dtype of a TensorRT tensor type (the float types the graphs use)."""
        import torch

        trt = self.trt
        types = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.BF16: torch.bfloat16,
        }
        if trt_dtype not in types:
            raise BackendError(f"TensorRT tensor type {trt_dtype} is not one of the float types")
        return types[trt_dtype]

    def stream_handle(self, device: Any) -> int:
        """torch's current CUDA stream on ``device``: engines run where the tensors around them
        are produced and consumed, so no synchronization is needed."""
        import torch

        return torch.cuda.current_stream(device).cuda_stream

    def output_names(self, engine: Any) -> list[str]:
        names = (engine.get_tensor_name(i) for i in range(engine.num_io_tensors))
        return [n for n in names if engine.get_tensor_mode(n) == self.trt.TensorIOMode.OUTPUT]


def bind_inputs(context: Any, profile: Profile, inputs: dict[str, Any], graph: str = "") -> None:
    """Check ``inputs`` (torch tensors, contiguous, on the GPU) against the engine's profile,
    then give the execution context their shapes and addresses."""
    check_within(profile, {name: tuple(t.shape) for name, t in inputs.items()}, graph)
    for name, tensor in inputs.items():
        if not context.set_input_shape(name, tuple(tensor.shape)):
            raise BackendError(f"TensorRT refused shape {tuple(tensor.shape)} for {graph} {name}")
        context.set_tensor_address(name, tensor.data_ptr())


# ----------------------------------------------------------------------------- backend
class TensorRTBackend:
    """Encoder and decoder TensorRT engines with explicit optimization profiles.

    :param manifest: checked :class:`~vos_ros.engine.manifest.ModelManifest`.
    :param precision: ``fp32`` or ``fp16``.
    :param profiles: from :func:`profile_shapes`.
    :param cache_dir: engine + timing cache folder (``None``: ``~/.cache/vos_ros/tensorrt``).
    """

    name = "tensorrt"
    device = "cuda"

    def __init__(
        self, manifest, precision: str, profiles: dict[str, Profile], cache_dir: str | None
    ) -> None:
        toolchain = Toolchain.open()
        if precision not in ("fp32", "fp16"):
            raise BackendError(f"TensorRT precision must be fp32 or fp16, got {precision!r}")
        import torch

        self._toolchain = toolchain
        self._torch = torch
        self.precision = precision
        self.profiles = profiles
        self.cache = EngineCache(cache_dir)
        self.gpu_name = toolchain.gpu_name
        self.compute_capability = toolchain.compute_capability
        self.tensorrt_version = toolchain.tensorrt_version
        self.built: dict[str, bool] = {}
        self._engines = {}
        self._contexts = {}
        for graph, path in (("encoder", manifest.encoder_path), ("decoder", manifest.decoder_path)):
            key = toolchain.key(manifest.sha256(path.name), graph, precision, profiles[graph])
            engine, built = toolchain.load_or_build(self.cache, key, path, profiles[graph])
            self.built[graph] = built
            self._engines[graph] = engine
            self._contexts[graph] = engine.create_execution_context()
            if self._contexts[graph] is None:
                raise BackendError(f"TensorRT could not create an execution context for {graph}")
        self._stream = torch.cuda.Stream()
        self._outputs: dict[tuple, Any] = {}

    def _execute(self, graph: str, inputs: dict[str, Any]) -> dict[str, Any]:
        torch = self._torch
        engine, context = self._engines[graph], self._contexts[graph]
        bind_inputs(context, self.profiles[graph], inputs)
        outputs = {}
        for name in self._toolchain.output_names(engine):
            shape = tuple(context.get_tensor_shape(name))
            cache_key = (graph, name, shape)
            out = self._outputs.get(cache_key)
            if out is None:
                out = torch.empty(shape, dtype=torch.float32, device="cuda")
                self._outputs[cache_key] = out
            context.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        self._stream.wait_stream(torch.cuda.current_stream())
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise BackendError(f"TensorRT failed to run the {graph}")
        torch.cuda.current_stream().wait_stream(self._stream)
        return outputs

    def _cuda(self, array: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).cuda(
            non_blocking=True
        )

    def run_encoder(self, image: np.ndarray) -> tuple[Any, Any, Any]:
        out = self._execute("encoder", {"image": self._cuda(image)})
        # Copies: output buffers are reused by the next run, the engine may still hold these.
        return out["key"].clone(), out["f4"].clone(), out["f8"].clone()

    def run_decoder(self, key, f4, f8, proto_fg, proto_bg, prev_mask) -> np.ndarray:
        inputs = {
            "key": key,
            "f4": f4,
            "f8": f8,
            "proto_fg": self._cuda(proto_fg),
            "proto_bg": self._cuda(proto_bg),
            "prev_mask": self._cuda(prev_mask),
        }
        logits = self._execute("decoder", inputs)["logits"]
        return logits.cpu().numpy().copy()

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.float().cpu().numpy()
