"""KITTI ground truth (velodyne scans + calibration) and a depth network on a data set.

The Eigen metrics and protocol live in `lsmdepth_ros.metrics` (numpy only, shared with the bag
tools and commands); they are re-exported here for code that imports them from this module.
Velodyne ground truth follows monodepth2's export_gt_depth.py / kitti_utils.py, including its
round()-1 pixel convention so numbers stay comparable.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.geometry import sparse_depth_image
from lsmdepth_ros.metrics import (  # noqa: F401  (re-exported: public names of this module)
    EIGEN_CROP,
    GARG_CROP,
    METRIC_NAMES,
    EvalOptions,
    EvalSummary,
    FrameResult,
    compute_depth_metrics,
    crop_mask,
    encode_depth_png,
    eval_mask,
    evaluate_depth_pair,
    evaluate_depth_pairs,
    median_scale,
    read_depth_png,
    resize_depth,
    summarize,
)

DEFAULT_EVAL_OPTIONS = EvalOptions()  # frozen: safe as a shared default

# ----------------------------------------------------------------------------------------------
# KITTI ground truth

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


def evaluate_model(model, dataset, options: EvalOptions = DEFAULT_EVAL_OPTIONS, *, min_depth: float,
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
