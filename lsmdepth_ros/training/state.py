"""Training state: seeds and RNG, the resumable sampler, per-sample seeding, run files.

Exact resume rests on three facts kept here: the sampler's order is a function of (seed,
epoch) and can start mid-epoch; every sample's randomness is a function of (seed, epoch,
index), whichever process or worker loads it (`SeededSamples`); the main process's RNG
state is saved with every checkpoint and restored on resume.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from lsmdepth_ros.atomic_files import atomic_path
from lsmdepth_ros.training import distributed as dist_utils

log = logging.getLogger("lsmdepth_ros.training.trainer")

TRAINING_STATE = "lsmdepth_ros.training_state"
STATE_VERSION = 1
LATEST_NAME, FINAL_NAME, CONFIG_NAME = "latest.pt", "model.pt", "config.yaml"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that depends only on (run seed, epoch, sample index)."""
    words = np.random.SeedSequence([int(seed) % 2 ** 63, int(epoch), int(index)]) \
        .generate_state(2, np.uint32)
    return (int(words[0]) << 31) | (int(words[1]) >> 1)


class SeededSamples(Dataset):
    """Wraps a data set so sample `i` of epoch `e` is drawn with every global RNG (torch,
    numpy, python) seeded from (seed, e, i) and restored afterwards: the sample no longer
    depends on which DataLoader worker loads it or on what that worker loaded before."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        value = sample_seed(self.seed, self.epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(value)
            np.random.seed(value % 2 ** 32)
            random.seed(value)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def capture_rng_state() -> dict:
    """RNG states of python, numpy and torch as checkpoint-safe tensors / lists / numbers."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class ResumableSampler(Sampler):
    """A DistributedSampler (deterministic per seed + epoch) that can start mid-epoch."""

    def __init__(self, dataset: Dataset, rank: int, world_size: int, seed: int):
        self.base = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                       shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.base.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return len(self.base) - self.skip


# ----------------------------------------------------------------------------------------------
# run folder files


def model_options_for(config: Any, resume_path: Path | None) -> dict:
    """Options the depth network is built with: the config's `model_options`, completed with
    those recorded by the checkpoint the run resumes from, or else starts from
    (`init_checkpoint`, the same model), so that a default changed since (lsmdepth's stride-2
    convs did) never breaks or alters a running run or a recipe's next stage."""
    source = resume_path or (Path(config.init_checkpoint) if config.init_checkpoint else None)
    if source is None or not source.is_file():
        return dict(config.model_options)   # none, or an official folder: built as configured
    from lsmdepth_ros.networks import saved_model_options

    saved = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("model") != config.model:
        return dict(config.model_options)   # the loaders say what is wrong with it
    recorded = saved_model_options(saved["model"], dict(saved.get("options", {})))
    for key in ("height", "width"):   # the config's (build_depth_model's own arguments)
        recorded.pop(key, None)
    return {**recorded, **config.model_options}


