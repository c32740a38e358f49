"""``vos-ros make-bag``: a DAVIS-layout folder or a synthetic clip to a rosbag2 bag.

    vos-ros make-bag --davis DIR [--sequences a,b] --out OUT [--fps 15] [--gt-encoding panoptic]
    vos-ros make-bag --synthetic [--seed 0] [--frames 48] --out OUT

The bag holds the frames (rgb8) on ``--image-topic``, the ground-truth label images with the same
stamps on ``--gt-topic``, and the class map as JSON on ``--class-topic``. With several sequences,
OUT is a folder with one bag per sequence (``vos-ros evaluate --bag OUT`` reads them all).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("input (one of)")
    src.add_argument("--davis", type=Path, metavar="DIR", help="DAVIS-layout folder")
    src.add_argument("--synthetic", action="store_true", help="a generated synthetic clip")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="new bag folder (or folder of bags for several sequences)",
    )
    parser.add_argument("--sequences", metavar="A,B", help="DAVIS sequences (default: all)")
    parser.add_argument(
        "--classes", type=Path, metavar="FILE", help="classes.json (default: DIR/classes.json)"
    )
    parser.add_argument("--resolution", choices=("480p", "Full-Resolution"))
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate of the stamps")
    parser.add_argument("--max-frames", type=int, metavar="N", help="at most N frames per bag")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--gt-encoding",
        choices=("instance", "panoptic"),
        default="instance",
        help="instance: pixel = instance id; panoptic: class*1000 + instance",
    )
    parser.add_argument(
        "--gt-image-encoding",
        choices=("mono8", "mono16", "16UC1", "32SC1"),
        help="ROS encoding of the label images (default: mono16 for instance "
        "ids, 32SC1 for panoptic)",
    )
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--gt-topic", default="/camera/ground_truth")
    parser.add_argument("--class-topic", default="/camera/ground_truth/classes")
    syn = parser.add_argument_group("synthetic clip")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--frames", type=int, default=48)
    syn.add_argument("--width", type=int, default=320)
    syn.add_argument("--height", type=int, default=240)
    syn.add_argument("--objects", type=int, default=4)


def run(args: argparse.Namespace) -> int:
    from vos_ros.bag_io import BagError
    from vos_ros.evaluation.bag_export import BagExportOptions, export_clip

    if args.synthetic == (args.davis is not None):
        print("error: give exactly one of --davis DIR or --synthetic", file=sys.stderr)
        return 2
    options = BagExportOptions(
        fps=args.fps,
        storage=args.storage,
        gt_encoding=args.gt_encoding,
        gt_image_encoding=args.gt_image_encoding,
        image_topic=args.image_topic,
        gt_topic=args.gt_topic,
        class_topic=args.class_topic or None,
        max_frames=args.max_frames,
    )
    try:
        clips = _clips(args)
        if not clips:
            print("error: no sequence to write", file=sys.stderr)
            return 2
        single = len(clips) == 1
        for clip in clips:
            out = args.out if single else args.out / clip.name
            count = export_clip(clip, out, options)
            print(f"{out}: {count} frames of {clip.name}")
    except (BagError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _clips(args: argparse.Namespace) -> list:
    if args.synthetic:
        from vos_ros.synthetic import SceneConfig, synthetic_clip

        config = SceneConfig(
            width=args.width,
            height=args.height,
            frames=args.frames,
            objects=args.objects,
            seed=args.seed,
            fps=args.fps,
        )
        return [synthetic_clip(config, name=f"synthetic_seed{args.seed}")]
    from vos_ros.evaluation.davis_folder import DavisFolder

    folder = DavisFolder(args.davis, args.resolution, args.classes)
    names = [s.strip() for s in args.sequences.split(",")] if args.sequences else None
    return [folder.clip(name) for name in folder.select(names)]
