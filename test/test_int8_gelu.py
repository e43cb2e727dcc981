"""GELU between int8 layers as look-ups: the rewritten island stays within the sigmoid form's
bound (0.021) plus one output step of GELU (computed here with math.erf), onnxruntime runs it
as its int8 QLinearSigmoid + QLinearMul, and the quantiser includes the bias Adds in front of
GELUs."""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lsmdepth_ros.onnx.int8_gelu import bias_adds_before_gelu, gelu_as_lookups

N = 4096


def _island(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> onnx.ModelProto:
    """uint8 -> DequantizeLinear -> Gelu -> QuantizeLinear -> uint8, as the quantiser writes it."""
    inits = [numpy_helper.from_array(np.array(in_scale, np.float32), "s_in"),
             helper.make_tensor("z_in", TensorProto.UINT8, [], [in_zero]),
             numpy_helper.from_array(np.array(out_scale, np.float32), "s_out"),
             helper.make_tensor("z_out", TensorProto.UINT8, [], [out_zero])]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s_in", "z_in"], ["xf"], name="dq"),
             helper.make_node("Gelu", ["xf"], ["g"], name="gelu"),
             helper.make_node("QuantizeLinear", ["g", "s_out", "z_out"], ["y"], name="q")]
    graph = helper.make_graph(nodes, "island", [helper.make_tensor_value_info(
        "x", TensorProto.UINT8, [N])], [helper.make_tensor_value_info("y", TensorProto.UINT8, [N])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def _run(model: onnx.ModelProto, x: np.ndarray, optimized: str | None = None) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if optimized:
        so.optimized_model_filepath = optimized
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("scales", [(0.04, 10, 0.04, 4), (0.1, 128, 0.03, 9),
                                    (0.01, 200, 0.005, 40)])
def test_lookup_gelu_close_to_exact(scales, tmp_path):
    in_scale, in_zero, out_scale, out_zero = scales
    x = np.arange(N, dtype=np.int64).astype(np.uint8)  # every code, 16 times
    xf = (x.astype(np.float64) - in_zero) * in_scale
    exact = np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in xf])
    want = np.clip(np.round(exact / out_scale) + out_zero, 0, 255)

    model = _island(*scales)
    assert np.abs(_run(model, x).astype(int) - want).max() <= 1  # float GELU: exact up to rounding
    added = gelu_as_lookups(model)
    assert len(added) == 1
    assert [model.graph.node[i].name for i in (2, 5)] == list(added[0])   # its Sigmoid and Mul
    assert not any(n.op_type == "Gelu" for n in model.graph.node)
    optimized = tmp_path / "opt.onnx"
    got = _run(model, x, str(optimized)).astype(int)
    representable = np.clip(exact, -out_zero * out_scale, (255 - out_zero) * out_scale)
    error = np.abs((got - out_zero) * out_scale - representable)
    assert error.max() <= 0.021 + out_scale, error.max()
    if out_scale >= 0.02:  # steps coarser than the form's error: at most one step off
        assert np.abs(got - want).max() <= 1 and np.abs(got - want).mean() < 0.25
    # onnxruntime fused the rewrite into its int8 kernels: no float op is left
    ops = {n.op_type for n in onnx.load(str(optimized)).graph.node}
    assert ops == {"QLinearSigmoid", "QLinearMul"}, ops


def test_only_quantised_gelus_are_rewritten():
    model = _island(0.04, 10, 0.04, 4)
    model.graph.node[2].op_type = "Identity"  # the Gelu's output is no longer re-quantised
    del model.graph.node[2].input[1:]
    assert gelu_as_lookups(model) == []
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "Gelu", "Identity"]


def test_bias_adds_before_gelu_are_found():
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    b = numpy_helper.from_array(np.ones(4, np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["mb"], name="bias_gelu"),
             helper.make_node("Gelu", ["mb"], ["g"], name="gelu"),
             helper.make_node("Add", ["g", "b"], ["gb"], name="bias_other"),  # feeds no Gelu
             helper.make_node("Add", ["gb", "x"], ["r"], name="residual"),    # no constant
             helper.make_node("Gelu", ["r"], ["y"], name="gelu2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [2, 4])], initializer=[w, b])
    assert bias_adds_before_gelu(helper.make_model(graph)) == ["bias_gelu"]
