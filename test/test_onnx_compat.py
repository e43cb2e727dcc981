"""`lsmdepth export --compat`: DeformConv in standard operators (GridSample + grouped 1x1 Conv,
opset 16) for onnxruntime < 1.25 and TensorRT < 10.1, and the ONNX backend's message when an
onnxruntime lacks an operator. Older onnxruntime releases are installed with `pip install
--target` into ~/.cache/lsmdepth_ros (downloaded once) and run in a subprocess."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper
from torchvision.ops import DeformConv2d, deform_conv2d

from lsmdepth_ros.checkpoints import save_checkpoint
from lsmdepth_ros.cli import main as cli_main
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions
from lsmdepth_ros.networks import build_depth_model
from lsmdepth_ros.onnx.compat import (
    COMPAT_OPSET,
    deform_conv2d_standard_ops,
    with_standard_ops,
)
from lsmdepth_ros.onnx.export import export_onnx, onnx_max_abs_diff, read_onnx_metadata
from lsmdepth_ros.onnx.operators import (
    COMPAT_ORT_TESTED,
    FIRST_ORT_RELEASE,
    missing_operator_hint,
)

H, W = 64, 192
ORT_CACHE = Path.home() / ".cache" / "lsmdepth_ros"
# TensorRT 8.5's ONNX parser: opsets up to 17, no LayerNormalization; onnxruntime < 1.25: no
# DeformConv; Gelu only exists from opset 20.
NOT_FOR_OLD_RUNTIMES = {"DeformConv", "LayerNormalization", "Gelu"}


# ----------------------------------------------------------------------------------------------
# The maths

@pytest.mark.parametrize("case", [
    # n, c_in, c_out, h, w, kernel, stride, padding, dilation, groups, offset groups, mask
    (2, 8, 8, 7, 9, (3, 3), (1, 1), (1, 1), (1, 1), 8, 1, False),    # depthwise, as in LSMDepth
    (1, 6, 4, 8, 10, (3, 3), (2, 2), (2, 2), (2, 2), 2, 3, True),    # grouped, modulated
    (1, 4, 6, 5, 6, (3, 2), (1, 1), (1, 0), (1, 2), 1, 2, True),     # dense, non-square kernel
    (1, 3, 3, 1, 4, (3, 3), (1, 1), (1, 1), (1, 1), 3, 1, False),    # one-row input
])
def test_standard_ops_equal_torchvision_deform_conv2d(case):
    n, c_in, c_out, h, w, (kh, kw), stride, pad, dil, groups, og, use_mask = case
    g = torch.Generator().manual_seed(sum(case[:5]))
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in // groups, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    ho = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    # Offsets of a few pixels: many taps land between pixels and many outside the image.
    offset = 3.0 * torch.randn(n, 2 * og * kh * kw, ho, wo, generator=g, dtype=torch.float64)
    mask = (torch.rand(n, og * kh * kw, ho, wo, generator=g, dtype=torch.float64)
            if use_mask else None)
    expected = deform_conv2d(x, offset, weight, bias, stride=stride, padding=pad, dilation=dil,
                             mask=mask)
    got = deform_conv2d_standard_ops(x, offset, weight, bias, stride, pad, dil, mask)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-12


def test_half_inputs_are_sampled_in_float32_and_returned_in_half():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 6, 20, generator=g)
    offset = 4.0 * torch.randn(1, 18, 6, 20, generator=g)
    weight = torch.randn(4, 1, 3, 3, generator=g)
    expected = deform_conv2d(x, offset, weight, padding=(1, 1))
    got = deform_conv2d_standard_ops(x.half(), offset.half(), weight.half(), None, (1, 1),
                                     (1, 1), (1, 1))
    assert got.dtype == torch.float16
    # Only the float16 rounding of the inputs and the result remains (~1e-3 relative).
    ref = deform_conv2d(x.half().float(), offset.half().float(), weight.half().float(),
                        padding=(1, 1))
    assert (got.float() - ref).abs().max().item() < 2e-3 * ref.abs().max().item()
    assert (got.float() - expected).abs().max().item() < 0.1


def _deformed_lsmdepth(seed: int = 0):
    torch.manual_seed(seed)
    model = build_depth_model("lsmdepth", height=H, width=W).eval()
    with torch.no_grad():  # offsets of up to a few pixels at 1/16 scale (4x12): borders hit
        for m in model.modules():
            if type(m).__name__ == "DeformableDepthwiseConv":
                torch.nn.init.normal_(m.offset.weight, std=0.1)
                torch.nn.init.uniform_(m.offset.bias, -3.0, 3.0)
    return model


def test_with_standard_ops_replaces_every_deformconv_and_leaves_the_model_alone():
    model = _deformed_lsmdepth()
    compat = with_standard_ops(model)
    assert sum(isinstance(m, DeformConv2d) for m in model.modules()) == 2
    assert not any(isinstance(m, DeformConv2d) for m in compat.modules())
    assert (compat.name, compat.options) == (model.name, model.options)
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model(image)[("disp", 0)], compat(image)[("disp", 0)]
    assert (a - b).abs().max().item() < 1e-6


# ----------------------------------------------------------------------------------------------
# The export

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, compat .onnx written by `lsmdepth export --compat`, what the command printed)."""
    model = _deformed_lsmdepth()
    folder = tmp_path_factory.mktemp("compat")
    ckpt = folder / "deformed.pt"
    save_checkpoint(ckpt, model, min_depth=0.5, max_depth=60.0)
    out = folder / "compat.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli_main(["export", str(ckpt), "--compat", "-o", str(out)]) == 0
    return model, out, printed.getvalue()


