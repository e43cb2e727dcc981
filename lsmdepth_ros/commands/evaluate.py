"""`lsmdepth evaluate`: Eigen-protocol depth metrics of a checkpoint on synthetic, KITTI or folders.

    lsmdepth evaluate models/lsmdepth_synthetic.pt --data synthetic                 # rendered test drives
    lsmdepth evaluate CKPT --data synthetic --data-path synth_out --split test      # `lsmdepth synth` folder
    lsmdepth evaluate CKPT --data kitti --data-path kitti_data --split-file splits/eigen/test_files.txt
    lsmdepth evaluate CKPT --data folder --images DIR --depths DIR
    lsmdepth evaluate CKPT --data middlebury      # real photo: scikit-image's motorcycle frame

Prints monodepth2's metrics table and writes a JSON summary (metrics, median-scaling ratio
statistics, protocol options, checkpoint) to --output.
"""
from __future__ import annotations

import argparse
import json
import sys

from lsmdepth_ros.metrics import KITTI_PNG_SCALE

HELP = "evaluate a checkpoint with the Eigen protocol (synthetic, KITTI or image folders)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint .pt (or official weights folder)")
    parser.add_argument("--data", choices=("synthetic", "kitti", "folder", "middlebury"),
                        default="synthetic",
                        help="synthetic drives (rendered, or a `lsmdepth synth` folder), KITTI "
                             "raw, folders of images + ground-truth depth, or middlebury: the real "
                             "motorcycle frame shipped with scikit-image")
    parser.add_argument("--data-path", help="synthetic: folder written by `lsmdepth synth` "
                                            "(default: render drives on the fly); kitti: raw data root")
    parser.add_argument("--split", default="test", help="synthetic folder split (train/val/test)")
    parser.add_argument("--split-file", help="kitti: split file with '<folder> <frame> <l|r>' lines")
    parser.add_argument("--depth-source", choices=("auto", "png", "velodyne"), default="auto",
                        help="kitti: annotated depth PNGs or projected velodyne")
    parser.add_argument("--images", help="folder: images (sorted by name)")
    parser.add_argument("--depths", help="folder: ground truth (.npy or float .tif metres, or "
                                         "uint16 .png, see --depth-png-scale), matched to "
                                         "images by file stem")
    parser.add_argument("--depth-png-scale", type=float, default=KITTI_PNG_SCALE,
                        help="folder: uint16 PNG depth units per metre: 256 KITTI, 1000 "
                             "millimetres (NYU exports, RealSense, ROS 16UC1), 5000 TUM RGB-D")
    parser.add_argument("--sequences", type=int, default=2, help="synthetic on the fly: drives")
    parser.add_argument("--world", choices=("drive", "random"), default="drive",
                        help="synthetic on the fly: the classic street drive or the randomised "
                             "world")
    parser.add_argument("--scenes", default="", help="--world random: comma-separated scene "
                        "kinds (street,campus = outdoor; room,corridor,warehouse = indoor)")
    parser.add_argument("--frames", type=int, default=50, help="synthetic on the fly: frames each")
    parser.add_argument("--seed", type=int, default=1000,
                        help="synthetic on the fly: data set seed (keep it apart from training's)")
    parser.add_argument("--min-depth", type=float, default=1e-3, help="evaluation range minimum")
    parser.add_argument("--max-depth", type=float, default=80.0, help="evaluation range maximum")
    parser.add_argument("--crop", choices=("garg", "eigen", "none"),
                        help="default: garg for kitti, none otherwise")
    parser.add_argument("--no-median-scaling", action="store_true",
                        help="evaluate metric depth as predicted")
    parser.add_argument("--scale-factor", type=float, default=1.0,
                        help="fixed factor applied to predictions (e.g. 5.4 for stereo models)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    parser.add_argument("--max-images", type=int, help="evaluate only the first N images")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--output", default="evaluation.json", help="JSON summary path")
    parser.add_argument("--per-image", action="store_true", help="include per-image metrics")


def run(args: argparse.Namespace) -> int:
    import torch

    from lsmdepth_ros.atomic_files import atomic_write_text
    from lsmdepth_ros.bags.bagfile import BagError
    from lsmdepth_ros.checkpoints import CheckpointError, load_checkpoint
    from lsmdepth_ros.metrics import EvalOptions
    from lsmdepth_ros.training.heldout import evaluate_model

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        crop = args.crop or ("garg" if args.data == "kitti" else "none")
        options = EvalOptions(min_depth=args.min_depth, max_depth=args.max_depth,
                              crop=None if crop == "none" else crop,
                              median_scaling=not args.no_median_scaling,
                              scale_factor=args.scale_factor)
        model, info = load_checkpoint(args.checkpoint, map_location="cpu")
        height, width = int(info.options["height"]), int(info.options["width"])
        dataset = _dataset(args, height, width)
        print(f"evaluating {info.name} ({width}x{height}) on {len(dataset)} {args.data} images, "
              f"device {device}", flush=True)
        summary = evaluate_model(model, dataset, options, min_depth=info.min_depth,
                                 max_depth=info.max_depth, batch_size=args.batch_size,
                                 device=device, max_images=args.max_images, progress=True)
    except (CheckpointError, BagError, ValueError) as exc:
        print(f"lsmdepth evaluate: {exc}", file=sys.stderr)
        return 2
    print(summary.table())
    report = summary.to_dict(per_image=args.per_image)
    report.update(checkpoint=str(args.checkpoint), model=info.name, data=args.data,
                  data_path=args.data_path, split=args.split_file or args.split)
    atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    print(f"summary written to {args.output}")
    return 0


def _dataset(args, height: int, width: int):
    """The evaluation set through the data set registry (the trainer's table)."""
    from lsmdepth_ros.training.datasets.registry import build_dataset

    if args.data == "synthetic":
        # rendered drives when there is no folder: the registry's held-out (non-train) split
        scenes = [k.strip() for k in args.scenes.split(",") if k.strip()]
        where = ("synthetic", args.data_path or "", {} if args.data_path else {
            "val_sequences": args.sequences, "frames_per_sequence": args.frames,
            "val_seed": args.seed, "world": args.world,
            "world_options": {"scenes": scenes} if scenes else None}, args.split)
    elif args.data == "middlebury":
        from lsmdepth_ros.training.datasets.middlebury import middlebury_dataset

        return middlebury_dataset(height, width)
    elif args.data == "kitti":
        if not (args.data_path and args.split_file):
            raise ValueError("--data kitti needs --data-path (KITTI raw root) and --split-file "
                             "(e.g. monodepth2's splits/eigen/test_files.txt)")
        # vel_depth: the Eigen split's ground truth as monodepth2's export_gt_depth.py makes it
        where = ("kitti", args.data_path, {"test_split": args.split_file, "vel_depth": True,
                                           "depth_source": args.depth_source}, "test")
    else:
        if not (args.images and args.depths):
            raise ValueError("--data folder needs --images DIR and --depths DIR")
        where = ("depth_folder", args.images, {"depths": args.depths,
                                               "png_scale": args.depth_png_scale}, "test")
    return build_dataset(*where, height=height, width=width, load_depth=True)
