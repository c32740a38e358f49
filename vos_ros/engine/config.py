"""Engine configuration: one frozen dataclass, validated on construction.

Every invalid value raises :class:`ConfigError` (a ``ValueError``) naming the field, the value and
what is allowed, so a wrong ROS parameter or CLI flag is reported where it was set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from vos_ros.model.contract import STRIDE


class EngineError(ValueError):
    """Base class of every error the engine raises for bad input or configuration."""


class ConfigError(EngineError):
    """An :class:`EngineConfig` field has an invalid value."""


BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # bf16: the sam2 family on CUDA
FLOW_PRESETS = ("auto", "ultrafast", "fast", "medium")
ADAPT_SCOPES = ("all", "decoder")
FLOW_MODEL = "flow"  # the ``model`` value that selects the training-free flow fallback


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs. Defaults are tuned for a 2-core CPU and 854x480 input.

    ``model``: ``"flow"`` (training-free fallback, no network) or the path of a model folder
    ``models/<name>/`` holding ``model.yaml`` and the ONNX files (:mod:`vos_ros.engine.manifest`).
    Fields left at ``None`` take the model manifest's value (or the fallback's default).
    """

    model: str = FLOW_MODEL
    backend: str = "auto"  # auto | onnxruntime | torch | tensorrt
    device: str = "auto"  # auto | cpu | cuda (auto: cuda when the backend can use it)
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16 (sam2)
    threads: int = 0  # intra-op threads of the CPU backends; 0 = library default
    # ONNX Runtime's CPU memory arena: off. An arena keeps the largest working set any run ever
    # needed: decoder windows change shape every frame and a rare whole-frame search of several
    # lost targets needs tens of MiB, so with it the resident size steps up at such a run and
    # never comes back. Without it each run allocates through malloc and what it frees goes
    # back to the system (the node's heap trim); no slower in alternated runs
    # (docs/benchmarks.md, "Soak: the RSS step").
    cpu_memory_arena: bool = False
    # Processing resolution: the frame is resized so its short side is about this many pixels
    # (rounded to the nearest multiple of 32, which the network needs: 360 runs at 352); results
    # come back at the input resolution. None = manifest / 288.
    processing_short_side: int | None = None
    # Memory: recent frames are added every ``memory_every`` frames into a ring of
    # ``memory_size`` slots per target; annotated frames (up to ``permanent_size``) are kept.
    memory_every: int | None = None
    memory_size: int | None = None
    permanent_size: int = 2
    max_targets: int = 16  # most targets tracked at once (also the TensorRT profile maximum)
    # Previous-mask guidance warped by DIS optical flow.
    use_flow: bool = True
    # auto | ultrafast | fast | medium (OpenCV DIS presets). auto: medium for the flow fallback,
    # whose motion evidence reads the flow itself (5-fold J&F 0.695 -> 0.710 for 6-8 ms more a
    # frame at 854x480 on 2 cores), ultrafast for networks (the guidance they were trained with).
    flow_preset: str = "auto"
    flow_short_side: int | None = None  # None: the mask's short side (model mode)
    # Localization prior: outside the previous mask's box enlarged by ``prior_scale``, responses
    # weaker than ``prior_keep_prob`` are dropped (a strong response far away survives).
    use_box_prior: bool = True
    prior_scale: float = 1.25
    prior_keep_prob: float = 0.9
    # Decoder windows (CPU backends): a visible target is decoded on its previous box enlarged
    # ``decoder_window_scale`` times (each side at least ``decoder_window_min`` of the frame's),
    # not on the whole frame; 0 = whole frame always (vos_ros.engine.window).
    decoder_window_scale: float = 2.0
    decoder_window_min: float = 0.25
    # A lost target (not visible) is searched for on the whole frame, the most expensive decoder
    # run, on the first frame after the loss and then on every ``lost_search_every``-th frame
    # only; 1 = every frame. It comes back at most that many frames later. 2 scored the same as 1 on
    # the training and validation splits (docs/benchmarks.md, "Changes of 2026-12-02, third round").
    lost_search_every: int = 2
    # A target is visible when its mask covers at least ``min_area_fraction`` of the frame and
    # its mean probability inside the mask is at least ``visible_score``.
    min_area_fraction: float = 2e-4
    visible_score: float = 0.5
    memory_score: float = 0.7  # a frame enters a target's memory only when its score is this high
    # TensorRT / torch options.
    # TensorRT engines + timing cache; the sam2 family's exported ONNX graphs (~/.cache/vos_ros)
    cache_dir: str | None = None
    cuda_graphs: bool = False  # torch backend on CUDA: replay captured CUDA graphs
    verify_checksums: bool = True  # check the sha256 of every model file on load
    # sam2 family (SAM 2, EdgeTAM): most targets per batch on a tracked frame; 0 = auto: every
    # target of a memory layout on CUDA, one on the CPU, where batches were slower and grew
    # EdgeTAM's heap (README, "Pretrained trackers").
    target_batch: int = 0
    # Online adaptation (OSVOS-style, network models only): on the first annotation of a stream
    # the network is fine-tuned for ``adapt_steps`` steps on that frame before tracking starts
    # (vos_ros.model.online_adapt). 0 = off. ``adapt_scope``: all | decoder. It blocks that
    # frame for the whole fine-tuning (seconds on a CPU).
    adapt_steps: int = 0
    adapt_scope: str = "all"
    adapt_lr: float = 1e-4
    # Background mode: the shipped weights track while the adaptation runs on a worker thread;
    # the adapted network takes over at the first frame after it is done (the node's default).
    adapt_background: bool = False
    # Networks of the protonet family: > 0 adds the flow fallback's log-odds, times this weight,
    # to the network's (vos_ros.engine.fused); the engine then runs at the fallback's mask
    # resolution and DIS preset. 0 = the network alone. None = the model manifest's
    # ``fuse_fallback`` (0 when it has none); build_engine resolves it
    # (vos_ros.engine.build.resolve_fusion). Online adaptation fine-tunes the fused network.
    fuse_fallback: float | None = None
    # Flow fallback (alone or fused): (name, value) pairs that replace fields of
    # vos_ros.engine.fallback.FallbackSettings, for tuning offline
    # (``--engine-set fallback.motion_cap=2``); () = its defaults.
    fallback: tuple[tuple[str, bool | float], ...] = ()

    def __post_init__(self) -> None:
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("flow_preset", self.flow_preset, FLOW_PRESETS)
        _check_choice("adapt_scope", self.adapt_scope, ADAPT_SCOPES)
        _check_int("adapt_steps", self.adapt_steps, 0)
        _check_float("adapt_lr", self.adapt_lr, 0.0, 1.0)
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be 'flow' or a model folder path, got {self.model!r}")
        _check_int("threads", self.threads, 0)
        if self.processing_short_side is not None:
            _check_int("processing_short_side", self.processing_short_side, STRIDE)
        if self.flow_short_side is not None:
            _check_int("flow_short_side", self.flow_short_side, 16)
        for name in ("memory_every", "memory_size"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, 1)
        _check_int("permanent_size", self.permanent_size, 1)
        _check_int("lost_search_every", self.lost_search_every, 1)
        _check_int("max_targets", self.max_targets, 1)
        _check_int("target_batch", self.target_batch, 0)
        if self.max_targets > 255:
            raise ConfigError(f"max_targets must be at most 255, got {self.max_targets}")
        _check_float("prior_scale", self.prior_scale, 1.0, 10.0)
        _check_float("prior_keep_prob", self.prior_keep_prob, 0.0, 1.0)
        _check_float("decoder_window_scale", self.decoder_window_scale, 0.0, 10.0)
        if 0.0 < self.decoder_window_scale < 1.0:
            raise ConfigError(
                "decoder_window_scale must be 0 (off) or at least 1, "
                f"got {self.decoder_window_scale}"
            )
        _check_float("decoder_window_min", self.decoder_window_min, 0.0, 1.0)
        _check_float("min_area_fraction", self.min_area_fraction, 0.0, 1.0)
        _check_float("visible_score", self.visible_score, 0.0, 1.0)
        _check_float("memory_score", self.memory_score, 0.0, 1.0)
        if self.fuse_fallback is not None:
            _check_float("fuse_fallback", self.fuse_fallback, 0.0, 100.0)
            if self.fuse_fallback > 0 and self.is_flow_fallback:
                raise ConfigError(
                    "fuse_fallback fuses a network with the flow fallback: set a model"
                )
        for name in (
            "use_flow",
            "cpu_memory_arena",
            "use_box_prior",
            "cuda_graphs",
            "verify_checksums",
            "adapt_background",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.fallback:
            self._check_fallback()

    def _check_fallback(self) -> None:
        if self.fuse_fallback is not None and not self.runs_fallback:  # None: the model decides
            raise ConfigError(
                f"fallback settings apply to model 'flow' or a network with fuse_fallback > 0, "
                f"not {self.model!r} alone"
            )
        from vos_ros.engine.fallback import FallbackSettings  # numpy and OpenCV: only when set

        try:
            FallbackSettings.from_overrides(self.fallback)
        except (TypeError, ValueError) as exc:  # TypeError: not (name, value) pairs
            raise ConfigError(f"fallback: {exc}") from None

    @staticmethod
    def round_short_side(short_side: int) -> int:
        """The multiple of STRIDE nearest to ``short_side`` (at least STRIDE)."""
        return max(STRIDE, round(short_side / STRIDE) * STRIDE)

    @property
    def dis_preset(self) -> str:
        """The DIS preset that runs: ``flow_preset`` with ``auto`` resolved for the model."""
        if self.flow_preset != "auto":
            return self.flow_preset
        return "medium" if self.runs_fallback else "ultrafast"

    @property
    def is_flow_fallback(self) -> bool:
        """True when no network is configured and the flow fallback runs."""
        return self.model == FLOW_MODEL

    @property
    def runs_fallback(self) -> bool:
        """True when the flow fallback runs, alone or fused with a network."""
        return self.is_flow_fallback or (self.fuse_fallback or 0.0) > 0

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


def _check_float(name: str, value: object, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")
