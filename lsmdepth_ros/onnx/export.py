"""ONNX export of a depth model, with a self-description the ONNX backend reads.

Graph: input ``image`` float32 [1,3,H,W] RGB in [0,1]; output ``disp`` float32 [1,1,H,W], the
sigmoid disparity at full resolution (``geometry.disp_to_depth(disp, min_depth, max_depth)``
turns it into depth). Exported with the dynamo exporter (``onnxscript``) at opset 19, so
torchvision's deformable convolution becomes the standard ONNX ``DeformConv`` op.

Metadata (``metadata_props``): ``lsmdepth.model``, ``lsmdepth.options`` (JSON),
``lsmdepth.input_height``, ``lsmdepth.input_width``, ``lsmdepth.input_format`` = ``rgb01``,
``lsmdepth.output`` = ``sigmoid_disparity``, ``lsmdepth.min_depth``, ``lsmdepth.max_depth``,
``lsmdepth.precision`` (``fp32`` | ``fp16``).

fp16: a float16 copy of the model is exported, with casts at the graph's edges, so weights and
maths are float16 (for GPU execution providers) while ``image`` and ``disp`` stay float32 and
callers never change. onnxruntime's CPU provider runs such a graph by casting the ops it has no
float16 kernel for, so the parity check also works on CPU (tolerance 1e-2: float16 has ~3
significant digits).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic_files import atomic_path
from ..networks.blocks import DilatedConvBlock
from .spec import META, read_onnx_metadata

OPSET = 20  # 19 brings DeformConv, 20 a fused Gelu op (faster in onnxruntime)
INPUT_NAME, OUTPUT_NAME = "image", "disp"
PARITY_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2  # float16 carries ~3 decimal digits; disparity is in (0, 1)
class OnnxExportError(RuntimeError):
    """Export failed or the exported graph does not reproduce the PyTorch model."""


class _DisparityOnly(nn.Module):
    """The deployed graph: full-resolution disparity only (no multi-scale training outputs),
    float32 in and out whatever the model's own precision."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image.to(self.dtype))[("disp", 0)].float()


