"""Load and check a model folder's manifest, ``models/<name>/model.yaml``.

The manifest is written by ``vos-ros export`` (:mod:`vos_ros.model.export`). The fields the
engine reads (others, such as ``architecture`` statistics, are informational)::

    format_version: 1
    name: protonet-s                 # folder name
    version: 0.1.0
    files:                           # every file of the model, checked before use
      encoder.onnx: {sha256: <64 hex>, bytes: 123456}
      decoder.onnx: {sha256: ..., bytes: ...}
      weights.pt:   {sha256: ..., bytes: ...}     # optional: PyTorch backend only
    encoder: encoder.onnx
    decoder: decoder.onnx
    torch: {builder: vos_ros.model.network.build_network, weights: weights.pt}
    input: {short_side: 288, multiple_of: 32, color: RGB, scale: x / 255,
            mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
    contract: {opset: 17, key_dim: 64, key_stride: 8, skip_stride: 4, c4: 32, c8: 64,
               protos_per_frame: 5, prototype_scheme: local-bg}   # absent: frame-grid
    memory: {every: 5, size: 4}      # recent frame every 5 frames, ring of 4
    fuse_fallback: 3.0               # optional: fused with the flow fallback (0: alone)
    architecture: {...}              # build_network() keyword overrides (+ statistics)
    training: {data: {...}, ...}
    metrics: {...}

Any problem raises :class:`ModelFileError` naming the file and what is wrong: missing file,
size or sha256 mismatch (the file changed after export), an ONNX graph whose inputs/outputs do
not follow :mod:`vos_ros.model.contract`, or a manifest field with a wrong type.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vos_ros.engine.config import EngineError
from vos_ros.model import contract

MANIFEST_NAME = "model.yaml"
SUPPORTED_FORMAT_VERSIONS = (1,)
# architecture entries that describe the network rather than configure build_network()
_ARCH_STATISTICS = ("parameters",)


class ModelFileError(EngineError):
    """A model folder, its manifest or one of its files is missing, corrupt or off-contract."""


@dataclass(frozen=True)
class ModelManifest:
    """The checked content of ``model.yaml``; paths are absolute."""

    folder: Path
    name: str
    version: str
    files: dict[str, str]  # file name -> sha256
    encoder_path: Path
    decoder_path: Path
    weights_path: Path | None
    short_side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    memory_every: int | None
    memory_size: int | None
    c4: int | None
    c8: int | None
    prototype_scheme: str = contract.LEGACY_PROTOTYPE_SCHEME
    # weight of the flow fallback's log-odds the network runs fused with by default (0: alone)
    fuse_fallback: float = 0.0
    arch: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def sha256(self, file_name: str) -> str:
        return self.files[file_name]

    @property
    def model_sha256(self) -> str:
        """One digest for the whole model (all file digests in name order)."""
        joined = "".join(f"{name}:{digest};" for name, digest in sorted(self.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest_yaml(folder: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(absolute folder, content of its model.yaml)`` for a model folder of any family.

    ``folder`` may also name an installed model (``protonet-s``, ``models/protonet-s``): see
    :mod:`vos_ros.engine.model_paths`.

    :raises ModelFileError: the folder does not exist (naming every place looked in), or its
        manifest is missing, not valid YAML or not a mapping.
    """
    from vos_ros.engine.model_paths import model_candidates, resolve_model

    requested = str(folder)
    resolved = Path(resolve_model(requested)).expanduser().resolve()
    if not resolved.is_dir():
        tried = ", ".join(str(path) for path in model_candidates(requested))
        raise ModelFileError(
            f"model folder {requested!r} does not exist (looked in: {tried}); or use model='flow'"
        )
    path = resolved / MANIFEST_NAME
    if not path.is_file():
        raise ModelFileError(f"{path}: missing; a model folder needs a {MANIFEST_NAME}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path}: must be a mapping, got {type(raw).__name__}")
    return resolved, raw


