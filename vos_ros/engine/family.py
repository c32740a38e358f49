"""Model families: which predictor plug-in a model folder's ``model.yaml`` asks for.

``family: protonet`` (the default when absent): the project's contract networks
(:mod:`vos_ros.engine.predictor`). ``family: sam2``: SAM 2 / SAM 2.1 and EdgeTAM checkpoints run
by the streaming trackers (:mod:`vos_ros.engine.sam2_predictor`). ``model: flow`` needs no folder.
"""

from __future__ import annotations

from pathlib import Path

from vos_ros.engine.manifest import MANIFEST_NAME, ModelFileError, read_manifest_yaml

FAMILIES = ("protonet", "sam2")
DEFAULT_FAMILY = "protonet"
# Families of folders that an older ``vos-ros fetch-model`` wrote and no plug-in runs, and why.
UNSUPPORTED_FAMILIES = {
    "edgetam": "a folder of EdgeTAM's official .pt checkpoint, which no plug-in runs; "
    "`vos-ros fetch-model edgetam --force` installs the weights in transformers' format, "
    "which the sam2 family runs",
}


def model_family(folder: str | Path) -> str:
    """The ``family`` of the model in ``folder`` (a path or an installed model's name, see
    :mod:`vos_ros.engine.model_paths`); missing manifests fall through to the family's own
    loader, which reports them.

    :raises ModelFileError: an unknown family, or a manifest that is not a YAML mapping.
    """
    from vos_ros.engine.model_paths import resolve_model

    if not (Path(resolve_model(str(folder))).expanduser() / MANIFEST_NAME).is_file():
        return DEFAULT_FAMILY
    resolved, raw = read_manifest_yaml(folder)
    path = resolved / MANIFEST_NAME
    family = raw.get("family", DEFAULT_FAMILY)
    if family in UNSUPPORTED_FAMILIES:
        raise ModelFileError(
            f"{path}: family {family} is not supported: {UNSUPPORTED_FAMILIES[family]}"
        )
    if family not in FAMILIES:
        raise ModelFileError(f"{path}: family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return family
