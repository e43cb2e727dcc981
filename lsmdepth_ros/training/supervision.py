"""The supervision modes: what each needs (source frames, depth, a PoseNet) and its options.

=================  ==========================================================================
``self``           the photometric loss (monodepth2; `photometric.SelfSupervisedLoss`), the default
``supervised``     SigLoss (or L1) of every scale's depth against dense ground-truth depth
                   (DepthFormer's toolbox convention, `depth_losses`); target frame only
``self+lidar``     photometric + depth_weight * SigLoss (or L1) on the valid points of a sparse
                   depth (a LiDAR, e.g. KITTI velodyne; or simulated from dense depth with
                   ``lidar_rows``); the LiDAR also fixes the metric scale
``distill``        distill_weight * scale-and-shift-invariant loss against a teacher's depth
                   (`distill`, optionally patch-wise), plus the photometric loss when the
                   config has source frames
=================  ==========================================================================

In every mode ``semantic_weight > 0`` adds the semantic consistency loss on scale 0, with labels
from the sample's ``semantic_key`` ([1,H,W] integers, -1 = unlabelled) or a segmentation model.
This module is the one place that knows the modes; `config` validates with it and
`loss_terms` builds the loss terms from it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from lsmdepth_ros.training.depth_losses import DepthSupervisionOptions
from lsmdepth_ros.training.distill import DistillOptions

SUPERVISION_MODES = ("self", "supervised", "self+lidar", "distill")
POSE_SOURCES = ("network", "dataset")


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


def needs_sources(mode: str) -> bool:
    """Whether the mode cannot train without source frames (frame_ids beyond 0)."""
    return mode in ("self", "self+lidar")


def uses_source_frames(mode: str) -> bool:
    """Whether the mode loads source frames at all (supervised looks at frame 0 only)."""
    return mode != "supervised"


def uses_photometric(mode: str, num_sources: int) -> bool:
    """Whether the mode trains on the photometric loss (and so needs source frames + poses)."""
    return needs_sources(mode) or (mode == "distill" and num_sources > 0)


def needs_depth(mode: str) -> bool:
    """Whether training samples must carry ground-truth depth (`datasets.base.DEPTH_KEY`)."""
    return mode in ("supervised", "self+lidar")


def trains_pose_network(mode: str, num_sources: int, pose_source: str) -> bool:
    """PoseNet is built, optimised, checkpointed and logged only when the photometric loss
    needs motion and the motion does not come from the data set (one place for this fact)."""
    return uses_photometric(mode, num_sources) and pose_source == "network"
