"""Can the randomised world be rendered as fast as a training step consumes it?

    python -m lsmdepth_ros.benchmarks.world [--sizes 640x192,320x96] [--batch-size 8]

Per image size: CPU ms to render one frame of each scene kind (`WorldDrive.render`, sensor
effects included), and the seconds of one supervised training step of `lsmdepth` (SigLoss on the
world's depth, batch `--batch-size`, the recipe's mode) measured in the same process, rendering
and steps interleaved; both are CPU time of this process, so other jobs on the machine do not
skew the ratio. Reported: the ratio
batch x render time / step time: below 1 the data keeps up when rendered by one loader worker
beside the training process; the value is also the slow-down of rendering in the training
process itself (num_workers 0). torch runs on `--threads` threads (default 1).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def _cpu_s(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def measure(width: int, height: int, batch_size: int, frames: int, steps: int) -> dict:
    from torch.utils.data import default_collate

    from lsmdepth_ros.synthetic.world import LAYOUTS, WorldDrive, WorldOptions
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset
    from lsmdepth_ros.training.trainer import Trainer

    data = SyntheticDataset(batch_size, 3, height, width, seed=0, frame_ids=(0,), num_scales=1,
                            is_train=True, load_depth=True, world="random")
    batch = default_collate([data[i] for i in range(batch_size)])
    render_ms: dict[str, list[float]] = {kind: [] for kind in LAYOUTS}
    step_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lsmdepth_world_bench_") as tmp:
        cfg = TrainConfig(model="lsmdepth", height=height, width=width, batch_size=batch_size,
                          steps=steps + 1, warmup_steps=0, num_workers=0, device="cpu",
                          supervision="supervised", frame_ids=[0], progress=False,
                          log_dir=tmp, run_name="bench")
        trainer = Trainer(cfg, train_dataset=data)
        trainer.train_step(batch)  # warm-up (allocations, first texture atlas)
        for i in range(max(frames, steps)):
            if i < steps:
                step_s.append(_cpu_s(lambda: trainer.train_step(batch)))
            if i < frames:
                for k, kind in enumerate(LAYOUTS):
                    drive = WorldDrive(1000 + 17 * i + k, WorldOptions(
                        width=width, height=height, frames=4, scenes=(kind,)))
                    render_ms[kind].append(1e3 * _cpu_s(lambda d=drive: d.render(2)))
        trainer.close()
    per_kind = {kind: statistics.median(v) for kind, v in render_ms.items()}
    mean_ms = statistics.mean(per_kind.values())
    step = statistics.median(step_s)
    return {"size": f"{width}x{height}", "render_ms": per_kind, "render_mean_ms": mean_ms,
            "step_s": step, "ratio": batch_size * mean_ms / 1e3 / step}


def format_rows(results: list[dict], batch_size: int, threads: int) -> str:
    kinds = list(results[0]["render_ms"])
    lines = [(f"world rendering vs a supervised lsmdepth step (batch {batch_size}, {threads} "
              f"torch thread(s); render = CPU ms per frame, median per scene kind)"),
             f"{'size':<9}" + "".join(f"{k:>11}" for k in kinds)
             + f"{'mean ms':>9}{'step s':>8}{'ratio':>7}"]
    for r in results:
        lines.append(f"{r['size']:<9}" + "".join(f"{r['render_ms'][k]:>11.0f}" for k in kinds)
                     + f"{r['render_mean_ms']:>9.0f}{r['step_s']:>8.2f}{r['ratio']:>7.2f}")
    lines.append("ratio = batch x mean render time / step time: < 1 keeps up with one loader "
                 "worker; > 1: cache frames with `lsmdepth synth --kind world`")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x192,320x96", help="WIDTHxHEIGHT list")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4, help="frames per scene kind")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    results = []
    for size in args.sizes.split(","):
        w, _, h = size.partition("x")
        results.append(measure(int(w), int(h), args.batch_size, args.frames, args.steps))
    print(format_rows(results, args.batch_size, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
