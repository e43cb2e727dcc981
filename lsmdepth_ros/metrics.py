"""Eigen depth metrics and protocol, as monodepth2 / Lite-Mono report them (numpy only).

Protocol (`EvalOptions` defaults): ground truth valid in (1e-3, 80) m; Garg crop; the prediction
resized to the ground truth's size (as inverse depth, like monodepth2 resizes disparity);
per-image median scaling (ratio = median(gt) / median(pred); the ratios' median and std are
reported); predictions clipped to [1e-3, 80]; metrics averaged over images.

Also the KITTI depth-PNG format (uint16, metres * 256, 0 = invalid) that ground truth is stored in
(`read_depth_png`, `encode_depth_png`). Used by training, bag evaluation and the commands alike;
no torch, no ROS.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# crops as fractions of (height, width): rows [top, bottom), columns [left, right)
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)


def compute_depth_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Eigen et al. metrics between matching 1-D arrays of valid, positive depths (monodepth2)."""
    gt = np.asarray(gt, np.float64).ravel()
    pred = np.asarray(pred, np.float64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred must have the same number of values, got {gt.size} and "
                         f"{pred.size}")
    if gt.size == 0:
        raise ValueError("no valid pixels to evaluate: gt and pred are empty (check the depth "
                         "range mask and the crop)")
    if not (np.all(gt > 0) and np.all(pred > 0)):
        raise ValueError("compute_depth_metrics expects positive depths only; mask invalid "
                         "pixels and clip predictions first (see eval_mask / clip)")
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    log_diff = np.log(gt) - np.log(pred)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff ** 2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25 ** 2)),
        "a3": float(np.mean(ratio < 1.25 ** 3)),
    }


@dataclass(frozen=True)
class EvalOptions:
    """The Eigen protocol's knobs (defaults = the standard KITTI Eigen evaluation)."""

    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: str | None = "garg"        # "garg", "eigen" or None
    median_scaling: bool = True      # False: metric predictions (or a fixed scale)
    scale_factor: float = 1.0        # applied before evaluation (e.g. 5.4 for stereo models)

    def __post_init__(self) -> None:
        if self.crop not in (None, "garg", "eigen"):
            raise ValueError(f"crop must be 'garg', 'eigen' or None, got {self.crop!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth}, "
                             f"{self.max_depth}")


