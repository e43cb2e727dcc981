"""Distillation from a teacher depth model, and semantic guidance (SGDEM-style).

Teachers: anything the project can run gives depth for a batch of training images.

    teacher = load_teacher("depth_anything.onnx", onnx_output="disparity",
                           onnx_mean="0.485,0.456,0.406", onnx_std="0.229,0.224,0.225")
    teacher = load_teacher("runs/big/model.pt")            # a checkpoint of any registered model
    depth = teacher(images)                                 # [B,1,H,W], 0 = invalid, no grad

Losses:

* `scale_shift_invariant_loss`: MiDaS's alignment (Ranftl et al.): per image, the least-squares
  scale s and shift t that best map the student's disparity onto the teacher's
  (min sum_valid (s * pred + t - target)^2, closed form), then the mean L1 (or squared)
  residual over valid pixels. Disparity space, because relative-depth teachers (MiDaS, Depth
  Anything) predict affine-invariant inverse depth. Gradients flow through s and t, as MiDaS.
* patch-wise (SGDEM's patch knowledge distillation, Liu et al.): the image is cut into a grid
  of patches and each patch gets its own scale and shift, so a teacher that is only locally
  consistent (e.g. one run on patches) still teaches local structure; several grids (e.g.
  1x1, 2x2, 4x4) are averaged, a multi-scale patch loss.
* `semantic_consistency_loss`: SGDEM asks that "pixels with the same semantic label possess
  consistent relative depth". Its code is not public; this is our documented variant: inside
  one segment, the disparity should be piecewise planar (the inverse depth of a plane is affine
  in the pixel coordinates, so its second differences vanish): the mean |second difference| of
  the mean-normalised disparity over pixel triples that share one label. Optionally, across
  semantic boundaries, a hinge max(0, margin - |log d_a - log d_b|) asks for a depth step
  (off by default: road and pavement meet without one).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lsmdepth_ros import geometry

IGNORE_LABEL = -1


# ----------------------------------------------------------------------------------------------
# scale-and-shift-invariant alignment


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image least-squares (scale, shift) with scale * pred + shift ~= target on `mask`.

    pred, target, mask: [N, ...] (flattened per image). Returns scale, shift of shape [N].
    Images with fewer than two distinct valid predictions get scale 0 and shift = mean target.
    """
    m = mask.flatten(1).to(pred.dtype)
    p, t = pred.flatten(1), target.flatten(1)
    t = torch.where(m > 0, t, torch.zeros_like(t))   # NaN targets outside the mask
    a00 = (m * p * p).sum(1)
    a01 = (m * p).sum(1)
    a11 = m.sum(1)
    b0 = (m * p * t).sum(1)
    b1 = (m * t).sum(1)
    det = a00 * a11 - a01 * a01
    ok = det > eps * torch.clamp(a00 * a11, min=1.0)
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (a00 * b1 - a01 * b0) / safe, b1 / a11.clamp(min=1.0))
    return scale, shift


def _residual_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                   kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of per-pixel residual losses after alignment, valid count) per image [N]."""
    scale, shift = align_scale_shift(pred, target, mask)
    shape = (-1,) + (1,) * (pred.ndim - 1)
    res = scale.view(shape) * pred + shift.view(shape) - torch.where(mask, target,
                                                                     torch.zeros_like(target))
    per_pixel = res.abs() if kind == "l1" else res * res
    m = mask.to(pred.dtype)
    return (per_pixel * m).flatten(1).sum(1), m.flatten(1).sum(1)


def _to_patches(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """[B,C,H,W] -> [B*rows*cols, C, H/rows, W/cols] (row-major patches per image)."""
    b, c, h, w = x.shape
    if h % rows or w % cols:
        raise ValueError(f"a {rows}x{cols} patch grid needs the image size ({h}x{w}) to be "
                         f"divisible by it; pick a grid that divides {h}x{w}")
    x = x.reshape(b, c, rows, h // rows, cols, w // cols).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * rows * cols, c, h // rows, w // cols)


def scale_shift_invariant_loss(pred: torch.Tensor, target: torch.Tensor,
                               mask: torch.Tensor | None = None, *, kind: str = "l1",
                               grid: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Mean aligned residual of `pred` vs `target` disparities [B,1,H,W] over valid pixels.

    ``grid=(rows, cols)`` aligns every patch of that grid separately (patch distillation).
    Valid: `mask` (default: finite target > 0). 0 when nothing is valid.
    """
    if kind not in ("l1", "mse"):
        raise ValueError(f"scale-and-shift-invariant loss kind must be 'l1' or 'mse', got {kind!r}")
    if pred.shape != target.shape:
        raise ValueError(f"student {tuple(pred.shape)} and teacher {tuple(target.shape)} "
                         "disparities must have the same shape")
    if mask is None:
        mask = torch.isfinite(target) & (target > 0)
    rows, cols = grid
    if (rows, cols) != (1, 1):
        pred, target, mask = (_to_patches(v, rows, cols) for v in (pred, target, mask))
    total, count = _residual_loss(pred, target, mask, kind)
    n = count.sum()
    return total.sum() / n if bool(n > 0) else pred.sum() * 0.0


