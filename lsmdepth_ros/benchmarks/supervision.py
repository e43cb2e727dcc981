"""Supervision benchmark: held-out AbsRel after equally long self-supervised and supervised runs.

    python -m lsmdepth_ros.benchmarks.supervision [--steps 80] [--model lsmdepth] [--threads 1]

Both runs use the Trainer on the same synthetic drives (training seed 0, held-out seed 1), the
same model, size, batch, learning-rate schedule and number of optimiser steps; only
`supervision` differs: ``self`` (photometric loss, frames [0, -1, 1]) versus ``supervised``
(SigLoss on the exact synthetic depth, frame [0]). Held-out metrics follow the Eigen protocol
with per-image median scaling (so the self-supervised run's unknown scale is not held against
it). ``--modes`` adds ``self+lidar`` (32 simulated scan lines) for comparison.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

MODES = ("self", "supervised", "self+lidar")


def run_mode(mode: str, args: argparse.Namespace, log_dir: str) -> dict:
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.trainer import Trainer

    photometric = mode != "supervised"
    options = {"lidar_rows": 32} if mode == "self+lidar" else {}
    cfg = TrainConfig(
        model=args.model, height=args.height, width=args.width, batch_size=args.batch_size,
        steps=args.steps, warmup_steps=max(args.steps // 10, 1), lr=args.lr, pose_lr=args.lr,
        frame_ids=[0, -1, 1] if photometric else [0], supervision=mode,
        supervision_options=options, num_workers=0, threads=args.threads, seed=args.seed,
        data_options=_data_options(args),
        val_samples=args.val_samples, checkpoint_interval=args.steps, image_interval=0,
        log_interval=0, progress=False, log_dir=log_dir, run_name=mode.replace("+", "_"))
    start = time.time()
    trainer = Trainer(cfg)
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    return {"mode": mode, "seconds": time.time() - start, "final_loss": summary.final_loss,
            **summary.metrics}


def _data_options(args: argparse.Namespace) -> dict:
    """The classic street drive (`args.train_sequences` drives of `args.frames` frames, one
    held-out drive), or with ``args.world == "random"`` the randomised world: a new scene per
    training sample (8-frame drives) and 24 held-out drives."""
    if getattr(args, "world", "drive") == "random":
        return {"world": "random", "train_sequences": 20000, "val_sequences": 24,
                "frames_per_sequence": 8, "seed": 0, "val_seed": 1, "cache_frames": 0}
    return {"train_sequences": args.train_sequences, "val_sequences": 1,
            "frames_per_sequence": args.frames, "seed": 0, "val_seed": 1}


def format_table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [(f"{args.model} at {args.width}x{args.height}, batch {args.batch_size}, {args.steps} "
             f"steps each; held-out synthetic drive, {args.val_samples} frames, Eigen metrics "
             "with median scaling."), "",
             "| supervision | abs_rel | sq_rel | rmse | a1 | train s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r.get('abs_rel', float('nan')):.4f} | "
                     f"{r.get('sq_rel', float('nan')):.4f} | {r.get('rmse', float('nan')):.3f} | "
                     f"{r.get('a1', float('nan')):.3f} | {r['seconds']:.0f} |")
    by = {r["mode"]: r for r in rows}
    if "self" in by and "supervised" in by:
        a, b = by["self"]["abs_rel"], by["supervised"]["abs_rel"]
        verdict = "beats" if b < a else "does NOT beat"
        lines += ["", (f"supervised AbsRel {b:.4f} {verdict} self-supervised {a:.4f} "
                      f"(ratio {b / a:.2f})")]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lsmdepth")
    parser.add_argument("--steps", type=int, default=80, help="optimiser steps per run")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--train-sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=60, help="frames per synthetic drive")
    parser.add_argument("--val-samples", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="self,supervised",
                        help=f"comma-separated, from {', '.join(MODES)}")


def run(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or args.steps < 1:
        print(f"unknown mode(s) {bad} (choose from {MODES}) or --steps < 1", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_supervision_") as tmp:
        for mode in modes:
            print(f"[{mode}] training {args.steps} steps ...", flush=True)
            rows.append(run_mode(mode, args, tmp))
            print(f"[{mode}] abs_rel {rows[-1].get('abs_rel', float('nan')):.4f} in "
                  f"{rows[-1]['seconds']:.0f} s", flush=True)
    print()
    print(format_table(rows, args))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsmdepth_ros.benchmarks.supervision",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
