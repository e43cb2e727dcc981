"""Side-by-side short training: is a faster network as accurate as Lite-Mono on the same data?

    python -m lsmdepth_ros.benchmarks.models --train-steps 150

Each model trains with the Trainer on the same synthetic drives (training seed 0, held-out
seed 1), at 192x64, batch 4, one thread, the same learning-rate schedule and number of steps,
supervised by the exact synthetic depth (SigLoss): in a run of minutes this separates
architectures far more clearly than the photometric loss, which spends its first thousands of
steps finding the scale-free layout. Held-out Eigen metrics with per-image median scaling.
A short run ranks convergence speed as much as capacity: read it as "no loss", not as the
accuracy of a trained model.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def train_side_by_side(names: list[str], steps: int, out=None) -> list[dict]:
    from .supervision import run_mode

    rows = []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_accuracy_") as tmp:
        for name in names:
            args = argparse.Namespace(model=name, height=64, width=192, batch_size=4, steps=steps,
                                      lr=5e-4, train_sequences=4, frames=60, val_samples=32,
                                      threads=1, seed=0)
            print(f"[train] {name}: {steps} steps at 192x64", file=out, flush=True)
            log_dir = Path(tmp) / name  # one folder per model: nothing resumes from another
            log_dir.mkdir()
            rows.append({"model": name, "steps": steps,
                         **run_mode("supervised", args, str(log_dir))})
    return rows


def format_accuracy(rows: list[dict]) -> str:
    lines = [(f"Short training, same synthetic data and recipe (supervised, 192x64, batch 4, "
              f"{rows[0]['steps']} steps, 1 thread); held-out synthetic drive, median scaling."),
             "", "| model | abs_rel | rmse | a1 | train s |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['abs_rel']:.4f} | {r['rmse']:.3f} | {r['a1']:.3f} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines)