def depth_to_disparity(depth: torch.Tensor) -> torch.Tensor:
    """1 / depth where depth is finite and > 0, else 0 (invalid)."""
    ok = torch.isfinite(depth) & (depth > 0)
    return torch.where(ok, 1.0 / torch.where(ok, depth, torch.ones_like(depth)),
                       torch.zeros_like(depth))


@dataclass
class DistillOptions:
    kind: str = "l1"                                   # residual: "l1" | "mse"
    grids: list = field(default_factory=lambda: [[1, 1]])  # e.g. [[1,1],[2,2],[4,4]]: patches

    def __post_init__(self) -> None:
        if self.kind not in ("l1", "mse"):
            raise ValueError(f"distillation loss kind must be 'l1' or 'mse', got {self.kind!r}")
        grids = [tuple(int(v) for v in g) for g in self.grids]
        if not grids or any(len(g) != 2 or min(g) < 1 for g in grids):
            raise ValueError(f"distillation grids must be [rows, cols] pairs >= 1, e.g. "
                             f"[[1, 1], [2, 4]], got {self.grids}")
        self.grids = [list(g) for g in grids]


class DistillationLoss:
    """Mean over scales and grids of the SSI loss between the student's disparity (each scale
    upsampled bilinearly to the teacher's size) and the teacher's disparity (1 / depth)."""

    def __init__(self, options: DistillOptions | None = None):
        self.options = options or DistillOptions()

    def __call__(self, disps, teacher_depth: torch.Tensor) -> torch.Tensor:
        items = list(disps.values()) if isinstance(disps, Mapping) else list(disps)
        target = depth_to_disparity(teacher_depth.detach())
        mask = target > 0
        size = tuple(target.shape[-2:])
        total = target.new_zeros(())
        for d in items:
            if tuple(d.shape[-2:]) != size:
                d = F.interpolate(d, size=size, mode="bilinear", align_corners=False)
            for rows, cols in self.options.grids:
                total = total + scale_shift_invariant_loss(d, target, mask, kind=self.options.kind,
                                                           grid=(rows, cols))
        return total / (len(items) * len(self.options.grids))


# ----------------------------------------------------------------------------------------------
# semantic guidance


def semantic_consistency_loss(disp: torch.Tensor, labels: torch.Tensor, *,
                              boundary_margin: float = 0.0, boundary_weight: float = 1.0,
                              ignore_label: int = IGNORE_LABEL, eps: float = 1e-7
                              ) -> torch.Tensor:
    """Piecewise-planar disparity inside semantic segments (+ optional step at their edges).

    disp [B,1,H,W] > 0; labels [B,H,W] or [B,1,H,W] integers (ignore_label = unlabelled),
    resized (nearest) to the disparity's size. See the module docstring for the formula.
    """
    if labels.ndim == 3:
        labels = labels[:, None]
    if tuple(labels.shape[-2:]) != tuple(disp.shape[-2:]):
        labels = F.interpolate(labels.float(), size=disp.shape[-2:], mode="nearest")
    labels = labels.long()
    n = disp / (disp.mean(dim=(2, 3), keepdim=True) + eps)
    terms, weights = [], []
    for dim in (2, 3):
        length = n.shape[dim]
        if length < 3:
            continue
        a, b, c = (n.narrow(dim, k, length - 2) for k in range(3))
        la, lb, lc = (labels.narrow(dim, k, length - 2) for k in range(3))
        same = (la == lb) & (lb == lc) & (lb != ignore_label)
        second = (a - 2 * b + c).abs()
        terms.append((second * same).sum())
        weights.append(same.sum())
    count = torch.stack(weights).sum() if weights else None
    if count is not None and bool(count > 0):
        loss = torch.stack(terms).sum() / count
    else:
        loss = disp.sum() * 0.0
    if boundary_margin > 0:
        log_d = torch.log(disp.clamp_min(eps))
        hinge_sum, edges = disp.new_zeros(()), 0
        for dim in (2, 3):
            length = log_d.shape[dim]
            la, lb = labels.narrow(dim, 0, length - 1), labels.narrow(dim, 1, length - 1)
            edge = (la != lb) & (la != ignore_label) & (lb != ignore_label)
            step = (log_d.narrow(dim, 0, length - 1) - log_d.narrow(dim, 1, length - 1)).abs()
            hinge_sum = hinge_sum + (F.relu(boundary_margin - step) * edge).sum()
            edges = edges + edge.sum()
        if bool(edges > 0):
            loss = loss + boundary_weight * hinge_sum / edges
    return loss


