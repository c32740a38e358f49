"""Multi-target video object segmentation engine (ROS-free core).

    from vos_ros.engine import EngineConfig, Prompt, build_engine
    engine = build_engine(EngineConfig(model="flow"))          # or model="models/<name>"
    result = engine.step(frame_rgb, prompt=Prompt(label_image, {1: "person"}))

See :mod:`vos_ros.engine.engine` for the per-frame pipeline and docs/architecture.md.
"""

from vos_ros.engine.build import build_engine
from vos_ros.engine.config import ConfigError, EngineConfig, EngineError
from vos_ros.engine.engine import InputError, Prompt, VosEngine

__all__ = [
    "ConfigError",
    "EngineConfig",
    "EngineError",
    "InputError",
    "Prompt",
    "VosEngine",
    "build_engine",
]
