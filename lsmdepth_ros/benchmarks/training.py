"""Training throughput benchmark: images/s of a full self-supervised step, per model, on CPU.

    python -m lsmdepth_ros.benchmarks.training [--models lsmdepth,lite-mono] [--batch-size 2]

A step is what `Trainer.train_step` does: depth network on the target, PoseNet on both
(source, target) pairs, the multi-scale photometric + smoothness loss, backward and the two AdamW
updates. Every model trains on the same synthetic batch (rendered once; data loading is not
timed). Models are stepped round-robin (one step of each in turn) so a busy machine slows them
alike, and the ratios to ``lite-mono`` measured in the same run stay meaningful. Reported: the
median seconds per step over ``--steps`` timed steps after ``--warmup`` untimed ones.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

BASELINE = "lite-mono"


@dataclass
class TrainResult:
    name: str
    params: int                 # depth network only
    batch_size: int
    seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def images_per_s(self) -> float:
        return self.batch_size / self.median_s if self.seconds else float("nan")


def run_benchmark(names: list[str], height: int, width: int, batch_size: int, steps: int,
                  warmup: int, device: str = "cpu") -> list[TrainResult]:
    import torch
    from torch.utils.data import default_collate

    from lsmdepth_ros.networks import count_parameters
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.datasets.augment import AugmentOptions
    from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset
    from lsmdepth_ros.training.trainer import Trainer

    data = SyntheticDataset(1, batch_size + 2, height, width, seed=0, num_scales=3,
                            is_train=True, augment=AugmentOptions(color_prob=0.0, flip_prob=0.0))
    batch = default_collate([data[i] for i in range(batch_size)])
    trainers, results = {}, []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_train_bench_") as tmp:
        for name in names:
            cfg = TrainConfig(model=name, height=height, width=width, batch_size=batch_size,
                              steps=max(steps + warmup, 1), warmup_steps=0, num_workers=0,
                              device=device, progress=False, log_dir=tmp, run_name=name)
            trainers[name] = Trainer(cfg, train_dataset=data)
            results.append(TrainResult(name, count_parameters(trainers[name].depth), batch_size))
        for i in range(warmup + steps):
            for result in results:
                start = time.perf_counter()
                out = trainers[result.name].train_step(batch)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
                if not out.finite:
                    raise RuntimeError(f"{result.name}: non-finite loss in the benchmark step")
                if i >= warmup:
                    result.seconds.append(elapsed)
        for trainer in trainers.values():
            trainer.close()
    return results


def format_table(results: list[TrainResult], height: int, width: int, threads: int) -> str:
    base = next((r for r in results if r.name == BASELINE), None)
    lines = [(f"training step at {width}x{height}, batch {results[0].batch_size}, "
             f"{threads} torch threads (median of {len(results[0].seconds)} steps)"),
             f"{'model':<20}{'params(M)':>10}{'s/step':>10}{'images/s':>10}{'vs ' + BASELINE:>16}"]
    for r in results:
        ratio = f"{r.images_per_s / base.images_per_s:.2f}x" if base else "n/a"
        lines.append(f"{r.name:<20}{r.params / 1e6:>10.2f}{r.median_s:>10.2f}"
                     f"{r.images_per_s:>10.2f}{ratio:>16}")
    lines.append("(images/s ratio > 1: faster than " + BASELINE + ")")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="",
                        help="comma-separated model names (default: every registered model)")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")


def run(args: argparse.Namespace) -> int:
    import torch

    from lsmdepth_ros.networks import available_models

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()] or available_models()
    unknown = [n for n in names if n not in available_models()]
    if unknown:
        print(f"unknown model(s) {unknown}; available: {', '.join(available_models())}",
              file=sys.stderr)
        return 2
    if args.steps < 1 or args.batch_size < 1:
        print("--steps and --batch-size must be >= 1", file=sys.stderr)
        return 2
    results = run_benchmark(names, args.height, args.width, args.batch_size, args.steps,
                            args.warmup, args.device)
    print(format_table(results, args.height, args.width, torch.get_num_threads()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsmdepth_ros.benchmarks.training",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
