"""Access control for every HTTP request and WebSocket of the console (a pure ASGI middleware).

- Token: when the server has one, a request must carry it as ``Authorization: Bearer T``, as the
  ``vos_console_token`` cookie, or as ``?token=T`` (how a browser opens the first page; the answer
  then sets the cookie, so the page's own requests, images and WebSocket carry it). Anything else
  gets 401, a WebSocket before its handshake completes.
- Host (loopback without a token): only ``127.0.0.1``, ``localhost`` and ``[::1]`` are accepted in
  the Host header, so a web page that rebinds its DNS name to 127.0.0.1 cannot reach the console.
- Origin: a state-changing request or a WebSocket that names another origin than the console's
  own gets 403, so another site open in the same browser cannot drive the node.
- Size: request bodies (JSON) are bounded before anything reads them; uploads have their own
  limit, enforced while they stream.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

COOKIE = "vos_console_token"
UPLOAD_PATH = "/api/offline/upload"  # streams its body under its own limit (uploads.py)
MAX_REQUEST_BODY = 16 * 1024 * 1024  # any other request: JSON, at most a painted mask
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class AccessGuard:
    """Wraps the ASGI app: refuses requests without the token, from foreign origins, or (on
    loopback without a token) with a Host header that is not this machine."""

    def __init__(self, app: Any, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.check_host = loopback_only and token is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.check_host and _host_name(host) not in LOOPBACK_NAMES:
            await _refuse(scope, send, 403, f"host {host!r} is not this machine")
            return
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if changes_state and origin and urlsplit(origin).netloc != host:
            await _refuse(scope, send, 403, f"requests from origin {origin} are not accepted")
            return
        if scope["type"] == "http" and scope["path"] != UPLOAD_PATH:
            # bodies are read whole before they are checked: bound them first
            length = headers.get("content-length")
            if length is None and "transfer-encoding" in headers:
                await _refuse(scope, send, 411, "send a Content-Length with the request body")
                return
            if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_BODY):
                await _refuse(scope, send, 413, f"request body over {MAX_REQUEST_BODY} bytes")
                return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        query_token = _query_token(scope)
        if not any(
            _matches(candidate, self.token)
            for candidate in (_bearer(headers), _cookie(headers), query_token)
        ):
            await _refuse(scope, send, 401, "missing or wrong token")
            return
        if query_token is not None and scope["type"] == "http":
            send = _setting_cookie(send, self.token)
        await self.app(scope, receive, send)


def _matches(candidate: str | None, token: str) -> bool:
    return candidate is not None and secrets.compare_digest(
        candidate.encode("utf-8", "replace"), token.encode("utf-8")
    )


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


def _cookie(headers: dict[str, str]) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _query_token(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _setting_cookie(send: Send, token: str) -> Send:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
        await send(message)

    return wrapped


async def _refuse(scope: Scope, send: Send, status: int, text: str) -> None:
    body = json.dumps({"detail": text}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # servers without the denial-response extension turn this into 403
        await send({"type": "websocket.close", "code": 1008})
