"""A model folder as bytes, to send to Ray workers through the object store.

Workers of a cluster need not share a file system with the driver, so the driver reads the
model folder once (after checking it against its manifest), puts the bytes in Ray's object
store, and every worker writes them to a local folder and loads it with the same check:
``model.yaml`` lists the size and sha256 of every file, so a file changed or damaged on the
way fails there with :class:`~vos_ros.engine.manifest.ModelFileError`, naming the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST_NAME = "model.yaml"


@dataclass(frozen=True)
class ModelPackage:
    """The manifest and every file it lists; ``digest`` is the sha256 of the manifest."""

    name: str
    digest: str
    files: dict[str, bytes]


def pack_model(model: str) -> ModelPackage:
    """Check the model folder against its manifest here, then read it into a package.

    :raises ModelFileError: the folder, its manifest or a file is missing or does not match.
    """
    from vos_ros.engine.manifest import load_manifest

    manifest = load_manifest(model)
    names = [MANIFEST_NAME, *sorted(manifest.files)]
    files = {name: (manifest.folder / name).read_bytes() for name in names}
    digest = hashlib.sha256(files[MANIFEST_NAME]).hexdigest()
    return ModelPackage(manifest.folder.name, digest, files)


def unpack_model(package: ModelPackage, root: Path | None = None) -> Path:
    """Write the package to ``root/<name>-<digest>`` (once per machine; concurrent workers
    write to their own temporary folder and rename it) and check it against its manifest.

    :returns: the model folder, ready for ``EngineConfig(model=...)``.
    :raises ModelFileError: a file does not match the manifest.
    """
    from vos_ros.engine.manifest import load_manifest

    root = root or Path(tempfile.gettempdir()) / "vos_ros_models"
    folder = root / f"{package.name}-{package.digest[:16]}"
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{package.name}-", dir=root))
        try:
            for name, data in package.files.items():
                rel = PurePosixPath(name)
                if rel.is_absolute() or ".." in rel.parts:
                    raise ValueError(f"model file {name!r} lies outside the model folder")
                target = staging.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            os.rename(staging, folder)
        except OSError:
            if not folder.is_dir():  # another worker did not win the race either
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    load_manifest(folder)  # every file's size and sha256, on this machine
    return folder
