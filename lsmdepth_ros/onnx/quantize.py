"""INT8 static quantisation of an exported depth model (onnxruntime.quantization, QDQ format).

Weights are int8 per output channel, activations uint8 per tensor with ranges measured on
calibration images (preprocessed exactly as the node does: `DepthEstimator.preprocess`).
What stays float, and why:

* operators onnxruntime has no int8 kernel for: ``DeformConv`` (LSMDepth's deformable blocks),
  ``LayerNormalization``, ``Elu``, ``Resize``, ``AveragePool``, ``Sigmoid``, ...; the quantiser
  leaves them alone and the graph converts at their edges. GELUs between int8 layers are the
  exception: they become int8 table look-ups (``int8_gelu``: x sigmoid(1.702 x), 0.4x the time);
* inside attention (``attn`` / ``xca`` scopes: LSMDepth's linear attention, Lite-Mono's XCA),
  the products of two activations (q k^T, the attention times v): their ranges depend on the
  image, which per-tensor uint8 resolves badly. The attention's weight projections (qkv, proj)
  read a LayerNorm's output and quantise like any linear layer, so they are int8 (1.02x faster,
  AbsRel +0.0002 on the benchmark's held-out drive);
* the decoder's skip gates (``skip_att``): channel and spatial gates that multiply the skip
  features, tiny, and sensitive the same way;
* the disparity head (the convolution the output's sigmoid reads, found in the graph: the
  exported module path names it only by a list index): its sigmoid output is the depth, and
  1/256 steps of disparity would quantise near depth coarsely.

The file keeps the fp32 file's ``lsmdepth.*`` metadata with ``lsmdepth.precision`` = ``int8``
and ``lsmdepth.float_ops`` naming the operator types left in float, so the node runs it with no
extra parameters. Needs the ``onnx`` package (export time only, never on the robot).
"""
from __future__ import annotations

import ast
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_files import atomic_path
from .int8_gelu import SIGMOID_GAIN, bias_adds_before_gelu, gelu_as_lookups
from .spec import META

ATTENTION_SCOPES = ("attn", "xca")
GATE_SCOPES = ("skip_att",)
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
# Operators that only move or reshape data: not worth naming among the float ones.
_DATA_MOVEMENT = {"Reshape", "Transpose", "Concat", "Split", "Unsqueeze", "Squeeze", "Cast",
                  "Pad", "Constant", "Shape", "Gather", "Slice", "Flatten", "Identity"}


class QuantizationError(RuntimeError):
    """Calibration data or quantisation failed; the message says what to change."""


@dataclass
class QuantizationReport:
    calibration_images: int
    quantized_nodes: int               # Conv / Gemm / MatMul nodes now int8
    kept_float: dict[str, int]         # Conv / Gemm / MatMul nodes left float on purpose
    float_ops: dict[str, int]          # computing op types with no int8 kernel -> node count
    gelu_lookups: int = 0              # GELUs run as int8 table look-ups (int8_gelu)

    def describe(self) -> str:
        def listing(counts: dict[str, int]) -> str:
            return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"
        return (f"{self.quantized_nodes} Conv/Gemm/MatMul nodes in int8; {self.gelu_lookups} GELUs "
                f"as int8 look-ups (x sigmoid({SIGMOID_GAIN} x)); kept float on purpose (attention "
                f"products, skip gates, disparity head): {listing(self.kept_float)}; "
                f"float for lack of an int8 kernel: {listing(self.float_ops)}")


def _scope_of(node) -> str:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                return ".".join(ast.literal_eval(prop.value))
            except (ValueError, SyntaxError):
                return prop.value
    return node.name


def output_heads(model) -> list[str]:
    """Names of the quantisable nodes nearest the graph's outputs: walking back from each output
    through element-wise and resizing nodes, the first Conv / Gemm / MatMul on every path (the
    disparity head). Shape-only inputs (a Resize's target size) are not followed."""
    producers = {out: n for n in model.graph.node for out in n.output}
    heads: list[str] = []
    stack, seen = [o.name for o in model.graph.output], set()
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in QUANTIZED_OPS:
            heads.append(node.name)
        elif node.op_type != "Shape":
            stack.extend(i for i in node.input if i)
    return heads


