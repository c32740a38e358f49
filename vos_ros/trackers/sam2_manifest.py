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


@dataclass(frozen=True)
class Sam2Manifest:
    folder: Path
    name: str
    config: str
    checkpoint: Path
    files: dict[str, str]  # file name -> sha256


def load_sam2_manifest(folder: str | Path, verify_checksums: bool = True) -> Sam2Manifest:
    """Read and check ``folder/model.yaml`` of the sam2 family (files, sizes, sha256, config).

    :raises ModelFileError: naming the file and what is wrong.
    """
    folder, raw = read_manifest_yaml(folder)
    where = str(folder / MANIFEST_NAME)
    if raw.get("family") != "sam2":
        raise ModelFileError(f"{where}: not a sam2 model manifest (family: sam2)")
    digests = check_listed_files(raw, folder, where, verify_checksums)
    config = check_config_name(raw.get("config"), where)
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
    )