class SegmentationModel:
    """Labels [B,H,W] (int64) for images [B,3,H,W] RGB in [0,1], from a torch module giving
    logits [B,C,h,w] or an ONNX file with one such output (input normalised by mean/std)."""

    def __init__(self, model: nn.Module | str | Path, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0), device: str | torch.device = "cpu"):
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
        self.device = torch.device(device)
        self._session = None
        if isinstance(model, nn.Module):
            self.module: nn.Module | None = model.to(self.device).eval()
        else:
            import onnxruntime as ort

            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"segmentation model {path} does not exist; pass a "
                                        "torch module or an .onnx file giving [B,C,H,W] logits")
            self.module = None
            self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().cpu() - self.mean) / self.std
        if self.module is not None:
            logits = self.module(x.to(self.device)).float().cpu()
        else:
            name = self._session.get_inputs()[0].name
            logits = torch.from_numpy(np.asarray(self._session.run(None, {name: x.numpy()})[0]))
        if logits.ndim != 4:
            raise ValueError(f"segmentation model must give logits [B,C,H,W], got "
                             f"{tuple(logits.shape)}")
        labels = logits.argmax(1, keepdim=True).float()
        if tuple(labels.shape[-2:]) != tuple(images.shape[-2:]):
            labels = F.interpolate(labels, size=images.shape[-2:], mode="nearest")
        return labels[:, 0].long().to(images.device)


# ----------------------------------------------------------------------------------------------
# teachers


class ModelTeacher:
    """A project depth network (any registered model) as a teacher; depth [B,1,H,W] metres-ish."""

    def __init__(self, model: nn.Module, min_depth: float, max_depth: float,
                 device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        disp = self.model(images.to(self.device).float())[("disp", 0)]
        _, depth = geometry.disp_to_depth(disp, self.min_depth, self.max_depth)
        return depth.to(images.device)


class EstimatorTeacher:
    """Any model `inference.DepthEstimator` runs (checkpoint, Lite-Mono folder, any ONNX depth
    model with its declared input/output convention); per image, at the image's size."""

    def __init__(self, estimator):
        self.estimator = estimator

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        rgb = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        rgb = rgb.permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for img in rgb:
            depth = self.estimator.estimate(np.ascontiguousarray(img), "rgb8")
            out.append(np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0))
        return torch.from_numpy(np.stack(out)[:, None].astype(np.float32)).to(images.device)


Teacher = Callable[[torch.Tensor], torch.Tensor]


def load_teacher(path: str | Path, device: str | torch.device = "cpu",
                 **estimator_options) -> Teacher:
    """A teacher from a file: an .onnx (through DepthEstimator; `estimator_options` are
    `EstimatorOptions` fields such as onnx_output, onnx_mean) or a checkpoint / Lite-Mono folder
    (run directly in torch on `device`)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"teacher model {path} does not exist; pass a checkpoint (.pt), "
                                "a Lite-Mono folder or an .onnx depth model")
    if path.suffix.lower() == ".onnx" or estimator_options:
        from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions

        options = EstimatorOptions(model_path=str(path), device="cpu", num_threads=0,
                                   output_resolution="input", **estimator_options)
        return EstimatorTeacher(DepthEstimator(options))
    from lsmdepth_ros.checkpoints import load_checkpoint

    model, info = load_checkpoint(path, map_location="cpu")
    return ModelTeacher(model, info.min_depth, info.max_depth, device)
