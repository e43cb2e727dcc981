"""`lsmdepth export CHECKPOINT -o OUT.onnx`: ONNX for the node's onnxruntime backend.

`--int8 --calibration DATA` writes a statically quantised model instead (see
`lsmdepth_ros.onnx.quantize`; DATA: `lsmdepth_ros.commands.calibration`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "export a checkpoint (or official weights folder) to ONNX and verify parity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a .pt checkpoint, or an official Lite-Mono/LSMDepth/"
                                           "monodepth2 folder with encoder.pth and depth.pth")
    parser.add_argument("-o", "--output", help="output .onnx path (default: CHECKPOINT with "
                                               "an .onnx suffix)")
    parser.add_argument("--fp16", action="store_true",
                        help="float16 weights and maths (for GPU providers); input and output "
                             "stay float32")
    parser.add_argument("--height", type=int, help="input height (default: the checkpoint's)")
    parser.add_argument("--width", type=int, help="input width (default: the checkpoint's)")
    parser.add_argument("--compat", action="store_true",
                        help="a model for older runtimes: no DeformConv (GridSample + grouped "
                             "convolution instead), opset 16; for onnxruntime < 1.25 and "
                             "TensorRT < 10.1 (JetPack 5). Same depth to 1e-4")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime parity check")
    parser.add_argument("--int8", action="store_true",
                        help="write an INT8 statically quantised model (CPU; QDQ, per-channel "
                             "weights); needs --calibration")
    parser.add_argument("--calibration", metavar="DATA",
                        help="calibration images for --int8: 'synthetic[:SEED]', an image "
                             "folder, or a rosbag2 bag (folder or .mcap/.db3)")
    parser.add_argument("--calibration-frames", type=int, default=64,
                        help="calibration images to use, spread over the source (default 64)")
    parser.add_argument("--calibration-topic", default="",
                        help="image topic of a calibration bag (default: its only image topic)")


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError, load_checkpoint
    from ..onnx.export import OnnxExportError, export_onnx

    if args.int8 and (args.fp16 or not args.calibration):
        print("lsmdepth export: --int8 needs --calibration DATA and excludes --fp16",
              file=sys.stderr)
        return 2
    source = Path(args.checkpoint)
    output = Path(args.output) if args.output else (
        source / "model.onnx" if source.is_dir() else source.with_suffix(".onnx"))
    try:
        model, info = load_checkpoint(source)
    except CheckpointError as exc:
        print(f"lsmdepth export: {exc}", file=sys.stderr)
        return 2
    height = args.height or info.options["height"]
    width = args.width or info.options["width"]
    if args.int8:
        return _export_int8(args, model, info, output, height, width)
    try:
        diff = export_onnx(model, output, min_depth=info.min_depth, max_depth=info.max_depth,
                           fp16=args.fp16, verify=not args.no_verify, height=height, width=width,
                           compat=args.compat)
    except ValueError as exc:  # bad size or depth range
        print(f"lsmdepth export: {exc}", file=sys.stderr)
        return 2
    except OnnxExportError as exc:
        print(f"lsmdepth export: {exc}", file=sys.stderr)
        return 1
    precision = ("fp16" if args.fp16 else "fp32") + (", compat opset 16" if args.compat else "")
    print(f"wrote {output} ({info.name}, {width}x{height}, {precision}, depth "
          f"{info.min_depth:g}-{info.max_depth:g} m)")
    if args.no_verify:
        print("parity not checked (--no-verify)")
    else:
        print(f"max abs diff vs PyTorch: {diff:.3g}")
    return 0


def _export_int8(args, model, info, output: Path, height: int, width: int) -> int:
    import tempfile

    from ..onnx.export import OnnxExportError, export_onnx
    from ..onnx.quantize import QuantizationError, quantize_int8
    from .calibration import CalibrationError, calibration_images

    with tempfile.TemporaryDirectory(prefix="lsmdepth_export_") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        try:
            export_onnx(model, fp32, min_depth=info.min_depth, max_depth=info.max_depth,
                        verify=not args.no_verify, height=height, width=width)
            images = calibration_images(args.calibration, (width, height),
                                        args.calibration_frames, args.calibration_topic)
            report = quantize_int8(fp32, output, images, args.calibration_frames)
        except (ValueError, CalibrationError) as exc:
            print(f"lsmdepth export: {exc}", file=sys.stderr)
            return 2
        except (OnnxExportError, QuantizationError) as exc:
            print(f"lsmdepth export: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {output} ({info.name}, {width}x{height}, int8, calibrated on "
          f"{report.calibration_images} images from {args.calibration}); {report.describe()}")
    return 0
