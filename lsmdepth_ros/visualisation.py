"""The depth colour map, in one place: the node's `depth/colored`, demo PNGs, bag plots and
TensorBoard images all use it, so one depth has one colour everywhere.

Inverse depth (near = bright) through an OpenCV colour map, NaN / invalid black. numpy + cv2;
`colorize_tensor` imports torch only when called (the trainer's image grids).
"""
from __future__ import annotations

import cv2
import numpy as np

COLORMAPS = {"turbo": cv2.COLORMAP_TURBO, "magma": cv2.COLORMAP_MAGMA,
             "inferno": cv2.COLORMAP_INFERNO, "plasma": cv2.COLORMAP_PLASMA,
             "viridis": cv2.COLORMAP_VIRIDIS, "jet": cv2.COLORMAP_JET}


def colorize_depth(depth: np.ndarray, colormap: str = "magma", vmin: float | None = None,
                   vmax: float | None = None) -> np.ndarray:
    """bgr8 picture of a depth image: inverse depth (near = bright), NaN black.

    The colour range is the 2..98 % of the frame's inverse depth, or fixed by depth limits
    `vmin` / `vmax` in metres (one range shared by several images, so their colours compare).
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"colour map '{colormap}' is unknown; expected one of "
                         f"{', '.join(COLORMAPS)}")
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(1.0) / np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(inv) & (inv > 0)
    if vmin is not None and vmax is not None:
        lo, hi = 1.0 / max(float(vmax), 1e-3), 1.0 / max(float(vmin), 1e-3)
    else:
        sample = inv[::4, ::4][valid[::4, ::4]]
        if sample.size == 0:
            return np.zeros(inv.shape + (3,), np.uint8)
        lo, hi = np.percentile(sample, (2.0, 98.0))
    span = max(float(hi - lo), 1e-6)
    scaled = (inv - np.float32(lo)) * np.float32(255.0 / span)
    np.clip(scaled, 0, 255, out=scaled)
    scaled[~valid] = 0
    bgr = cv2.applyColorMap(scaled.astype(np.uint8), COLORMAPS[colormap])
    bgr[~valid] = 0
    return bgr


def colorize_depth_rgb(depth: np.ndarray, vmin: float | None = None,
                       vmax: float | None = None, colormap: str = "magma") -> np.ndarray:
    """RGB (for PNG files and matplotlib) of `colorize_depth`."""
    return colorize_depth(depth, colormap, vmin, vmax)[..., ::-1]


def colormap_table(colormap: str = "magma") -> np.ndarray:
    """uint8 [256, 3] RGB: the colour of each of the 256 levels of `colormap`."""
    if colormap not in COLORMAPS:
        raise ValueError(f"colour map '{colormap}' is unknown; expected one of "
                         f"{', '.join(COLORMAPS)}")
    levels = np.arange(256, dtype=np.uint8)[:, None]
    return cv2.applyColorMap(levels, COLORMAPS[colormap])[:, 0, ::-1].copy()


def colorize_tensor(values, colormap: str = "magma"):
    """torch [B, 1, H, W] in [0, 1] -> [B, 3, H, W] float RGB in [0, 1] (TensorBoard images)."""
    import torch

    lut = torch.from_numpy(colormap_table(colormap).astype(np.float32) / 255.0)
    idx = (values.clamp(0, 1) * 255).round().long()[:, 0]
    return lut.to(values.device)[idx].permute(0, 3, 1, 2)
