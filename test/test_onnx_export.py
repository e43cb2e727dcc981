"""ONNX export of every model: parity with PyTorch in onnxruntime (CPU), DeformConv for the
deformable blocks, embedded metadata, fp16, atomic writes, and the `lsmdepth export` command."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lsmdepth_ros.checkpoints import save_checkpoint
from lsmdepth_ros.cli import main as cli_main
from lsmdepth_ros.networks import build_depth_model
from lsmdepth_ros.onnx import export as onnx_export
from lsmdepth_ros.onnx.export import OnnxExportError, export_onnx
from lsmdepth_ros.onnx.spec import read_onnx_metadata

H, W = 64, 192


def _ort_disp(path, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("image", "disp")
    assert inp.type == out.type == "tensor(float)"
    return session.run(["disp"], {"image": image})[0]


def _torch_disp(model, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(image))[("disp", 0)].numpy()


@pytest.mark.parametrize("name", ["lsmdepth-official", "lite-mono", "lite-mono-small",
                                  "lite-mono-tiny", "lite-mono-8m"])
def test_export_parity(tmp_path, name):
    torch.manual_seed(0)
    model = build_depth_model(name, height=H, width=W)
    path = tmp_path / f"{name}.onnx"
    diff = export_onnx(model, path, min_depth=0.1, max_depth=100.0)
    assert diff < 1e-4
    image = np.random.default_rng(1).random((1, 3, H, W), dtype=np.float32)  # not the verify input
    got, expected = _ort_disp(path, image), _torch_disp(model, image)
    assert got.shape == (1, 1, H, W)
    assert np.abs(got - expected).max() < 1e-4
    assert read_onnx_metadata(path)["lsmdepth.model"] == name


@pytest.fixture(scope="module")
def lsmdepth_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", height=H, width=W)
    with torch.no_grad():  # non-zero offsets so the deformable sampling is really exercised
        for m in model.modules():
            if type(m).__name__ == "DeformableDepthwiseConv":
                torch.nn.init.normal_(m.offset.weight, std=0.05)
                torch.nn.init.uniform_(m.offset.bias, -1.5, 1.5)
    path = tmp_path_factory.mktemp("onnx") / "lsmdepth.pt"
    save_checkpoint(path, model, min_depth=0.5, max_depth=60.0)
    return model, path


def test_export_command_writes_verified_lsmdepth_with_deformconv(lsmdepth_checkpoint, capsys):
    model, ckpt = lsmdepth_checkpoint
    out = ckpt.with_name("cmd.onnx")
    assert cli_main(["export", str(ckpt), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff vs PyTorch" in printed
    assert float(printed.rsplit(":", 1)[1]) < 1e-4

    graph = onnx.load(str(out))
    ops = {n.op_type for n in graph.graph.node}
    assert "DeformConv" in ops
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 19
    image = np.random.default_rng(2).random((1, 3, H, W), dtype=np.float32)
    assert np.abs(_ort_disp(out, image) - _torch_disp(model, image)).max() < 1e-4

    meta = read_onnx_metadata(out)
    assert meta["lsmdepth.model"] == "lsmdepth"
    assert (meta["lsmdepth.input_height"], meta["lsmdepth.input_width"]) == (str(H), str(W))
    assert meta["lsmdepth.input_format"] == "rgb01"
    assert meta["lsmdepth.output"] == "sigmoid_disparity"
    assert (float(meta["lsmdepth.min_depth"]), float(meta["lsmdepth.max_depth"])) == (0.5, 60.0)
    assert meta["lsmdepth.precision"] == "fp32"


def test_lsmdepth_graph_gives_onnx_runtime_blocked_convs(lsmdepth_checkpoint, tmp_path):
    # split_rgb: no AveragePool, every conv's weight a constant (so INT8 quantises it per
    # channel), and no dense conv over 51 / 99 / 163 channels (the concatenated RGB pyramid),
    # which ONNX Runtime cannot run in its blocked NCHWc layout; Lite-Mono keeps its graph.
    def dense_conv_inputs(name, model):
        path = tmp_path / f"{name}.onnx"
        export_onnx(model, path, min_depth=0.1, max_depth=100.0)
        graph = onnx.load(str(path)).graph
        weights = {i.name: i for i in graph.initializer}
        ops = [n.op_type for n in graph.node]
        channels = []
        for node in graph.node:
            if node.op_type != "Conv":
                continue
            assert node.input[1] in weights, f"{name}: {node.name}'s weight is computed"
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if group == 1:
                channels.append(weights[node.input[1]].dims[1])
        return ops, channels

    ops, channels = dense_conv_inputs("lsmdepth", lsmdepth_checkpoint[0])
    assert "AveragePool" not in ops and "Slice" not in ops
    assert channels.count(3) == 4        # the stem's first conv and the three RGB halves
    assert {c for c in channels if c % 8} == {2, 3}   # 2: the skip attention's spatial conv
    ops, channels = dense_conv_inputs("lite-mono", build_depth_model("lite-mono", height=H,
                                                                     width=W))
    assert ops.count("AveragePool") == 3 and {51, 99, 163} <= set(channels)


def test_fp16_export_keeps_float32_io_and_stays_close(lsmdepth_checkpoint, tmp_path):
    model, _ = lsmdepth_checkpoint
    path = tmp_path / "half.onnx"
    diff = export_onnx(model, path, min_depth=0.1, max_depth=100.0, fp16=True)
    assert diff < 1e-2
    graph = onnx.load(str(path))
    weights = [t for t in graph.graph.initializer if t.name.startswith("model.")]  # parameters
    assert len(weights) > 50 and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    image = np.random.default_rng(3).random((1, 3, H, W), dtype=np.float32)
    got = _ort_disp(path, image)  # asserts float32 input and output
    assert np.abs(got - _torch_disp(model, image)).max() < 1e-2
    assert read_onnx_metadata(path)["lsmdepth.precision"] == "fp16"
    assert model.encoder.stages[0][0].pwconv1.weight.dtype == torch.float32  # model untouched


def test_failed_parity_leaves_no_file(monkeypatch, tmp_path):
    model = build_depth_model("lite-mono-tiny", height=H, width=W)
    monkeypatch.setattr(onnx_export, "onnx_max_abs_diff", lambda *a, **k: 0.5)
    target = tmp_path / "bad.onnx"
    with pytest.raises(OnnxExportError, match="parity"):
        export_onnx(model, target, min_depth=0.1, max_depth=100.0)
    assert list(tmp_path.iterdir()) == []


def test_export_command_reports_bad_checkpoint(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
