"""INT8 versus fp32 ONNX Runtime: latency and held-out accuracy of one trained checkpoint.

    python -m lsmdepth_ros.benchmarks.models --int8 [--int8-checkpoint models/lsmdepth_synthetic.pt]

The checkpoint is exported at the benchmark size (fp32), then quantised (`onnx.quantize`) with
synthetic-drive calibration frames (seed 0). Both files run through `DepthEstimator` on frames
of another drive (seed 1, held out) with exact depth, Eigen metrics with per-image median
scaling up to 80 m; latency is the median network time, both files timed round-robin.
"""
from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .timing import time_in_turns

CALIBRATION_SEED, HELD_OUT_SEED = 0, 1


@dataclass
class Int8Result:
    checkpoint: str
    threads: int
    fp32_ms: list[float] = field(default_factory=list)
    int8_ms: list[float] = field(default_factory=list)
    fp32_abs_rel: float = float("nan")
    int8_abs_rel: float = float("nan")
    float_ops: str = ""

    @property
    def speedup(self) -> float:
        return statistics.median(self.fp32_ms) / statistics.median(self.int8_ms)


def _frames(seed: int, count: int, width: int, height: int):
    from ..synthetic.drive import SyntheticDrive, SyntheticOptions

    # Spread over a longer drive so the frames are not near-duplicates.
    drive = SyntheticDrive(seed=seed, options=SyntheticOptions(frames=count * 4, width=width,
                                                               height=height))
    return [drive.render(i) for i in range(0, count * 4, 4)]


def _abs_rel(estimator, frames) -> float:
    from ..metrics import EvalOptions, evaluate_depth_pairs

    options = EvalOptions(max_depth=80.0, crop=None, median_scaling=True)
    pairs = ((f.depth, estimator.estimate(f.rgb, "rgb8")) for f in frames)
    return evaluate_depth_pairs(pairs, options).metrics["abs_rel"]


def run_int8(checkpoint: str, height: int, width: int, threads: list[int], repeats: int,
             calibration_frames: int = 32, eval_frames: int = 16, out=None) -> list[Int8Result]:
    from ..checkpoints import load_checkpoint
    from ..inference import DepthEstimator, EstimatorOptions, resolve_model_path
    from ..onnx.export import export_onnx
    from ..onnx.quantize import quantize_int8

    path = resolve_model_path(checkpoint)
    model, info = load_checkpoint(path)
    results = []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_int8_bench_") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        print(f"[int8] exporting {path.name} at {width}x{height}, calibrating on "
              f"{calibration_frames} synthetic frames", file=out, flush=True)
        export_onnx(model, fp32, min_depth=info.min_depth, max_depth=info.max_depth,
                    height=height, width=width)
        calib = (f.rgb for f in _frames(CALIBRATION_SEED, calibration_frames, width, height))
        report = quantize_int8(fp32, int8, calib, calibration_frames)
        float_ops = report.describe()
        held_out = _frames(HELD_OUT_SEED, eval_frames, width, height)
        abs_rel = {}
        for n in threads:
            est = {name: DepthEstimator(EstimatorOptions(model_path=str(p), device="cpu",
                                                         num_threads=n), say=lambda _msg: None)
                   for name, p in (("fp32", fp32), ("int8", int8))}
            if not abs_rel:  # the thread count does not change the numbers
                print(f"[int8] held-out accuracy on {eval_frames} frames", file=out, flush=True)
                abs_rel = {name: _abs_rel(e, held_out) for name, e in est.items()}
            result = Int8Result(str(path), n, fp32_abs_rel=abs_rel["fp32"],
                                int8_abs_rel=abs_rel["int8"], float_ops=float_ops)
            _, batch = est["fp32"].preprocess(held_out[0].rgb, "rgb8")
            batch = batch.copy()
            times = time_in_turns({name: (lambda e=e, b=batch: e.network_output(b))
                                   for name, e in est.items()}, repeats, warmup=2)
            result.fp32_ms, result.int8_ms = times["fp32"], times["int8"]
            results.append(result)
    return results


def format_int8(results: list[Int8Result], height: int, width: int) -> str:
    if not results:
        return ""
    r0 = results[0]
    lines = [(f"INT8 (QDQ, per-channel int8 weights, uint8 activations) vs fp32, ONNX Runtime CPU, "
             f"{width}x{height}, {Path(r0.checkpoint).name}; AbsRel on synthetic drive seed "
             f"{HELD_OUT_SEED} (calibration: seed {CALIBRATION_SEED}), median scaling."), "",
             "| threads | fp32 ms | int8 ms | speed-up | AbsRel fp32 | AbsRel int8 | change |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.threads} | {statistics.median(r.fp32_ms):.1f} | "
                     f"{statistics.median(r.int8_ms):.1f} | {r.speedup:.2f}x | "
                     f"{r.fp32_abs_rel:.4f} | {r.int8_abs_rel:.4f} | "
                     f"{r.int8_abs_rel - r.fp32_abs_rel:+.4f} |")
    worst = max(results, key=lambda r: abs(r.int8_abs_rel - r.fp32_abs_rel))
    speed_ok = all(r.speedup >= 1.5 for r in results)
    acc_ok = abs(worst.int8_abs_rel - worst.fp32_abs_rel) <= 0.005
    lines += ["", (f"INT8 targets: >= 1.5x faster: {'met' if speed_ok else 'NOT met'}; AbsRel change "
              f"<= 0.005: {'met' if acc_ok else 'NOT met'}. {r0.float_ops}.")]
    return "\n".join(lines)
