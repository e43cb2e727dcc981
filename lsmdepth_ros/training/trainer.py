"""Self-supervised monocular training (monodepth2 / Lite-Mono recipe) on one or many processes.

    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.trainer import Trainer
    summary = Trainer(TrainConfig.load("cfg.yaml")).train()

One step: the depth network sees the (colour-augmented) target frame, the pose network each
(source, target) pair; the loss warps the un-augmented sources into the target view
(`losses.SelfSupervisedLoss`). AdamW for depth and pose with Lite-Mono's schedule, AMP on CUDA,
DDP under torchrun. The run directory holds config.yaml, TensorBoard events, `step_XXXXXX.pt`
and `latest.pt` training checkpoints (each a normal `checkpoints.save_checkpoint` file, so the
node can load it; the training state rides in `extra`) and the final `model.pt`.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from lsmdepth_ros import geometry
from lsmdepth_ros.io_utils import atomic_path
from lsmdepth_ros.training import distributed as dist_utils
from lsmdepth_ros.training.config import TrainConfig
from lsmdepth_ros.training.losses import LossOptions, LossResult, SelfSupervisedLoss
from lsmdepth_ros.training.objectives import (
    TrainingObjective,
    check_supervision,
    collate_samples,
    needs_depth,
    uses_photometric,
)
from lsmdepth_ros.training.schedule import warmup_cosine_restarts

log = logging.getLogger(__name__)

TRAINING_STATE = "lsmdepth_ros.training_state"
STATE_VERSION = 1
LATEST_NAME, FINAL_NAME, CONFIG_NAME = "latest.pt", "model.pt", "config.yaml"


class NonFiniteLossError(RuntimeError):
    """Raised after `max_nonfinite_steps` consecutive steps with a non-finite loss/gradient."""


# ----------------------------------------------------------------------------------------------
# models, batches, seeds


class DepthPoseNet(nn.Module):
    """Depth and pose networks behind one forward, so DDP sees one module call per step."""

    def __init__(self, depth: nn.Module, pose: nn.Module, source_ids: list[int]):
        super().__init__()
        self.depth, self.pose, self.source_ids = depth, pose, list(source_ids)

    def forward(self, target: torch.Tensor, sources: Mapping[int, torch.Tensor],
                known_poses: Mapping[int, torch.Tensor] | None = None):
        disps = self.depth(target)
        if known_poses is not None:  # motion from odometry / the data set: no PoseNet
            return disps, dict(known_poses)
        poses = {}
        for f in self.source_ids:
            # monodepth2: frames always in temporal order; invert the motion for past frames
            pair = (sources[f], target) if f < 0 else (target, sources[f])
            axisangle, translation = self.pose(torch.cat(pair, 1))
            poses[f] = geometry.transformation_from_parameters(axisangle, translation,
                                                               invert=f < 0)
        return disps, poses


@dataclass
class Batch:
    """The tensors one step needs, taken from a monodepth2-format sample dict."""

    target: torch.Tensor                 # un-augmented, for the loss
    target_aug: torch.Tensor             # network input
    sources: dict[int, torch.Tensor]
    sources_aug: dict[int, torch.Tensor]
    K: torch.Tensor
    inv_K: torch.Tensor
    target_pyramid: dict[int, torch.Tensor]
    known_poses: dict[int, torch.Tensor] | None = None   # ("pose_gt", i) when the data has it
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # "depth_gt", labels, ...

    @classmethod
    def from_sample(cls, sample: Mapping, source_ids: list[int], num_scales: int,
                    device: torch.device) -> Batch:
        def get(key, fallback=None):
            if key in sample:
                return sample[key].to(device, non_blocking=True)
            if fallback is not None and fallback in sample:
                return sample[fallback].to(device, non_blocking=True)
            raise KeyError(f"training sample has no {key!r}; a data set must return the "
                           f"monodepth2 sample format (see training/datasets/base.py), "
                           f"got keys {sorted(map(str, sample))[:12]}")
        pyramid = {s: sample[("color", 0, s)].to(device) for s in range(num_scales)
                   if ("color", 0, s) in sample}
        return cls(target=get(("color", 0, 0)),
                   target_aug=get(("color_aug", 0, 0), ("color", 0, 0)),
                   sources={f: get(("color", f, 0)) for f in source_ids},
                   sources_aug={f: get(("color_aug", f, 0), ("color", f, 0)) for f in source_ids},
                   K=get(("K", 0)), inv_K=get(("inv_K", 0)), target_pyramid=pyramid,
                   known_poses={f: sample[("pose_gt", f)].to(device) for f in source_ids}
                   if all(("pose_gt", f) in sample for f in source_ids) else None,
                   extras={k: v for k, v in sample.items()
                           if isinstance(k, str) and isinstance(v, torch.Tensor)})


def unused_parameters(net: DepthPoseNet, height: int, width: int) -> list[str]:
    """Names of parameters that get no gradient (probe: one eval-mode pass on a blank frame)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    image = torch.zeros(1, 3, height, width, device=device)
    disps, poses = net(image, {f: image for f in net.source_ids})
    total = sum(v.sum() for v in disps.values()) + sum(T.sum() for T in poses.values())
    total.backward()
    unused = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return unused


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: numpy and random follow torch's per-worker seed."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


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
# results


