"""Model benchmark: parameters, GFLOPs, PyTorch and ONNX Runtime CPU latency, ratios to Lite-Mono.

    python -m lsmdepth_ros.benchmarks.models [--models lsmdepth,lite-mono] [--threads 1,2]
        [--int8] [--startup] [--train-steps 150]

Every model is exported to ONNX (parity-checked) in a temporary folder. Latencies are batch 1
at 640x192 by default, the median over ``--repeats`` timed runs after ``--warmup`` runs, for
each thread count of ``--threads``. Models are timed round-robin (PyTorch one run of each in
turn, then ONNX Runtime in turns of a few runs), so a busy machine slows all of them alike and
the ratios to ``lite-mono``, always measured in the same run, stay meaningful. ONNX Runtime
sessions are opened as the node opens them (`onnx.runtime.open_session`). GFLOPs = 2 x
multiply-adds from ``torch.utils.flop_counter`` (deformable convolutions included through a
registered formula). Oversubscribed thread pools make multi-threaded timings swing by several
times on a busy machine.

``--int8``: INT8 vs fp32 latency and held-out AbsRel (`benchmarks.int8`); ``--startup``: node
start-up time and memory, torch vs ONNX-only (`benchmarks.startup`); ``--train-steps N``:
lsmdepth and lite-mono trained side by side on the same synthetic data, recipe and steps.
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

from .timing import time_in_turns

BASELINE = "lite-mono"
SPEED_TARGET = 0.8  # lsmdepth ONNX Runtime latency / lite-mono's, issue 14


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


def run_benchmarks(names: list[str], height: int, width: int, repeats: int, warmup: int,
                   thread_counts: list[int | None], use_onnx: bool, out=sys.stdout
                   ) -> list[list[ModelResult]]:
    """Results per thread count; the models are built and exported once."""
    import torch

    from ..geometry import MAX_DEPTH, MIN_DEPTH
    from ..networks import build_depth_model, count_parameters
    from ..onnx.export import export_onnx

    _register_deform_conv_flops()
    torch.manual_seed(0)
    image = torch.rand(1, 3, height, width)
    image_np = image.numpy()
    models, paths, base = {}, {}, []
    all_results = []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_bench_") as tmp:
        for name in names:
            print(f"[{name}] building, counting FLOPs" + (", exporting ONNX" if use_onnx else ""),
                  file=out, flush=True)
            model = build_depth_model(name, height=height, width=width).eval()
            result = ModelResult(name, count_parameters(model), count_gflops(model, image))
            if use_onnx:
                paths[name] = Path(tmp) / f"{name}.onnx"
                result.parity = export_onnx(model, paths[name], min_depth=MIN_DEPTH,
                                            max_depth=MAX_DEPTH)
            models[name] = model
            base.append(result)

        for threads in thread_counts:
            if threads:
                torch.set_num_threads(threads)
            results = [ModelResult(r.name, r.params, r.gflops, r.parity) for r in base]
            print(f"timing with {threads or 'default'} thread(s): {warmup} warm-up + {repeats} "
                  "timed runs per model, round-robin", file=out, flush=True)
            # PyTorch first, then ONNX Runtime, never interleaved: the idle workers of one
            # library's thread pool spin on the cores the other is being timed on (PyTorch's
            # OpenMP workers after every run), which added a constant to every ONNX Runtime
            # run on 2 threads and pulled all ratios towards 1.
            with torch.no_grad():
                for r in range(warmup + repeats):
                    for result in results:
                        t0 = time.perf_counter()
                        models[result.name](image)
                        if r >= warmup:
                            result.torch_ms.append(1e3 * (time.perf_counter() - t0))
            if use_onnx:
                _time_onnx_runtime(paths, results, image_np, threads, repeats, warmup)
            all_results.append(results)
    return all_results


def _time_onnx_runtime(paths: dict, results: list[ModelResult], image_np, threads: int | None,
                       repeats: int, warmup: int) -> None:
    """ONNX Runtime latencies of sessions opened as the node opens them (`onnx.runtime`: all
    graph optimisations, workers that spin while waiting for work), taking turns."""
    from ..onnx.runtime import open_session

    sessions = {n: open_session(p, device="cpu", num_threads=threads or 0,
                                say=lambda _: None).session for n, p in paths.items()}
    feed = {"image": image_np}
    times = time_in_turns({r.name: (lambda s=sessions[r.name]: s.run(["disp"], feed))
                           for r in results}, repeats, warmup)
    for result in results:
        result.ort_ms = times[result.name]


def format_table(results: list[ModelResult], height: int, width: int,
                 threads: int | None = None) -> str:
    base = next(r for r in results if r.name == BASELINE)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if math.isfinite(a) and math.isfinite(b) and b > 0 else "-"

    def ms(v: float) -> str:
        return f"{v:.1f}" if math.isfinite(v) else "-"

    header = (f"Batch 1, {width}x{height}, CPU, {threads or 'default'} thread(s); latency = "
              f"median ms; ratios (x) relative to {BASELINE} in the same run.")
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
            ratio_ort = lsm.ort_median / base.ort_median
            speed = f"{'met' if ratio_ort <= SPEED_TARGET else 'NOT met'} (ratio {ratio_ort:.2f})"
        else:
            speed = "not measured"
        lines += ["", (f"LSMDepth targets: params <= 3.1 M: {size_ok} ({lsm.params / 1e6:.3f} M); "
                      f"ONNX Runtime latency <= {SPEED_TARGET} x {BASELINE}: {speed}")]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="all",
                        help="comma-separated model names, or 'all' (lite-mono is always added "
                             "as the baseline)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per model first")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated intra-op thread counts for PyTorch and ONNX "
                             "Runtime, each timed in turn (0: the libraries' defaults)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX export and timing")
    parser.add_argument("--int8", action="store_true",
                        help="also INT8 vs fp32 (latency, held-out AbsRel) of --int8-checkpoint")
    parser.add_argument("--int8-checkpoint", default="",
                        help="trained checkpoint for --int8 (default: the shipped model)")
    parser.add_argument("--startup", action="store_true",
                        help="also node start-up time and memory, torch vs ONNX-only")
    parser.add_argument("--train-steps", type=int, default=0,
                        help="also train lsmdepth and lite-mono side by side for this many "
                             "steps (supervised on synthetic depth, 1 thread)")
    parser.add_argument("--train-seeds", default="0",
                        help="training seeds for --train-steps, e.g. 0,1,2 or 0-9 (mean reported; "
                             "with 2 or more, the no-loss verdict against lite-mono)")
    parser.add_argument("--train-world", default="drive", choices=("drive", "random"),
                        help="--train-steps data: the street drive at 192x64 or the randomised "
                             "world at 320x96")


def parse_seeds(text: str) -> tuple[int, ...]:
    """"0,3,5-7" -> (0, 3, 5, 6, 7); ValueError on anything else."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ValueError(f"empty seed range {part!r}")
        seeds += range(lo, hi + 1)
    return tuple(seeds)


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
    try:
        thread_counts = [int(t) or None for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        print(f"--threads must be comma-separated integers, got {args.threads!r}", file=sys.stderr)
        return 2
    per_threads = run_benchmarks(names, args.height, args.width, args.repeats, args.warmup,
                                 thread_counts, not args.no_onnx)
    tables = [format_table(r, args.height, args.width, t)
              for r, t in zip(per_threads, thread_counts)]
    if args.int8:
        from .int8 import format_int8, run_int8

        tables.append(format_int8(run_int8(args.int8_checkpoint, args.height, args.width,
                                           [t or 0 for t in thread_counts], args.repeats),
                                  args.height, args.width))
    if args.startup:
        tables.append(_startup_table(args.int8_checkpoint))
    if args.train_steps > 0:
        from .accuracy import format_accuracy, train_side_by_side

        try:
            seeds = parse_seeds(args.train_seeds)
        except ValueError:
            print(f"--train-seeds must be comma-separated integers or ranges (0-9), got "
                  f"{args.train_seeds!r}", file=sys.stderr)
            return 2
        rows = train_side_by_side(["lsmdepth", BASELINE], args.train_steps, seeds=seeds or (0,),
                                  world=args.train_world)
        tables.append(format_accuracy(rows))
        if not args.no_onnx:
            tables.append(_speed_and_accuracy(per_threads, thread_counts, rows))
    print()
    print("\n\n".join(tables))
    return 0


def _speed_and_accuracy(per_threads, thread_counts, rows: list[dict]) -> str:
    """Latency ratio and short-training AbsRel side by side, one row per model."""
    threads = [t or "default" for t in thread_counts]
    lines = ["| model | " + " | ".join(f"ONNX Runtime x, {t} thread(s)" for t in threads)
             + " | short-training abs_rel |", "|---|" + "---:|" * (len(threads) + 1)]
    for row in rows:
        ratios = []
        for results in per_threads:
            base = next(r for r in results if r.name == BASELINE)
            mine = next((r for r in results if r.name == row["model"]), None)
            ratios.append(f"{mine.ort_median / base.ort_median:.2f}" if mine else "-")
        lines.append(f"| {row['model']} | " + " | ".join(ratios) + f" | {row['abs_rel']:.4f} |")
    return "\n".join(lines)


def _startup_table(checkpoint: str) -> str:
    from ..checkpoints import load_checkpoint
    from ..inference import resolve_model_path
    from ..onnx.export import export_onnx
    from .startup import format_startup, run_startup

    path = resolve_model_path(checkpoint)
    model, info = load_checkpoint(path)
    with tempfile.TemporaryDirectory(prefix="lsmdepth_startup_") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path, min_depth=info.min_depth, max_depth=info.max_depth)
        return format_startup(run_startup(str(path), str(onnx_path)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsmdepth_ros.benchmarks.models",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
