"""Self-supervised monocular depth losses, with monodepth2's exact conventions.

The target frame's predicted depth and the predicted camera motion warp each source frame into
the target view; the photometric error between the warped and the real target image is the
training signal. Conventions (Godard et al. 2019, reused by Lite-Mono and LSMDepth):

* photometric error = 0.85 * SSIM + 0.15 * L1, each averaged over colour channels;
  SSIM on 3x3 windows (average pooling, reflection padding 1), C1 = 0.01^2, C2 = 0.03^2;
* every scale's disparity is upsampled to full resolution before warping (monodepth2 v2);
* warping: back-project with the target depth, move by T, project, `grid_sample` with border
  padding and align_corners=True (the geometry module normalises by (W-1), (H-1));
* per-pixel minimum over source frames;
* auto-masking: the un-warped sources compete in the same minimum (plus 1e-5 noise to break
  ties), so pixels that do not change between frames (static camera, objects moving with it)
  are ignored;
* edge-aware smoothness of the mean-normalised disparity at each scale, weight 1e-3 / 2^scale;
* the total is the mean over scales.

Pure functions first, then `SelfSupervisedLoss` that combines them. Geometry is the shared
`lsmdepth_ros.geometry`, the same code the node uses.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lsmdepth_ros import geometry

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def box_filter3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pooling, stride 1, no padding: F.avg_pool2d(x, 3, 1) as a depthwise conv.

    Same numbers (up to float rounding order) and ~4x faster on CPU than avg_pool2d, which
    matters because SSIM dominates the loss's cost.
    """
    c = x.shape[1]
    kernel = torch.full((c, 1, 3, 3), 1.0 / 9.0, dtype=x.dtype, device=x.device)
    return F.conv2d(x, kernel, groups=c)


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel (1 - SSIM) / 2 clamped to [0, 1], shape of the inputs [B,C,H,W]."""
    c = x.shape[1]
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    # one pooling pass over the five local statistics
    mu_x, mu_y, xx, yy, xy = box_filter3x3(torch.cat([x, y, x * x, y * y, x * y], 1)).split(c, 1)
    sigma_x = xx - mu_x * mu_x
    sigma_y = yy - mu_y * mu_y
    sigma_xy = xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor,
                      ssim_weight: float = 0.85) -> torch.Tensor:
    """monodepth2's reprojection error [B,1,H,W]: 0.85 SSIM + 0.15 L1, channel means."""
    l1 = (target - pred).abs().mean(1, keepdim=True)
    ssim = ssim_dissimilarity(pred, target).mean(1, keepdim=True)
    return ssim_weight * ssim + (1 - ssim_weight) * l1


def as_homogeneous_4x4(K: torch.Tensor) -> torch.Tensor:
    """Promote [B,3,3] intrinsics to [B,4,4] (geometry.project multiplies K @ T)."""
    if K.shape[-2:] == (4, 4):
        return K
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must be [B,3,3] or [B,4,4], got shape {tuple(K.shape)}")
    out = torch.eye(4, dtype=K.dtype, device=K.device).repeat(K.shape[0], 1, 1)
    out[:, :3, :3] = K
    return out


