"""``vos-ros fetch-model``: download (resumable, verified) or local file -> ``<out>/<name>/``.

A local HTTP server (127.0.0.1, in a thread) serves a random-weight SAM 2.1-tiny checkpoint in
the official format. Every failure gives a clear error and leaves no model folder; a transfer
that ended early resumes with an HTTP Range request. Model folders that went bad after install
fail at configure with a clear error while the node keeps running.
"""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
from pathlib import Path

import pytest
import yaml
from sam2_testlib import sam2_checkpoint  # noqa: F401  (pytest fixture)

from vos_ros.engine.manifest import ModelFileError
from vos_ros.pretrained import catalog
from vos_ros.pretrained.download import FetchError, sha256_of
from vos_ros.pretrained.install import DOWNLOADS, fetch_model

NAME = "sam2.1-hiera-tiny"


class CheckpointServer:
    """Serves one file at ``/ckpt.pt`` (and ``more`` files at their paths) with Range support;
    ``truncate_next`` cuts the next response after half its bytes (the announced length stays
    the full one)."""

    def __init__(self, payload: Path, more: dict[str, Path] | None = None) -> None:
        self.data = payload.read_bytes()
        self.files = {"/ckpt.pt": self.data}
        self.files.update({path: file.read_bytes() for path, file in (more or {}).items()})
        self.truncate_next = False
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header.split("=")[1].rstrip("-")) if header else 0
                body = data[start:]
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.truncate_next:
                    server.truncate_next = False
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str = "/ckpt.pt") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> CheckpointServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(sam2_checkpoint):  # noqa: F811
    with CheckpointServer(sam2_checkpoint) as srv:
        yield srv


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_writes_a_verified_model_folder(tmp_path, server, sam2_checkpoint):  # noqa: F811
    folder = fetch_model(NAME, tmp_path, url=server.url(), quiet=True)
    assert folder == tmp_path / NAME
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    assert manifest["family"] == "sam2"
    assert manifest["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml"
    entry = manifest["files"]["sam2.1_hiera_tiny.pt"]
    assert entry == {"sha256": sha256_of(sam2_checkpoint), "bytes": sam2_checkpoint.stat().st_size}
    assert manifest["licence"] == "Apache-2.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]  # no partial, no stage left
    with pytest.raises(FetchError, match="already exists"):
        fetch_model(NAME, tmp_path, url=server.url(), quiet=True)


def test_truncated_download_fails_cleanly_and_resumes(tmp_path, server):
    server.truncate_next = True
    with pytest.raises(FetchError, match=r"transfer ended after .* run the same command again"):
        fetch_model(NAME, tmp_path, url=server.url(), quiet=True)
    assert not (tmp_path / NAME).exists()
    part = tmp_path / DOWNLOADS / "sam2.1_hiera_tiny.pt.part"
    kept = part.stat().st_size
    assert 0 < kept < len(server.data)
    folder = fetch_model(NAME, tmp_path, url=server.url(), quiet=True)
    assert server.ranges == [None, f"bytes={kept}-"]  # the second request resumed
    assert sha256_of(folder / "sam2.1_hiera_tiny.pt") == sha256_of_bytes(server.data)
    assert not (tmp_path / DOWNLOADS).exists()


def sha256_of_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_wrong_checksum_is_refused(tmp_path, server, monkeypatch):
    wrong = dataclasses.replace(catalog.CATALOG[NAME], sha256="0" * 64)
    monkeypatch.setitem(catalog.CATALOG, NAME, wrong)
    with pytest.raises(FetchError, match=r"sha256 .* does not match"):
        fetch_model(NAME, tmp_path, url=server.url(), quiet=True)
    assert not (tmp_path / NAME).exists()
    assert not (tmp_path / DOWNLOADS / "sam2.1_hiera_tiny.pt.part").exists()


def test_http_404_and_no_network_are_clear_errors(tmp_path, server):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_model(NAME, tmp_path, url=server.url("/missing.pt"), quiet=True)
    with pytest.raises(FetchError, match="cannot connect"):
        fetch_model(NAME, tmp_path, url=f"http://127.0.0.1:{_closed_port()}/x.pt", quiet=True)
    assert not (tmp_path / NAME).exists()


def test_checkpoint_of_another_model_or_corrupt_is_refused(tmp_path, sam2_checkpoint):  # noqa: F811
    with pytest.raises(FetchError, match=r"does not fit config configs/sam2.1/sam2.1_hiera_s"):
        fetch_model("sam2.1-hiera-small", tmp_path, checkpoint=sam2_checkpoint, quiet=True)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(sam2_checkpoint.read_bytes()[:100_000])
    with pytest.raises(FetchError, match="corrupt or truncated"):
        fetch_model(NAME, tmp_path, checkpoint=corrupt, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt"]


def test_cli_installs_a_local_checkpoint(tmp_path, sam2_checkpoint, capsys):  # noqa: F811
    from vos_ros.cli import main

    code = main(["fetch-model", NAME, "--checkpoint", str(sam2_checkpoint), "--out", str(tmp_path)])
    assert code == 0
    assert (tmp_path / NAME / "model.yaml").is_file()
    assert main(["fetch-model", NAME, "--checkpoint", str(tmp_path / "nope.pt")]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.fixture
def installed(tmp_path, sam2_checkpoint) -> Path:  # noqa: F811
    return fetch_model(NAME, tmp_path / "models", checkpoint=sam2_checkpoint, quiet=True)


def test_bad_model_folders_fail_at_configure(installed):
    from vos_ros.engine import EngineConfig, build_engine

    manifest_path = installed / "model.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest["config"] = "configs/sam2.1/sam2.1_hiera_b+.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelFileError, match=r"does not fit config configs/sam2.1/sam2.1_hiera_b"):
        build_engine(EngineConfig(model=str(installed)))
    manifest["config"] = "configs/nothing.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelFileError, match="config must be one of"):
        build_engine(EngineConfig(model=str(installed)))
    checkpoint = installed / "sam2.1_hiera_tiny.pt"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 mismatch"):
        build_engine(EngineConfig(model=str(installed)))


def test_backends_the_family_cannot_run_are_refused(installed):
    from vos_ros.engine import ConfigError, EngineConfig, build_engine

    with pytest.raises(ConfigError, match="ONNX Runtime on the CPU only"):
        build_engine(EngineConfig(model=str(installed), backend="onnxruntime", device="cuda"))
    for precision in ("fp16", "bf16"):
        with pytest.raises(ConfigError, match=f"precision {precision} needs device cuda"):
            build_engine(EngineConfig(model=str(installed), device="cpu", precision=precision))
    with pytest.raises(ConfigError, match="processing_short_side does not apply"):
        build_engine(EngineConfig(model=str(installed), processing_short_side=480))
    with pytest.raises(ConfigError, match="online adaptation"):
        build_engine(EngineConfig(model=str(installed), adapt_steps=10))


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_node_survives_a_corrupt_sam2_model(installed, tmp_path):
    from ros_harness import RosClient, isolated_env, node_process, require_ros

    require_ros()
    from diagnostic_msgs.msg import DiagnosticArray

    from vos_ros.ros.diagnostics import values_of

    checkpoint = installed / "sam2.1_hiera_tiny.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated after install
    env = isolated_env()
    node = node_process(tmp_path, env, parameters={"model": str(installed)})
    try:
        with RosClient(int(env["ROS_DOMAIN_ID"])) as ros:
            ros.wait_for_node(node, "/vos_node")
            errors: list[str] = []
            ros.node.create_subscription(
                DiagnosticArray,
                "/diagnostics",
                lambda m: errors.extend(values_of(s)["last_error"] for s in m.status),
                10,
            )
            ros.spin_until(lambda: any(errors), 60.0, "diagnostics", node.log)
            assert ros.lifecycle_state("/vos_node") == "unconfigured"
            assert "sam2.1_hiera_tiny.pt: size is 1000 bytes" in " ".join(errors)
            assert node.alive()
    finally:
        node.stop()


def test_edgetam_folder_fails_at_configure_with_the_reason(tmp_path):
    from vos_ros.engine import EngineConfig, build_engine

    folder = tmp_path / "edgetam"
    folder.mkdir()
    (folder / "model.yaml").write_text("format_version: 1\nfamily: edgetam\n")
    with pytest.raises(
        ModelFileError, match=r"family edgetam is not supported: .*fetch-model edgetam --force"
    ):
        build_engine(EngineConfig(model=str(folder)))
