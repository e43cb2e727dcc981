"""`lsmdepth demo`: run the node live on a sample drive, record it, evaluate it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run the depth node live on a sample drive, record its outputs and evaluate them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("lsmdepth_demo"),
                        help="output folder (default: ./lsmdepth_demo)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames of the sample drive (default 50; 12 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run for CI: 12 frames at 320x96")
    parser.add_argument("--model", default="",
                        help="checkpoint or .onnx (default: the shipped models/lsmdepth_synthetic.pt)")
    parser.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the sample bag is kept (default: ~/.cache/lsmdepth_ros)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for the demo's processes (default: a random one)")


def run(args: argparse.Namespace) -> int:
    from lsmdepth_ros.bags.bagfile import BagError
    from lsmdepth_ros.bags.demo import QUICK, DemoError, DemoOptions, run_demo
    from lsmdepth_ros.bags.processes import ProcessDied

    sizes = dict(QUICK) if args.quick else {}
    if args.frames is not None:
        sizes["frames"] = args.frames
    try:
        options = DemoOptions(out_dir=args.out, model=args.model, rate=args.rate,
                              cache_dir=args.cache_dir, domain_id=args.domain_id, **sizes)
        summary = run_demo(options)
    except (DemoError, ProcessDied, BagError, ValueError) as exc:
        print(f"lsmdepth demo: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


def format_summary(s: dict) -> str:
    from lsmdepth_ros.bags.demo_report import format_latency

    m, f = s["metrics"], s["files"]
    out = Path(s["files"]["summary_json"]).parent.parent
    return "\n".join([
        "",
        f"lsmdepth demo finished in {s['total_seconds']:.0f} s  ->  {out}",
        (f"  depth vs ground truth ({s['frames_evaluated']} frames, median-scaled, "
        f"scale ratio {s['scale_ratio_median']:.2f}): AbsRel {m['abs_rel']:.3f}, "
        f"RMSE {m['rmse']:.2f} m, d<1.25 {m['a1']:.3f}"),
        *("  " + line for line in format_latency(s["latency"]).splitlines()),
        "  look at:",
        f"    metrics      {f['summary_json']}, {f['frames_csv']}",
        f"    plots        {f['metrics_plot']}" + (f", {f['error_map_0']}" if "error_map_0" in f
                                                    else ""),
        f"    depth PNGs   {f['depth_png_dir']}/ ({f['depth_png_count']} frames)",
        f"    point cloud  {f.get('ply', '(none recorded)')}",
        f"    recorded bag {s['recorded_bag']}  (lsmdepth bag eval ... --pred-topic /depth)",
        f"    latency      {f['latency_txt']}",
    ])