def resolve_resume(resume: str | Path) -> Path:
    """The checkpoint a --resume argument names (a run folder's latest.pt or a file)."""
    path = Path(resume)
    if path.is_dir():
        # The newest step file, not only latest.pt: a run killed between writing
        # step_XXXXXX.pt and pointing latest.pt at it has the newer state in the step file.
        steps = sorted(path.glob("step_*.pt"))
        if steps:
            return steps[-1]
        path = path / LATEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume from run folder {resume}: it holds no "
                                    f"{LATEST_NAME} or step_XXXXXX.pt (the run saved no "
                                    "checkpoint yet?)")
        return path
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume from {resume}: no such run folder or checkpoint "
                                f"file (expected a run folder holding {LATEST_NAME} or a "
                                "step_XXXXXX.pt file)")
    return path


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the half-written `.NAME.XXXX.tmp` files a killed save leaves behind."""
    stale = sorted(Path(run_dir).glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def checkpoint_step(path: Path) -> int:
    """The step a training checkpoint was saved at (reads the file, weights only)."""
    from lsmdepth_ros.checkpoints import load_checkpoint

    _, info = load_checkpoint(path, map_location="cpu")
    return int(_training_extra(path, info.extra)["step"])


def _training_extra(path: str | Path, extra: Mapping) -> Mapping:
    if extra.get("kind") != TRAINING_STATE:
        raise ValueError(f"{path} holds model weights but no training state (optimiser, "
                         "step, RNG), so it cannot be resumed; start a new run with "
                         f"--set init_checkpoint={path} to fine-tune from it")
    return extra


def link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make `dst` the same file as `src` (a hard link; a copy where unsupported)."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` step_XXXXXX.pt files (0: keep all); latest.pt is never removed."""
    if keep <= 0:
        return
    for old in sorted(Path(run_dir).glob("step_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# training checkpoints: the depth weights (a normal checkpoint) + the state in `extra`.
# `trainer` is a `trainer.Trainer` (not imported: the trainer imports this module).


def training_state(trainer: Any, rng_states: list) -> dict:
    """What a resume needs beside the depth weights (only the modules that are trained)."""
    extra = {
        "kind": TRAINING_STATE, "version": STATE_VERSION,
        "step": trainer.step, "epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch,
        "steps_per_epoch": trainer.steps_per_epoch, "world_size": trainer.dist.world_size,
        "nonfinite_total": trainer.nonfinite_total,
        "config": trainer.config.to_dict(),
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in trainer.schedulers.items()},
        "scaler": trainer.scaler.state_dict(),
        "rng": rng_states,
    }
    return {**extra, **_pose_extra(trainer)}


def _pose_extra(trainer: Any) -> dict:
    if trainer.pose is None:
        return {}
    return {"pose_state_dict": {k: v.detach().cpu() for k, v in trainer.pose.state_dict().items()},
            "pose_options": dict(getattr(trainer.pose, "options", {}))}


def save_training_checkpoint(trainer: Any) -> Path | None:
    """Write step_XXXXXX.pt and latest.pt (rank 0); every rank must call it (RNG gather)."""
    from lsmdepth_ros.checkpoints import save_checkpoint

    rng_states = dist_utils.all_gather_objects(capture_rng_state(), trainer.dist)
    if not trainer.is_main:
        return None
    cfg = trainer.config
    path = trainer.run_dir / f"step_{trainer.step:06d}.pt"
    save_checkpoint(path, trainer.depth, min_depth=cfg.min_depth, max_depth=cfg.max_depth,
                    extra=training_state(trainer, rng_states))
    link_or_copy(path, trainer.run_dir / LATEST_NAME)
    prune_checkpoints(trainer.run_dir, cfg.keep_checkpoints)
    return path


def save_final_model(trainer: Any, metrics: Mapping[str, float] | None = None) -> Path:
    """RUN_DIR/model.pt: the depth weights and what produced them (no optimiser state)."""
    from lsmdepth_ros.checkpoints import save_checkpoint

    cfg = trainer.config
    extra = {"config": cfg.to_dict(), "steps": trainer.step,
             "metrics": {k: float(v) for k, v in (metrics or {}).items()},
             **_pose_extra(trainer)}
    return save_checkpoint(trainer.run_dir / FINAL_NAME, trainer.depth, min_depth=cfg.min_depth,
                           max_depth=cfg.max_depth, extra=extra)


def load_training_checkpoint(trainer: Any, path: str | Path) -> None:
    """Restore weights, optimisers, schedules, step counters and RNG from a checkpoint."""
    from lsmdepth_ros.checkpoints import load_checkpoint

    model, info = load_checkpoint(path, map_location=trainer.device)
    saved = _training_extra(path, info.extra)
    if info.name != trainer.config.model:
        raise ValueError(f"{path} trains model {info.name} but the config says "
                         f"{trainer.config.model}; resume with the run's own config.yaml")
    missing = sorted(set(trainer.optimizers) - set(saved["optimizers"]))
    if missing:
        raise ValueError(f"{path} has no optimiser state for {missing}: it was saved by a "
                         "run that did not train them (pose_source / supervision changed?); "
                         "resume with the run's own config.yaml")
    trainer.depth.load_state_dict(model.state_dict())
    if trainer.pose is not None:
        trainer.pose.load_state_dict(saved["pose_state_dict"])
    for name, opt in trainer.optimizers.items():
        opt.load_state_dict(saved["optimizers"][name])
    for name, sched in trainer.schedulers.items():
        sched.load_state_dict(saved["schedulers"][name])
    if saved.get("scaler"):
        trainer.scaler.load_state_dict(saved["scaler"])
    trainer.step = int(saved["step"])
    trainer.nonfinite_total = int(saved.get("nonfinite_total", 0))
    if int(saved.get("steps_per_epoch", -1)) == trainer.steps_per_epoch and \
            int(saved.get("world_size", -1)) == trainer.dist.world_size:
        trainer.epoch, trainer.batch_in_epoch = int(saved["epoch"]), int(saved["batch_in_epoch"])
    else:  # the data set or world size changed: start a fresh epoch at the same step
        log.warning("%s: data set size or process count changed since the checkpoint; "
                    "continuing at step %d with a new epoch", path, trainer.step)
        trainer.epoch, trainer.batch_in_epoch = int(saved["epoch"]) + 1, 0
    rng = saved.get("rng") or []
    if trainer.dist.rank < len(rng) and len(rng) == trainer.dist.world_size:
        restore_rng_state(rng[trainer.dist.rank])
    else:
        seed_everything(trainer.config.seed + trainer.dist.rank + trainer.step)
