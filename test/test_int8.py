"""INT8 export: static QDQ quantisation with calibration from the synthetic drive, an image
folder or a bag; attention products (not its projections), skip gates, disparity heads and
DeformConv stay float; the node runs the file unchanged and its depth stays close to fp32's; the
command's errors are for people."""
from __future__ import annotations

import ast

import cv2
import numpy as np
import onnx
import pytest
import torch

from lsmdepth_ros.bags.bagfile import write_bag
from lsmdepth_ros.bags.messages import numpy_to_image
from lsmdepth_ros.checkpoints import save_checkpoint
from lsmdepth_ros.cli import main as cli_main
from lsmdepth_ros.commands.calibration import CalibrationError, calibration_images
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions
from lsmdepth_ros.networks import build_depth_model
from lsmdepth_ros.onnx.export import export_onnx
from lsmdepth_ros.onnx.quantize import QUANTIZED_OPS, quantize_int8
from lsmdepth_ros.onnx.spec import read_onnx_metadata

H, W = 64, 192


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", height=H, width=W).eval()
    with torch.no_grad():  # random decoder weights give a nearly flat map; widen it
        for p in model.decoder.parameters():
            p.mul_(4.0)
    folder = tmp_path_factory.mktemp("int8")
    export_onnx(model, folder / "fp32.onnx", min_depth=0.1, max_depth=80.0)
    save_checkpoint(folder / "m.pt", model, min_depth=0.1, max_depth=80.0)
    return folder


def _scope(node) -> str:
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            return ".".join(ast.literal_eval(p.value))
    return ""


def test_quantised_graph_keeps_attention_heads_and_deformconv_float(fp32):
    images = calibration_images("synthetic:0", (W, H), frames=4)
    report = quantize_int8(fp32 / "fp32.onnx", fp32 / "int8.onnx", images, max_images=4)
    assert report.calibration_images == 4 and report.quantized_nodes > 30
    assert "DeformConv" in report.float_ops and report.kept_float.get("MatMul", 0) > 0
    graph = onnx.load(str(fp32 / "int8.onnx")).graph
    produced_by = {o: n for n in graph.node for o in n.output}
    # from the float graph: which nodes multiply by a weight (vs two activations)
    fp32_graph = onnx.load(str(fp32 / "fp32.onnx")).graph
    weights = {i.name for i in fp32_graph.initializer}
    has_weight = {n.name: any(i in weights for i in n.input) for n in fp32_graph.node}
    assert any(n.op_type == "MatMul" and "attn" in _scope(n) and has_weight[n.name]
               for n in graph.node), "the attention's projections should be in the graph"
    assert any(n.op_type == "MatMul" and "attn" in _scope(n) and not has_weight[n.name]
               for n in graph.node), "the attention's activation products should be too"
    # the disparity head is the last convolution the exported graph computes
    head = [n for n in graph.node if n.op_type == "Conv"][-1].name
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS + ("DeformConv",):
            continue
        # QDQ: a quantised node's weight (second input) comes out of a DequantizeLinear
        fed_int8 = getattr(produced_by.get(node.input[1]), "op_type", "") == "DequantizeLinear"
        scope = _scope(node)
        product_in_attention = "attn" in scope and not has_weight[node.name]
        float_scope = product_in_attention or "skip_att" in scope or node.name == head
        assert fed_int8 == (node.op_type != "DeformConv" and not float_scope), node.name
    # every GELU of the network (the bias-Add ones of the global blocks included) is int8
    gelus = sum(n.op_type == "Gelu" for n in fp32_graph.node)
    assert gelus > 0 and report.gelu_lookups == gelus
    assert not any(n.op_type == "Gelu" for n in graph.node)
    meta = read_onnx_metadata(fp32 / "int8.onnx")
    assert meta["lsmdepth.precision"] == "int8" and "DeformConv" in meta["lsmdepth.float_ops"]
    assert meta["lsmdepth.model"] == "lsmdepth" and meta["lsmdepth.max_depth"] == "80.0"


def test_int8_depth_close_to_fp32_in_the_estimator(fp32):
    if not (fp32 / "int8.onnx").exists():
        quantize_int8(fp32 / "fp32.onnx", fp32 / "int8.onnx",
                      calibration_images("synthetic:0", (W, H), frames=4), max_images=4)
    est = {name: DepthEstimator(EstimatorOptions(model_path=str(fp32 / f"{name}.onnx"),
                                                 num_threads=1), say=lambda _m: None)
           for name in ("fp32", "int8")}
    image = next(iter(calibration_images("synthetic:5", (W, H), frames=1)))
    a, b = (est[n].estimate(image, "rgb8") for n in ("fp32", "int8"))
    # Random weights quantise far worse than trained ones (the benchmark measures those); here:
    # the same picture of the scene, not an unrelated map.
    corr = np.corrcoef(np.log(a).ravel(), np.log(b).ravel())[0, 1]
    assert corr > 0.9 and np.isfinite(b).all()
    assert not np.array_equal(a, b)  # it is really another network


def test_calibration_sources(tmp_path):
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((20, 30, 3), 40 * i, np.uint8))
    folder = list(calibration_images(str(tmp_path), (W, H), frames=3))
    assert [int(im[0, 0, 0]) for im in folder] == [0, 80, 160]  # spread over the folder
    msgs = [("/cam/image", i, numpy_to_image(np.full((8, 12, 3), i, np.uint8), "rgb8", i))
            for i in range(4)]
    bag = write_bag(tmp_path / "bag", msgs)
    from_bag = list(calibration_images(str(bag), (W, H), frames=2))
    assert [int(im[0, 0, 0]) for im in from_bag] == [0, 2] and from_bag[0].shape == (8, 12, 3)
    with pytest.raises(CalibrationError, match="does not exist"):
        calibration_images(str(tmp_path / "nope"), (W, H))
    with pytest.raises(CalibrationError, match="seed must be an integer"):
        calibration_images("synthetic:x", (W, H))


def test_export_command_int8(fp32, tmp_path, capsys):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.random.default_rng(i).integers(
            0, 256, (H, W, 3), dtype=np.uint8))
    out = tmp_path / "m.int8.onnx"
    assert cli_main(["export", str(fp32 / "m.pt"), "-o", str(out), "--int8", "--calibration",
                     str(tmp_path), "--calibration-frames", "3", "--no-verify"]) == 0
    printed = capsys.readouterr().out
    assert "int8, calibrated on 3 images" in printed and "DeformConv" in printed
    assert read_onnx_metadata(out)["lsmdepth.precision"] == "int8"
    assert cli_main(["export", str(fp32 / "m.pt"), "--int8"]) == 2
    assert "--int8 needs --calibration" in capsys.readouterr().err
    assert cli_main(["export", str(fp32 / "m.pt"), "-o", str(tmp_path / "x.onnx"), "--int8",
                     "--calibration", str(tmp_path / "missing"), "--no-verify"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
