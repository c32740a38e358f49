"""The official checkpoints ``vos-ros fetch-model`` knows: one table, one row per name.

URLs are the publishers' own. Sizes and sha256 digests are recorded only where they are known
from the publisher; where they are not (``None``), a download is verified by what is known:
the server's announced length, a complete transfer, and a checkpoint that loads into the
official model of its config with every tensor name and shape matching. The digest the file
actually had is then written to the model folder's ``model.yaml``, and every later load checks
the file against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vos_ros.engine.config import EngineError

SAM2_RELEASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
EDGETAM_HUB = "https://huggingface.co/facebook/EdgeTAM"


class UnknownModelError(EngineError):
    """A model name that is not in the catalogue."""


@dataclass(frozen=True)
class PretrainedModel:
    """One downloadable checkpoint.

    :param family: the ``model.yaml`` family that runs it.
    :param config: the ``sam2`` package config the checkpoint belongs to; for
        ``architecture="edgetam"`` the name of the config file published beside it.
    :param file_name: the checkpoint's file name in the model folder.
    :param bytes: published size, or None where not published.
    :param sha256: published digest, or None where not published.
    """

    name: str
    family: str
    config: str
    file_name: str
    url: str
    bytes: int | None
    sha256: str | None
    licence: str
    # whose model code runs it: the sam2 package, or transformers' EdgeTAM port
    architecture: str = "sam2"
    # files published beside the checkpoint that the model folder needs too
    companions: tuple[str, ...] = ()


CATALOG: dict[str, PretrainedModel] = {
    m.name: m
    for m in (
        PretrainedModel(
            "sam2.1-hiera-tiny", "sam2", "configs/sam2.1/sam2.1_hiera_t.yaml",
            "sam2.1_hiera_tiny.pt", f"{SAM2_RELEASE}/sam2.1_hiera_tiny.pt",
            None, None, "Apache-2.0",
        ),
        PretrainedModel(
            "sam2.1-hiera-small", "sam2", "configs/sam2.1/sam2.1_hiera_s.yaml",
            "sam2.1_hiera_small.pt", f"{SAM2_RELEASE}/sam2.1_hiera_small.pt",
            None, None, "Apache-2.0",
        ),
        PretrainedModel(
            "sam2.1-hiera-base-plus", "sam2", "configs/sam2.1/sam2.1_hiera_b+.yaml",
            "sam2.1_hiera_base_plus.pt", f"{SAM2_RELEASE}/sam2.1_hiera_base_plus.pt",
            None, None, "Apache-2.0",
        ),
        PretrainedModel(
            "sam2.1-hiera-large", "sam2", "configs/sam2.1/sam2.1_hiera_l.yaml",
            "sam2.1_hiera_large.pt", f"{SAM2_RELEASE}/sam2.1_hiera_large.pt",
            None, None, "Apache-2.0",
        ),
        PretrainedModel(
            "edgetam", "sam2", "config.json", "model.safetensors",
            # the publisher's repository, at the revision that adds the weights (and their
            # config.json) in the format of transformers' EdgeTAM port; not reachable from here
            f"{EDGETAM_HUB}/resolve/refs%2Fpr%2F1/model.safetensors",
            None, None, "Apache-2.0", architecture="edgetam", companions=("config.json",),
        ),
    )
}  # fmt: skip


def lookup(name: str) -> PretrainedModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(CATALOG)}") from None