def load_manifest(
    folder: str | Path, verify_checksums: bool = True, check_graphs: bool = True
) -> ModelManifest:
    """Read ``folder/model.yaml``, verify every file's size and sha256 and the ONNX signatures.

    ``folder`` may also name an installed model (``protonet-s``, ``models/protonet-s``): see
    :mod:`vos_ros.engine.model_paths`.

    :raises ModelFileError: on any problem, naming the file.
    """
    folder, raw = read_manifest_yaml(folder)
    manifest_path = folder / MANIFEST_NAME
    where = str(manifest_path)

    fmt = raw.get("format_version", 1)
    if fmt not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelFileError(
            f"{where}: format_version {fmt!r} is not supported "
            f"(supported: {SUPPORTED_FORMAT_VERSIONS})"
        )
    digests = check_listed_files(raw, folder, where, verify_checksums)

    encoder_name = _string(raw, "encoder", where, default="encoder.onnx")
    decoder_name = _string(raw, "decoder", where, default="decoder.onnx")
    for name in (encoder_name, decoder_name):
        if name not in digests:
            raise ModelFileError(
                f"{where}: {name} is used but has no entry under files (no checksum)"
            )
    torch_section = raw.get("torch") or {}
    weights_name = torch_section.get("weights") if isinstance(torch_section, dict) else None
    weights_path = None
    if weights_name:
        if weights_name not in digests:
            raise ModelFileError(f"{where}: {weights_name} is used but has no entry under files")
        weights_path = folder / weights_name

    inp = _mapping(raw, "input", where)
    short_side = inp.get("short_side")
    if not isinstance(short_side, int) or short_side <= 0 or short_side % contract.STRIDE:
        raise ModelFileError(
            f"{where}: input.short_side must be a positive multiple of {contract.STRIDE}, "
            f"got {short_side!r}"
        )
    mean = _triple(inp, "mean", where)
    std = _triple(inp, "std", where)
    if min(std) <= 0:
        raise ModelFileError(f"{where}: input.std values must be > 0, got {std}")
    color = inp.get("color", "RGB")
    if color != "RGB":
        raise ModelFileError(f"{where}: input.color must be RGB, got {color!r}")

    con = raw.get("contract") or {}
    if not isinstance(con, dict):
        raise ModelFileError(f"{where}: contract must be a mapping")
    expected = {
        "key_dim": contract.KEY_DIM,
        "key_stride": contract.KEY_STRIDE,
        "skip_stride": contract.SKIP_STRIDE,
        "protos_per_frame": contract.PROTOS_PER_FRAME,
    }
    for key, value in expected.items():
        if key in con and con[key] != value:
            raise ModelFileError(
                f"{where}: contract.{key} is {con[key]} but this engine implements {value}"
            )

    scheme = con.get("prototype_scheme", contract.LEGACY_PROTOTYPE_SCHEME)
    if scheme not in contract.PROTOTYPE_SCHEMES:
        raise ModelFileError(
            f"{where}: contract.prototype_scheme is {scheme!r}; this engine implements "
            f"{', '.join(contract.PROTOTYPE_SCHEMES)}"
        )

    fuse = raw.get("fuse_fallback", 0.0)
    if isinstance(fuse, bool) or not isinstance(fuse, (int, float)) or not 0.0 <= fuse <= 100.0:
        raise ModelFileError(f"{where}: fuse_fallback must be a number in [0, 100], got {fuse!r}")
    memory = raw.get("memory") or {}
    memory_every = _optional_positive_int(memory, "every", where)
    memory_size = _optional_positive_int(memory, "size", where)
    arch = {
        k: v
        for k, v in (raw.get("architecture") or {}).items()
        if k not in _ARCH_STATISTICS and not str(k).startswith("gflops")
    }

    manifest = ModelManifest(
        folder=folder,
        name=str(raw.get("name", folder.name)),
        version=str(raw.get("version", "")),
        files=digests,
        encoder_path=folder / encoder_name,
        decoder_path=folder / decoder_name,
        weights_path=weights_path,
        short_side=short_side,
        mean=mean,
        std=std,
        memory_every=memory_every,
        memory_size=memory_size,
        c4=con.get("c4"),
        c8=con.get("c8"),
        prototype_scheme=scheme,
        fuse_fallback=float(fuse),
        arch=arch,
        raw=raw,
    )
    if check_graphs:
        check_onnx_signatures(manifest)
    return manifest


def check_listed_files(
    raw: dict, folder: Path, where: str, verify_checksums: bool = True
) -> dict[str, str]:
    """Check every file listed under ``files`` of a manifest: present, size, sha256.

    :returns: file name -> sha256.
    :raises ModelFileError: naming the file and what is wrong.
    """
    files = _mapping(raw, "files", where)
    digests: dict[str, str] = {}
    for name, entry in files.items():
        if isinstance(entry, str):
            entry = {"sha256": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ModelFileError(f"{where}: files.{name} needs a sha256 string")
        digest = entry["sha256"].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ModelFileError(f"{where}: files.{name}.sha256 is not a 64-digit hex digest")
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"{path}: listed in {MANIFEST_NAME} but missing")
        size = entry.get("bytes")
        if size is not None and path.stat().st_size != size:
            raise ModelFileError(
                f"{path}: size is {path.stat().st_size} bytes but {MANIFEST_NAME} says {size} "
                f"(file truncated or replaced after export)"
            )
        if verify_checksums:
            actual = sha256_file(path)
            if actual != digest:
                raise ModelFileError(
                    f"{path}: sha256 mismatch (manifest {digest[:12]}…, file {actual[:12]}…); the "
                    f"file changed after export: re-export the model or restore the file"
                )
        digests[name] = digest
    return digests


