"""What a training step minimises, by `TrainConfig.supervision` mode:

=================  ==========================================================================
``self``           the photometric loss (monodepth2; `losses.SelfSupervisedLoss`), the default
``supervised``     SigLoss (or L1) of every scale's depth against dense "depth_gt"
                   (DepthFormer's toolbox convention, `supervised_losses`); target frame only
``self+lidar``     photometric + depth_weight * SigLoss (or L1) on the valid points of a sparse
                   depth ("depth_gt" from a LiDAR, e.g. KITTI velodyne; or simulated from dense
                   depth with ``lidar_rows``); the LiDAR also fixes the metric scale
``distill``        distill_weight * scale-and-shift-invariant loss against a teacher's depth
                   (`distill`, optionally patch-wise), plus the photometric loss when the
                   config has source frames
=================  ==========================================================================

In every mode ``semantic_weight > 0`` adds the semantic consistency loss on scale 0, with labels
from the sample's ``semantic_key`` ([1,H,W] integers, -1 = unlabelled) or a segmentation model.
The mode's options are `TrainConfig.supervision_options`, checked by `SupervisionOptions`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lsmdepth_ros import geometry
from lsmdepth_ros.training.config import SUPERVISION_MODES
from lsmdepth_ros.training.distill import (
    DistillationLoss,
    DistillOptions,
    SegmentationModel,
    load_teacher,
    semantic_consistency_loss,
)
from lsmdepth_ros.training.losses import LossResult
from lsmdepth_ros.training.supervised_losses import (
    DepthSupervisionLoss,
    DepthSupervisionOptions,
    simulate_lidar,
)

DEPTH_KEY = "depth_gt"


@dataclass
class SupervisionOptions:
    """`TrainConfig.supervision_options` (a YAML mapping of these keys)."""

    depth_loss: str = "sig"          # supervised / self+lidar: "sig" | "l1"
    depth_weight: float = 1.0        # weight of that loss (SigLoss's loss_weight)
    sig_warm_up: bool = False        # the toolbox's warm-up variant for the first iterations
    sig_warm_iter: int = 100
    depth_max: float = 0.0           # ground truth beyond this many metres is ignored (0: none)
    lidar_rows: int = 0              # self+lidar: >0 simulates this many scan lines from dense gt
    lidar_keep: float = 0.3          # fraction of a simulated scan line's pixels kept
    teacher: str = ""                # distill: checkpoint / Lite-Mono folder / .onnx
    teacher_options: dict = field(default_factory=dict)  # EstimatorOptions fields (ONNX)
    distill_weight: float = 1.0
    distill_loss: str = "l1"         # "l1" | "mse" after scale-and-shift alignment
    distill_grids: list = field(default_factory=lambda: [[1, 1]])  # patch grids [rows, cols]
    semantic_weight: float = 0.0     # > 0: semantic consistency loss
    semantic_key: str = "semantic"   # sample key of the labels
    segmentation_model: str = ""     # or labels from this .onnx ([B,C,H,W] logits)
    segmentation_mean: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    segmentation_std: list = field(default_factory=lambda: [1.0, 1.0, 1.0])
    semantic_boundary_margin: float = 0.0

    def __post_init__(self) -> None:
        DepthSupervisionOptions(loss=self.depth_loss)           # raises on a bad name
        DistillOptions(kind=self.distill_loss, grids=self.distill_grids)
        for name in ("depth_weight", "distill_weight", "semantic_weight", "depth_max",
                     "semantic_boundary_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"supervision_options.{name} must be >= 0, got "
                                 f"{getattr(self, name)}")
        if self.lidar_rows < 0 or not 0 < self.lidar_keep <= 1 or self.sig_warm_iter < 0:
            raise ValueError("supervision_options: lidar_rows >= 0, 0 < lidar_keep <= 1 and "
                             "sig_warm_iter >= 0 are required")

    @classmethod
    def from_dict(cls, values: Mapping) -> SupervisionOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown supervision_options key(s) {unknown}; valid keys: "
                             f"{sorted(names)}")
        return cls(**dict(values))


def check_supervision(mode: str, options: Mapping) -> SupervisionOptions:
    """Validate a config's mode + options (ValueError naming the problem)."""
    if mode not in SUPERVISION_MODES:
        raise ValueError(f"supervision must be one of {SUPERVISION_MODES}, got {mode!r}")
    opts = SupervisionOptions.from_dict(options)
    if mode == "distill" and not opts.teacher:
        raise ValueError("supervision 'distill' needs supervision_options.teacher (a checkpoint, "
                         "Lite-Mono folder or .onnx depth model)")
    return opts


def uses_photometric(mode: str, num_sources: int) -> bool:
    """Whether the mode trains on the photometric loss (and so needs source frames + poses)."""
    if mode in ("self", "self+lidar"):
        return True
    return mode == "distill" and num_sources > 0


