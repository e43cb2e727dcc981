"""Self-supervised monocular training (monodepth2 / Lite-Mono recipe) on one or many processes.

    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.trainer import Trainer
    summary = Trainer(TrainConfig.load("cfg.yaml")).train()

One step reads one way: data set sample -> collate (`datasets.collate`) -> `Batch` -> networks
(`model.DepthPoseNet`: depth, and pose when the motion is learnt) -> named loss terms
(`photometric.SelfSupervisedLoss` for the photometric term, `loss_terms.TrainingObjective` for the
rest) -> their total -> AdamW (Lite-Mono's schedule, AMP on CUDA, DDP under torchrun). State
(seeds, sampler, checkpoints) lives in `state`, reporting in `run_log`, metrics in `heldout`.
The run directory holds config.yaml, TensorBoard events, `step_XXXXXX.pt` and `latest.pt`
training checkpoints (each a normal `checkpoints.save_checkpoint` file, so the node can load
it; the training state rides in `extra`) and the final `model.pt`.
"""
from __future__ import annotations

import logging
import math
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lsmdepth_ros.training import distributed as dist_utils
from lsmdepth_ros.training import heldout, state
from lsmdepth_ros.training.batch import Batch
from lsmdepth_ros.training.config import TrainConfig
from lsmdepth_ros.training.datasets.collate import collate_samples
from lsmdepth_ros.training.datasets.registry import build_datasets
from lsmdepth_ros.training.loss_terms import LossTerms, TrainingObjective
from lsmdepth_ros.training.model import (
    DepthPoseNet,
    autocast_context,
    autocast_dtype,
    unused_parameters,
)
from lsmdepth_ros.training.photometric import LossOptions, SelfSupervisedLoss
from lsmdepth_ros.training.run_log import RunLog
from lsmdepth_ros.training.schedule import warmup_cosine_restarts
from lsmdepth_ros.training.state import (
    CONFIG_NAME,
    FINAL_NAME,
    LATEST_NAME,
)
from lsmdepth_ros.training.supervision import check_supervision, uses_photometric

log = logging.getLogger(__name__)

__all__ = ["CONFIG_NAME", "FINAL_NAME", "LATEST_NAME", "Batch", "NonFiniteLossError",
           "StepOutput", "TrainSummary", "Trainer", "build_datasets", "summary_dict"]


class NonFiniteLossError(RuntimeError):
    """Raised after `max_nonfinite_steps` consecutive steps with a non-finite loss/gradient."""


@dataclass
class StepOutput:
    loss: float                 # mean over processes; nan when the step was skipped
    finite: bool
    losses: LossTerms | None = None
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