def test_export_command_compat_writes_standard_opset16_ops_with_parity(exported):
    model, out, printed = exported
    assert "compat opset 16" in printed and float(printed.rsplit(":", 1)[1]) < 1e-4
    graph = onnx.load(str(out))
    assert {(o.domain or "ai.onnx"): o.version for o in graph.opset_import} == {
        "ai.onnx": COMPAT_OPSET}
    assert graph.ir_version <= 8   # opset 16's own IR version (ONNX 1.11): older parsers read it
    ops = [n.op_type for n in graph.graph.node]
    assert not NOT_FOR_OLD_RUNTIMES & set(ops)
    samplers = [n for n in graph.graph.node if n.op_type == "GridSample"]
    assert len(samplers) == 2   # one per deformable block
    for node in samplers:   # TensorRT 8.5 reads these attribute values (opset-16 names)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["mode"] == b"bilinear" and attrs["padding_mode"] == b"zeros"
    onnx.checker.check_model(graph, full_check=True)
    meta = read_onnx_metadata(out)
    assert meta["lsmdepth.target"] == "compat" and meta["lsmdepth.model"] == "lsmdepth"
    # Parity with the torchvision-DeformConv model itself, on an image of its own.
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(7))
    assert onnx_max_abs_diff(out, model, image) < 1e-4


def test_compat_fp16_export_samples_in_float32(tmp_path):
    model = _deformed_lsmdepth()
    path = tmp_path / "half.onnx"
    assert export_onnx(model, path, min_depth=0.1, max_depth=100.0, compat=True,
                       fp16=True) < 1e-2
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in graph.graph.value_info}
    samplers = [n for n in graph.graph.node if n.op_type == "GridSample"]
    assert len(samplers) == 2
    for node in samplers:   # feature map and grid in float32 in a float16 model
        assert {types.get(name) for name in node.input} == {TensorProto.FLOAT}, node.input
    assert any(t.data_type == TensorProto.FLOAT16 for t in graph.graph.initializer)


@pytest.mark.parametrize("name", ["lite-mono-tiny", "dna-depth-b0"])
def test_compat_export_of_models_without_deformconv(name, tmp_path):
    """Lite-Mono (LayerNorm, XCA) and DNA-Depth (EfficientNet) also go down to opset 16."""
    torch.manual_seed(0)
    model = build_depth_model(name, height=H, width=W)
    path = tmp_path / f"{name}.onnx"
    assert export_onnx(model, path, min_depth=0.1, max_depth=100.0, compat=True) < 1e-4
    graph = onnx.load(str(path))
    assert not NOT_FOR_OLD_RUNTIMES & {n.op_type for n in graph.graph.node}
    assert max(o.version for o in graph.opset_import) == COMPAT_OPSET


# ----------------------------------------------------------------------------------------------
# Older onnxruntime releases

def _deform_conv_only_model(path: Path) -> Path:
    """A one-node ONNX DeformConv(19) model (what the default export contains)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])
    off = helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 18, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 5])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], [0.1] * 18)
    node = helper.make_node("DeformConv", ["x", "w", "offset"], ["y"], group=2,
                            pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    graph = helper.make_graph([node], "deform", [x, off], [y], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9   # opset 19's IR version (ONNX 1.14), readable by onnxruntime 1.20
    onnx.save(model, path)
    return path


def onnxruntime_release(version: str) -> Path:
    """onnxruntime==version installed with pip --target under ~/.cache (once), or skip."""
    folder = ORT_CACHE / f"onnxruntime-{version}"
    if (folder / "onnxruntime" / "__init__.py").is_file():
        return folder
    partial = folder.with_name(f"{folder.name}.partial{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--target", str(partial), f"onnxruntime=={version}"],
                          check=False, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.skip(f"cannot install onnxruntime {version} from PyPI (offline?): "
                    f"{proc.stderr.strip()[-300:]}")
    try:
        partial.rename(folder)
    except OSError:   # another test run finished the same install first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


_RUN_IN_OLD_ORT = """
import json, sys
import numpy as np
import onnxruntime
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions, ModelLoadError
out = {"version": onnxruntime.__version__}
image = np.load(sys.argv[3])
for key, path in (("compat", sys.argv[1]), ("deformconv", sys.argv[2])):
    try:
        est = DepthEstimator(EstimatorOptions(model_path=path, device="cpu", num_threads=1))
        np.save(sys.argv[4], est.estimate(image, "rgb8"))
        out[key] = "ok"
    except ModelLoadError as exc:
        out[key] = str(exc)
