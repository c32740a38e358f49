"""``build_engine``: turn an :class:`EngineConfig` into a ready :class:`VosEngine`."""

from __future__ import annotations

from dataclasses import replace

from vos_ros.engine.config import ConfigError, EngineConfig
from vos_ros.engine.engine import VosEngine
from vos_ros.engine.fallback import FallbackSettings, FlowPredictor

FLOW_SHORT_SIDE = 288  # flow fallback: DIS at 288x512 keeps a 854x480 stream well above 30 fps
DEFAULT_SHORT_SIDE = 288  # network, when neither the config nor the manifest sets one
DEFAULT_MEMORY_EVERY = 5
DEFAULT_MEMORY_SIZE = 4


def resolve_fusion(config: EngineConfig) -> EngineConfig:
    """``config`` with ``fuse_fallback`` decided: as set, else the model manifest's (0 for the
    flow fallback, the sam2 family and a manifest without one). Online adaptation fine-tunes
    the network and keeps the fusion (docs/architecture.md, "Fusing a network").

    :raises ConfigError: when the decided value conflicts with other settings (fallback
        settings for a network that runs alone).
    """
    if config.fuse_fallback is not None:
        return config
    weight = 0.0
    if not config.is_flow_fallback:
        from vos_ros.engine.family import model_family

        if model_family(config.model) != "sam2":
            from vos_ros.engine.manifest import load_manifest

            manifest = load_manifest(config.model, verify_checksums=False, check_graphs=False)
            weight = manifest.fuse_fallback
    return replace(config, fuse_fallback=weight)


def build_engine(config: EngineConfig | None = None) -> VosEngine:
    """Build the engine ``config`` describes.

    ``model="flow"`` builds the training-free flow fallback. A model folder whose manifest says
    ``family: sam2`` runs the SAM 2 streaming tracker (:mod:`vos_ros.engine.sam2_predictor`).
    Otherwise (``family: protonet``) the model folder's manifest is loaded and checked
    (:class:`~vos_ros.engine.manifest.ModelFileError` on any mismatch) and the backend is
    chosen (:func:`~vos_ros.engine.backends.select.create_backend`; a backend that was asked
    for and cannot run raises, it is never swapped silently).
    """
    config = resolve_fusion(config or EngineConfig())
    if config.is_flow_fallback:
        short_side = config.round_short_side(config.processing_short_side or FLOW_SHORT_SIDE)
        return VosEngine(
            config,
            FlowPredictor(FallbackSettings.from_overrides(config.fallback), short_side),
            short_side,
            config.memory_every or DEFAULT_MEMORY_EVERY,
        )

    from vos_ros.engine.family import model_family

    if model_family(config.model) == "sam2":
        if config.fuse_fallback > 0:
            raise ConfigError("fuse_fallback applies to networks of the protonet family, not sam2")
        from vos_ros.engine.sam2_predictor import build_sam2_predictor

        predictor = build_sam2_predictor(config)
        # short side and memory schedule are the tracker's own (fixed square input, memory
        # written every frame); the values passed here only describe it
        return VosEngine(config, predictor, predictor.tracker.image_size, 1)

    from vos_ros.engine.backends.select import create_backend
    from vos_ros.engine.cpu_threads import limit_blas_threads
    from vos_ros.engine.manifest import load_manifest
    from vos_ros.engine.memory import MemoryBank
    from vos_ros.engine.predictor import NetworkPredictor

    limit_blas_threads()  # memory writes multiply small matrices (see cpu_threads)
    manifest = load_manifest(config.model, verify_checksums=config.verify_checksums)
    short_side = config.round_short_side(
        config.processing_short_side or manifest.short_side or DEFAULT_SHORT_SIDE
    )
    every = config.memory_every or manifest.memory_every or DEFAULT_MEMORY_EVERY
    size = config.memory_size or manifest.memory_size or DEFAULT_MEMORY_SIZE
    memory = MemoryBank(permanent_size=config.permanent_size, ring_size=size, every=every)
    backend = create_backend(config, manifest, short_side=short_side)
    adapter = None
    if config.adapt_steps:
        from vos_ros.engine.adaptation import OnlineAdapter

        adapter = OnlineAdapter(config, manifest, backend, short_side)
    predictor = NetworkPredictor(
        backend, memory, manifest.mean, manifest.std, manifest.prototype_scheme, adapter
    )
    if config.fuse_fallback > 0:
        from vos_ros.engine.fused import FusedPredictor

        fallback = FlowPredictor(FallbackSettings.from_overrides(config.fallback), short_side)
        predictor = FusedPredictor(
            predictor,
            fallback,
            config.fuse_fallback,
            config.decoder_window_scale,
            config.decoder_window_min,
        )
    return VosEngine(config, predictor, short_side, every)