class Trainer:
    """Owns the networks, optimisers, schedules, data and run directory of one training run.

    `resume` is a run directory (its latest.pt) or a checkpoint file written by a Trainer; the
    run continues in that directory. Data sets can be injected (tests, custom data). Resuming
    a run that already reached `config.steps` writes nothing: `finished` is then True.
    """

    def __init__(self, config: TrainConfig, *, run_dir: str | Path | None = None,
                 resume: str | Path | None = None, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None):
        from lsmdepth_ros.networks import build_depth_model, build_pose_model

        config.validate()
        self.config = cfg = config
        resume_path = state.resolve_resume(resume) if resume else None
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.dist = dist_utils.init_distributed(cfg.device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.autocast = autocast_dtype(cfg.amp, cfg.cpu_amp, self.device)
        self.use_amp = self.autocast is torch.float16   # float16 needs the gradient scaler

        state.seed_everything(cfg.seed)  # identical initial weights on every rank
        self.depth = build_depth_model(cfg.model, height=cfg.height, width=cfg.width, **(
            state.model_options_for(cfg, resume_path))).to(self.device)
        # PoseNet only where it is trained: no optimiser state, checkpoint or log otherwise
        self.pose = build_pose_model(**cfg.pose_options).to(self.device) \
            if cfg.trains_pose_network else None
        self.num_scales = int(self.depth.num_scales)
        self.source_ids = cfg.source_frame_ids
        net = DepthPoseNet(self.depth, self.pose, self.source_ids).to(self.device)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Lite-Mono's encoders keep a few parameters their forward never uses (for
            # checkpoint compatibility); DDP must then look for unused parameters every step.
            unused = unused_parameters(net, cfg.height, cfg.width)
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids,
                                                      find_unused_parameters=bool(unused))
        self.net = net

        self.networks = {"depth": self.depth, **({"pose": self.pose} if self.pose else {})}
        lrs = {"depth": (cfg.lr, cfg.lr_min), "pose": (cfg.pose_lr, cfg.pose_lr_min)}
        self.optimizers = {
            name: torch.optim.AdamW(module.parameters(), lr=lrs[name][0],
                                    weight_decay=cfg.weight_decay)
            for name, module in self.networks.items()}
        self.schedulers = {
            name: warmup_cosine_restarts(
                opt, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                eta_min=lrs[name][1], restart_period=cfg.restart_period,
                restart_mult=cfg.restart_mult, warmup_start_factor=cfg.warmup_start_factor)
            for name, opt in self.optimizers.items()}
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.loss_fn = SelfSupervisedLoss(LossOptions(
            min_depth=cfg.min_depth, max_depth=cfg.max_depth, ssim_weight=cfg.ssim_weight,
            smoothness_weight=cfg.smoothness_weight, automask=cfg.automask,
            automask_noise=cfg.automask_noise))
        self.use_photometric = uses_photometric(cfg.supervision, len(self.source_ids))
        self.objective = TrainingObjective(
            cfg.supervision, check_supervision(cfg.supervision, cfg.supervision_options),
            min_depth=cfg.min_depth, max_depth=cfg.max_depth, device=self.device,
            seed=cfg.seed + self.dist.rank)

        if train_dataset is None:
            train_dataset, built_val = build_datasets(cfg, self.num_scales)
            val_dataset = val_dataset if val_dataset is not None else built_val
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.seeded_dataset = state.SeededSamples(train_dataset, cfg.seed)
        self.sampler = state.ResumableSampler(train_dataset, self.dist.rank,
                                              self.dist.world_size, cfg.seed)
        self.steps_per_epoch = len(self.sampler.base) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"the training set has {len(train_dataset)} samples, fewer than one "
                             f"batch of {cfg.batch_size} per process (x{self.dist.world_size} "
                             "processes); lower batch_size or add data")

        self.step = self.epoch = self.batch_in_epoch = 0
        self.nonfinite_in_row = self.nonfinite_total = 0
        self._last_saved_step = -1
        self.run_dir = self._make_run_dir(run_dir, resume_path)
        self.finished = False
        if resume_path is not None:
            self.finished = state.checkpoint_step(resume_path) >= cfg.steps
        if self.is_main and not self.finished:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            state.remove_stale_temporaries(self.run_dir)
            cfg.save(self.run_dir / CONFIG_NAME)
        if resume_path is not None:
            self.load_training_state(resume_path)
        else:
            state.seed_everything(cfg.seed + self.dist.rank)  # different dropout per rank
        if cfg.init_checkpoint and resume_path is None:
            self._init_from(cfg.init_checkpoint)
        self.log = RunLog(self.run_dir, self.is_main and not self.finished,
                          self.step if resume_path is not None else None)

    # -- set-up helpers ---------------------------------------------------------------------
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
        if pose_state and self.pose is not None:
            self.pose.load_state_dict(pose_state)

    @property
    def bare_net(self) -> DepthPoseNet:
        return self.net.module if isinstance(self.net, nn.parallel.DistributedDataParallel) else self.net

    def lrs(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def make_loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        cfg = self.config
        self.sampler.set_epoch(epoch, skip_batches * cfg.batch_size)
        self.seeded_dataset.set_epoch(epoch)
        # A private generator per (seed, rank, epoch): creating a loader mid-epoch after a resume
        # draws nothing from the global RNG, so resumed runs see the same RNG stream.
        generator = torch.Generator().manual_seed(
            (cfg.seed * 1_000_003 + self.dist.rank * 10_007 + epoch) % 2 ** 63)
        return DataLoader(self.seeded_dataset, batch_size=cfg.batch_size, sampler=self.sampler,
                          num_workers=cfg.num_workers, drop_last=True,
                          pin_memory=self.device.type == "cuda", generator=generator,
                          persistent_workers=False, collate_fn=collate_samples)

    # -- one step -------------------------------------------------------------------------
    def forward(self, batch: Batch) -> tuple[dict, dict]:
        """Disparities {("disp", s)} and poses {frame_id: T} for a batch (float32)."""
        if self.pose is None and self.use_photometric and batch.known_poses is None:
            raise ValueError("pose_source 'dataset' needs samples with ('pose_gt', i) "
                             "for every source frame (synthetic data has them); use "
                             "pose_source 'network' for data without known motion")
        with autocast_context(self.device, self.autocast):
            disps, poses = self.net(batch.target_aug, batch.sources_aug, batch.known_poses)
        # the loss (SSIM, warping) runs in float32 even under AMP
        return ({k: v.float() for k, v in disps.items()},
                {k: v.float() for k, v in poses.items()})

    def compute_loss(self, batch: Batch) -> LossTerms:
        return self.loss_of(batch, *self.forward(batch))

    def loss_of(self, batch: Batch, disps: dict, poses: dict) -> LossTerms:
        """The configured supervision's named loss terms (photometric when used + the rest)."""
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
        terms = self.loss_of(batch, disps, poses)
        loss = terms.total
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
        return StepOutput(loss=mean_loss, finite=finite, losses=terms, batch=batch)

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
        if self.finished:
            raise RuntimeError(f"the run in {self.run_dir} already reached step {self.step} of "
                               f"{cfg.steps}; raise steps to extend it")
        stop = cfg.steps if until_step is None else min(cfg.steps, int(until_step))
        history: list[float] = []
        start_time, window_start, window_steps = time.time(), time.time(), 0
        bar = self._progress_bar(stop)
        why = heldout.why_no_metrics(self.val_dataset, self.config.data_kind) \
            if self.is_main and self.step == 0 else None
        if why:
            log.info(why)
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
                        terms = out.losses if out.finite else None
                        self.log.scalars(self.step, out.loss, terms, self.lrs(),
                                         self.nonfinite_total, rate)
                        if bar is None:
                            self.log.line(self.step, cfg.steps, out.loss, terms, self.lrs(), rate)
                        window_start, window_steps = time.time(), 0
                    if self.is_main and cfg.image_interval and self.step % cfg.image_interval == 0 \
                            and out.losses is not None and out.batch is not None:
                        self.log.images(self.step, out.batch, out.losses)
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
        self.log.flush()
        return summary

    def _progress_bar(self, stop: int):
        if not (self.is_main and self.config.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=stop, initial=self.step, desc=f"train {self.config.model}",
                    unit="step", dynamic_ncols=True)

    # -- checkpoints (state.py holds what goes in them) -----------------------------------
    def save_training_state(self) -> Path | None:
        """Write step_XXXXXX.pt and latest.pt (rank 0); every rank must call it (RNG gather)."""
        self._last_saved_step = self.step
        return state.save_training_checkpoint(self)

    def save_final_model(self, metrics: Mapping[str, float] | None = None) -> Path | None:
        """RUN_DIR/model.pt: the depth weights and what produced them (no optimiser state)."""
        return state.save_final_model(self, metrics) if self.is_main else None

    def load_training_state(self, path: str | Path) -> None:
        """Restore weights, optimisers, schedules, step counters and RNG from a checkpoint."""
        state.load_training_checkpoint(self, path)
        self._last_saved_step = self.step

    # -- validation -------------------------------------------------------------------------
    def _validate_and_log(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.is_main and heldout.with_depth(self.val_dataset) is not None:
            metrics = self.evaluate()
            self.log.metrics(self.step, metrics)
        dist_utils.barrier(self.dist)
        return metrics

    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None, max_samples: int | None = None):
        """Held-out depth metrics of the current weights (Eigen protocol, median scaling).

        Returns the `metrics.EvalSummary` metrics dict plus the median-scaling ratio's
        median/std. The crop is Garg's for KITTI and none otherwise (config.eval_crop).
        """
        dataset = dataset if dataset is not None else self.val_dataset
        if dataset is None:
            raise ValueError("no held-out data set to evaluate on")
        limit = self.config.val_samples if max_samples is None else max_samples
        summary = heldout.evaluate_model_on(self.depth, dataset, self.config, self.device,
                                            limit or None)
        return {**summary.metrics, "ratio_median": summary.ratio_median,
                "ratio_std": summary.ratio_std}

    def close(self) -> None:
        self.log.close()


def _tail_mean(values: list[float], k: int = 10) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite[-k:])) if finite else math.nan


def summary_dict(summary: TrainSummary) -> dict[str, Any]:
    """The summary as JSON-safe values: non-finite numbers become null (JSON has no NaN)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return {k: clean(v) for k, v in summary.__dict__.items() if k != "losses"}