class _ExpReluELU(nn.Module):
    """ELU (alpha 1) as exp(min(x, 0)) + relu(x) - 1: the same function, but onnxruntime's CPU
    Elu kernel is not vectorised and took 2.3x as long as these three ops (measured on 1.1 M
    values); the decoders run ELU at half resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.clamp(x, max=0.0)) + torch.relu(x) - 1.0


class _ChannelsFirstLocalBlock(nn.Module):
    """A local encoder block (`DilatedConvBlock`, in eval) with its MLP as two 1x1 convolutions
    in NCHW, layer scale folded into the second: the same function without the two transposes
    to channels-last and back, and each bias inside its convolution, so the INT8 graph has one
    QLinearConv per layer instead of QLinearMatMul + dequantise + Add. Measured at 640x192 on
    one thread: 0.92x the fp32 and the INT8 latency of the Linear form."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.ddwconv, self.bn1, self.act = block.ddwconv, block.bn1, block.act
        gamma = block.gamma.detach()
        self.pw1 = nn.Conv2d(block.pwconv1.in_features, block.pwconv1.out_features, 1)
        self.pw2 = nn.Conv2d(block.pwconv2.in_features, block.pwconv2.out_features, 1)
        with torch.no_grad():
            self.pw1.weight.copy_(block.pwconv1.weight[:, :, None, None])
            self.pw1.bias.copy_(block.pwconv1.bias)
            self.pw2.weight.copy_((block.pwconv2.weight * gamma[:, None])[:, :, None, None])
            self.pw2.bias.copy_(block.pwconv2.bias * gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(self.act(self.pw1(self.bn1(self.ddwconv(x)))))


def _for_export(model: nn.Module, fp16: bool) -> nn.Module:
    """A copy of `model` with export-only equivalent rewrites (same weights, same outputs)."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ELU) and child.alpha == 1.0:
                setattr(parent, name, _ExpReluELU())
            elif isinstance(child, DilatedConvBlock):
                setattr(parent, name, _ChannelsFirstLocalBlock(child))
    return model.half() if fp16 else model


def _fold_weight_slices(onnx_model):
    """Constant-fold ops on weights (the slices of `HybridEncoder(split_rgb=True)`'s split convs)
    so every conv has its weight as an initializer: the INT8 quantiser quantises only those per
    channel, and runtimes need not fold at start-up. The exporter's own pass skips tensors over
    8192 values."""
    from onnxscript import optimizer

    return optimizer.optimize(onnx_model, input_size_limit=1 << 24, output_size_limit=1 << 24)


def _verification_input(height: int, width: int) -> torch.Tensor:
    """A deterministic, image-like input: smooth gradients plus seeded noise."""
    g = torch.Generator().manual_seed(0)
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    base = torch.stack([ys.expand(height, width), xs.expand(height, width),
                        (0.5 + 0.5 * torch.sin(6.0 * xs) * ys).expand(height, width)])
    noise = torch.rand(3, height, width, generator=g)
    return (0.7 * base + 0.3 * noise).clamp(0, 1).unsqueeze(0)


def _ort_session(path: str | os.PathLike):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_max_abs_diff(onnx_path: str | os.PathLike, model: nn.Module,
                      image: torch.Tensor | None = None) -> float:
    """Max |ONNX Runtime CPU - PyTorch| full-resolution disparity on one image."""
    meta = read_onnx_metadata(onnx_path)
    if image is None:
        image = _verification_input(int(meta[META + "input_height"]), int(meta[META + "input_width"]))
    with torch.no_grad():
        expected = _DisparityOnly(model).eval()(image).numpy()
    got = _ort_session(onnx_path).run([OUTPUT_NAME], {INPUT_NAME: image.numpy().astype(np.float32)})[0]
    if got.shape != expected.shape:
        raise OnnxExportError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
    return float(np.abs(got.astype(np.float64) - expected).max())


def export_onnx(model: nn.Module, path: str | os.PathLike, *, min_depth: float, max_depth: float,
                fp16: bool = False, verify: bool = True, height: int | None = None,
                width: int | None = None, tolerance: float | None = None,
                compat: bool = False) -> float:
    """Export ``model`` (from ``build_depth_model``) to ``path`` atomically.

    ``height``/``width`` default to the model's ``options``. With ``verify`` the file is run in
    ONNX Runtime (CPU) before it is moved into place, and ``OnnxExportError`` is raised if the
    max abs disparity difference exceeds ``tolerance`` (1e-4 fp32, 1e-2 fp16). Returns that
    difference (NaN when ``verify=False``). ``compat``: no DeformConv, opset 16, for older
    onnxruntime / TensorRT (see `onnx.compat`); parity is still checked against ``model``.
    """
    import onnx

    name, options = getattr(model, "name", None), getattr(model, "options", None)
    if not isinstance(name, str) or not isinstance(options, dict):
        raise TypeError("export_onnx needs a model from networks.build_depth_model "
                        f"(with .name and .options); got {type(model).__name__}")
    height = int(height or options["height"])
    width = int(width or options["width"])
    if height % 32 or width % 32:
        raise ValueError(f"export size {width}x{height} must be a multiple of 32")
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    tolerance = tolerance if tolerance is not None else (FP16_TOLERANCE if fp16 else PARITY_TOLERANCE)

    was_training = model.training
    model.eval()
    exported, opset = model, OPSET
    if compat:
        from .compat import COMPAT_OPSET, with_standard_ops
        exported, opset = with_standard_ops(model), COMPAT_OPSET
    wrapper = _DisparityOnly(_for_export(exported, fp16),
                             torch.float16 if fp16 else torch.float32).eval()
    dummy = torch.zeros(1, 3, height, width)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            raw = tmp.with_name(tmp.name + ".raw.onnx")
            try:
                log = io.StringIO()  # the exporter narrates every pass; keep stdout clean
                # compat: the TorchScript exporter (deprecated, warns) is the one that
                # reaches opset 16.
                with contextlib.redirect_stdout(log), torch.no_grad(), \
                        warnings.catch_warnings():
                    if compat:
                        warnings.simplefilter("ignore")
                    torch.onnx.export(wrapper, (dummy,), str(raw), dynamo=not compat,
                                      opset_version=opset, input_names=[INPUT_NAME],
                                      output_names=[OUTPUT_NAME], external_data=False,
                                      verbose=False)
                onnx_model = onnx.load(str(raw))
            except Exception as exc:  # the exporter raises many types; report them uniformly
                raise OnnxExportError(f"torch.onnx export of {name} failed: {exc}") from exc
            finally:
                raw.unlink(missing_ok=True)
            if not compat:
                onnx_model = _fold_weight_slices(onnx_model)
            onnx_model.producer_name = "lsmdepth_ros"
            meta = {
                "model": name, "options": json.dumps(options, sort_keys=True),
                "input_height": str(height), "input_width": str(width),
                "input_format": "rgb01", "output": "sigmoid_disparity",
                "min_depth": repr(float(min_depth)), "max_depth": repr(float(max_depth)),
                "precision": "fp16" if fp16 else "fp32",
                "target": "compat" if compat else "default",
            }
            del onnx_model.metadata_props[:]
            for key, value in meta.items():
                entry = onnx_model.metadata_props.add()
                entry.key, entry.value = META + key, value
            onnx.checker.check_model(onnx_model)
            onnx.save(onnx_model, str(tmp))
            diff = float("nan")
            if verify:
                diff = onnx_max_abs_diff(tmp, model)
                if not diff <= tolerance:
                    raise OnnxExportError(
                        f"ONNX parity check failed for {name} at {width}x{height}: max abs "
                        f"disparity difference {diff:.3g} > tolerance {tolerance:g}. The file "
                        f"was not written. Check the onnxruntime/torch versions or export "
                        f"without --fp16.")
    finally:
        model.train(was_training)
    return diff