def float_nodes_to_keep(model) -> list[str]:
    """Names of the quantisable nodes that stay float (see the module docstring)."""
    weights = {init.name for init in model.graph.initializer}

    def stays_float(node) -> bool:
        if node.op_type not in QUANTIZED_OPS:
            return False
        scope = _scope_of(node)
        if any(s in scope for s in GATE_SCOPES):
            return True
        # in attention, a product of two activations (no weight among its inputs)
        return (any(s in scope for s in ATTENTION_SCOPES)
                and not any(i in weights for i in node.input))

    scoped = [n.name for n in model.graph.node if stays_float(n)]
    return scoped + [name for name in output_heads(model) if name not in scoped]


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over preprocessed batches."""

    def __init__(self, batches: list[np.ndarray], input_name: str):
        self._items = iter([{input_name: b} for b in batches])

    def get_next(self):
        return next(self._items, None)


def calibration_batches(fp32_path: str | os.PathLike, images: Iterable[np.ndarray],
                        limit: int) -> list[np.ndarray]:
    """RGB uint8 images -> the network's [1,3,H,W] inputs, as the node would feed them."""
    from ..inference import DepthEstimator, EstimatorOptions

    est = DepthEstimator(EstimatorOptions(model_path=str(fp32_path), device="cpu"),
                         say=lambda _msg: None)
    batches = []
    for image in images:
        if len(batches) >= limit:
            break
        batches.append(est.preprocess(np.asarray(image), "rgb8")[1].copy())
    if not batches:
        raise QuantizationError("no calibration images: the calibration source gave none")
    return batches


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  images: Iterable[np.ndarray], max_images: int = 64) -> QuantizationReport:
    """Write the INT8 version of `fp32_path` (an `lsmdepth export` file) to `out_path`
    atomically, calibrated on up to `max_images` RGB uint8 images of any size."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32_path = Path(fp32_path)
    model = onnx.load(str(fp32_path))
    input_name = model.graph.input[0].name
    batches = calibration_batches(fp32_path, images, max_images)
    keep_float = float_nodes_to_keep(model)
    # Conv / Gemm / MatMul as before, plus the bias Adds in front of GELUs (see int8_gelu).
    bias_adds = bias_adds_before_gelu(model)
    to_quantize = [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS] + bias_adds
    with tempfile.TemporaryDirectory(prefix="lsmdepth_int8_") as tmp:
        raw = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(fp32_path), str(raw), _Calibration(batches, input_name),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=[*QUANTIZED_OPS, "Add"], nodes_to_quantize=to_quantize,
                nodes_to_exclude=keep_float,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibTensorRangeSymmetric": False})
        except Exception as exc:  # the quantiser raises many types; report them uniformly
            raise QuantizationError(f"INT8 quantisation of {fp32_path} failed: {exc}") from exc
        quantized = onnx.load(str(raw))
    gelu_lookups = gelu_as_lookups(quantized)
    meta = {p.key: p.value for p in model.metadata_props}
    int8_elementwise = set(bias_adds).union(*gelu_lookups)
    compute = [n for n in quantized.graph.node if n.op_type not in
               ("QuantizeLinear", "DequantizeLinear", *_DATA_MOVEMENT)
               and n.name not in int8_elementwise]
    kept = set(keep_float)
    kept_float: dict[str, int] = {}
    float_ops: dict[str, int] = {}
    for n in compute:
        if n.op_type in QUANTIZED_OPS and n.name in kept:
            kept_float[n.op_type] = kept_float.get(n.op_type, 0) + 1
        elif n.op_type not in QUANTIZED_OPS:
            float_ops[n.op_type] = float_ops.get(n.op_type, 0) + 1
    meta[META + "precision"] = "int8"
    meta[META + "float_ops"] = ",".join(sorted(set(float_ops) | set(kept_float)))
    del quantized.metadata_props[:]
    for key, value in meta.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    quantized.producer_name = "lsmdepth_ros"
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp_out:
        onnx.save(quantized, str(tmp_out))
    n_quant = sum(1 for n in compute if n.op_type in QUANTIZED_OPS and n.name not in kept)
    return QuantizationReport(len(batches), n_quant, kept_float, float_ops,
                              len(gelu_lookups))