@dataclass
class StepOutput:
    loss: float                 # mean over processes; nan when the step was skipped
    finite: bool
    result: LossResult | None = None
    batch: Batch | None = None


@dataclass
class TrainSummary:
    run_dir: str
    steps: int                          # global step reached
    final_loss: float                   # mean of the last few finite losses
    losses: list[float] = field(default_factory=list)   # this call's per-step losses
    nonfinite_steps: int = 0
    seconds: float = 0.0
    checkpoint: str = ""                # latest training checkpoint
    model_path: str = ""                # final weights (only when the run completed)
    metrics: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# data


def build_datasets(config: TrainConfig, num_scales: int) -> tuple[Dataset, Dataset | None]:
    """Training and held-out data sets for `config.data_kind` (monodepth2 sample format).

    data_options by kind (anything not listed goes to the data set's constructor):
      synthetic, no data_path: train_sequences (8), val_sequences (1), frames_per_sequence
        (100), seed (0), val_seed (1), cache_frames (4096): drives rendered in memory;
      synthetic with data_path: a folder written by `lsmdepth synth --kind kitti` (its
        train / val splits);
      kitti: train_split, val_split (split files; default <data_path>/splits/eigen_zhou/
        {train,val}_files.txt), e.g. img_ext, intrinsics, depth_source;
      folder: a folder of image sequences + intrinsics.yaml (no held-out depth);
      bag: data_path = a bag (or several, comma-separated); image_topic, camera_info_topic,
        stride, max_frames (no held-out depth).
    """
    from lsmdepth_ros.training import datasets as ds

    augment = (ds.AugmentOptions() if config.augment
               else ds.AugmentOptions(color_prob=0.0, flip_prob=0.0))
    opts = dict(config.data_options)
    common = {"height": config.height, "width": config.width}
    train_kw = {**common, "frame_ids": (0, *config.source_frame_ids),
                "num_scales": num_scales, "is_train": True, "augment": augment}
    # held-out: target frame only, never augmented
    val_kw = {**common, "frame_ids": (0,), "num_scales": 1, "is_train": False}
    kind, path = config.data_kind, config.data_path
    train_depth = needs_depth(config.supervision)   # supervised / self+lidar need "depth_gt"
    if train_depth:
        if kind in ("folder", "bag"):
            raise ValueError(f"supervision {config.supervision!r} needs ground-truth depth, which "
                             f"data_kind {kind!r} does not provide; use synthetic or kitti data "
                             "(velodyne or annotated depth)")
        if kind != "synthetic" or path:
            train_kw["load_depth"] = True

    if kind == "synthetic" and not path:
        frames = int(opts.pop("frames_per_sequence", 100))
        train_seqs, val_seqs = int(opts.pop("train_sequences", 8)), int(opts.pop("val_sequences", 1))
        seed, val_seed = int(opts.pop("seed", 0)), int(opts.pop("val_seed", 1))
        cache = int(opts.pop("cache_frames", 4096))
        if seed == val_seed:
            raise ValueError("data_options seed and val_seed must differ: the held-out drives "
                             "must not be the training drives")
        train = ds.SyntheticDataset(train_seqs, frames, seed=seed, load_depth=train_depth,
                                    cache_frames=cache, **train_kw, **opts)
        val = ds.SyntheticDataset(val_seqs, frames, seed=val_seed, load_depth=True,
                                  cache_frames=0, **val_kw, **opts) if val_seqs > 0 else None
        return train, val
    if not path:
        raise ValueError(f"data_kind {kind!r} needs data_path (the data set's folder or bag)")
    if kind == "synthetic":
        return (ds.synthetic_folder_dataset(path, "train", **train_kw, **opts),
                ds.synthetic_folder_dataset(path, "val", load_depth=True, **val_kw, **opts))
    if kind == "kitti":
        split_dir = Path(path) / "splits" / "eigen_zhou"
        train_split = opts.pop("train_split", str(split_dir / "train_files.txt"))
        val_split = opts.pop("val_split", str(split_dir / "val_files.txt"))
        return (ds.KittiRawDataset(path, train_split, **train_kw, **opts),
                ds.KittiRawDataset(path, val_split, load_depth=True, **val_kw, **opts))
    if kind == "folder":
        return ds.FolderSequenceDataset(path, **train_kw, **opts), None
    if kind == "bag":
        bags = [p.strip() for p in path.split(",") if p.strip()]
        return ds.RosbagSequenceDataset(bags, **train_kw, **opts), None
    raise ValueError(f"unknown data_kind {kind!r}")


