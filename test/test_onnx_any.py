"""The ONNX backend runs third-party depth models: declared (options) or embedded (metadata)
input size, pixel format, normalisation, layout and output kind, checked against numpy."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions, ModelLoadError
from lsmdepth_ros.onnx.spec import (
    OnnxModelSpec,
    describe_onnx,
    output_to_depth,
    parse_triple,
)

H, W = 16, 24
WEIGHTS = np.array([0.5, -0.25, 0.125], np.float32)   # 1x1 conv over the model's channels
BIAS = 0.2
GAIN = 0.3
IMAGENET_MEAN, IMAGENET_STD = "0.485,0.456,0.406", "0.229,0.224,0.225"


def _make_model(path, *, head="exp", channels_last=False, dynamic=False, half_output=False,
                metadata=None):
    """A tiny 'foreign' depth model: y = head(GAIN * (w . x + b)) over the channels of its input
    x (NCHW or NHWC), optionally at half resolution (2x2 average pooling)."""
    dims = ["n", "h", "w"] if dynamic else [1, H, W]
    shape = [dims[0], dims[1], dims[2], 3] if channels_last else [dims[0], 3, dims[1], dims[2]]
    nodes, inits = [], []
    x = "pixels"
    if channels_last:
        nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2]))
        x = "nchw"
    inits += [helper.make_tensor("wconv", TensorProto.FLOAT, [1, 3, 1, 1], WEIGHTS.tolist()),
              helper.make_tensor("bconv", TensorProto.FLOAT, [1], [BIAS]),
              helper.make_tensor("gain", TensorProto.FLOAT, [], [GAIN])]
    nodes += [helper.make_node("Conv", [x, "wconv", "bconv"], ["lin"]),
              helper.make_node("Mul", ["lin", "gain"], ["scaled"])]
    last = "scaled"
    if half_output:
        nodes.append(helper.make_node("AveragePool", [last], ["pooled"], kernel_shape=[2, 2],
                                      strides=[2, 2]))
        last = "pooled"
    nodes.append(helper.make_node({"exp": "Exp", "sigmoid": "Sigmoid"}[head], [last], ["out"]))
    graph = helper.make_graph(
        nodes, "foreign_depth",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 1, "oh", "ow"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _expected_output(rgb, fmt="rgb01", mean=(0, 0, 0), std=(1, 1, 1), head="exp"):
    """Independent numpy forward of the tiny model on an RGB uint8 image."""
    x = rgb.astype(np.float64)
    if fmt.startswith("bgr"):
        x = x[..., ::-1]
    x = x / (1.0 if fmt.endswith("255") else 255.0)
    x = (x - np.asarray(mean)) / np.asarray(std)
    y = GAIN * (x @ WEIGHTS.astype(np.float64) + BIAS)
    return np.exp(y) if head == "exp" else 1.0 / (1.0 + np.exp(-y))


def _estimator(path, **options):
    return DepthEstimator(EstimatorOptions(model_path=str(path), num_threads=1,
                                           output_resolution="network", **options))


@pytest.mark.parametrize("kind,scale,to_depth", [
    ("depth", 0.5, lambda v, s: s * v),
    ("inverse_depth", 2.0, lambda v, s: 1.0 / (s * v)),
    ("disparity", 7.0, lambda v, s: s / v),
])
def test_declared_output_kinds_and_normalisation(tmp_path, kind, scale, to_depth):
    path = _make_model(tmp_path / "m.onnx")
    est = _estimator(path, onnx_output=kind, onnx_output_scale=scale, onnx_input_format="bgr255",
                     onnx_mean="100,110,120", onnx_std="50,60,70")
    assert est.network_size == (W, H) and est.backend == "onnxruntime"
    rgb = _image()
    value = _expected_output(rgb, "bgr255", (100, 110, 120), (50, 60, 70))
    depth = est.estimate(rgb, "rgb8")
    np.testing.assert_allclose(depth, to_depth(value, scale), rtol=2e-5)


def test_sigmoid_disparity_with_declared_range(tmp_path):
    path = _make_model(tmp_path / "s.onnx", head="sigmoid")
    with pytest.raises(ModelLoadError, match="onnx_min_depth"):
        _estimator(path, onnx_output="sigmoid_disparity")
    est = _estimator(path, onnx_output="sigmoid_disparity", onnx_min_depth=0.5,
                     onnx_max_depth=50.0, onnx_mean=IMAGENET_MEAN, onnx_std=IMAGENET_STD)
    rgb = _image(1)
    sig = _expected_output(rgb, "rgb01", parse_triple(IMAGENET_MEAN, "m"),
                           parse_triple(IMAGENET_STD, "s"), head="sigmoid")
    min_disp, max_disp = 1 / 50.0, 1 / 0.5
    np.testing.assert_allclose(est.estimate(rgb), 1.0 / (min_disp + (max_disp - min_disp) * sig),
                               rtol=2e-5)
    assert (est.depth_range.min_depth, est.depth_range.max_depth) == (0.5, 50.0)


def test_embedded_description_equals_declared_options(tmp_path):
    plain = _make_model(tmp_path / "plain.onnx")
    described = describe_onnx(plain, tmp_path / "described.onnx", output="inverse_depth",
                              input_format="rgb255", mean="10,20,30", std="40,50,60",
                              output_scale=0.25, model="foreign-net")
    rgb = _image(2)
    a = _estimator(described)
    b = _estimator(plain, onnx_output="inverse_depth", onnx_input_format="rgb255",
                   onnx_mean="10,20,30", onnx_std="40,50,60", onnx_output_scale=0.25)
    assert a.model_name == "foreign-net"
    np.testing.assert_array_equal(a.estimate(rgb), b.estimate(rgb))
    expected = 1.0 / (0.25 * _expected_output(rgb, "rgb255", (10, 20, 30), (40, 50, 60)))
    np.testing.assert_allclose(a.estimate(rgb), expected, rtol=2e-5)
    # declared options win over the file's description
    c = _estimator(described, onnx_output="depth", onnx_output_scale=1.0)
    np.testing.assert_allclose(c.estimate(rgb), expected ** -1 / 0.25, rtol=2e-5)


def test_nhwc_input_and_low_resolution_output(tmp_path):
    import cv2

    path = _make_model(tmp_path / "nhwc.onnx", channels_last=True, half_output=True,
                       metadata={"lsmdepth.output": "depth"})
    est = _estimator(path)
    assert est.network_size == (W, H)
    rgb = _image(3)
    y = np.log(_expected_output(rgb))          # the pre-activation, pooled 2x2, then exp
    pooled = np.exp(y.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3))).astype(np.float32)
    expected = cv2.resize(pooled, (W, H), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(est.estimate(rgb), expected, rtol=2e-5)


def test_variable_input_size_needs_a_declared_size(tmp_path):
    path = _make_model(tmp_path / "dyn.onnx", dynamic=True,
                       metadata={"lsmdepth.output": "depth"})
    with pytest.raises(ModelLoadError, match="onnx_input_width"):
        _estimator(path)
    est = _estimator(path, onnx_input_width=2 * W, onnx_input_height=2 * H)
    assert est.network_size == (2 * W, 2 * H)
    img = np.repeat(np.repeat(_image(4), 2, 0), 2, 1)   # exactly the network size
    np.testing.assert_allclose(est.estimate(img), _expected_output(img), rtol=2e-5)


def test_missing_output_kind_and_bad_options_are_explained(tmp_path):
    path = _make_model(tmp_path / "anon.onnx")
    with pytest.raises(ModelLoadError, match="onnx_output"):
        _estimator(path)
    with pytest.raises(ValueError, match="three comma-separated"):
        EstimatorOptions(onnx_mean="0.5,0.5")
    with pytest.raises(ValueError, match="onnx_output"):
        EstimatorOptions(onnx_output="logits")
    with pytest.raises(ValueError, match="output must be one of"):
        describe_onnx(path, output="metres")


@pytest.mark.parametrize("kind", ["depth", "inverse_depth", "disparity"])
def test_nonpositive_or_infinite_outputs_become_nan(kind):
    spec = OnnxModelSpec(input_size=(4, 1), output=kind)
    out = output_to_depth(np.array([[2.0, 0.0, -2.0, np.inf]], np.float32), spec)
    assert out[0, 0] == (2.0 if kind == "depth" else 0.5)
    assert np.isnan(out[0, 1:]).all()
