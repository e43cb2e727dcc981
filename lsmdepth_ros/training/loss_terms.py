"""What a training step minimises: named loss terms, each computed once, none changing another.

The modes are described in `supervision`. A step's `LossTerms` holds every term under its
name ("photometric", "depth", "distill", "semantic"), already weighted, and their sum `total`;
the photometric term's details (per scale, automask, warped sources) ride beside it untouched.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lsmdepth_ros import geometry
from lsmdepth_ros.training.datasets.base import DEPTH_KEY
from lsmdepth_ros.training.depth_losses import (
    DepthSupervisionLoss,
    DepthSupervisionOptions,
    simulate_lidar,
)
from lsmdepth_ros.training.distill import (
    DistillationLoss,
    DistillOptions,
    SegmentationModel,
    load_teacher,
    semantic_consistency_loss,
)
from lsmdepth_ros.training.photometric import LossResult
from lsmdepth_ros.training.supervision import (
    SupervisionOptions,
    check_supervision,
    needs_depth,
)


@dataclass
class LossTerms:
    """One step's loss: named, weighted terms and their sum (in the order they were added)."""

    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    photometric: LossResult | None = None   # the photometric term's details, when it is used
    depth: torch.Tensor | None = None       # full-resolution depth of scale 0 (for images)

    @property
    def total(self) -> torch.Tensor:
        values = list(self.terms.values())
        if not values:
            raise ValueError("no loss terms: the supervision mode produced nothing to minimise")
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total


class TrainingObjective:
    """The terms of a supervision mode, beside the photometric result when there is one."""

    def __init__(self, mode: str, options: SupervisionOptions | Mapping | None = None, *,
                 min_depth: float = geometry.MIN_DEPTH, max_depth: float = geometry.MAX_DEPTH,
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

    def __call__(self, disps: Mapping, target: torch.Tensor, extras: Mapping, step: int,
                 photometric: LossResult | None = None) -> LossTerms:
        """disps: {("disp", s)}; target: the un-augmented target image [B,3,H,W] (teacher and
        segmentation input); extras: the batch's named tensors (ground-truth depth, labels);
        photometric: the photometric loss of this step, if the mode uses it."""
        o = self.options
        out = LossTerms(photometric=photometric)
        if photometric is not None:
            out.terms["photometric"] = photometric.total
        depths = {k[1]: geometry.disp_to_depth(v, self.depth_range.min_depth,
                                               self.depth_range.max_depth)[1]
                  for k, v in disps.items() if isinstance(k, tuple) and k[0] == "disp"}
        if needs_depth(self.mode):
            if DEPTH_KEY not in extras:
                raise KeyError(f"supervision '{self.mode}' needs '{DEPTH_KEY}' in every training "
                               "sample; build the data set with load_depth=True")
            gt = extras[DEPTH_KEY].to(target.device, non_blocking=True).float()
            if self.mode == "self+lidar" and o.lidar_rows > 0:
                gt = simulate_lidar(gt, o.lidar_rows, o.lidar_keep, self._lidar_rng)
            out.terms["depth"] = self.depth_loss(depths, gt, step=step)
        if self.teacher is not None:
            teacher_depth = self.teacher(target).to(target.device)
            out.terms["distill"] = o.distill_weight * self.distill(disps, teacher_depth)
        if o.semantic_weight > 0:
            labels = self._labels(extras, target)
            out.terms["semantic"] = o.semantic_weight * semantic_consistency_loss(
                disps[("disp", 0)], labels, boundary_margin=o.semantic_boundary_margin)
        if photometric is not None and photometric.depth is not None:
            out.depth = photometric.depth
        elif 0 in depths:
            full = depths[0]
            if full.shape[-2:] != target.shape[-2:]:
                full = F.interpolate(full, size=target.shape[-2:], mode="bilinear",
                                     align_corners=False)
            out.depth = full
        return out

    def _labels(self, extras: Mapping, target: torch.Tensor) -> torch.Tensor:
        if self.segmenter is not None:
            return self.segmenter(target)
        key = self.options.semantic_key
        if key not in extras:
            raise KeyError(f"semantic_weight > 0 needs labels: sample key '{key}' ([1,H,W] "
                           "integers, -1 unlabelled) or supervision_options.segmentation_model")
        labels = extras[key].to(target.device)
        return labels[:, 0] if labels.ndim == 4 else labels
