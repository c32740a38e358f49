"""EdgeTAM's model code, from Hugging Face ``transformers`` (``EdgeTamVideoModel``).

EdgeTAM (Apache-2.0) is SAM 2 with a RepViT image encoder (built by ``timm``) and a 2D spatial
perceiver that compresses each memory frame. Its official code is not packaged; ``transformers``
keeps a port, which loads weights in its own format (``model.safetensors`` + ``config.json``,
as the Hugging Face hub publishes them). This module checks such a pair and builds the model.
``timm`` is needed only for the RepViT encoder that the published config names, and it
imports ``torchvision``; the port's other settings (its default config has SAM 2's Hiera
encoder in front of EdgeTAM's memory) need neither.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from vos_ros.engine.config import EngineError
from vos_ros.engine.manifest import ModelFileError
from vos_ros.trackers.sam2_library import state_dict_mismatch
from vos_ros.trackers.torchvision_import import import_torchvision


class TransformersMissingError(EngineError):
    """``transformers`` (EdgeTAM's model code), or ``timm`` for its RepViT encoder, is missing."""


def require_transformers() -> None:
    """Raise :class:`TransformersMissingError` with the install line when they are missing;
    make ``torchvision``, which ``transformers`` imports when installed, importable."""
    names = ("transformers", "safetensors")
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise TransformersMissingError(
            f"EdgeTAM needs transformers ({', '.join(missing)} missing): run "
            "scripts/setup.sh, or pip install -r requirements-edgetam.txt"
        )
    if importlib.util.find_spec("torchvision") is not None:
        # transformers imports torchvision whenever it is installed
        import_torchvision()


def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of ``path``.

    :raises ModelFileError: unreadable, truncated or not a safetensors file.
    """
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ...: the file is damaged
        raise ModelFileError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}); the file "
            "is corrupt or truncated: fetch it again"
        ) from None


def build_edgetam_model(config_json: Path, checkpoint: Path, device: str = "cpu") -> Any:
    """``EdgeTamVideoModel`` built from ``config_json`` with the weights of ``checkpoint``
    (every tensor name and shape must fit), in eval mode.

    :raises ModelFileError: a config that cannot be read, or weights that do not fit it.
    """
    require_transformers()
    import torch
    from transformers import EdgeTamVideoConfig, EdgeTamVideoModel

    try:
        config = EdgeTamVideoConfig.from_json_file(str(config_json))
    except Exception as exc:
        raise ModelFileError(f"{config_json}: not an EdgeTAM config ({exc})") from None
    state = read_safetensors(checkpoint)
    try:
        with torch.device("cpu"):
            model = EdgeTamVideoModel(config)
    except ImportError as exc:  # the RepViT encoder comes from timm, which imports torchvision
        raise TransformersMissingError(
            f"{config_json}: EdgeTAM's image encoder ({config.vision_config.model_type}) needs "
            f"a module that is not installed ({exc}); install timm and a torchvision built for "
            "this torch (pip install timm torchvision)"
        ) from None
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        raise ModelFileError(
            f"{checkpoint}: does not fit {config_json.name}: {mismatch}; the weights are "
            "for another model, or not in the transformers format of EdgeTAM"
        )
    model.load_state_dict(state)
    return model.to(device).eval()
