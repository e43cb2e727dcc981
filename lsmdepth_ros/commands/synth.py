"""`lsmdepth synth`: render synthetic driving sequences to a KITTI-like folder or to rosbag2 bags."""
from __future__ import annotations

import argparse
import sys

HELP = "render synthetic driving sequences (exact depth and poses) to a KITTI-like folder or bags"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder (kitti) or bag path (bag; a folder of bags "
                                    "when --sequences > 1)")
    parser.add_argument("--kind", choices=("kitti", "bag"), default="kitti",
                        help="KITTI-raw-like folder with split files, or rosbag2 bags (images, "
                             "camera_info, depth, /odom and /tf_static, as a robot records them)")
    parser.add_argument("--sequences", type=int, default=4, help="number of drives")
    parser.add_argument("--frames", type=int, default=100, help="frames per drive")
    parser.add_argument("--width", type=int, default=640, help="image width in pixels")
    parser.add_argument("--height", type=int, default=192, help="image height in pixels")
    parser.add_argument("--seed", type=int, default=0,
                        help="data set seed; drive k uses seed*100003+k (as SyntheticDataset)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate (bag time stamps)")
    parser.add_argument("--speed", type=float, default=1.0, help="metres driven per frame")
    parser.add_argument("--supersample", type=int, default=1,
                        help="n x n colour samples per pixel (anti-aliasing; n^2 slower)")
    parser.add_argument("--jpg", action="store_true", help="kitti: write JPEG instead of PNG")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="kitti: fraction of the drives in the val split")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="kitti: fraction of the drives in the test split")
    parser.add_argument("--workers", type=int, default=1, help="kitti: parallel processes")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="bag: rosbag2 storage plugin")
    parser.add_argument("--no-depth", action="store_true",
                        help="bag: leave out the /camera/depth_gt topic")
    parser.add_argument("--overwrite", action="store_true", help="bag: replace existing bags")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lsmdepth_ros.bags.bagfile import BagError
    from lsmdepth_ros.bags.synthetic_bag import write_synthetic_bag
    from lsmdepth_ros.synthetic import SyntheticOptions
    from lsmdepth_ros.synthetic.writer import write_kitti_layout

    try:
        options = SyntheticOptions(width=args.width, height=args.height, frames=args.frames,
                                   fps=args.fps, speed=args.speed, supersample=args.supersample)
    except ValueError as exc:
        print(f"lsmdepth synth: {exc}", file=sys.stderr)
        return 2
    if args.sequences < 1:
        print("lsmdepth synth: --sequences must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.kind == "kitti":
        def progress(done, total):
            print(f"  drive {done}/{total} written", flush=True)

        split = write_kitti_layout(out, args.sequences, args.seed, options,
                                   ".jpg" if args.jpg else ".png", args.val_fraction,
                                   args.test_fraction, max(1, args.workers), progress)
        print(f"wrote {args.sequences} drives x {args.frames} frames ({args.width}x{args.height}) "
              f"to {out}\n  splits: {out / 'splits' / 'synthetic'} (train drives {split.train}, "
              f"val {split.val}, test {split.test})")
        return 0
    try:
        paths = [out] if args.sequences == 1 else [out / f"drive_{k:04d}"
                                                   for k in range(args.sequences)]
        for k, path in enumerate(paths):
            write_synthetic_bag(path, args.seed, options, args.storage, not args.no_depth,
                                sequence=k, overwrite=args.overwrite)
            print(f"wrote {path} ({args.frames} frames, {args.storage})", flush=True)
    except BagError as exc:
        print(f"lsmdepth synth: {exc}", file=sys.stderr)
        return 2
    return 0
