"""``vos-ros console``: the web console (live view, target selection, offline runs)."""

from __future__ import annotations

import argparse

from vos_ros.console.settings import DEFAULT_UPLOAD_LIMIT_MB
from vos_ros.engine.model_paths import DEFAULT_MODEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node",
        default=None,
        help="vos node to show first, e.g. /vos_node (default: the first found)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other needs a token)",
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--token",
        default=None,
        help="token every request must carry (default: none on 127.0.0.1, a random one printed "
        "at start on any other address)",
    )
    parser.add_argument(
        "--upload-limit-mb",
        type=int,
        default=DEFAULT_UPLOAD_LIMIT_MB,
        help=f"largest upload of the offline page (default {DEFAULT_UPLOAD_LIMIT_MB})",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model of the offline page ({DEFAULT_MODEL})"
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from vos_ros.console.server import serve
    from vos_ros.console.settings import ConsoleSettings, resolve_token

    try:
        token = resolve_token(args.host, args.token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = ConsoleSettings(
        node=args.node,
        host=args.host,
        port=args.port,
        token=token,
        upload_limit_bytes=args.upload_limit_mb * 1024 * 1024,
        model=args.model,
    )
    return serve(settings)
