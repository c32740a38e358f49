"""A stand-in for the ``tensorrt`` module, for tests on machines without TensorRT or a GPU.

``FakeTensorRT`` offers the TensorRT 10 calls the backends make (``Builder``, ``OnnxParser``,
builder config, optimization profile, timing cache, ``Runtime``, engine, execution context) and
records what they were given. Its "engines" run the ONNX graph they were built from in ONNX
Runtime, reading inputs from and writing outputs to the addresses bound with
``set_tensor_address`` (CPU torch tensors here): the binding code is exercised for real, only
the kernels differ. Like TensorRT, ``set_input_shape`` refuses shapes outside the profile.

``build`` / ``deserialize`` are the bare callables ``load_or_build`` takes, for cache tests.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from typing import Any

import numpy as np

from vos_ros.engine.backends.select import MachineCapabilities
from vos_ros.engine.backends.tensorrt_backend import Toolchain, tensorrt_importable


def tensorrt_gpu_reason() -> str | None:
    """Why a test needing real TensorRT engines cannot run here (None: it can)."""
    if not tensorrt_importable():
        return "needs TensorRT (the tensorrt package is not importable)"
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    return None


def machine(**capabilities: bool) -> MachineCapabilities:
    """A CPU machine with torch and ONNX Runtime, changed by ``capabilities``."""
    base = dict(
        tensorrt=False, torch=True, torch_cuda=False, onnxruntime=True, onnxruntime_cuda=False
    )
    base.update(capabilities)
    return MachineCapabilities(**base)


class FakeTensorRT:
    """Counts builds (``builds``; ``built`` records each one); deserializes only its own plans."""

    __version__ = "10.0.0-fake"

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class BuilderFlag:
        FP16 = "FP16"
        BF16 = "BF16"

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    class TensorIOMode:
        INPUT = "INPUT"
        OUTPUT = "OUTPUT"

    class DataType:
        FLOAT = "FLOAT"
        HALF = "HALF"
        BF16 = "BF16"

    def __init__(self) -> None:
        self.builds = 0
        self.built: list[dict[str, Any]] = []  # per build: inputs, outputs, flags, profile
        self.executions: list[tuple[tuple[str, ...], dict[str, tuple]]] = []
        self.graphs: dict[str, bytes] = {}  # ONNX sha256 -> bytes, for running engines
        self.Builder = lambda logger: _Builder(self)
        self.OnnxParser = lambda network, logger: _Parser(self, network)
        self.Runtime = lambda logger: _Runtime(self)

    # the bare build / deserialize callables of load_or_build
    def build(self) -> bytes:
        self.builds += 1
        return b"PLAN" + bytes(100)

    def deserialize(self, data: bytes):
        return {"engine": len(data)} if data.startswith(b"PLAN") else None


class FakeToolchain(Toolchain):
    """A :class:`Toolchain` around :class:`FakeTensorRT`; engines run on CPU tensors."""

    def __init__(self, fake: FakeTensorRT | None = None, gpu_name: str = "Fake GPU") -> None:
        super().__init__(fake or FakeTensorRT(), gpu_name, "0.0")

    def stream_handle(self, device: Any) -> int:
        return 0


class _Network:
    def __init__(self) -> None:
        self.onnx: bytes | None = None


class _Parser:
    def __init__(self, fake: FakeTensorRT, network: _Network) -> None:
        self.fake, self.network, self.num_errors = fake, network, 0

    def parse(self, data: bytes) -> bool:
        self.network.onnx = data
        return data.startswith(b"\x08")  # an ONNX ModelProto starts with its ir_version field

    def get_error(self, index: int) -> str:
        return "not an ONNX model"


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name: str, lo, opt, hi) -> None:
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return b"TIMING" + self.data[6:]


class _Config:
    def __init__(self) -> None:
        self.flags: list[str] = []
        self.profiles: list[_Profile] = []
        self.timing: _TimingCache | None = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pool = (pool, size)

    def set_flag(self, flag: str) -> None:
        self.flags.append(flag)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.timing = cache
        return True

    def get_timing_cache(self) -> _TimingCache:
        return self.timing or _TimingCache(b"")


class _Builder:
    def __init__(self, fake: FakeTensorRT) -> None:
        self.fake = fake

    def create_network(self, flags: int) -> _Network:
        return _Network()

    def create_builder_config(self) -> _Config:
        return _Config()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes:
        import onnxruntime as ort

        assert network.onnx is not None and len(config.profiles) == 1
        session = ort.InferenceSession(network.onnx, providers=["CPUExecutionProvider"])
        sha = hashlib.sha256(network.onnx).hexdigest()
        self.fake.graphs[sha] = network.onnx
        plan = {
            "onnx_sha256": sha,
            "inputs": [i.name for i in session.get_inputs()],
            "outputs": [o.name for o in session.get_outputs()],
            "flags": config.flags,
            "profile": config.profiles[0].shapes,
        }
        self.fake.builds += 1
        self.fake.built.append(plan)
        return b"PLAN" + json.dumps(plan).encode()


class _Runtime:
    def __init__(self, fake: FakeTensorRT) -> None:
        self.fake = fake

    def deserialize_cuda_engine(self, data: bytes):
        if not data.startswith(b"PLAN{"):
            return None
        return _Engine(self.fake, json.loads(data[4:]))


class _Engine:
    def __init__(self, fake: FakeTensorRT, plan: dict[str, Any]) -> None:
        self.fake, self.plan = fake, plan
        self.names = [*plan["inputs"], *plan["outputs"]]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> str:
        modes = FakeTensorRT.TensorIOMode
        return modes.INPUT if name in self.plan["inputs"] else modes.OUTPUT

    def get_tensor_dtype(self, name: str) -> str:
        return FakeTensorRT.DataType.FLOAT  # the exported graphs are float32 throughout

    def create_execution_context(self) -> _Context:
        return _Context(self)


class _Context:
    """Runs the engine's ONNX graph in ONNX Runtime on the bound addresses (float32)."""

    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.results: dict[str, np.ndarray] | None = None
        self.session = None

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        lo, _, hi = self.engine.plan["profile"][name]
        if len(shape) != len(lo):
            return False
        if not all(a <= x <= b for a, x, b in zip(lo, shape, hi, strict=True)):
            return False
        self.shapes[name] = tuple(shape)
        self.results = None
        return True

    def set_tensor_address(self, name: str, address: int) -> None:
        self.addresses[name] = address
        if name in self.engine.plan["inputs"]:
            self.results = None

    def _run(self) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        if self.results is None:
            if self.session is None:
                onnx = self.engine.fake.graphs[self.engine.plan["onnx_sha256"]]
                self.session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
            feed = {
                name: _read(self.addresses[name], self.shapes[name])
                for name in self.engine.plan["inputs"]
            }
            outputs = self.session.run(self.engine.plan["outputs"], feed)
            self.results = dict(zip(self.engine.plan["outputs"], outputs, strict=True))
        return self.results

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self.engine.plan["inputs"]:
            return self.shapes[name]
        return self._run()[name].shape  # TensorRT infers it; here the graph is run for it

    def execute_async_v3(self, stream: int) -> bool:
        results = self._run()
        for name, array in results.items():
            array = np.ascontiguousarray(array, np.float32)
            ctypes.memmove(self.addresses[name], array.ctypes.data, array.nbytes)
        self.engine.fake.executions.append((tuple(self.engine.plan["inputs"]), dict(self.shapes)))
        self.results = None
        return True


def _read(address: int, shape: tuple) -> np.ndarray:
    count = int(np.prod(shape))
    if not count:
        return np.zeros(shape, np.float32)
    buffer = (ctypes.c_float * count).from_address(address)
    return np.ctypeslib.as_array(buffer).reshape(shape).copy()