# ----------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Owns the networks, optimisers, schedules, data and run directory of one training run.

    `resume` is a run directory (its latest.pt) or a checkpoint file written by a Trainer; the
    run continues in that directory. Data sets can be injected (tests, custom data).
    """

    def __init__(self, config: TrainConfig, *, run_dir: str | Path | None = None,
                 resume: str | Path | None = None, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None):
        from lsmdepth_ros.networks import build_depth_model, build_pose_model

        config.validate()
        self.config = cfg = config
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.dist = dist_utils.init_distributed(cfg.device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")

        seed_everything(cfg.seed)  # identical initial weights on every rank
        self.depth = build_depth_model(cfg.model, height=cfg.height, width=cfg.width,
                                       **cfg.model_options).to(self.device)
        self.pose = build_pose_model(**cfg.pose_options).to(self.device)
        self.num_scales = int(self.depth.num_scales)
        self.source_ids = cfg.source_frame_ids
        net = DepthPoseNet(self.depth, self.pose, self.source_ids).to(self.device)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Lite-Mono's encoders keep a few parameters their forward never uses (for
            # checkpoint compatibility); DDP must then look for unused parameters every step.
            unused = unused_parameters(net, cfg.height, cfg.width)
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids,
                                                      find_unused_parameters=bool(unused) or cfg.pose_source == "dataset")
        self.net = net

        self.optimizers = {
            "depth": torch.optim.AdamW(self.depth.parameters(), lr=cfg.lr,
                                       weight_decay=cfg.weight_decay),
            "pose": torch.optim.AdamW(self.pose.parameters(), lr=cfg.pose_lr,
                                      weight_decay=cfg.weight_decay),
        }
        self.schedulers = {
            name: warmup_cosine_restarts(
                opt, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                eta_min=cfg.lr_min if name == "depth" else cfg.pose_lr_min,
                restart_period=cfg.restart_period, restart_mult=cfg.restart_mult,
                warmup_start_factor=cfg.warmup_start_factor)
            for name, opt in self.optimizers.items()}
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.loss_fn = SelfSupervisedLoss(LossOptions(
            min_depth=cfg.min_depth, max_depth=cfg.max_depth, ssim_weight=cfg.ssim_weight,
            smoothness_weight=cfg.smoothness_weight, automask=cfg.automask,
            automask_noise=cfg.automask_noise))
        # the supervision mode's other terms (depth, LiDAR, teacher, semantics): objectives.py
        self.use_photometric = uses_photometric(cfg.supervision, len(self.source_ids))
        self.objective = TrainingObjective(
            cfg.supervision, check_supervision(cfg.supervision, cfg.supervision_options),
            min_depth=cfg.min_depth, max_depth=cfg.max_depth, device=self.device,
            seed=cfg.seed + self.dist.rank)

        if train_dataset is None:
            train_dataset, built_val = build_datasets(cfg, self.num_scales)
            val_dataset = val_dataset if val_dataset is not None else built_val
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.sampler = ResumableSampler(train_dataset, self.dist.rank, self.dist.world_size,
                                        cfg.seed)
        self.steps_per_epoch = len(self.sampler.base) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"the training set has {len(train_dataset)} samples, fewer than one "
                             f"batch of {cfg.batch_size} per process (x{self.dist.world_size} "
                             "processes); lower batch_size or add data")

        self.step = self.epoch = self.batch_in_epoch = 0
        self.nonfinite_in_row = self.nonfinite_total = 0
        self._last_saved_step = -1
        resume_path = self._resolve_resume(resume) if resume else None
        self.run_dir = self._make_run_dir(run_dir, resume_path)
        self.writer = None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / CONFIG_NAME)
        if resume_path is not None:
            self.load_training_state(resume_path)
        else:
            seed_everything(cfg.seed + self.dist.rank)  # different augmentations per rank
        if cfg.init_checkpoint and resume_path is None:
            self._init_from(cfg.init_checkpoint)

    # -- set-up helpers ---------------------------------------------------------------------
    @staticmethod
    def _resolve_resume(resume: str | Path) -> Path:
        path = Path(resume)
        if path.is_dir():
            path = path / LATEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume from {resume}: expected a run directory "
                                    f"containing {LATEST_NAME} or a step_XXXXXX.pt file")
        return path

    def _make_run_dir(self, run_dir, resume_path: Path | None) -> Path:
        if run_dir is not None:
            chosen = str(run_dir)
        elif resume_path is not None:
            chosen = str(resume_path.parent)
        else:
            name = self.config.run_name or f"{self.config.model}_{time.strftime('%Y%m%d_%H%M%S')}"
            chosen = str(Path(self.config.log_dir) / name)
        # every rank must agree (the timestamps of different ranks may differ)
        return Path(dist_utils.all_gather_objects(chosen, self.dist)[0])

    def _init_from(self, path: str) -> None:
        from lsmdepth_ros.checkpoints import load_checkpoint

        model, info = load_checkpoint(path, map_location=self.device)
        if info.name != self.config.model:
            raise ValueError(f"init_checkpoint {path} holds a {info.name} model but the config "
                             f"trains {self.config.model}; set model={info.name}")
        self.depth.load_state_dict(model.state_dict())
        pose_state = info.extra.get("pose_state_dict")
        if pose_state:
            self.pose.load_state_dict(pose_state)

    @property
    def bare_net(self) -> DepthPoseNet:
        return self.net.module if isinstance(self.net, nn.parallel.DistributedDataParallel) else self.net

    def lrs(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def make_loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        cfg = self.config
        self.sampler.set_epoch(epoch, skip_batches * cfg.batch_size)
        # A private generator per (seed, rank, epoch): creating a loader mid-epoch after a resume
        # draws nothing from the global RNG, so resumed runs see the same RNG stream.
        generator = torch.Generator().manual_seed(
            (cfg.seed * 1_000_003 + self.dist.rank * 10_007 + epoch) % 2 ** 63)
        return DataLoader(self.train_dataset, batch_size=cfg.batch_size, sampler=self.sampler,
                          num_workers=cfg.num_workers, drop_last=True,
                          pin_memory=self.device.type == "cuda", generator=generator,
                          worker_init_fn=seed_worker, persistent_workers=False,
                          collate_fn=collate_samples)

    # -- one step -------------------------------------------------------------------------
    def forward(self, batch: Batch) -> tuple[dict, dict]:
        """Disparities {("disp", s)} and poses {frame_id: T} for a batch (float32)."""
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            if self.config.pose_source == "dataset":
                if batch.known_poses is None:
                    raise ValueError("pose_source 'dataset' needs samples with ('pose_gt', i) "
                                     "for every source frame (synthetic data has them); use "
                                     "pose_source 'network' for data without known motion")
                disps, poses = self.net(batch.target_aug, batch.sources_aug, batch.known_poses)
            else:
                disps, poses = self.net(batch.target_aug, batch.sources_aug)
        # the loss (SSIM, warping) runs in float32 even under AMP
        return ({k: v.float() for k, v in disps.items()},
                {k: v.float() for k, v in poses.items()})

    def compute_loss(self, batch: Batch) -> LossResult:
        disps, poses = self.forward(batch)
        return self.loss_of(batch, disps, poses)

    def loss_of(self, batch: Batch, disps: dict, poses: dict) -> LossResult:
        """The configured supervision's loss: photometric (when used) + the objective's terms."""
        photometric = None
        if self.use_photometric:
            photometric = self.loss_fn(disps, batch.target, batch.sources, poses, batch.K,
                                       batch.inv_K, batch.target_pyramid)
        return self.objective(disps, batch.target, batch.extras, self.step, photometric)

    def train_step(self, sample: Mapping) -> StepOutput:
        """Forward, loss, backward and optimiser update on one batch (all ranks together)."""
        cfg = self.config
        self.net.train()
        batch = Batch.from_sample(sample, self.source_ids, self.num_scales, self.device)
        disps, poses = self.forward(batch)
        result = self.loss_of(batch, disps, poses)
        loss = result.total
        # agree across ranks on the mean loss and on whether any rank saw a non-finite one
        stats = torch.stack([loss.detach().float(),
                             (~torch.isfinite(loss.detach())).float()]).to(self.device)
        stats = dist_utils.all_reduce_sum(stats, self.dist)
        finite = bool(stats[1].item() == 0)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if finite:
            self.scaler.scale(loss).backward()
        else:
            # DDP expects a backward after every forward: run a zero-weighted one through the
            # network outputs only (not through the loss), then throw the gradients away.
            surrogate = sum(v.sum() for v in disps.values()) + sum(T.sum() for T in poses.values())
            (surrogate * 0.0).backward()
        if finite:
            for opt in self.optimizers.values():
                self.scaler.unscale_(opt)
            params = [p for opt in self.optimizers.values() for g in opt.param_groups
                      for p in g["params"] if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(
                params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            # Under AMP the scaler skips inf/nan gradients itself (normal while it calibrates);
            # without it a non-finite gradient would poison the weights, so skip the step.
            finite = self.use_amp or bool(torch.isfinite(norm))
        if finite:
            for opt in self.optimizers.values():
                self.scaler.step(opt)
            self.scaler.update()
        else:
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # the schedule follows the step count even when a step's update was skipped
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler"))
            for sched in self.schedulers.values():
                sched.step()
        self._count_nonfinite(finite, float(stats[0].item()))
        mean_loss = float(stats[0].item()) / self.dist.world_size if finite else math.nan
        return StepOutput(loss=mean_loss, finite=finite, result=result, batch=batch)

    def _count_nonfinite(self, finite: bool, value: float) -> None:
        if finite:
            self.nonfinite_in_row = 0
            return
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        if self.is_main:
            log.warning("step %d: non-finite loss or gradient (%s); update skipped "
                        "(%d in a row, %d in total)", self.step + 1, value,
                        self.nonfinite_in_row, self.nonfinite_total)
        if self.nonfinite_in_row >= self.config.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"training stopped at step {self.step + 1}: the loss or its gradient was "
                f"non-finite for {self.nonfinite_in_row} steps in a row "
                f"(max_nonfinite_steps={self.config.max_nonfinite_steps}). The weights were not "
                f"updated by those steps; the last checkpoint in {self.run_dir} is intact. Check "
                f"the data (NaN/Inf pixels, intrinsics), lower the learning rate (lr="
                f"{self.config.lr}), or set grad_clip, then --resume {self.run_dir}.")

    # -- the loop -------------------------------------------------------------------------
    def train(self, until_step: int | None = None) -> TrainSummary:
        """Train to `config.steps` (or stop early at `until_step`, as if killed after a save)."""
        cfg = self.config
        stop = cfg.steps if until_step is None else min(cfg.steps, int(until_step))
        history: list[float] = []
        start_time, window_start, window_steps = time.time(), time.time(), 0
        bar = self._progress_bar(stop)
        try:
            while self.step < stop:
                for sample in self.make_loader(self.epoch, self.batch_in_epoch):
                    out = self.train_step(sample)
                    self.step += 1
                    self.batch_in_epoch += 1
                    if self.batch_in_epoch >= self.steps_per_epoch:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    history.append(out.loss)
                    window_steps += 1
                    if self.is_main and cfg.log_interval and self.step % cfg.log_interval == 0:
                        rate = window_steps * cfg.batch_size * self.dist.world_size / max(
                            time.time() - window_start, 1e-9)
                        self._log_scalars(out, rate)
                        window_start, window_steps = time.time(), 0
                    if self.is_main and cfg.image_interval and self.step % cfg.image_interval == 0:
                        self._log_images(out)
                    if bar is not None:
                        bar.update(1)
                        if out.finite:
                            bar.set_postfix(loss=f"{out.loss:.4f}", refresh=False)
                    if self.step % cfg.checkpoint_interval == 0:
                        self.save_training_state()
                    if cfg.val_interval and self.step % cfg.val_interval == 0 and self.step < cfg.steps:
                        self._validate_and_log()
                    if self.step >= stop:
                        break
        finally:
            if bar is not None:
                bar.close()

        if self._last_saved_step != self.step:
            self.save_training_state()
        summary = TrainSummary(run_dir=str(self.run_dir), steps=self.step,
                               final_loss=_tail_mean(history), losses=history,
                               nonfinite_steps=self.nonfinite_total,
                               seconds=time.time() - start_time,
                               checkpoint=str(self.run_dir / LATEST_NAME))
        if self.step >= cfg.steps:
            summary.metrics = self._validate_and_log()
            summary.model_path = str(self.save_final_model(summary.metrics))
        if self.writer is not None:
            self.writer.flush()
        return summary

    def _progress_bar(self, stop: int):
        if not (self.is_main and self.config.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=stop, initial=self.step, desc=f"train {self.config.model}",
                    unit="step", dynamic_ncols=True)

    # -- checkpoints ------------------------------------------------------------------------
    def training_state(self, rng_states: list) -> dict:
        cfg = self.config
        return {
            "kind": TRAINING_STATE, "version": STATE_VERSION,
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "steps_per_epoch": self.steps_per_epoch, "world_size": self.dist.world_size,
            "nonfinite_total": self.nonfinite_total,
            "config": cfg.to_dict(),
            "pose_state_dict": {k: v.detach().cpu() for k, v in self.pose.state_dict().items()},
            "pose_options": dict(getattr(self.pose, "options", {})),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng_states,
        }

    def save_training_state(self) -> Path | None:
        """Write step_XXXXXX.pt and latest.pt (rank 0); every rank must call it (RNG gather)."""
        from lsmdepth_ros.checkpoints import save_checkpoint

        rng_states = dist_utils.all_gather_objects(capture_rng_state(), self.dist)
        self._last_saved_step = self.step
        if not self.is_main:
            return None
        cfg = self.config
        extra = self.training_state(rng_states)
        path = self.run_dir / f"step_{self.step:06d}.pt"
        save_checkpoint(path, self.depth, min_depth=cfg.min_depth, max_depth=cfg.max_depth,
                        extra=extra)
        _link_or_copy(path, self.run_dir / LATEST_NAME)
        self._prune_checkpoints()
        return path

    def _prune_checkpoints(self) -> None:
        keep = self.config.keep_checkpoints
        if keep <= 0:
            return
        for old in sorted(self.run_dir.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)

    def save_final_model(self, metrics: Mapping[str, float] | None = None) -> Path | None:
        """RUN_DIR/model.pt: the depth weights and what produced them (no optimiser state)."""
        from lsmdepth_ros.checkpoints import save_checkpoint

        if not self.is_main:
            return None
        cfg = self.config
        extra = {"config": cfg.to_dict(), "steps": self.step,
                 "metrics": {k: float(v) for k, v in (metrics or {}).items()}}
        if cfg.pose_source == "network":  # with known motion PoseNet was never trained
            extra["pose_state_dict"] = {k: v.detach().cpu()
                                        for k, v in self.pose.state_dict().items()}
            extra["pose_options"] = dict(getattr(self.pose, "options", {}))
        return save_checkpoint(self.run_dir / FINAL_NAME, self.depth, min_depth=cfg.min_depth,
                               max_depth=cfg.max_depth, extra=extra)

    def load_training_state(self, path: str | Path) -> None:
        """Restore weights, optimisers, schedules, step counters and RNG from a checkpoint."""
        from lsmdepth_ros.checkpoints import load_checkpoint

        model, info = load_checkpoint(path, map_location=self.device)
        state = info.extra
        if state.get("kind") != TRAINING_STATE:
            raise ValueError(f"{path} holds model weights but no training state (optimiser, "
                             "step, RNG), so it cannot be resumed; start a new run with "
                             f"--set init_checkpoint={path} to fine-tune from it")
        if info.name != self.config.model:
            raise ValueError(f"{path} trains model {info.name} but the config says "
                             f"{self.config.model}; resume with the run's own config.yaml")
        self.depth.load_state_dict(model.state_dict())
        self.pose.load_state_dict(state["pose_state_dict"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        if int(state.get("steps_per_epoch", -1)) == self.steps_per_epoch and \
                int(state.get("world_size", -1)) == self.dist.world_size:
            self.epoch, self.batch_in_epoch = int(state["epoch"]), int(state["batch_in_epoch"])
        else:  # the data set or world size changed: start a fresh epoch at the same step
            log.warning("%s: data set size or process count changed since the checkpoint; "
                        "continuing at step %d with a new epoch", path, self.step)
            self.epoch, self.batch_in_epoch = int(state["epoch"]) + 1, 0
        self._last_saved_step = self.step
        rng = state.get("rng") or []
        if self.dist.rank < len(rng) and len(rng) == self.dist.world_size:
            restore_rng_state(rng[self.dist.rank])
        else:
            seed_everything(self.config.seed + self.dist.rank + self.step)

    # -- logging and validation -------------------------------------------------------------
    def _tb(self):
        if self.writer is None and self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir))
        return self.writer

    def _log_scalars(self, out: StepOutput, images_per_s: float) -> None:
        tb = self._tb()
        if out.finite:
            tb.add_scalar("loss/total", out.loss, self.step)
            if out.result is not None:
                for s, v in out.result.per_scale.items():
                    name = f"scale_{s}" if isinstance(s, int) else s   # or depth/distill/...
                    tb.add_scalar(f"loss/{name}", float(v.detach()), self.step)
        for name, lr in self.lrs().items():
            tb.add_scalar(f"lr/{name}", lr, self.step)
        tb.add_scalar("train/nonfinite_steps", self.nonfinite_total, self.step)
        tb.add_scalar("train/images_per_s", images_per_s, self.step)

    def _log_images(self, out: StepOutput) -> None:
        if out.result is None or out.batch is None:
            return
        from torchvision.utils import make_grid

        n = min(4, out.batch.target.shape[0])
        rgb = out.batch.target[:n].detach().float().cpu()
        disp = 1.0 / out.result.depth[:n].detach().float().cpu()
        disp = colorize(disp / disp.flatten(1).quantile(0.95, dim=1).clamp_min(1e-6)[:, None, None, None])
        rows = [rgb, disp]
        if out.result.automask is not None:
            rows.append(out.result.automask[:n, None].float().cpu().repeat(1, 3, 1, 1))
        grid = make_grid(torch.cat(rows, 0), nrow=n, padding=2)
        self._tb().add_image("train/rgb_disparity_automask", grid, self.step)

    def _validate_and_log(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.is_main and self.val_dataset is not None:
            metrics = self.evaluate()
            tb = self._tb()
            for k, v in metrics.items():
                tb.add_scalar(f"val/{k}", v, self.step)
            log.info("step %d: held-out %s", self.step,
                     ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        dist_utils.barrier(self.dist)
        return metrics

    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None, max_samples: int | None = None):
        """Held-out depth metrics of the current weights (Eigen protocol, median scaling).

        Returns the `evaluate.EvalSummary` metrics dict plus the median-scaling ratio's
        median/std. The crop is Garg's for KITTI and none otherwise (config.eval_crop).
        """
        dataset = dataset if dataset is not None else self.val_dataset
        if dataset is None:
            raise ValueError("no held-out data set to evaluate on")
        limit = self.config.val_samples if max_samples is None else max_samples
        summary = evaluate_model_on(self.depth, dataset, self.config, self.device, limit or None)
        return {**summary.metrics, "ratio_median": summary.ratio_median,
                "ratio_std": summary.ratio_std}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def evaluation_options(config: TrainConfig):
    from lsmdepth_ros.training.evaluate import EvalOptions

    crop = config.eval_crop
    if crop == "auto":
        crop = "garg" if config.data_kind == "kitti" else "none"
    return EvalOptions(max_depth=config.eval_max_depth, crop=None if crop == "none" else crop)


def evaluate_model_on(depth_model: nn.Module, dataset: Dataset, config: TrainConfig,
                      device: torch.device, max_samples: int | None = None):
    """`evaluate.evaluate_model` on up to `max_samples` frames spread evenly over `dataset`."""
    from torch.utils.data import Subset

    from lsmdepth_ros.training.evaluate import evaluate_model

    if max_samples and max_samples < len(dataset):
        # sequences are contiguous: spread the frames over all of them, deterministically
        indices = np.linspace(0, len(dataset) - 1, max_samples).round().astype(int)
        dataset = Subset(dataset, sorted(set(indices.tolist())))
    was_training = depth_model.training
    try:
        return evaluate_model(depth_model, dataset, evaluation_options(config),
                              min_depth=config.min_depth, max_depth=config.max_depth,
                              device=str(device))
    finally:
        depth_model.train(was_training)


def colorize(values: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] in [0, 1] -> [B,3,H,W] magma colours (matplotlib's table)."""
    from matplotlib import colormaps

    lut = torch.tensor(colormaps["magma"](np.linspace(0, 1, 256))[:, :3], dtype=torch.float32)
    idx = (values.clamp(0, 1) * 255).round().long()[:, 0]
    return lut[idx].permute(0, 3, 1, 2)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Atomically make `dst` the same file as `src` (a hard link; a copy where unsupported)."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _tail_mean(values: list[float], k: int = 10) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite[-k:])) if finite else math.nan


def summary_dict(summary: TrainSummary) -> dict[str, Any]:
    return {k: v for k, v in summary.__dict__.items() if k != "losses"}
