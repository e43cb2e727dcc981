"""The `--compat` ONNX export: models without DeformConv, in opset 16, for older runtimes.

ONNX ``DeformConv`` (opset 19) runs in onnxruntime only from 1.25 and is parsed natively by
TensorRT only from 10.1 (JetPack 5 ships 8.5). Here every torchvision ``DeformConv2d`` of a model
is replaced by the same maths in standard operators:

* bilinear sampling at the offset positions: one ``GridSample`` (opset 16 form: mode
  ``bilinear``, padding ``zeros``, ``align_corners=0``) over all kernel taps at once;
* the convolution itself: a (grouped) 1x1 ``Conv`` over the sampled taps, whose weight is the
  deformable kernel reshaped to [C_out, C_in/groups * kh * kw, 1, 1].

Opset 16 because TensorRT 8.5/8.6 parse opsets up to 17 and 8.5 has no LayerNormalization
(opset 17), and because TensorRT 8.5 reads GridSample's ``mode`` by its opset-16 name
(``bilinear``; opset 20 renamed it ``linear``). The torch.export-based exporter cannot lower to
opset 16, so this export uses the TorchScript exporter, which decomposes LayerNorm and GELU into
opset-16 operators.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

COMPAT_OPSET = 16


def deform_conv2d_standard_ops(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                               bias: torch.Tensor | None = None, stride=(1, 1), padding=(0, 0),
                               dilation=(1, 1), mask: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision.ops.deform_conv2d with grid_sample + conv2d (same arguments and layout:
    offset [N, 2*G*kh*kw, Ho, Wo] as (dy, dx) per tap, taps row-major; mask [N, G*kh*kw, Ho, Wo];
    G offset groups). Samples outside the image read zero, as torchvision's kernel does.
    Half-precision inputs are sampled in float32 (float16 has too few digits for pixel
    coordinates); the result has the input's dtype."""
    dtype = x.dtype
    dt = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    x, offset, weight = x.to(dt), offset.to(dt), weight.to(dt)
    bias = bias.to(dt) if bias is not None else None
    mask = mask.to(dt) if mask is not None else None
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    taps = kh * kw
    groups_off = offset.shape[1] // (2 * taps)
    ho, wo = offset.shape[-2:]
    dev = x.device
    # Undeformed sampling position of tap (i, j) for output pixel (y, x), in input pixels.
    tap_y = (torch.arange(kh, dtype=dt, device=dev) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, dtype=dt, device=dev) * dilation[1]).repeat(kh)
    out_y = torch.arange(ho, dtype=dt, device=dev) * stride[0] - padding[0]
    out_x = torch.arange(wo, dtype=dt, device=dev) * stride[1] - padding[1]
    off = offset.reshape(n, groups_off, taps, 2, ho, wo)
    py = off[:, :, :, 0] + (tap_y[:, None, None] + out_y[None, :, None])
    px = off[:, :, :, 1] + (tap_x[:, None, None] + out_x[None, None, :])
    # Pixel p -> grid coordinate for align_corners=False: valid for every size, 1 included.
    grid = torch.stack([(2.0 * px + 1.0) / w - 1.0, (2.0 * py + 1.0) / h - 1.0], dim=-1)
    grid = grid.reshape(n * groups_off, taps * ho, wo, 2)
    sampled = F.grid_sample(x.reshape(n * groups_off, c_in // groups_off, h, w), grid,
                            mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(n, groups_off, c_in // groups_off, taps, ho, wo)
    if mask is not None:
        sampled = sampled * mask.reshape(n, groups_off, 1, taps, ho, wo)
    # Channel c * taps + tap (c an input channel): the layout a grouped 1x1 conv with weight
    # [C_out, C_in/groups * taps, 1, 1] reads.
    sampled = sampled.reshape(n, c_in * taps, ho, wo)
    out = F.conv2d(sampled, weight.reshape(c_out, c_per_group * taps, 1, 1), bias,
                   groups=c_in // c_per_group)
    return out.to(dtype)


class StandardOpsDeformConv2d(nn.Module):
    """Drop-in for a torchvision DeformConv2d (shares its parameters), exportable without
    DeformConv."""

    def __init__(self, conv: DeformConv2d):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def forward(self, x: torch.Tensor, offset: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return deform_conv2d_standard_ops(x, offset, self.weight, self.bias, self.stride,
                                          self.padding, self.dilation, mask)


def with_standard_ops(model: nn.Module) -> nn.Module:
    """A copy of `model` whose DeformConv2d modules are StandardOpsDeformConv2d (the model
    itself is left untouched; its attributes such as .name and .options are kept)."""
    out = copy.deepcopy(model)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DeformConv2d):
                setattr(parent, name, StandardOpsDeformConv2d(child))
    return out