def warp_source(source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor,
                inv_K: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Synthesise the target view from `source` [B,3,H,W].

    depth [B,1,H,W] is the target's depth; T [B,4,4] maps target-camera points into the
    source camera; K / inv_K are the pixel intrinsics at this resolution.
    """
    _, _, h, w = depth.shape
    points = geometry.backproject(depth, inv_K)
    grid = geometry.project(points, K, T, h, w)
    # Non-finite coordinates (from a diverged network) would crash grid_sample's CPU backward
    # (a segfault in torch 2.x); send them outside the image, where border padding applies.
    grid = torch.nan_to_num(grid, nan=2.0, posinf=2.0, neginf=-2.0)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border",
                         align_corners=True)


def normalise_disparity(disp: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Divide each image's disparity by its mean (so smoothness cannot shrink the scale)."""
    return disp / (disp.mean(dim=(2, 3), keepdim=True) + eps)


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean |d disp| weighted by exp(-mean_c |d image|), x plus y (monodepth2)."""
    grad_disp_x = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    grad_disp_y = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    grad_img_x = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


def minimum_reprojection(reprojection: torch.Tensor,
                         identity: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over sources, with auto-masking when `identity` errors are given.

    reprojection, identity: [B,S,H,W] (one channel per source). Returns (min error [B,H,W],
    mask [B,H,W] that is True where a warped source won, i.e. the pixel is used).
    """
    if identity is None:
        error, _ = reprojection.min(dim=1)
        return error, torch.ones_like(error, dtype=torch.bool)
    combined = torch.cat([identity, reprojection], dim=1)
    error, index = combined.min(dim=1)
    return error, index >= identity.shape[1]


def resize_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Anti-aliased bilinear downsizing (what a PIL resize gives monodepth2's image pyramid)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


@dataclass
class LossOptions:
    """Options of the self-supervised loss; defaults are monodepth2's / Lite-Mono's."""

    min_depth: float = geometry.MIN_DEPTH
    max_depth: float = geometry.MAX_DEPTH
    ssim_weight: float = 0.85
    smoothness_weight: float = 1e-3
    automask: bool = True
    automask_noise: float = 1e-5  # std of the tie-breaking noise on identity errors


@dataclass
class LossResult:
    """Total loss plus what logging and tests look at."""

    total: torch.Tensor
    per_scale: dict[int, torch.Tensor] = field(default_factory=dict)
    smoothness: dict[int, torch.Tensor] = field(default_factory=dict)
    depth: torch.Tensor | None = None            # full-resolution depth from scale 0
    warped: dict[int, torch.Tensor] = field(default_factory=dict)  # per source, from scale 0
    automask: torch.Tensor | None = None         # [B,H,W] True where the pixel was used (scale 0)


class SelfSupervisedLoss:
    """Multi-scale monocular self-supervised loss (stateless; call it each step).

    Arguments of `__call__`:
      disps: sigmoid disparities, one per scale, scale s of size [B,1,H/2^s,W/2^s]
             (a network's `{("disp", s): ...}` dict is accepted too);
      target: the target image [B,3,H,W] in [0, 1] (un-augmented);
      sources: {frame_id: source image [B,3,H,W]} (un-augmented);
      poses: {frame_id: T [B,4,4] target camera -> source camera};
      K, inv_K: full-resolution pixel intrinsics [B,3,3] or [B,4,4];
      target_pyramid: optional {scale: target image at that scale} for the smoothness term
             (a data set's ("color", 0, s) images); missing scales are resized here.
    """

    def __init__(self, options: LossOptions | None = None):
        self.options = options or LossOptions()

    def __call__(self, disps, target: torch.Tensor, sources: Mapping[int, torch.Tensor],
                 poses: Mapping[int, torch.Tensor], K: torch.Tensor,
                 inv_K: torch.Tensor,
                 target_pyramid: Mapping[int, torch.Tensor] | None = None) -> LossResult:
        opt = self.options
        disps = _disparity_list(disps)
        if not sources:
            raise ValueError("the self-supervised loss needs at least one source frame")
        if set(sources) != set(poses):
            raise ValueError(f"sources {sorted(sources)} and poses {sorted(poses)} must name "
                             "the same frame ids")
        h, w = target.shape[-2:]
        K = as_homogeneous_4x4(K).to(target.dtype)
        inv_K = as_homogeneous_4x4(inv_K).to(target.dtype)
        frame_ids = sorted(sources)

        identity = None
        if opt.automask:
            identity = torch.cat([photometric_error(sources[f], target, opt.ssim_weight)
                                  for f in frame_ids], dim=1)
            if opt.automask_noise > 0:
                identity = identity + torch.randn_like(identity) * opt.automask_noise

        result = LossResult(total=target.new_zeros(()))
        for scale, disp in enumerate(disps):
            disp_full = disp
            if disp.shape[-2:] != (h, w):
                disp_full = F.interpolate(disp, size=(h, w), mode="bilinear", align_corners=False)
            _, depth = geometry.disp_to_depth(disp_full, opt.min_depth, opt.max_depth)
            warped = {f: warp_source(sources[f], depth, K, inv_K, poses[f]) for f in frame_ids}
            reprojection = torch.cat([photometric_error(warped[f], target, opt.ssim_weight)
                                      for f in frame_ids], dim=1)
            error, used = minimum_reprojection(reprojection, identity)
            photometric = error.mean()

            size = tuple(disp.shape[-2:])
            image = (target_pyramid or {}).get(scale)
            if image is None or tuple(image.shape[-2:]) != size:
                image = resize_to(target, size)
            smooth = edge_aware_smoothness(normalise_disparity(disp), image)
            scale_loss = photometric + opt.smoothness_weight * smooth / (2 ** scale)
            result.per_scale[scale] = scale_loss
            result.smoothness[scale] = smooth
            result.total = result.total + scale_loss
            if scale == 0:
                result.depth, result.warped, result.automask = depth, warped, used
        result.total = result.total / len(disps)
        return result


def _disparity_list(disps) -> list[torch.Tensor]:
    """Accept a list of per-scale disparities or a network's {("disp", s): tensor} dict."""
    if isinstance(disps, Mapping):
        scales = sorted(k[1] for k in disps if isinstance(k, tuple) and k[0] == "disp")
        if scales != list(range(len(scales))) or not scales:
            raise ValueError(f"expected disparities keyed ('disp', 0..n-1), got {list(disps)}")
        return [disps[("disp", s)] for s in scales]
    disps = list(disps) if isinstance(disps, Sequence) else [disps]
    if not disps:
        raise ValueError("no disparities given to the loss")
    return disps
