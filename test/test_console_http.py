"""The console's web server, running: token, bind address, Host/Origin checks, upload limits and
types, malformed requests (each a clear 4xx, and the server keeps serving)."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from console_testlib import console_server, write_webm
from ros_harness import require_ros

require_ros()

from vos_ros.console.settings import is_loopback, resolve_token  # noqa: E402

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded():
    with console_server(token=TOKEN, upload_limit_bytes=256 * 1024) as server:
        yield server


@pytest.fixture(scope="module")
def open_local():
    with console_server() as server:
        yield server


def test_token_needed_for_every_request(guarded):
    url = guarded.url
    for path in ("/", "/offline", "/static/live.js", "/api/live/state"):
        response = httpx.get(url + path)
        assert response.status_code == 401, path
        assert response.json() == {"detail": "missing or wrong token"}
    assert httpx.get(url + "/api/live/state?token=wrong").status_code == 401
    assert httpx.get(url + "/", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = httpx.post(url + "/api/live/reset")
    assert response.status_code == 401

    # the browser's way in: ?token= once, then the cookie it sets
    first = httpx.get(url + f"/?token={TOKEN}")
    assert first.status_code == 200 and "vos_ros console" in first.text
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"vos_console_token={TOKEN}") and "HttpOnly" in cookie
    assert httpx.get(url + "/api/live/state", cookies={"vos_console_token": TOKEN}).is_success
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    state = httpx.get(url + "/api/live/state", headers=bearer)
    assert state.status_code == 200 and state.json()["nodes"] == []


def test_websocket_needs_the_token(guarded):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = guarded.url.replace("http", "ws") + "/ws/live"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=5)
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:  # another site's page in the same browser
        connect(f"{ws_url}?token={TOKEN}", open_timeout=5, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(f"{ws_url}?token={TOKEN}", open_timeout=5) as socket:
        socket.send("next")
        assert socket.recv(timeout=5) == '{"idle": true}'  # no node, no frame: said so


def test_bind_address_and_token_rule(open_local):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert resolve_token("127.0.0.1", None) is None
    generated = resolve_token("0.0.0.0", None)
    assert generated and len(generated) >= 24 and generated != resolve_token("0.0.0.0", None)
    assert resolve_token("0.0.0.0", "given-token") == "given-token"
    with pytest.raises(ValueError, match="at least 8"):
        resolve_token("0.0.0.0", "short")

    # default: loopback only, no token
    sockets = open_local.server.servers[0].sockets
    assert {s.getsockname()[0] for s in sockets} == {"127.0.0.1"}
    assert httpx.get(open_local.url + "/api/live/state").status_code == 200
    # a page that rebinds its DNS name to 127.0.0.1 is refused
    evil = httpx.get(open_local.url + "/api/live/state", headers={"Host": "evil.example:80"})
    assert evil.status_code == 403
    # another site open in the browser cannot drive the node
    cross = httpx.post(
        open_local.url + "/api/live/reset", headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403


def test_any_other_address_requires_the_token():
    with console_server(host="0.0.0.0", token=resolve_token("0.0.0.0", None)) as server:
        local = f"http://127.0.0.1:{server.port}"
        assert httpx.get(local + "/api/live/state").status_code == 401
        token = server.console.settings.token
        assert httpx.get(local + f"/api/live/state?token={token}").status_code == 200


def test_upload_limits_and_types(guarded, tmp_path):
    url, auth = guarded.url, {"Authorization": f"Bearer {TOKEN}"}
    root = guarded.console.jobs._root

    big = b"\x1a\x45\xdf\xa3" + bytes(300 * 1024)
    response = httpx.post(url + "/api/offline/upload", content=big, headers=auth)
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(40):
            yield b"\x1a\x45\xdf\xa3" + bytes(16 * 1024)

    response = httpx.post(url + "/api/offline/upload", content=chunks(), headers=auth)
    assert response.status_code == 413

    response = httpx.post(url + "/api/offline/upload", content=b"hello, I am text", headers=auth)
    assert response.status_code == 415 and "MP4 or WebM" in response.json()["detail"]
    response = httpx.post(url + "/api/offline/upload", content=b"", headers=auth)
    assert response.status_code == 415 and "empty" in response.json()["detail"]
    fake_mp4 = b"\x00\x00\x00\x18ftypisom" + bytes(2000)
    response = httpx.post(url + "/api/offline/upload", content=fake_mp4, headers=auth)
    assert response.status_code == 422 and "cannot read the mp4" in response.json()["detail"]
    assert list(root.iterdir()) == []  # nothing refused is kept

    video = write_webm(tmp_path / "clip.webm").read_bytes()
    response = httpx.post(
        url + "/api/offline/upload",
        content=video,
        headers={**auth, "X-Filename": "../../etc/passwd"},
    )
    job = response.json()
    assert response.status_code == 200, job
    assert (job["kind"], job["frames"], job["width"], job["height"]) == ("webm", 12, 160, 120)
    stored = [p.name for p in (root.iterdir().__next__()).iterdir()]
    assert "upload.webm" in stored  # a server-made name, whatever the client said
    first = httpx.get(url + f"/api/offline/{job['id']}/first.jpg", headers=auth)
    assert first.status_code == 200 and first.content[:2] == b"\xff\xd8"
    for name in ("..%2F..%2Fetc%2Fpasswd", "upload.webm", "report.json"):
        response = httpx.get(url + f"/api/offline/{job['id']}/files/{name}", headers=auth)
        assert response.status_code == 404, name
    assert httpx.delete(url + f"/api/offline/{job['id']}", headers=auth).status_code == 200
    assert list(root.iterdir()) == []


def test_malformed_requests_get_clear_4xx(guarded):
    url, auth = guarded.url, {"Authorization": f"Bearer {TOKEN}"}
    json_headers = {**auth, "Content-Type": "application/json"}
    cases = [
        ("POST", "/api/live/box", b"{not json", 422),
        ("POST", "/api/live/box", b'{"box": [1, 2, 3, 4]}', 422),  # no stamp
        ("POST", "/api/live/box", b'{"stamp": {"sec": -1, "nanosec": 0}, "box": [1,2,3,4]}', 422),
        ("POST", "/api/live/remove", b'{"ids": []}', 422),
        ("POST", "/api/live/rename", b'{"id": 1, "label": "' + b"x" * 100 + b'"}', 422),
        ("POST", "/api/live/select", b'{"node": "no slash"}', 422),
        ("POST", "/api/offline/0123456789abcdef/run", b'{"targets": []}', 422),
        ("POST", "/api/offline/0123456789abcdef/run", b'{"targets": [{"kind": "box"}]}', 404),
        ("GET", "/api/offline/not-a-job-id", None, 422),
        ("GET", "/api/offline/0123456789abcdef", None, 404),
        ("GET", "/api/nothing-here", None, 404),
    ]
    for method, path, body, status in cases:
        response = httpx.request(method, url + path, content=body, headers=json_headers)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["detail"], path
    # no node in this ROS domain: a clear 503, not a hang or a crash
    stamp = {"sec": 1, "nanosec": 0}
    response = httpx.post(
        url + "/api/live/box", json={"stamp": stamp, "box": [1, 2, 30, 40]}, headers=auth
    )
    assert response.status_code == 503 and "no vos node" in response.json()["detail"]
    response = httpx.post(
        url + "/api/live/points", json={"stamp": stamp, "points": [{"x": 1, "y": 2}]}, headers=auth
    )
    assert response.status_code == 503 and "no vos node" in response.json()["detail"]
    response = httpx.post(
        url + "/api/live/mask", json={"stamp": stamp, "mask_png": "AAAA"}, headers=auth
    )
    assert response.status_code == 422 and "no longer has the frame" in response.json()["detail"]
    # bodies are bounded before they are read
    assert _status_of_declared_body(guarded.port, "/api/live/mask", 64 * 1024 * 1024) == 413
    chunked = httpx.post(url + "/api/live/box", content=iter([b"{}"]), headers=json_headers)
    assert chunked.status_code == 411
    assert httpx.get(url + "/api/live/state", headers=auth).status_code == 200  # still serving


def test_temporary_folder_removed_at_close(tmp_path):
    server = console_server()
    root = server.console.jobs._root
    video = write_webm(tmp_path / "clip.webm").read_bytes()
    assert httpx.post(server.url + "/api/offline/upload", content=video).status_code == 200
    assert any(root.iterdir())
    server.close()
    assert not root.exists()


def test_node_selector_lists_every_vos_node_and_switches():
    """Two vos nodes in the graph (their ~/instances topics, published here): both listed; the
    one selected is the one whose targets the console shows."""
    from ros_harness import RosClient
    from sensor_msgs.msg import RegionOfInterest

    from vos_ros.msg import InstanceMask, InstanceMaskArray
    from vos_ros.ros.image_msgs import array_to_msg

    with console_server(node="/cam_a/vos_node") as server:
        ros = RosClient(server.console.settings.domain_id, "fake_cameras")
        try:
            publishers = {
                name: ros.node.create_publisher(InstanceMaskArray, f"/{name}/vos_node/instances", 5)
                for name in ("cam_a", "cam_b")
            }
            mask = array_to_msg(np.full((10, 12), 255, np.uint8), "mono8")
            box = RegionOfInterest(x_offset=3, y_offset=4, width=12, height=10)
            message = InstanceMaskArray(image_height=48, image_width=64)
            message.instances = [
                InstanceMask(id=7, class_label="dog", score=0.75, visible=True, box=box, mask=mask)
            ]
            url = server.url + "/api/live/state"
            deadline = time.monotonic() + 20
            both = ["/cam_a/vos_node", "/cam_b/vos_node"]
            while (state := httpx.get(url).json())["selected"] is None or state["nodes"] != both:
                assert time.monotonic() < deadline, state
                ros.spin_for(0.2)
            assert state["selected"] == "/cam_a/vos_node"  # --node
            selected = httpx.post(server.url + "/api/live/select", json={"node": "/cam_b/vos_node"})
            assert selected.status_code == 200
            while not (state := httpx.get(url).json())["targets"]:
                assert time.monotonic() < deadline, state
                publishers["cam_b"].publish(message)
                ros.spin_for(0.2)
            assert state["selected"] == "/cam_b/vos_node"
            assert state["targets"] == [
                {"id": 7, "class": "dog", "node_class": "dog", "renamed": False, "score": 0.75,
                 "visible": True}
            ]  # fmt: skip
        finally:
            ros.close()


def test_uploads_removed_when_the_command_is_stopped(tmp_path):
    """``vos-ros console`` stopped by SIGTERM or Ctrl-C removes its temporary folder."""
    import signal
    import socket
    import subprocess
    import sys

    from vos_ros.benchmark.ros_procs import isolated_env

    video = write_webm(tmp_path / "clip.webm").read_bytes()
    for stop in (signal.SIGTERM, signal.SIGINT):
        temp = tmp_path / f"tmp_{stop.name}"
        temp.mkdir()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**isolated_env(), "TMPDIR": str(temp)}
        command = [sys.executable, "-m", "vos_ros.cli", "console", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert "open http://127.0.0.1" in process.stdout.readline()
            deadline = time.monotonic() + 20
            while True:  # the URL is printed just before the server starts listening
                try:
                    httpx.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the console never listened"
                    time.sleep(0.1)
            response = httpx.post(f"http://127.0.0.1:{port}/api/offline/upload", content=video)
            assert response.status_code == 200, response.text
            assert any(temp.iterdir())
            process.send_signal(stop)
            process.wait(timeout=20)
        finally:
            process.kill()
        assert list(temp.iterdir()) == [], stop


def _status_of_declared_body(port: int, path: str, length: int) -> int:
    """The status answered to a request that announces a ``length``-byte body (none is sent)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        return int(conn.recv(1024).split(b" ")[1])
