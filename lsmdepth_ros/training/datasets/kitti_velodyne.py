"""KITTI ground truth from velodyne scans + calibration files (numpy only).

Follows monodepth2's export_gt_depth.py / kitti_utils.py, including its round()-1 pixel
convention so numbers stay comparable with published results.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.geometry import sparse_depth_image


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
