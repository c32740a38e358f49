"""``vos-ros fetch-model``: download an official pretrained checkpoint into a model folder."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vos_ros.pretrained.catalog import CATALOG

    parser.add_argument("name", choices=list(CATALOG), metavar="NAME", help=", ".join(CATALOG))
    parser.add_argument("--out", default="models", help="folder that receives NAME/ (models)")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="install this local checkpoint file instead of downloading (edgetam: "
        "model.safetensors, with its config.json beside it)",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="download from this URL instead (edgetam: the weights' URL; config.json is "
        "fetched from beside it)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing model folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vos_ros.engine.config import EngineError
    from vos_ros.engine.family import UNSUPPORTED_FAMILIES
    from vos_ros.pretrained.catalog import lookup
    from vos_ros.pretrained.install import fetch_model

    try:
        folder = fetch_model(args.name, args.out, args.checkpoint, args.url, args.force, args.quiet)
    except EngineError as exc:
        print(f"fetch-model: error: {exc}", file=sys.stderr)
        return 1
    print(f"installed {args.name} in {folder}")
    family = lookup(args.name).family
    if family in UNSUPPORTED_FAMILIES:
        print(f"note: {UNSUPPORTED_FAMILIES[family]}", file=sys.stderr)
    return 0
