"""The ``sam2`` model family (SAM 2 / 2.1 and EdgeTAM) as an engine predictor plug-in.

The engine keeps doing what it does for every family (frames, prompts, target ids, results,
timings); the SAM 2 streaming tracker (:mod:`vos_ros.trackers.sam2_stream`) replaces the
network stages. Through the predictor hooks (:class:`vos_ros.engine.engine.PredictorHooks`) it
takes the model's square input resized as the official video loader does, prompts at full
resolution, turns clicks and boxes into masks through SAM's own prompt encoder, runs every
target on every frame (SAM 2 decides visibility with its object-score head), writes its own
memory from its raw outputs and merges targets as the official masks read: a pixel belongs to
the target with the highest logit where that logit is > 0.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from vos_ros.click_prompt import ClickPrompt
from vos_ros.engine.config import ConfigError, EngineConfig
from vos_ros.trackers.sam2_memory import TargetMemory
from vos_ros.trackers.sam2_stream import EncodedFrame, Sam2StreamTracker

if TYPE_CHECKING:
    from vos_ros.trackers.edgetam_stream import EdgeTamStreamTracker
    from vos_ros.trackers.sam2_tensorrt import GraphSet


class Sam2Predictor:
    """Runs :class:`Sam2StreamTracker` (SAM 2, official code) or
    :class:`~vos_ros.trackers.edgetam_stream.EdgeTamStreamTracker` (EdgeTAM, ``transformers``),
    which share an interface, behind the engine's predictor interface."""

    binary_state = False
    uses_prior = False  # SAM 2 has its own memory; no box prior
    uses_windows = False
    uses_flow = False
    tracks_every_frame = True  # memory must see every frame, as in the official predictor
    writes_own_memory = True
    takes_full_prompts = True

    def __init__(self, tracker: Sam2StreamTracker | EdgeTamStreamTracker, name: str) -> None:
        self.tracker = tracker
        self.name = name
        self.timings_ms: dict[str, float] = {"memory": 0.0, "decoder": 0.0}
        self._frame_index = 0
        # targets started from clicks, installed when the engine memorizes them on that frame
        self._started: dict[int, tuple[EncodedFrame, TargetMemory]] = {}

    # -- hooks --------------------------------------------------------------------------------
    def processing_wh(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        return self.tracker.image_size, self.tracker.image_size

    def resize_frame(self, frame: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
        """Resized with PIL's default filter, exactly as the official video loader."""
        from PIL import Image

        return np.asarray(Image.fromarray(frame).resize(size_wh))

    def begin_frame(self, frame_index: int) -> None:
        self._frame_index = frame_index

    def segment_clicks(
        self, features: EncodedFrame, prompts: dict[int, ClickPrompt], video_hw: tuple[int, int]
    ) -> dict[int, np.ndarray]:
        """Masks ``{id: (H, W) bool}`` of new targets from clicks and boxes on the frame of
        ``features``, through SAM's prompt encoder, at the video's resolution as the official
        predictor reads its output (logits upsampled bilinearly, > 0). Each target's memory is
        started too and installed when the engine memorizes that target on this frame."""
        import torch
        import torch.nn.functional as F

        masks = {}
        for target_id, prompt in prompts.items():
            logits, memory = self.tracker.start_from_clicks(
                features, video_hw, np.array(prompt.points), np.array(prompt.labels), prompt.box
            )
            with torch.inference_mode():
                video = F.interpolate(logits, size=video_hw, mode="bilinear", align_corners=False)
            masks[target_id] = (video[0, 0] > 0).cpu().numpy()
            self._started[target_id] = (features, memory)
        return masks

    def aggregate(self, probs: np.ndarray) -> np.ndarray:
        """``[N, h, w]`` -> ``[N + 1, h, w]`` with a constant 0.5 background: the argmax is the
        most probable target where it is above 0.5 (logit > 0), else background."""
        out = np.empty((probs.shape[0] + 1, *probs.shape[1:]), np.float32)
        out[0] = 0.5
        out[1:] = probs
        return out

    # -- the predictor interface --------------------------------------------------------------
    def prepare(self, small_rgb: np.ndarray) -> Any:
        return self.tracker.preprocess(small_rgb)

    def encode(self, image: Any) -> EncodedFrame:
        return self.tracker.encode(image, self._frame_index)

    def predict(
        self,
        features: EncodedFrame,
        ids: list[int],
        previous: np.ndarray,
        windows: list | None = None,
    ) -> np.ndarray:
        """Probabilities ``[N, S/4, S/4]`` of targets ``ids`` (``previous`` and ``windows`` are
        unused: SAM 2 conditions on its own memory)."""
        import torch

        t0 = time.perf_counter()
        logits, _ = self.tracker.track(features, ids)
        probs = torch.sigmoid(logits[:, 0]).cpu().numpy()
        self.timings_ms["memory"] = 0.0  # memory attention runs inside the tracker's step
        self.timings_ms["decoder"] = (time.perf_counter() - t0) * 1e3
        return probs

    def memorize(
        self,
        features: EncodedFrame,
        target_id: int,
        prob: np.ndarray,
        mode: str,
        full_mask: np.ndarray | None = None,
    ) -> None:
        """A prompt: (re)start ``target_id`` from ``full_mask`` (input size) on this frame."""
        if mode not in ("permanent", "replace"):
            raise ValueError(f"SAM 2 writes its own tracked-frame memory; got mode {mode!r}")
        if full_mask is None:
            raise ValueError("SAM 2 takes its prompts at full resolution (full_mask)")
        started = self._started.pop(target_id, None)
        if started is not None and started[0] is features:  # clicks on this very frame
            self.tracker.install(target_id, started[1])
        else:
            self.tracker.add_target(features, target_id, full_mask)

    def forget(self, target_id: int) -> None:
        self._started.pop(target_id, None)
        self.tracker.remove_target(target_id)

    def reset(self) -> None:
        self._started.clear()
        self.tracker.reset()
        self._frame_index = 0

    def memory_nbytes(self) -> int:
        return self.tracker.nbytes()


def build_sam2_predictor(config: EngineConfig) -> Sam2Predictor:
    """The predictor for a ``family: sam2`` model folder (checked like every model folder).

    :raises ConfigError: a backend, device or precision this family cannot run.
    :raises BackendError: ``backend: tensorrt`` without TensorRT or a CUDA GPU.
    :raises ModelFileError: a missing, corrupt or mismatched model file.
    """
    from vos_ros.trackers.sam2_library import has_cuda_extension, require_sam2
    from vos_ros.trackers.sam2_manifest import load_sam2_manifest, sam2_architecture

    edgetam = sam2_architecture(config.model) == "edgetam"
    if edgetam:
        from vos_ros.trackers.edgetam_library import require_transformers

        require_transformers()
    else:
        require_sam2()
    import torch

    if config.backend == "tensorrt":  # before any loading: what is missing (TensorRT, a GPU)
        from vos_ros.engine.backends.select import MachineCapabilities, choose_backend

        choose_backend(config, MachineCapabilities.probe())
    if config.backend == "onnxruntime" and config.device == "cuda":
        raise ConfigError("the sam2 family runs ONNX Runtime on the CPU only; use torch on CUDA")
    if config.processing_short_side is not None:
        raise ConfigError(
            "processing_short_side does not apply to the sam2 model family, which runs at its "
            "model's fixed square input size"
        )
    if config.adapt_steps:
        raise ConfigError("online adaptation (adapt_steps) is not available for the sam2 family")
    device = config.device
    if device == "auto":
        cuda = torch.cuda.is_available() and config.backend != "onnxruntime"
        device = "cuda" if cuda else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but torch sees no CUDA device")
    precision = config.precision
    if precision == "auto":  # TensorRT: fp16 engines; torch: the official demos' CUDA setting
        tensorrt = config.backend == "tensorrt"
        precision = "fp32" if device != "cuda" else "fp16" if tensorrt else "bf16"
    if precision != "fp32" and device != "cuda":
        raise ConfigError(f"precision {precision} needs device cuda; use fp32 on the CPU")
    if config.threads:
        torch.set_num_threads(config.threads)
    manifest = load_sam2_manifest(config.model, verify_checksums=config.verify_checksums)
    name = "torch" if device == "cpu" else f"torch-cuda-{precision}"
    model = build_architecture_model(manifest, device)
    graphs, library, graph_set = architecture_graphs(manifest.architecture)
    if config.backend == "onnxruntime":
        folder = onnx_graphs(model, manifest, config, graphs, library)
        model = graphs.use_onnxruntime(model, folder, config.threads)
        name = "onnxruntime"
    elif config.backend == "tensorrt":
        from vos_ros.trackers.sam2_tensorrt import use_tensorrt

        folder = onnx_graphs(model, manifest, config, graphs, library)
        checkpoint_sha256 = manifest.files[manifest.checkpoint.name]
        model = use_tensorrt(
            model, folder, precision, config.max_targets, config.cache_dir, checkpoint_sha256,
            graph_set=graph_set,
        )  # fmt: skip
        # the engines run at ``precision``; the light torch steps around them stay fp32
        name, precision = f"tensorrt-{precision}", "fp32"
    batch = config.target_batch or (None if device == "cuda" else 1)
    if edgetam:
        from vos_ros.trackers.edgetam_stream import EdgeTamStreamTracker

        return Sam2Predictor(EdgeTamStreamTracker(model, precision, batch), name)
    fill_holes = device == "cuda" and has_cuda_extension()  # as the official predictor can
    tracker = Sam2StreamTracker(model, precision, fill_holes, batch)
    return Sam2Predictor(tracker, name)


def build_architecture_model(manifest: Any, device: str) -> Any:
    """The torch model of a sam2-family folder, from the library of its architecture: the
    official ``sam2`` package for SAM 2, ``transformers`` for EdgeTAM."""
    if manifest.architecture == "edgetam":
        from vos_ros.trackers.edgetam_library import build_edgetam_model

        return build_edgetam_model(Path(manifest.config), manifest.checkpoint, device)
    from vos_ros.trackers.sam2_library import build_model

    return build_model(manifest.config, manifest.checkpoint, device)


def architecture_graphs(architecture: str) -> tuple[ModuleType, str, GraphSet]:
    """``(ONNX module, library, TensorRT graph set)`` of a sam2-family architecture: what
    exports its graphs and runs them on ONNX Runtime, the package its model code comes from,
    and the :class:`~vos_ros.trackers.sam2_tensorrt.GraphSet` of its engines."""
    if architecture == "edgetam":
        from vos_ros.trackers import edgetam_onnx
        from vos_ros.trackers.edgetam_tensorrt import EDGETAM

        return edgetam_onnx, "transformers", EDGETAM
    from vos_ros.trackers import sam2_onnx
    from vos_ros.trackers.sam2_tensorrt import SAM2

    return sam2_onnx, "sam2", SAM2


def onnx_graphs(
    model: Any, manifest: Any, config: EngineConfig, graphs: ModuleType, library: str
) -> Path:
    """The model's ONNX graphs, exported on first use into the cache folder (the TensorRT cache
    of ``config.cache_dir``, default ~/.cache/vos_ros), keyed by checkpoint, config and the
    exporting versions: an export takes minutes on a small CPU, a load seconds.

    :param graphs: the architecture's export module (``GRAPHS``, ``OPSET``, ``export_graphs``):
        :mod:`~vos_ros.trackers.sam2_onnx` or :mod:`~vos_ros.trackers.edgetam_onnx`.
    :param library: the package the model code comes from (its version is in the key).
    """
    import importlib.metadata

    import torch

    digest = manifest.files[manifest.checkpoint.name]
    key = hashlib.sha256(
        f"{digest}|{manifest.config}|{library} {importlib.metadata.version(library)}|"
        f"torch {torch.__version__}|opset {graphs.OPSET}".encode()
    ).hexdigest()[:16]
    root = Path(config.cache_dir or "~/.cache/vos_ros").expanduser()
    folder = root / "sam2-onnx" / f"{manifest.name}-{key}"
    if not all((folder / f"{graph}.onnx").is_file() for graph in graphs.GRAPHS):
        graphs.export_graphs(model, folder)
    return folder