def needs_depth(mode: str) -> bool:
    """Whether training samples must carry "depth_gt"."""
    return mode in ("supervised", "self+lidar")


def collate_samples(samples: list[Mapping]) -> dict:
    """`default_collate`, except that per-pixel ground truth ("depth_gt", labels) of differing
    native sizes (KITTI drives are 1242x375 or 1241x376 ...) is resized to the first sample's
    size with nearest-neighbour sampling (sparse LiDAR points stay measured values)."""
    from torch.utils.data import default_collate

    first = samples[0]
    ragged = [k for k, v in first.items() if isinstance(k, str) and isinstance(v, torch.Tensor)
              and v.ndim == 3 and any(s[k].shape != v.shape for s in samples)]
    if not ragged:
        return default_collate(samples)
    batch = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    for k in ragged:
        size = first[k].shape[-2:]
        batch[k] = torch.stack([
            v if v.shape[-2:] == size else
            F.interpolate(v[None].float(), size=size, mode="nearest")[0].to(v.dtype)
            for v in (s[k] for s in samples)])
    return batch


class TrainingObjective:
    """The non-photometric terms of a mode, added to the photometric result when there is one."""

    def __init__(self, mode: str, options: SupervisionOptions | Mapping | None = None, *,
                 min_depth: float = 0.1, max_depth: float = 100.0,
                 device: str | torch.device = "cpu", seed: int = 0):
        self.mode = mode
        opts = options if isinstance(options, SupervisionOptions) else \
            check_supervision(mode, options or {})
        self.options = opts
        self.depth_range = geometry.DepthRange(min_depth, max_depth)
        self.depth_loss = DepthSupervisionLoss(DepthSupervisionOptions(
            loss=opts.depth_loss, loss_weight=opts.depth_weight, warm_up=opts.sig_warm_up,
            warm_iter=opts.sig_warm_iter, max_depth=opts.depth_max or None))
        self.teacher = load_teacher(opts.teacher, device, **opts.teacher_options) \
            if mode == "distill" else None
        self.distill = DistillationLoss(DistillOptions(kind=opts.distill_loss,
                                                       grids=opts.distill_grids))
        self.segmenter = SegmentationModel(opts.segmentation_model, opts.segmentation_mean,
                                           opts.segmentation_std, device) \
            if opts.semantic_weight > 0 and opts.segmentation_model else None
        self._lidar_rng = torch.Generator().manual_seed(int(seed))

    def __call__(self, disps: Mapping, target: torch.Tensor, sample: Mapping, step: int,
                 photometric: LossResult | None = None) -> LossResult:
        """disps: {("disp", s)}; target: the un-augmented target image [B,3,H,W] (teacher and
        segmentation input); sample: the data set's sample (for "depth_gt" / labels)."""
        o = self.options
        result = photometric or LossResult(total=target.new_zeros(()))
        terms: dict[str, torch.Tensor] = {}
        depths = {k[1]: geometry.disp_to_depth(v, self.depth_range.min_depth,
                                               self.depth_range.max_depth)[1]
                  for k, v in disps.items() if isinstance(k, tuple) and k[0] == "disp"}
        if needs_depth(self.mode):
            if DEPTH_KEY not in sample:
                raise KeyError(f"supervision '{self.mode}' needs '{DEPTH_KEY}' in every training "
                               "sample; build the data set with load_depth=True")
            gt = sample[DEPTH_KEY].to(target.device, non_blocking=True).float()
            if self.mode == "self+lidar" and o.lidar_rows > 0:
                gt = simulate_lidar(gt, o.lidar_rows, o.lidar_keep, self._lidar_rng)
            terms["depth"] = self.depth_loss(depths, gt, step=step)
        if self.teacher is not None:
            teacher_depth = self.teacher(target).to(target.device)
            terms["distill"] = o.distill_weight * self.distill(disps, teacher_depth)
        if o.semantic_weight > 0:
            labels = self._labels(sample, target)
            terms["semantic"] = o.semantic_weight * semantic_consistency_loss(
                disps[("disp", 0)], labels, boundary_margin=o.semantic_boundary_margin)
        for name, value in terms.items():
            result.total = result.total + value
            result.per_scale[name] = value     # logged as loss/<name> beside the scales
        if result.depth is None and 0 in depths:
            full = depths[0]
            if full.shape[-2:] != target.shape[-2:]:
                full = F.interpolate(full, size=target.shape[-2:], mode="bilinear",
                                     align_corners=False)
            result.depth = full
        return result

    def _labels(self, sample: Mapping, target: torch.Tensor) -> torch.Tensor:
        if self.segmenter is not None:
            return self.segmenter(target)
        key = self.options.semantic_key
        if key not in sample:
            raise KeyError(f"semantic_weight > 0 needs labels: sample key '{key}' ([1,H,W] "
                           "integers, -1 unlabelled) or supervision_options.segmentation_model")
        labels = sample[key].to(target.device)
        return labels[:, 0] if labels.ndim == 4 else labels