def crop_mask(height: int, width: int, crop: str | None) -> np.ndarray:
    """Boolean [h, w] mask of the Garg or Eigen crop (all True for None)."""
    mask = np.zeros((height, width), bool)
    if crop is None:
        mask[:] = True
        return mask
    top, bottom, left, right = GARG_CROP if crop == "garg" else EIGEN_CROP
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def eval_mask(gt: np.ndarray, options: EvalOptions = EvalOptions()) -> np.ndarray:
    """Valid ground truth (NaN-safe) strictly inside (min_depth, max_depth), within the crop."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        valid = (gt > options.min_depth) & (gt < options.max_depth)
    return valid & crop_mask(gt.shape[0], gt.shape[1], options.crop)


def median_scale(gt: np.ndarray, pred: np.ndarray) -> float:
    """Per-image scale aligning a scale-ambiguous prediction: median(gt) / median(pred)."""
    return float(np.median(gt) / np.median(pred))


def resize_depth(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a depth map as inverse depth (bilinear), as monodepth2 resizes disparity."""
    if pred.shape == (height, width):
        return pred
    import cv2

    pred = np.asarray(pred, np.float32)

    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.where(pred > 0, 1.0 / pred, 0.0).astype(np.float32)
        disp = cv2.resize(disp, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.where(disp > 0, 1.0 / disp, np.nan).astype(np.float32)


@dataclass
class FrameResult:
    """One image's metrics (None when it had no valid ground-truth pixel)."""

    metrics: dict[str, float] | None
    ratio: float
    valid_pixels: int


def evaluate_depth_pair(gt: np.ndarray, pred: np.ndarray,
                        options: EvalOptions = EvalOptions()) -> FrameResult:
    """Eigen protocol on one image: gt [h, w] (NaN / 0 invalid), pred depth at any size."""
    gt = np.asarray(gt, np.float64)
    if gt.ndim != 2:
        raise ValueError(f"ground truth must be a 2-D depth image, got shape {gt.shape}")
    pred = np.asarray(pred, np.float64)
    while pred.ndim > 2 and pred.shape[0] == 1:  # [1, 1, h, w] network outputs
        pred = pred[0]
    if pred.ndim != 2:
        raise ValueError(f"prediction must be a 2-D depth image, got shape {pred.shape}")
    pred = resize_depth(pred, *gt.shape).astype(np.float64) * options.scale_factor
    mask = eval_mask(gt, options) & np.isfinite(pred) & (pred > 0)
    n = int(mask.sum())
    if n == 0:
        return FrameResult(None, math.nan, 0)
    g, p = gt[mask], pred[mask]
    ratio = 1.0
    if options.median_scaling:
        ratio = median_scale(g, p)
        p = p * ratio
    p = np.clip(p, options.min_depth, options.max_depth)
    return FrameResult(compute_depth_metrics(g, p), ratio, n)


@dataclass
class EvalSummary:
    """Mean metrics over images plus the median-scaling statistics."""

    metrics: dict[str, float]
    num_images: int
    num_skipped: int                 # images without any valid ground-truth pixel
    ratio_median: float
    ratio_std: float
    options: EvalOptions
    per_image: list[FrameResult] = field(default_factory=list, repr=False)

    def to_dict(self, per_image: bool = False) -> dict:
        out = {"metrics": self.metrics, "num_images": self.num_images,
               "num_skipped": self.num_skipped, "ratio_median": self.ratio_median,
               "ratio_std": self.ratio_std, "options": asdict(self.options)}
        if per_image:
            out["per_image"] = [asdict(r) for r in self.per_image]
        return out

    def table(self) -> str:
        """The metrics as monodepth2 prints them (one header row, one value row)."""
        head = "".join(f"{name:>10}" for name in METRIC_NAMES)
        vals = "".join(f"{self.metrics[name]:>10.3f}" for name in METRIC_NAMES)
        lines = [head, vals]
        if self.options.median_scaling:
            lines.append(f"median scaling ratio: median {self.ratio_median:.3f}, std "
                         f"{self.ratio_std:.3f}")
        lines.append(f"images: {self.num_images} evaluated, {self.num_skipped} without valid "
                     f"ground truth")
        return "\n".join(lines)


def summarize(results: Iterable[FrameResult], options: EvalOptions) -> EvalSummary:
    results = list(results)
    good = [r for r in results if r.metrics is not None]
    if not good:
        raise ValueError(f"none of the {len(results)} images had valid ground truth in "
                         f"({options.min_depth}, {options.max_depth}) m inside the crop "
                         f"{options.crop!r}: check the depth units (metres?) and the range")
    metrics = {k: float(np.mean([r.metrics[k] for r in good])) for k in METRIC_NAMES}
    ratios = np.array([r.ratio for r in good])
    return EvalSummary(metrics, len(good), len(results) - len(good), float(np.median(ratios)),
                       float(np.std(ratios)), options, results)


def evaluate_depth_pairs(pairs: Iterable[tuple[np.ndarray, np.ndarray]],
                         options: EvalOptions = EvalOptions()) -> EvalSummary:
    """Evaluate an iterable of (gt depth, predicted depth) and average over images."""
    return summarize((evaluate_depth_pair(gt, pred, options) for gt, pred in pairs), options)


# ----------------------------------------------------------------------------------------------
# KITTI depth PNG (the ground-truth file format)

#: 16-bit depth PNG units per metre: KITTI's annotated depth (256), millimetres (NYU exports,
#: RealSense, Azure Kinect, ROS 16UC1: 1000), TUM RGB-D (5000)
KITTI_PNG_SCALE = 256.0


def read_depth_png(path: str | Path, scale: float = KITTI_PNG_SCALE) -> np.ndarray:
    """16-bit depth PNG (uint16, metres * `scale`, 0 = invalid; KITTI's by default) -> float32
    metres, NaN invalid."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"cannot read depth PNG {path}: missing or not an image file")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path} is not a 16-bit depth PNG: expected single-channel uint16, got "
                         f"{raw.dtype} with shape {raw.shape}")
    if not scale > 0:
        raise ValueError(f"depth PNG scale must be > 0 (units per metre), got {scale}")
    depth = raw.astype(np.float32) / np.float32(scale)
    depth[raw == 0] = np.nan
    return depth


def encode_depth_png(depth: np.ndarray) -> np.ndarray:
    """float metres (NaN / <= 0 invalid) -> KITTI uint16 (metres * 256, 0 = invalid)."""
    d = np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0)
    return np.clip(np.round(d * KITTI_PNG_SCALE), 0, 65535).astype(np.uint16)