print(json.dumps(out))
"""


def _run_in(folder: Path, compat: Path, deformconv: Path, image: np.ndarray, tmp: Path):
    np.save(tmp / "image.npy", image)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _RUN_IN_OLD_ORT, str(compat), str(deformconv),
                           str(tmp / "image.npy"), str(tmp / "depth.npy")], check=False,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(tmp / "depth.npy")


def _scene() -> np.ndarray:
    v, u = np.mgrid[0:120, 0:360]
    rng = np.random.default_rng(5)
    img = np.stack([u * 255 / 360, v * 255 / 120, 90 + 40 * np.sin(u / 9.0)], -1)
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("version", [COMPAT_ORT_TESTED, "1.20.1"])
def test_older_onnxruntime_runs_the_compat_model_like_the_current_runtime(
        version, exported, tmp_path):
    _, compat, _ = exported
    folder = onnxruntime_release(version)
    deformconv = _deform_conv_only_model(tmp_path / "deformconv.onnx")
    image = _scene()
    result, old_depth = _run_in(folder, compat, deformconv, image, tmp_path)
    assert result["version"] == version and result["compat"] == "ok"
    current = DepthEstimator(EstimatorOptions(model_path=str(compat), device="cpu",
                                              num_threads=1)).estimate(image, "rgb8")
    assert onnxruntime.__version__ != version
    np.testing.assert_allclose(old_depth, current, rtol=1e-5, atol=1e-6)
    # The DeformConv model: the message names the operator, both versions and the way out.
    message = result["deformconv"]
    for part in ("DeformConv", f"onnxruntime {version}", FIRST_ORT_RELEASE["DeformConv"],
                 "lsmdepth export --compat"):
        assert part in message, message


@pytest.mark.parametrize("version, runs", [("1.24.4", False), (FIRST_ORT_RELEASE["DeformConv"],
                                                                True)])
def test_first_release_with_deformconv_is_the_one_the_message_names(version, runs, tmp_path):
    folder = onnxruntime_release(version)
    model = _deform_conv_only_model(tmp_path / "deformconv.onnx")
    code = ("import sys, onnxruntime as o\n"
            "try:\n    o.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
            "except Exception as e:\n    print(e); sys.exit(3)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code, str(model)], check=False, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == (0 if runs else 3), proc.stdout + proc.stderr
    if not runs:
        assert "DeformConv(19)" in proc.stdout


def test_robot_requirements_state_only_tested_onnxruntime_minimums():
    root = Path(__file__).resolve().parents[1]
    lines = [ln.split("#")[0].strip() for ln in
             (root / "requirements-robot.txt").read_text().splitlines()]
    assert f"onnxruntime>={COMPAT_ORT_TESTED}" in lines
    release = lambda text: tuple(int(p) for p in text.split("."))
    for path in root.glob("requirements-robot*.txt"):   # every robot requirements file
        for line in path.read_text().splitlines():
            line = line.split("#")[0].replace(" ", "")
            for name in ("onnxruntime>=", "onnxruntime-gpu>="):
                if line.startswith(name):
                    minimum = line[len(name):].split(",")[0]
                    assert release(minimum) >= release(COMPAT_ORT_TESTED), (
                        f"{path.name}: {line} was never tested; the oldest onnxruntime tested "
                        f"is {COMPAT_ORT_TESTED} (--compat models; default exports need "
                        f">= {FIRST_ORT_RELEASE['DeformConv']})")


def test_the_current_runtime_has_deformconv_and_other_errors_get_no_operator_hint(tmp_path):
    model = _deform_conv_only_model(tmp_path / "d.onnx")
    onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert missing_operator_hint("INVALID_GRAPH: something else", "1.20.1") is None
    hint = missing_operator_hint("NOT_IMPLEMENTED : Could not find an implementation for "
                                 "Foo(23) node with name 'n'", "1.22.0")
    assert "Foo (opset 23)" in hint and "1.22.0" in hint and "--compat" in hint
    assert COMPAT_ORT_TESTED in hint
