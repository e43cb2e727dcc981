"""Camera geometry shared by the node, the trainer and the evaluators.

One source of truth for: intrinsics scaling, sigmoid disparity -> depth, back-projection,
projection and the cached ray grid used for point clouds. Functions that the training loss
needs work on torch tensors and import torch themselves; the ones the node needs work on numpy
arrays, so the node with an ONNX model never loads torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the node must not load torch
    import torch


# monodepth2's (and Lite-Mono's, LSMDepth's) metric range of the sigmoid disparity: the one
# default every trainer, loss, checkpoint and the node start from.
MIN_DEPTH, MAX_DEPTH = 0.1, 100.0


@dataclass(frozen=True)
class DepthRange:
    """Metric range the sigmoid disparity is mapped to (monodepth2's 0.1 .. 100 m by default)."""

    min_depth: float = MIN_DEPTH
    max_depth: float = MAX_DEPTH

    def __post_init__(self) -> None:
        if not (0.0 < self.min_depth < self.max_depth) or not np.isfinite(self.max_depth):
            raise ValueError(
                f"depth range must satisfy 0 < min_depth < max_depth < inf, got "
                f"min_depth={self.min_depth}, max_depth={self.max_depth}"
            )


def disp_to_depth(disp, min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH):
    """Map a sigmoid output in [0, 1] to (scaled disparity, depth), monodepth2's convention.

    Works for numpy arrays and torch tensors alike.
    """
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    scaled_disp = min_disp + (max_disp - min_disp) * disp
    return scaled_disp, 1.0 / scaled_disp


def scale_intrinsics(K, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Rescale a 3x3 (or 3x4 projection) matrix from image size (w, h) to (w', h').

    Pixel-centre convention of ROS/OpenCV: a pixel's centre is at integer coordinates, so a
    resize by s maps u to (u + 0.5) * s - 0.5. This is what image_proc's resize does.
    """
    M = np.array(K, dtype=np.float64, copy=True)
    sx = to_size[0] / float(from_size[0])
    sy = to_size[1] / float(from_size[1])
    M[0, 0] *= sx
    M[0, 1] *= sx
    M[0, 2] = (M[0, 2] + 0.5) * sx - 0.5
    M[1, 1] *= sy
    M[1, 2] = (M[1, 2] + 0.5) * sy - 0.5
    if M.shape[1] == 4:  # projection matrix: Tx, Ty scale with fx, fy
        M[0, 3] *= sx
        M[1, 3] *= sy
    return M


#: KITTI's normalised intrinsics as monodepth2 uses them (row 0 times width, row 1 times height):
#: the KITTI loader's default camera and the synthetic drive's.
KITTI_K_NORMALIZED = np.array([[0.58, 0.0, 0.5],
                               [0.0, 1.92, 0.5],
                               [0.0, 0.0, 1.0]])


def normalized_to_pixel_intrinsics(K_norm, width: int, height: int) -> np.ndarray:
    """KITTI-style normalised intrinsics (fx/W, cx/W, ...) -> pixel 4x4 intrinsics (monodepth2)."""
    K = np.array(K_norm, dtype=np.float64, copy=True)
    K[0, :] *= width
    K[1, :] *= height
    return K


# ----------------------------------------------------------------------------------------------
# numpy: rays and point clouds for the node (allocated once per camera model)

@lru_cache(maxsize=8)
def _ray_grid(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
              stride: int) -> np.ndarray:
    us = np.arange(0, width, stride, dtype=np.float32)
    vs = np.arange(0, height, stride, dtype=np.float32)
    rays = np.empty((vs.size, us.size, 2), dtype=np.float32)
    rays[..., 0] = ((us - cx) / fx)[None, :]
    rays[..., 1] = ((vs - cy) / fy)[:, None]
    rays.setflags(write=False)
    return rays


def pixel_rays(K, width: int, height: int, stride: int = 1) -> np.ndarray:
    """Per-pixel (x/z, y/z) of the optical rays, shape [H/stride, W/stride, 2], cached.

    A pixel (u, v) with depth z back-projects to ((u-cx)/fx * z, (v-cy)/fy * z, z)
    in the optical frame (REP 103: x right, y down, z forward).
    """
    K = np.asarray(K, dtype=np.float64)
    return _ray_grid(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
                     int(width), int(height), int(stride))


def depth_to_points(depth: np.ndarray, K, stride: int = 1, max_range: float | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Organised point cloud [H/stride, W/stride, 3] float32 from a depth image in metres.

    Invalid depth (NaN, <= 0, or beyond max_range) gives NaN points, as depth_image_proc does.
    """
    h, w = depth.shape
    rays = pixel_rays(K, w, h, stride)
    z = depth[::stride, ::stride]
    if out is None:
        out = np.empty(z.shape + (3,), dtype=np.float32)
    bad = ~(z > 0)  # also catches NaN
    if max_range is not None:
        bad |= z > max_range
    np.multiply(rays[..., 0], z, out=out[..., 0])
    np.multiply(rays[..., 1], z, out=out[..., 1])
    out[..., 2] = z
    if bad.any():
        out[bad] = np.nan
    return out


def project_points(points: np.ndarray, K) -> np.ndarray:
    """Project [..., 3] optical-frame points to pixel coordinates [..., 2] through K."""
    K = np.asarray(K, dtype=np.float64)
    z = points[..., 2]
    u = K[0, 0] * points[..., 0] / z + K[0, 2]
    v = K[1, 1] * points[..., 1] / z + K[1, 2]
    return np.stack([u, v], axis=-1)


def sparse_depth_image(u: np.ndarray, v: np.ndarray, z: np.ndarray, height: int, width: int,
                       empty: float = np.nan) -> np.ndarray:
    """Depth image [height, width] float32 from integer pixels (u, v) and depths z (LiDAR).

    Pixels outside the image are ignored; where several points land on one pixel the nearest
    (smallest z) wins; pixels without a point get `empty` (NaN; KITTI's files use 0).
    """
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    ok = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    depth = np.full(height * width, np.inf)
    np.minimum.at(depth, v[ok] * width + u[ok], np.asarray(z, dtype=np.float64)[ok])
    depth[np.isinf(depth)] = empty
    return depth.reshape(height, width).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# torch: view synthesis for the self-supervised loss (monodepth2 conventions)

def pixel_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Homogeneous pixel coordinates [3, H*W] (u, v, 1), u along width (float32 by default)."""
    import torch

    dtype = dtype or torch.float32
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing="ij")
    ones = torch.ones_like(u)
    return torch.stack([u, v, ones], 0).reshape(3, -1)


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Depth [B,1,H,W] and inverse intrinsics [B,4,4] (or 3x3) -> homogeneous points [B,4,H*W]."""
    import torch

    b, _, h, w = depth.shape
    pix = pixel_grid(h, w, depth.device, depth.dtype).unsqueeze(0).expand(b, -1, -1)
    cam = inv_K[:, :3, :3] @ pix
    cam = cam * depth.reshape(b, 1, -1)
    ones = torch.ones(b, 1, h * w, device=depth.device, dtype=depth.dtype)
    return torch.cat([cam, ones], 1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
            eps: float = 1e-7) -> torch.Tensor:
    """Homogeneous points [B,4,N] moved by T [B,4,4] and projected by K [B,4,4].

    Returns sampling coordinates [B,H,W,2] normalised to [-1, 1] for grid_sample
    (align_corners=False is NOT used: monodepth2 normalises with (W-1), i.e. align_corners=True).
    """
    import torch

    b = points.shape[0]
    P = (K @ T)[:, :3, :]
    cam = P @ points
    pix = cam[:, :2, :] / (cam[:, 2:3, :] + eps)
    pix = pix.reshape(b, 2, height, width).permute(0, 2, 3, 1)
    scale = torch.tensor([width - 1, height - 1], device=pix.device, dtype=pix.dtype)
    return (pix / scale - 0.5) * 2


def rotation_from_axisangle(axisangle: torch.Tensor) -> torch.Tensor:
    """Axis-angle [B,1,3] -> 4x4 rotation matrices [B,4,4] (Rodrigues)."""
    import torch

    angle = torch.norm(axisangle, 2, dim=2, keepdim=True)
    axis = axisangle / (angle + 1e-7)
    ca, sa = torch.cos(angle), torch.sin(angle)
    C = 1 - ca
    x, y, z = axis[..., 0:1], axis[..., 1:2], axis[..., 2:3]
    xs, ys, zs = x * sa, y * sa, z * sa
    xC, yC, zC = x * C, y * C, z * C
    xyC, yzC, zxC = x * yC, y * zC, z * xC
    rot = torch.zeros(axisangle.shape[0], 4, 4, device=axisangle.device, dtype=axisangle.dtype)
    rot[:, 0, 0] = (x * xC + ca).squeeze()
    rot[:, 0, 1] = (xyC - zs).squeeze()
    rot[:, 0, 2] = (zxC + ys).squeeze()
    rot[:, 1, 0] = (xyC + zs).squeeze()
    rot[:, 1, 1] = (y * yC + ca).squeeze()
    rot[:, 1, 2] = (yzC - xs).squeeze()
    rot[:, 2, 0] = (zxC - ys).squeeze()
    rot[:, 2, 1] = (yzC + xs).squeeze()
    rot[:, 2, 2] = (z * zC + ca).squeeze()
    rot[:, 3, 3] = 1
    return rot


def transformation_from_parameters(axisangle: torch.Tensor, translation: torch.Tensor,
                                   invert: bool = False) -> torch.Tensor:
    """PoseNet output (axis-angle [B,1,3], translation [B,1,3]) -> 4x4 transform [B,4,4].

    monodepth2 convention: T = [R | t] (translate after rotate); invert gives R^T, -R^T t.
    """
    import torch

    R = rotation_from_axisangle(axisangle)
    t = translation.clone()
    if invert:
        R = R.transpose(1, 2)
        t = t * -1
    T = torch.eye(4, device=axisangle.device, dtype=axisangle.dtype).repeat(t.shape[0], 1, 1)
    T[:, :3, 3] = t.reshape(-1, 3)
    return R @ T if invert else T @ R
