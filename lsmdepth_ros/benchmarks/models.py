"""Model benchmark: parameters, GFLOPs, PyTorch and ONNX Runtime CPU latency, ratios to Lite-Mono.

    python -m lsmdepth_ros.benchmarks.models [--models lsmdepth,lite-mono] [--repeats 20]

Every model is exported to ONNX (parity-checked) in a temporary folder. Latencies are batch 1
at 640x192 by default, the median over ``--repeats`` timed runs after ``--warmup`` runs.
Models are timed round-robin (one run of each in turn), so a busy machine slows all of them
alike and the ratios to ``lite-mono``, always measured in the same run, stay meaningful.
GFLOPs = 2 x multiply-adds from ``torch.utils.flop_counter`` (deformable convolutions
included through a registered formula). On a shared or busy machine pass ``--threads 1``:
oversubscribed thread pools make multi-threaded timings swing by several times.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "lite-mono"


@dataclass
class ModelResult:
    name: str
    params: int
    gflops: float
    parity: float = float("nan")
    torch_ms: list[float] = field(default_factory=list)
    ort_ms: list[float] = field(default_factory=list)

    @property
    def torch_median(self) -> float:
        return statistics.median(self.torch_ms) if self.torch_ms else float("nan")

    @property
    def ort_median(self) -> float:
        return statistics.median(self.ort_ms) if self.ort_ms else float("nan")


def _register_deform_conv_flops() -> None:
    """Count torchvision's deform_conv2d like a convolution: 2 * out elements * (Cin/groups) * k*k."""
    import torch
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(torch.ops.torchvision.deform_conv2d)
    def _deform_conv_flop(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
        _, cin_per_group, kh, kw = weight_shape
        n_out = 1
        for s in out_shape:
            n_out *= s
        return 2 * n_out * cin_per_group * kh * kw


def count_gflops(model, image) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image)
    return counter.get_total_flops() / 1e9


def run_benchmark(names: list[str], height: int, width: int, repeats: int, warmup: int,
                  threads: int | None, use_onnx: bool, out=sys.stdout) -> list[ModelResult]:
    import torch

    from ..networks import build_depth_model, count_parameters
    from ..onnx_export import export_onnx

    if threads:
        torch.set_num_threads(threads)
    _register_deform_conv_flops()
    torch.manual_seed(0)
    image = torch.rand(1, 3, height, width)
    image_np = image.numpy()
    models, sessions, results = {}, {}, []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_bench_") as tmp:
        for name in names:
            print(f"[{name}] building, counting FLOPs" + (", exporting ONNX" if use_onnx else ""),
                  file=out, flush=True)
            model = build_depth_model(name, height=height, width=width).eval()
            result = ModelResult(name, count_parameters(model), count_gflops(model, image))
            if use_onnx:
                path = Path(tmp) / f"{name}.onnx"
                result.parity = export_onnx(model, path, min_depth=0.1, max_depth=100.0)
                sessions[name] = _ort_session(path, threads)
            models[name] = model
            results.append(result)

        print(f"timing: {warmup} warm-up + {repeats} timed runs per model, round-robin",
              file=out, flush=True)
        with torch.no_grad():
            for r in range(warmup + repeats):
                for result in results:
                    t0 = time.perf_counter()
                    models[result.name](image)
                    t1 = time.perf_counter()
                    if use_onnx:
                        sessions[result.name].run(["disp"], {"image": image_np})
                    t2 = time.perf_counter()
                    if r >= warmup:
                        result.torch_ms.append(1e3 * (t1 - t0))
                        if use_onnx:
                            result.ort_ms.append(1e3 * (t2 - t1))
    return results


def _ort_session(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # Idle onnxruntime workers must not spin and steal the CPU from the PyTorch runs in between.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def format_table(results: list[ModelResult], height: int, width: int) -> str:
    base = next(r for r in results if r.name == BASELINE)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if math.isfinite(a) and math.isfinite(b) and b > 0 else "-"

    def ms(v: float) -> str:
        return f"{v:.1f}" if math.isfinite(v) else "-"

    header = (f"Batch 1, {width}x{height}, CPU; latency = median ms; ratios (x) relative to "
              f"{BASELINE} in the same run.")
    lines = [
        header, "",
        "| model | params | x | GFLOPs | x | PyTorch ms | x | ONNX Runtime ms | x | ONNX max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        parity = f"{r.parity:.1e}" if math.isfinite(r.parity) else "-"
        lines.append(
            f"| {r.name} | {r.params:,} | {ratio(r.params, base.params)} | {r.gflops:.2f} | "
            f"{ratio(r.gflops, base.gflops)} | {ms(r.torch_median)} | "
            f"{ratio(r.torch_median, base.torch_median)} | {ms(r.ort_median)} | "
            f"{ratio(r.ort_median, base.ort_median)} | {parity} |")
    lsm = next((r for r in results if r.name == "lsmdepth"), None)
    if lsm is not None:
        size_ok = "met" if lsm.params <= 3_100_000 else "NOT met"
        if math.isfinite(lsm.ort_median):
            speed_ok = "met" if lsm.ort_median <= base.ort_median else "NOT met"
            speed = f"{speed_ok} (ratio {lsm.ort_median / base.ort_median:.2f})"
        else:
            speed = "not measured"
        lines += ["", (f"LSMDepth targets: params <= 3.1 M: {size_ok} ({lsm.params / 1e6:.3f} M); "
                      f"ONNX Runtime latency <= {BASELINE}: {speed}")]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="all",
                        help="comma-separated model names, or 'all' (lite-mono is always added "
                             "as the baseline)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per model first")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for PyTorch and ONNX Runtime (default: theirs)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX export and timing")


def run(args: argparse.Namespace) -> int:
    from ..networks import available_models

    known = available_models()
    names = known if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in known]
    if unknown:
        print(f"unknown model(s) {unknown}; available: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.warmup < 0:
        print("--repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if BASELINE not in names:
        names = [BASELINE, *names]
    results = run_benchmark(names, args.height, args.width, args.repeats, args.warmup,
                            args.threads, not args.no_onnx)
    print()
    print(format_table(results, args.height, args.width))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsmdepth_ros.benchmarks.models",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
