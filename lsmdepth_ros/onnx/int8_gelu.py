"""GELU between two int8 layers as table look-ups (onnxruntime's QLinearSigmoid and QLinearMul).

onnxruntime has no int8 GELU: in a QDQ graph every ``DequantizeLinear -> Gelu -> QuantizeLinear``
island ran in float, and the MLPs' GELUs took 18 % of the INT8 model's time at 640x192 (ORT
profile, 2 threads). Rewritten as

    y = x * sigmoid(1.702 x)        (Hendrycks & Gimpel's sigmoid form of GELU)

with ``x`` the int8 input: the factor 1.702 goes into the scale of a second ``DequantizeLinear``
of the same int8 tensor, so ``DQ -> Sigmoid -> Q`` becomes onnxruntime's QLinearSigmoid (a
256-entry table) and ``DQ, DQ -> Mul -> Q`` its QLinearMul. The island costs 0.4x the float GELU
and stays within 0.021 (the sigmoid form's error) plus one output quantisation step of the exact
GELU; within one step where the steps are coarser than 0.02 (tested).

A GELU reached through a bias ``Add`` (an ``nn.Linear`` on an NHWC tensor exports as MatMul + Add)
is rewritten too once that Add is quantised: `bias_adds_before_gelu` names those Adds so the
quantiser includes them.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

SIGMOID_GAIN = 1.702  # sigmoid(1.702 x) ~ Phi(x): max |x Phi(x) - x sigmoid(1.702 x)| = 0.020


def bias_adds_before_gelu(model) -> list[str]:
    """Names of the fp32 graph's ``Add`` nodes that add a constant (a bias) and feed only a
    Gelu: quantising them puts the Gelu between int8 tensors."""
    weights = {init.name for init in model.graph.initializer}
    consumers = _consumers(model)
    names = []
    for node in model.graph.node:
        if node.op_type != "Add" or not any(i in weights for i in node.input):
            continue
        users = consumers[node.output[0]]
        if len(users) == 1 and users[0].op_type == "Gelu":
            names.append(node.name)
    return names


def _consumers(model) -> dict[str, list]:
    users: dict[str, list] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            users[name].append(node)
    return users


def gelu_as_lookups(model) -> list[tuple[str, str]]:
    """Rewrite, in place, every ``DequantizeLinear -> Gelu -> QuantizeLinear`` of a QDQ model
    (per-tensor activations) as the sigmoid form above. Returns, per rewritten GELU, the names
    of its Sigmoid and Mul nodes (onnxruntime runs them in int8)."""
    from onnx import TensorProto, helper, numpy_helper

    producers = {out: n for n in model.graph.node for out in n.output}
    consumers = _consumers(model)
    inits = {init.name: init for init in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    sig_scale, sig_zero = "lsmdepth_gelu_sigmoid_scale", "lsmdepth_gelu_sigmoid_zero"
    new_inits = [numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), sig_scale),
                 helper.make_tensor(sig_zero, TensorProto.UINT8, [], [0])]
    rewritten: list[tuple[str, str]] = []
    nodes = []
    for node in model.graph.node:
        dq = producers.get(node.input[0]) if node.op_type == "Gelu" else None
        users = consumers[node.output[0]] if dq is not None else []
        if (dq is None or dq.op_type != "DequantizeLinear" or len(users) != 1
                or users[0].op_type != "QuantizeLinear" or node.output[0] in graph_outputs
                or dq.input[1] not in inits or numpy_helper.to_array(inits[dq.input[1]]).size != 1):
            nodes.append(node)
            continue
        tag = f"lsmdepth_gelu{len(rewritten)}_lookup"
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        gained = numpy_helper.from_array((scale * SIGMOID_GAIN).astype(np.float32),
                                         f"{tag}_gained_scale")
        new_inits.append(gained)
        zero = list(dq.input[2:3])
        nodes += [
            helper.make_node("DequantizeLinear", [dq.input[0], gained.name, *zero],
                             [f"{tag}_gained"], name=f"{tag}_dq_gained"),
            helper.make_node("Sigmoid", [f"{tag}_gained"], [f"{tag}_sigmoid"], name=f"{tag}_sigmoid"),
            helper.make_node("QuantizeLinear", [f"{tag}_sigmoid", sig_scale, sig_zero],
                             [f"{tag}_sigmoid_q"], name=f"{tag}_q_sigmoid"),
            helper.make_node("DequantizeLinear", [f"{tag}_sigmoid_q", sig_scale, sig_zero],
                             [f"{tag}_sigmoid_dq"], name=f"{tag}_dq_sigmoid"),
            helper.make_node("Mul", [node.input[0], f"{tag}_sigmoid_dq"], [node.output[0]],
                             name=f"{tag}_mul"),
        ]
        rewritten.append((f"{tag}_sigmoid", f"{tag}_mul"))
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(new_inits)
    return rewritten
