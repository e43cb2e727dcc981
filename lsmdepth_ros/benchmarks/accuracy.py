"""Side-by-side short training: is a faster network as accurate as Lite-Mono on the same data?

    python -m lsmdepth_ros.benchmarks.models --train-steps 150 [--train-seeds 0,1,2]
        [--train-world drive|random]

Each model trains with the Trainer on the same synthetic data (the street drive at 192x64, or
the randomised world at 320x96; held-out drives of data seed 1), batch 4, one thread, the same
learning-rate schedule and number of steps, once per training seed (the mean is reported: one
short run varies by about +-0.007 AbsRel between seeds),
supervised by the exact synthetic depth (SigLoss): in a run of minutes this separates
architectures far more clearly than the photometric loss, which spends its first thousands of
steps finding the scale-free layout. Held-out Eigen metrics with per-image median scaling.
A short run ranks convergence speed as much as capacity: read it as "no loss", not as the
accuracy of a trained model.
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

# "No loss of accuracy", made testable: the one-sided 95 % upper confidence bound of the mean
# AbsRel difference (model - baseline, Welch's t over training seeds) must stay within this
# margin: the AbsRel change the issue itself accepts for INT8 against fp32.
NO_LOSS_MARGIN = 0.005

# Per protocol: (height, width, held-out frames). "drive": the classic street drive at 192x64 (a
# run of minutes); "random": the randomised world at the default model's 320x96.
PROTOCOLS = {"drive": (64, 192, 32), "random": (96, 320, 48)}


def train_side_by_side(names: list[str], steps: int, out=None, seeds: tuple[int, ...] = (0,),
                       world: str = "drive") -> list[dict]:
    """One row per model: held-out metrics averaged over `seeds` (the training seed: weight
    initialisation and sample order; the data stay the same), with the per-seed abs_rel."""
    from .supervision import run_mode

    if world not in PROTOCOLS:
        raise ValueError(f"world must be one of {sorted(PROTOCOLS)}, got {world!r}")
    height, width, val_samples = PROTOCOLS[world]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_accuracy_") as tmp:
        for name in names:
            runs = []
            for seed in seeds:
                args = argparse.Namespace(model=name, height=height, width=width, batch_size=4,
                                          steps=steps, lr=5e-4, train_sequences=4, frames=60,
                                          val_samples=val_samples, threads=1, seed=seed,
                                          world=world)
                print(f"[train] {name}: {steps} steps at {width}x{height}, seed {seed}",
                      file=out, flush=True)
                log_dir = Path(tmp) / f"{name}_{seed}"  # nothing resumes from another run
                log_dir.mkdir()
                runs.append(run_mode("supervised", args, str(log_dir)))
            row = {"model": name, "steps": steps, "world": world, "size": f"{width}x{height}",
                   "seeds": list(seeds), "per_seed": [r["abs_rel"] for r in runs]}
            for key in ("abs_rel", "rmse", "a1", "seconds"):
                row[key] = statistics.fmean(r[key] for r in runs)
            rows.append(row)
    return rows


@dataclass
class Comparison:
    model: str
    baseline: str
    diff: float        # mean abs_rel of the model minus the baseline's (> 0: the model is worse)
    se: float          # its standard error (Welch)
    df: float          # Welch-Satterthwaite degrees of freedom
    upper: float       # one-sided 95 % upper confidence bound of the difference

    @property
    def no_loss(self) -> bool:
        return self.upper <= NO_LOSS_MARGIN


def compare(model: list[float], baseline: list[float], names=("lsmdepth", "lite-mono")
            ) -> Comparison | None:
    """Welch comparison of per-seed abs_rel lists (None with fewer than 2 seeds on a side)."""
    from scipy.stats import t as student_t

    if len(model) < 2 or len(baseline) < 2:
        return None
    va, vb = statistics.variance(model) / len(model), statistics.variance(baseline) / len(baseline)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(model) - 1) + vb ** 2 / (len(baseline) - 1))
    diff = statistics.fmean(model) - statistics.fmean(baseline)
    return Comparison(names[0], names[1], diff, se, df, diff + student_t.ppf(0.95, df) * se)


def format_accuracy(rows: list[dict]) -> str:
    r0 = rows[0]
    data = ("held-out synthetic drive" if r0["world"] == "drive"
            else "randomised world, 24 held-out drives")
    lines = [(f"Short training, same synthetic data and recipe (supervised, {r0['size']}, batch 4, "
              f"{r0['steps']} steps, 1 thread, mean of training seeds "
              f"{', '.join(map(str, r0['seeds']))}); {data}, median scaling."),
             "", "| model | abs_rel | per seed | rmse | a1 | train s |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        per_seed = " / ".join(f"{v:.4f}" for v in r["per_seed"])
        lines.append(f"| {r['model']} | {r['abs_rel']:.4f} | {per_seed} | {r['rmse']:.3f} | "
                     f"{r['a1']:.3f} | {r['seconds']:.0f} |")
    by = {r["model"]: r["per_seed"] for r in rows}
    c = compare(by.get("lsmdepth", []), by.get("lite-mono", []))
    if c is not None:
        lines += ["", (f"{c.model} - {c.baseline}: {c.diff:+.4f} AbsRel (standard error {c.se:.4f}, "
                      f"Welch t = {c.diff / c.se:.2f}, one-sided 95 % upper bound {c.upper:+.4f}). "
                      f"No loss of accuracy (upper bound <= {NO_LOSS_MARGIN}, the AbsRel change "
                      f"allowed for INT8): {'met' if c.no_loss else 'NOT met'}.")]
    return "\n".join(lines)
