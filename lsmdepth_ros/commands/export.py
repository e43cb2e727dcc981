"""`lsmdepth export CHECKPOINT -o OUT.onnx`: ONNX for the node's onnxruntime backend."""
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


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError, load_checkpoint
    from ..onnx_export import OnnxExportError, export_onnx

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
