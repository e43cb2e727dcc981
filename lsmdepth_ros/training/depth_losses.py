"""Losses against measured depth: dense ground truth (supervised) or sparse LiDAR points.

`SigLoss` is the scale-invariant log loss with the exact convention of the Monocular Depth
Estimation Toolbox (DepthFormer / BinsFormer; ``depth/models/losses/sigloss.py``):

* valid pixels: ``gt > 0`` (and ``gt <= max_depth`` when a max_depth is given); the valid
  pixels of the *whole batch* are pooled into one set;
* ``g = log(pred) - log(gt)`` over that set;
* ``loss = loss_weight * sqrt(var(g) + 0.15 * mean(g)^2)`` with torch's *unbiased* variance
  (Eigen et al.'s D(g) = mean(g^2) - lambda mean(g)^2 with lambda = 0.85, up to the
  n / (n - 1) of the unbiased variance);
* warm-up variant (``warm_up=True``): for the first ``warm_iter`` calls the loss is only the
  scale term, with eps = 0.1 inside the logs against exploding gradients:
  ``loss = loss_weight * sqrt(0.15 * mean(log(pred + 0.1) - log(gt + 0.1))^2)``.
  BinsFormer's configs use it with warm_iter 100; DepthFormer's use the plain loss.

The toolbox counts warm-up calls in the loss object; here the caller may pass the global
training ``step`` instead, so a resumed run knows whether it is still warming up.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIG_VARIANCE_FOCUS = 0.15   # the toolbox's weight of mean(g)^2
WARMUP_EPS = 0.1            # the toolbox's eps inside the warm-up logs


def valid_depth_mask(gt: torch.Tensor, max_depth: float | None = None) -> torch.Tensor:
    """The toolbox's validity: gt > 0, and gt <= max_depth when given (NaN is never valid)."""
    mask = gt > 0
    if max_depth is not None:
        mask &= gt <= max_depth
    return mask


def sig_loss(pred: torch.Tensor, gt: torch.Tensor, *, max_depth: float | None = None,
             warm_up: bool = False, valid_mask: bool = True) -> torch.Tensor:
    """Scale-invariant log loss of positive depths ``pred`` against ``gt`` (same shape).

    Without valid pixels the result is 0 (attached to ``pred`` so backward still works).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"SigLoss: prediction {tuple(pred.shape)} and ground truth "
                         f"{tuple(gt.shape)} must have the same shape (resize the prediction "
                         "to the ground truth first)")
    if valid_mask:
        mask = valid_depth_mask(gt, max_depth)
        pred, gt = pred[mask], gt[mask]
    if pred.numel() < 2:
        return pred.sum() * 0.0
    if warm_up:
        g = torch.log(pred + WARMUP_EPS) - torch.log(gt + WARMUP_EPS)
        return torch.sqrt(SIG_VARIANCE_FOCUS * g.mean() ** 2)
    g = torch.log(pred) - torch.log(gt)
    return torch.sqrt(torch.var(g) + SIG_VARIANCE_FOCUS * g.mean() ** 2)


class SigLoss:
    """The toolbox's ``SigLoss`` module: ``SigLoss(valid_mask, loss_weight, max_depth, warm_up,
    warm_iter)``; call ``loss(pred, gt)`` or ``loss(pred, gt, step=global_step)``."""

    def __init__(self, valid_mask: bool = True, loss_weight: float = 1.0,
                 max_depth: float | None = None, warm_up: bool = False, warm_iter: int = 100):
        self.valid_mask = valid_mask
        self.loss_weight = float(loss_weight)
        self.max_depth = max_depth
        self.warm_up = bool(warm_up)
        self.warm_iter = int(warm_iter)
        self.warm_up_counter = 0

    def in_warm_up(self, step: int | None = None) -> bool:
        count = self.warm_up_counter if step is None else int(step)
        return self.warm_up and count < self.warm_iter

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor, step: int | None = None
                 ) -> torch.Tensor:
        warm = self.in_warm_up(step)
        if warm and step is None:
            self.warm_up_counter += 1
        return self.loss_weight * sig_loss(pred, gt, max_depth=self.max_depth, warm_up=warm,
                                           valid_mask=self.valid_mask)


def masked_l1(pred: torch.Tensor, gt: torch.Tensor, max_depth: float | None = None
              ) -> torch.Tensor:
    """Mean |pred - gt| over valid ground-truth pixels (0 without any)."""
    mask = valid_depth_mask(gt, max_depth)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return (pred[mask] - gt[mask]).abs().mean()


def depth_to_size(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a [B,1,h,w] prediction to the ground truth's size."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth, size=size, mode="bilinear", align_corners=False)


def simulate_lidar(depth: torch.Tensor, rows: int = 32, keep: float = 0.3,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Sparse LiDAR-like depth from dense ground truth: ``rows`` evenly spaced scan lines over
    the lower 2/3 of the image (where a forward LiDAR's beams land), ``keep`` of their pixels;
    everything else is 0 (invalid). [B,1,H,W] -> same shape."""
    if not 0 < keep <= 1 or rows < 1:
        raise ValueError(f"simulate_lidar needs rows >= 1 and 0 < keep <= 1, got {rows}, {keep}")
    h = depth.shape[-2]
    lines = torch.linspace(h // 3, h - 1, min(rows, h - h // 3)).round().long().to(depth.device)
    mask = torch.zeros_like(depth, dtype=torch.bool)
    mask[..., lines, :] = True
    draw = torch.rand(depth.shape, generator=generator, device="cpu").to(depth.device)
    mask &= draw < keep
    return torch.where(mask & (depth > 0), depth, torch.zeros_like(depth))


@dataclass
class DepthSupervisionOptions:
    """Supervision by measured depth, dense or sparse."""

    loss: str = "sig"               # "sig" (SigLoss) | "l1"
    loss_weight: float = 1.0        # the toolbox's SigLoss loss_weight
    warm_up: bool = False           # the toolbox's warm-up variant (scale term only)
    warm_iter: int = 100
    max_depth: float | None = None  # ground truth beyond this is ignored

    def __post_init__(self) -> None:
        if self.loss not in ("sig", "l1"):
            raise ValueError(f"depth supervision loss must be 'sig' or 'l1', got {self.loss!r}")


class DepthSupervisionLoss:
    """Mean over the network's scales of SigLoss (or L1) between each scale's depth (bilinearly
    resized to the ground truth) and the ground truth; 0 = invalid in the ground truth.

    ``depths``: {scale: depth [B,1,h_s,w_s]} or a list; ``gt``: [B,1,H,W] metres.
    """

    def __init__(self, options: DepthSupervisionOptions | None = None):
        self.options = o = options or DepthSupervisionOptions()
        self.sig = SigLoss(loss_weight=1.0, max_depth=o.max_depth, warm_up=o.warm_up,
                           warm_iter=o.warm_iter)

    def __call__(self, depths, gt: torch.Tensor, step: int | None = None) -> torch.Tensor:
        items = list(depths.values()) if isinstance(depths, Mapping) else list(depths)
        if not items:
            raise ValueError("no predicted depths given to the depth supervision loss")
        size = tuple(gt.shape[-2:])
        warm = self.sig.in_warm_up(step)
        if warm and step is None:
            self.sig.warm_up_counter += 1   # one call, however many scales
        total = gt.new_zeros(())
        for d in items:
            d = depth_to_size(d, size)
            if self.options.loss == "sig":
                total = total + sig_loss(d, gt, max_depth=self.options.max_depth, warm_up=warm)
            else:
                total = total + masked_l1(d, gt, self.options.max_depth)
        return self.options.loss_weight * total / len(items)
