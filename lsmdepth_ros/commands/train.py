"""`lsmdepth train`: self-supervised training from a YAML config (+ overrides), resumable.

    lsmdepth train --config config/train_synthetic.yaml --set steps=2000 --set lr=2e-4
    lsmdepth train --resume runs/lsmdepth_20250101_120000          # continue a killed run
    torchrun --nproc_per_node 4 -m lsmdepth_ros.cli train --config cfg.yaml   # DDP
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "train a depth model (self-supervised, monodepth2 / Lite-Mono recipe)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of TrainConfig keys (see lsmdepth_ros/training/config.py); "
                             "with --resume and no --config, the run's own config.yaml is used")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set lr=2e-4 --set batch_size=8 "
                             "(repeatable; lists/dicts in YAML syntax: --set frame_ids=[0,-1,1])")
    parser.add_argument("--resume", default=None, metavar="RUN_DIR_OR_FILE",
                        help="continue from a run directory (its latest.pt) or a step_XXXXXX.pt; "
                             "the result is bit for bit the uninterrupted run's (any "
                             "num_workers); a finished run is left alone unless steps is raised")
    parser.add_argument("--run-dir", default=None, help="write the run here instead of "
                        "<log_dir>/<run_name or model_timestamp>")
    parser.add_argument("--model", default=None, help="shortcut for --set model=NAME (default: the config's model)")
    parser.add_argument("--steps", type=int, default=None, help="shortcut for --set steps=N (default: the config's steps)")
    parser.add_argument("--device", default=None,
                        help="shortcut for --set device=...: auto | cpu | cuda | cuda:N "
                             "(default: the config's device)")
    parser.add_argument("--keep", type=int, default=None, metavar="N",
                        help="shortcut for --set keep_checkpoints=N: keep the last N "
                             "step_XXXXXX.pt files (0: all; latest.pt and model.pt always stay; "
                             "default: the config's keep_checkpoints)")
    parser.add_argument("--summary-json", type=Path, default=None,
                        help="also write the final summary (steps, loss, metrics) as JSON here")


def run(args: argparse.Namespace) -> int:
    import logging

    from lsmdepth_ros.atomic_files import atomic_write_text
    from lsmdepth_ros.training import distributed
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.state import CONFIG_NAME, resolve_resume
    from lsmdepth_ros.training.trainer import NonFiniteLossError, Trainer, summary_dict

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config_path = args.config
    try:
        if args.resume:
            resume = resolve_resume(args.resume)
            if config_path is None:
                config_path = resume.parent / CONFIG_NAME
                if not config_path.is_file():
                    raise FileNotFoundError(f"cannot resume from {args.resume}: run folder "
                                            f"{resume.parent} holds no {CONFIG_NAME}; pass "
                                            "--config")
        config = TrainConfig.load(config_path, args.overrides, model=args.model,
                                  steps=args.steps, device=args.device,
                                  keep_checkpoints=args.keep)
        trainer = Trainer(config, run_dir=args.run_dir, resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"lsmdepth train: {exc}", file=sys.stderr)
        return 2
    if trainer.finished:
        if trainer.is_main:
            print(f"lsmdepth train: the run in {trainer.run_dir} already finished (step "
                  f"{trainer.step} of steps={config.steps}); nothing written. Raise steps "
                  "(--steps N) to train it further.", flush=True)
        trainer.close()
        distributed.cleanup()
        return 0
    if trainer.is_main:
        where = f"resuming at step {trainer.step}" if args.resume else "new run"
        print(f"lsmdepth train: {where}; run directory {trainer.run_dir} "
              f"(tensorboard --logdir {trainer.run_dir})", flush=True)
    try:
        summary = trainer.train()
    except NonFiniteLossError as exc:
        print(f"lsmdepth train: {exc}", file=sys.stderr)
        return 3
    finally:
        trainer.close()
        distributed.cleanup()
    if trainer.is_main:
        info = summary_dict(summary)
        text = json.dumps(info, indent=2, allow_nan=False)
        print(text)
        if summary.model_path:
            print(f"final weights: {summary.model_path}")
        if args.summary_json:
            atomic_write_text(args.summary_json, text + "\n")
    return 0
