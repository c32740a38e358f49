"""Settings of the console server and the token rule (loopback only, or a token)."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass

from vos_ros.engine.model_paths import DEFAULT_MODEL

DEFAULT_UPLOAD_LIMIT_MB = 200


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def resolve_token(host: str, token: str | None) -> str | None:
    """The token the server requires: the given one, a fresh one for a non-loopback address
    (nobody else on the network may drive the node), or None on loopback without ``--token``."""
    if token:
        if len(token) < 8:
            raise ValueError("--token must have at least 8 characters")
        return token
    if is_loopback(host):
        return None
    return secrets.token_urlsafe(24)


@dataclass
class ConsoleSettings:
    """What ``vos-ros console`` was started with."""

    node: str | None = None  # vos node to show first (None: the first one found)
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required from every request when set
    upload_limit_bytes: int = DEFAULT_UPLOAD_LIMIT_MB * 1024 * 1024
    max_offline_frames: int = 3000  # longer uploads are cut (and the page says so)
    model: str = DEFAULT_MODEL  # engine of the offline page
    jpeg_quality: int = 80  # live view
    pair_wait_max_s: float = 0.1  # longest wait of a camera frame for the node's masks
    domain_id: int | None = None  # ROS domain of the console's node (None: ROS_DOMAIN_ID)
