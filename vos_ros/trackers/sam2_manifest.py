"""``model.yaml`` of a SAM 2 model folder (written by ``vos-ros fetch-model``)::

format_version: 1
family: sam2
name: sam2.1-hiera-tiny
config: configs/sam2.1/sam2.1_hiera_t.yaml     # the sam2 package's config
checkpoint: sam2.1_hiera_tiny.pt
files:
  sam2.1_hiera_tiny.pt: {sha256: <64 hex>, bytes: 156008466}
source: {url: https://..., published_sha256: null}   # informational
licence: Apache-2.0

EdgeTAM, whose model code comes from ``transformers``, adds ``architecture: edgetam``; its
``config`` is then a file of the folder (``config.json``, listed under ``files``) and its
checkpoint ``model.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vos_ros.engine.manifest import (
    MANIFEST_NAME,
    ModelFileError,
    check_listed_files,
    read_manifest_yaml,
)
from vos_ros.trackers.sam2_library import check_config_name

ARCHITECTURES = ("sam2", "edgetam")  # whose model code runs the folder: sam2, transformers


@dataclass(frozen=True)
class Sam2Manifest:
    folder: Path
    name: str
    config: str  # the sam2 package's config name, or (edgetam) the path of config.json
    checkpoint: Path
    files: dict[str, str]  # file name -> sha256
    architecture: str = "sam2"


def sam2_architecture(folder: str | Path) -> str:
    """The ``architecture`` of a sam2-family folder, read without checking its files."""
    _, raw = read_manifest_yaml(folder)
    return str(raw.get("architecture", "sam2"))


def load_sam2_manifest(folder: str | Path, verify_checksums: bool = True) -> Sam2Manifest:
    """Read and check ``folder/model.yaml`` of the sam2 family (files, sizes, sha256, config).

    :raises ModelFileError: naming the file and what is wrong.
    """
    folder, raw = read_manifest_yaml(folder)
    where = str(folder / MANIFEST_NAME)
    if raw.get("family") != "sam2":
        raise ModelFileError(f"{where}: not a sam2 model manifest (family: sam2)")
    digests = check_listed_files(raw, folder, where, verify_checksums)
    architecture = raw.get("architecture", "sam2")
    if architecture not in ARCHITECTURES:
        raise ModelFileError(
            f"{where}: architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}"
        )
    if architecture == "sam2":
        config = check_config_name(raw.get("config"), where)
    elif raw.get("config") in digests:
        config = str(folder / raw["config"])
    else:
        raise ModelFileError(
            f"{where}: config must name a file listed under files (config.json), "
            f"got {raw.get('config')!r}"
        )
    checkpoint = raw.get("checkpoint")
    if not isinstance(checkpoint, str) or checkpoint not in digests:
        raise ModelFileError(
            f"{where}: checkpoint must name a file listed under files, got {checkpoint!r}"
        )
    return Sam2Manifest(
        folder=folder,
        name=str(raw.get("name", folder.name)),
        config=config,
        checkpoint=folder / checkpoint,
        files=digests,
        architecture=architecture,
    )
