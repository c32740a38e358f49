"""Access to the official ``sam2`` package: import check, model build, checkpoint load.

The network code is the official package's (``sam2.build_sam``, ``SAM2Base``); nothing here
re-implements it. Every failure becomes a :class:`~vos_ros.engine.manifest.ModelFileError` or
:class:`Sam2MissingError` naming what to fix, so the node's configure transition fails with a
clear message instead of a traceback from deep inside hydra or torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from vos_ros.engine.config import EngineError
from vos_ros.engine.manifest import ModelFileError

# The official configs shipped inside the package (``sam2/configs/...``), by model size.
SAM2_CONFIGS = (
    "configs/sam2.1/sam2.1_hiera_t.yaml",
    "configs/sam2.1/sam2.1_hiera_s.yaml",
    "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "configs/sam2.1/sam2.1_hiera_l.yaml",
    "configs/sam2/sam2_hiera_t.yaml",
    "configs/sam2/sam2_hiera_s.yaml",
    "configs/sam2/sam2_hiera_b+.yaml",
    "configs/sam2/sam2_hiera_l.yaml",
)


class Sam2MissingError(EngineError):
    """The official ``sam2`` package (or one of its dependencies) is not installed."""


def require_sam2() -> None:
    """Raise :class:`Sam2MissingError` with the install line when ``sam2`` cannot be imported."""
    missing = [
        name for name in ("sam2", "hydra", "iopath") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise Sam2MissingError(
            f"the sam2 model family needs the official sam2 package ({', '.join(missing)} "
            "missing): run scripts/setup.sh, or pip install hydra-core iopath && "
            "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0"
        )


def has_cuda_extension() -> bool:
    """True when the package was built with its CUDA extension (``sam2._C``), which the
    official predictor's hole filling needs; without it the official code skips that step."""
    return importlib.util.find_spec("sam2._C") is not None


def check_config_name(config: object, where: str) -> str:
    if config not in SAM2_CONFIGS:
        raise ModelFileError(
            f"{where}: config must be one of the sam2 package's configs "
            f"({', '.join(SAM2_CONFIGS)}), got {config!r}"
        )
    return str(config)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The ``model`` state dict of an official checkpoint (``{"model": state_dict}``).

    :raises ModelFileError: unreadable, truncated or not an official SAM 2 checkpoint.
    """
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    # A broken file raises pickle's UnpicklingError, RuntimeError, EOFError, BadZipFile or
    # OSError depending on where it breaks; pickle itself stays out of the source tree.
    except Exception as exc:
        raise ModelFileError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}); "
            "the file is corrupt or truncated: fetch it again"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        keys = sorted(map(str, raw))[:5] if isinstance(raw, dict) else []
        raise ModelFileError(
            f"{path}: not an official SAM 2 checkpoint (expected a dict with a 'model' state "
            f"dict, got a {type(raw).__name__} with keys {keys})"
        )
    return raw["model"]


def state_dict_mismatch(expected: dict[str, Any], state: dict[str, Any]) -> str:
    """How ``state`` fails to fit a model whose state dict is ``expected`` (tensor names
    missing, unexpected, or of another shape, with examples); empty when it fits."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    return "; ".join(
        f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("other shape", reshaped),
        )
        if keys
    )


def build_model(config: str, checkpoint: Path, device: str = "cpu") -> Any:
    """The official video model (``SAM2VideoPredictor``, a ``SAM2Base``) built from ``config``
    with the official video post-processing settings, weights from ``checkpoint``, eval mode.

    :raises ModelFileError: the checkpoint does not fit the config (names the keys).
    """
    require_sam2()
    from sam2.build_sam import build_sam2_video_predictor

    state = read_checkpoint(checkpoint)
    # Built without a checkpoint, then loaded here: the official loader only logs the
    # mismatching keys and raises a bare RuntimeError.
    model = build_sam2_video_predictor(config, None, device="cpu", mode="eval")
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        raise ModelFileError(
            f"{checkpoint}: does not fit config {config}: {mismatch}; the checkpoint is "
            "for another model size or family"
        )
    model.load_state_dict(state)
    return model.to(device).eval()