def check_onnx_signatures(manifest: ModelManifest) -> None:
    """Check input/output names, ranks and fixed channel sizes of both graphs against the contract.

    :raises ModelFileError: naming the graph file and the tensor that is off.
    """
    import onnx

    enc = _graph_io(manifest.encoder_path)
    dec = _graph_io(manifest.decoder_path)
    c4 = manifest.c4
    c8 = manifest.c8
    key_dim = contract.KEY_DIM
    enc_spec = {
        "inputs": {"image": (1, 3, None, None)},
        "outputs": {
            "key": (1, key_dim, None, None),
            "f4": (1, c4, None, None),
            "f8": (1, c8, None, None),
        },
    }
    dec_spec = {
        "inputs": {
            "key": (1, key_dim, None, None),
            "f4": (1, c4, None, None),
            "f8": (1, c8, None, None),
            "proto_fg": ("dyn", "dyn", key_dim),
            "proto_bg": ("dyn", "dyn", key_dim),
            "prev_mask": ("dyn", 1, None, None),
        },
        "outputs": {"logits": ("dyn", 1, None, None)},
    }
    for path, io, spec, in_names, out_names in (
        (manifest.encoder_path, enc, enc_spec, contract.ENCODER_INPUTS, contract.ENCODER_OUTPUTS),
        (manifest.decoder_path, dec, dec_spec, contract.DECODER_INPUTS, contract.DECODER_OUTPUTS),
    ):
        for kind, names in (("inputs", in_names), ("outputs", out_names)):
            actual = [name for name, _, _ in io[kind]]
            if actual != list(names):
                raise ModelFileError(
                    f"{path}: {kind} are {actual}, the contract needs {list(names)}"
                )
            for name, dims, elem in io[kind]:
                if elem != onnx.TensorProto.FLOAT:
                    raise ModelFileError(f"{path}: {name} must be float32")
                want = spec[kind][name]
                if len(dims) != len(want):
                    raise ModelFileError(
                        f"{path}: {name} has rank {len(dims)}, the contract needs {len(want)}"
                    )
                for axis, (have, need) in enumerate(zip(dims, want, strict=False)):
                    if need == "dyn" and isinstance(have, int):
                        raise ModelFileError(
                            f"{path}: {name} axis {axis} is fixed at {have}; "
                            "export it as a dynamic axis"
                        )
                    if isinstance(need, int) and isinstance(have, int) and have != need:
                        raise ModelFileError(
                            f"{path}: {name} axis {axis} is {have}, expected {need}"
                        )
    # encoder outputs must fit decoder inputs where both are fixed
    enc_out = {n: d for n, d, _ in enc["outputs"]}
    dec_in = {n: d for n, d, _ in dec["inputs"]}
    for name in ("key", "f4", "f8"):
        a, b = enc_out[name][1], dec_in[name][1]
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise ModelFileError(
                f"{manifest.decoder_path}: input {name} has {b} channels but the encoder gives {a}"
            )


def _graph_io(path: Path) -> dict[str, list[tuple[str, list, int]]]:
    """``{"inputs"|"outputs": [(name, dims, elem_type)]}``; a dim is an int or its symbolic name."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelFileError(f"{path}: not a readable ONNX file ({exc})") from None
    initializers = {i.name for i in model.graph.initializer}

    def describe(values) -> list[tuple[str, list, int]]:
        out = []
        for v in values:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            dims = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in t.shape.dim
            ]
            out.append((v.name, dims, t.elem_type))
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


def _mapping(raw: dict, key: str, where: str) -> dict:
    value = raw.get(key)
    if not isinstance(value, dict) or not value:
        raise ModelFileError(f"{where}: '{key}' must be a non-empty mapping")
    return value


def _string(raw: dict, key: str, where: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise ModelFileError(f"{where}: '{key}' must be a file name")
    return value


def _triple(section: dict, key: str, where: str) -> tuple[float, float, float]:
    value = section.get(key)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ModelFileError(f"{where}: input.{key} must be 3 numbers (R, G, B), got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _optional_positive_int(section: dict, key: str, where: str) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelFileError(f"{where}: memory.{key} must be a positive integer, got {value!r}")
    return value
