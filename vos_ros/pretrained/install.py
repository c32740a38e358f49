"""Write ``<out>/<name>/`` (checkpoint + ``model.yaml``) from a download or a local file.

Atomic: the folder is assembled under a temporary name beside it and renamed into place only
after the checkpoint has been verified and the manifest written, so a failure at any point
leaves no model folder (only a resumable ``<out>/.downloads/<file>.part`` after a transfer that
ended early).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from vos_ros.engine.manifest import MANIFEST_NAME, ModelFileError
from vos_ros.pretrained.catalog import PretrainedModel, lookup
from vos_ros.pretrained.download import FetchError, download, sha256_of

DOWNLOADS = ".downloads"


def fetch_model(
    name: str,
    out_root: str | Path = "models",
    checkpoint: str | Path | None = None,
    url: str | None = None,
    force: bool = False,
    quiet: bool = False,
) -> Path:
    """Download (or take ``checkpoint``), verify and install model ``name``; returns its folder.

    A model published with companion files (EdgeTAM: ``config.json`` beside
    ``model.safetensors``) gets them from beside the checkpoint: the same folder of the URL, or
    of the local ``checkpoint``.

    :raises FetchError: download or verification failed (nothing is installed).
    :raises UnknownModelError: ``name`` is not in the catalogue.
    """
    entry = lookup(name)
    out_root = Path(out_root).expanduser()
    target = out_root / name
    if target.exists() and not force:
        raise FetchError(f"{target} already exists; remove it or pass --force to replace it")
    out_root.mkdir(parents=True, exist_ok=True)
    source_url = url or entry.url
    if checkpoint is not None:
        source = Path(checkpoint).expanduser()
        if not source.is_file():
            raise FetchError(f"--checkpoint {source}: no such file")
        companions = {name: source.parent / name for name in entry.companions}
        for path in companions.values():
            if not path.is_file():
                raise FetchError(f"{path}: missing; {entry.name} needs it beside the checkpoint")
        downloaded: list[Path] = []
    else:
        parts = out_root / DOWNLOADS
        companions = {
            name: download(sibling_url(source_url, name), parts / f"{name}.part", quiet)
            for name in entry.companions
        }
        source = download(source_url, parts / f"{entry.file_name}.part", quiet)
        downloaded = [source, *companions.values()]
    try:
        digest, size = verify_checkpoint(entry, source, companions)
    except FetchError:
        for path in downloaded:
            path.unlink(missing_ok=True)  # a wrong file cannot be resumed into a right one
        raise
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_root))
    try:
        placing = {entry.file_name: source, **companions}
        for file_name, path in placing.items():
            if downloaded:
                os.replace(path, stage / file_name)
            else:
                shutil.copyfile(path, stage / file_name)
        manifest = manifest_for(entry, digest, size, source_url)
        for file_name in entry.companions:
            placed = stage / file_name
            manifest["files"][file_name] = {
                "sha256": sha256_of(placed),
                "bytes": placed.stat().st_size,
            }
        (stage / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False))
        _swap_into_place(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _remove_empty(out_root / DOWNLOADS)
    return target


def sibling_url(url: str, file_name: str) -> str:
    """``url`` with its last path segment replaced by ``file_name`` (query dropped)."""
    base = url.split("?", 1)[0]
    return f"{base.rsplit('/', 1)[0]}/{file_name}"


def verify_checkpoint(
    entry: PretrainedModel, path: Path, companions: dict[str, Path] | None = None
) -> tuple[str, int]:
    """Check ``path`` against what is known of ``entry``: published size and sha256 where
    recorded, and that it loads into the model it is for (the official SAM 2 model of
    ``entry.config``; EdgeTAM: transformers' model of the ``config.json`` beside it).

    :returns: ``(sha256, size)`` of the file.
    :raises FetchError: naming the check that failed.
    """
    size = path.stat().st_size
    if entry.bytes is not None and size != entry.bytes:
        raise FetchError(f"{path}: {size} bytes, but {entry.name} is {entry.bytes} bytes")
    digest = sha256_of(path)
    if entry.sha256 is not None and digest != entry.sha256:
        raise FetchError(
            f"{path}: sha256 {digest[:12]}… does not match {entry.name}'s {entry.sha256[:12]}…"
        )
    try:
        if entry.architecture == "edgetam":
            from vos_ros.trackers.edgetam_library import build_edgetam_model

            build_edgetam_model((companions or {})[entry.config], path)
        else:
            from vos_ros.trackers.sam2_library import build_model

            build_model(entry.config, path)  # every tensor name and shape must fit the config
    except ModelFileError as exc:
        raise FetchError(f"not a {entry.name} checkpoint: {exc}") from None
    return digest, size


def manifest_for(entry: PretrainedModel, digest: str, size: int, url: str) -> dict:
    manifest = {
        "format_version": 1,
        "family": entry.family,
        "name": entry.name,
        "config": entry.config,
        "checkpoint": entry.file_name,
        "files": {entry.file_name: {"sha256": digest, "bytes": size}},
        "source": {
            "url": url,
            "published_bytes": entry.bytes,
            "published_sha256": entry.sha256,
        },
        "licence": entry.licence,
    }
    if entry.architecture != "sam2":
        manifest["architecture"] = entry.architecture
    return manifest


def _swap_into_place(stage: Path, target: Path) -> None:
    """Rename ``stage`` to ``target``; an existing ``target`` (``--force``) is moved aside
    first and deleted only once the new folder is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(stage, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
