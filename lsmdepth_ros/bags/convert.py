"""Decoded bag messages -> what the evaluator and the demo need (on top of `lsmdepth_ros.bagio`).

Everything raises ValueError (BagError) with a clear message for unusable input.
"""
from __future__ import annotations

import numpy as np

from lsmdepth_ros import bagio


def image_to_numpy(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (array [H, W] or [H, W, C], encoding)."""
    return bagio.image_to_numpy(msg), msg.encoding


def depth_to_metres(array: np.ndarray, encoding: str) -> np.ndarray:
    """REP 118 depth image -> float32 metres, NaN invalid (32FC1 metres or 16UC1 millimetres)."""
    if encoding == "32FC1":
        depth = array.astype(np.float32, copy=True)
        depth[~(depth > 0)] = np.nan
        return depth
    if encoding in ("16UC1", "mono16"):
        depth = array.astype(np.float32) / 1000.0
        depth[array == 0] = np.nan
        return depth
    raise ValueError(f"depth encoding '{encoding}' is not a depth image; expected 32FC1 (metres) "
                     "or 16UC1 (millimetres), REP 118")


def camera_info_to_numpy(msg) -> tuple[np.ndarray, int, int]:
    """sensor_msgs/CameraInfo -> (K 3x3 float64, width, height), checking K is usable."""
    camera = bagio.camera_model(msg)
    if not np.isfinite(camera.K).all() or camera.width <= 0 or camera.height <= 0:
        raise ValueError(f"camera_info is unusable (K={camera.K.ravel().tolist()}, size "
                         f"{camera.width}x{camera.height}); calibrate the camera and record again")
    return camera.K, camera.width, camera.height


def cloud_to_xyz(msg) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> [N, 3] float64 of the finite x, y, z points."""
    xyz = bagio.pointcloud2_to_numpy(msg).astype(np.float64)
    return xyz[np.isfinite(xyz).all(axis=1)]


def cloud_to_points_and_colors(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """PointCloud2 -> (xyz [N, 3] float32, rgb [N, 3] uint8 or None), invalid points kept (NaN)."""
    if "rgb" not in {f.name for f in msg.fields}:
        return bagio.pointcloud2_to_numpy(msg), None
    data = bagio.pointcloud2_to_numpy(msg, ("x", "y", "z", "rgb"))
    packed = np.ascontiguousarray(data[:, 3]).view(np.uint32)  # PCL packs 0x00RRGGBB in a float
    rgb = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=1)
    return data[:, :3], rgb.astype(np.uint8)
