"""Depth evaluation with the Eigen protocol, as monodepth2 / Lite-Mono report it.

Protocol (`EvalOptions` defaults): ground truth valid in (1e-3, 80) m; Garg crop; the prediction
resized to the ground truth's size (as inverse depth, like monodepth2 resizes disparity);
per-image median scaling (ratio = median(gt) / median(pred); the ratios' median and std are
reported); predictions clipped to [1e-3, 80]; metrics averaged over images.

Ground truth sources: KITTI velodyne scans + calibration files (`generate_depth_map`, the same
projection as monodepth2's export_gt_depth.py / kitti_utils.py, including its round()-1 pixel
convention so numbers stay comparable) and KITTI's annotated depth PNGs (`read_depth_png`,
uint16 / 256, 0 = invalid). numpy only: no torch, no ROS.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lsmdepth_ros.geometry import sparse_depth_image

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
# KITTI ground truth

def read_depth_png(path: str | Path) -> np.ndarray:
    """KITTI annotated depth PNG (uint16, metres * 256, 0 = invalid) -> float32, NaN invalid."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"cannot read depth PNG {path}: missing or not an image file")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path} is not a KITTI depth PNG: expected single-channel uint16, got "
                         f"{raw.dtype} with shape {raw.shape}")
    depth = raw.astype(np.float32) / 256.0
    depth[raw == 0] = np.nan
    return depth


def encode_depth_png(depth: np.ndarray) -> np.ndarray:
    """float metres (NaN / <= 0 invalid) -> KITTI uint16 (metres * 256, 0 = invalid)."""
    d = np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0)
    return np.clip(np.round(d * 256.0), 0, 65535).astype(np.uint16)


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """KITTI calibration text file ("key: v1 v2 ...") -> float arrays (non-numeric keys skipped)."""
    out = {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read KITTI calibration file {path}: {exc}") from exc
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()])
        except ValueError:
            pass  # e.g. calib_time
    return out


def load_velodyne_points(path: str | Path) -> np.ndarray:
    """KITTI velodyne .bin (float32 x, y, z, reflectance) -> [N, 4] with homogeneous 1."""
    raw = np.fromfile(str(path), dtype=np.float32)
    if raw.size % 4:
        raise ValueError(f"{path} is not a KITTI velodyne scan: {raw.size} floats is not a "
                         f"multiple of 4 (truncated file?)")
    points = raw.reshape(-1, 4).astype(np.float64)
    points[:, 3] = 1.0
    return points


def velodyne_to_depth(points: np.ndarray, P_velo_to_image: np.ndarray, height: int,
                      width: int, vel_depth: bool = False) -> np.ndarray:
    """Project homogeneous velodyne points to a sparse depth image (nearest return per pixel).

    Follows monodepth2's kitti_utils.generate_depth_map: points behind the scanner (x < 0)
    are dropped; pixel = round(projection) - 1; duplicates keep the smallest depth; 0 = empty.
    The value is the camera z, or with `vel_depth` the scanner's forward distance x (what
    monodepth2's export_gt_depth.py writes for the Eigen split).
    """
    points = points[points[:, 0] >= 0]
    proj = points @ np.asarray(P_velo_to_image, np.float64).T
    z = proj[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(proj[:, 0] / z) - 1
        v = np.round(proj[:, 1] / z) - 1
    ok = np.isfinite(u) & np.isfinite(v) & (z > 0)
    if vel_depth:
        z = points[:, 0]
    return sparse_depth_image(u[ok], v[ok], z[ok], height, width, empty=0.0)


def generate_depth_map(calib_dir: str | Path, velo_path: str | Path, cam: int = 2,
                       vel_depth: bool = False) -> np.ndarray:
    """KITTI raw ground truth for camera `cam` from calib_cam_to_cam.txt + calib_velo_to_cam.txt.

    vel_depth=True reproduces monodepth2's Eigen-split ground truth (export_gt_depth.py);
    False (camera z) is what its KITTI data set loads during training.
    """
    calib_dir = Path(calib_dir)
    cam2cam = read_calib_file(calib_dir / "calib_cam_to_cam.txt")
    velo2cam = read_calib_file(calib_dir / "calib_velo_to_cam.txt")
    needed = {"calib_cam_to_cam.txt": (cam2cam, [f"S_rect_0{cam}", "R_rect_00", f"P_rect_0{cam}"]),
              "calib_velo_to_cam.txt": (velo2cam, ["R", "T"])}
    for name, (table, keys) in needed.items():
        missing = [k for k in keys if k not in table]
        if missing:
            raise ValueError(f"{calib_dir / name} lacks {missing}; is it a KITTI raw calibration "
                             f"file?")
    T_velo_cam = np.eye(4)
    T_velo_cam[:3, :3] = velo2cam["R"].reshape(3, 3)
    T_velo_cam[:3, 3] = velo2cam["T"]
    R_rect = np.eye(4)
    R_rect[:3, :3] = cam2cam["R_rect_00"].reshape(3, 3)
    P_rect = cam2cam[f"P_rect_0{cam}"].reshape(3, 4)
    width, height = (int(v) for v in cam2cam[f"S_rect_0{cam}"])
    P = P_rect @ R_rect @ T_velo_cam
    return velodyne_to_depth(load_velodyne_points(velo_path), P, height, width, vel_depth)


# ----------------------------------------------------------------------------------------------
# a model on a data set (torch imported lazily: the rest of this module is numpy only)

def predict_depth_batches(model, images, min_depth: float, max_depth: float):
    """Network on [B, 3, H, W] RGB in [0, 1] -> metric depth [B, H, W] numpy (before scaling)."""
    import torch

    from lsmdepth_ros.geometry import disp_to_depth

    with torch.inference_mode():
        disp = model(images)[("disp", 0)]
    _, depth = disp_to_depth(disp, min_depth, max_depth)
    return depth[:, 0].float().cpu().numpy()


def evaluate_model(model, dataset, options: EvalOptions = EvalOptions(), *, min_depth: float,
                   max_depth: float, batch_size: int = 4, device: str = "cpu",
                   num_workers: int = 0, max_images: int | None = None,
                   progress: bool = False) -> EvalSummary:
    """Eigen-protocol evaluation of a depth network on a data set built with load_depth=True.

    `dataset` yields monodepth2 samples (("color", 0, 0) at the network's input size and
    "depth_gt" at the ground truth's native size); min/max_depth map the sigmoid disparity to
    depth (the checkpoint's range, not the evaluation's).
    """
    from torch.utils.data import DataLoader, Subset

    if max_images is not None:
        dataset = Subset(dataset, range(min(max_images, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate_images_and_depth)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="evaluating", unit="batch")
    model = model.to(device).eval()
    results = []
    for images, depths in loader:
        preds = predict_depth_batches(model, images.to(device), min_depth, max_depth)
        for gt, pred in zip(depths, preds):
            results.append(evaluate_depth_pair(gt, pred, options))
    return summarize(results, options)


def _collate_images_and_depth(samples):
    import torch

    if "depth_gt" not in samples[0]:
        raise ValueError("the data set yields no 'depth_gt': build it with load_depth=True")
    images = torch.stack([s[("color", 0, 0)] for s in samples])
    depths = [s["depth_gt"][0].numpy() for s in samples]  # native sizes may differ
    return images, depths
