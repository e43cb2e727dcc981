"""With an .onnx model the node's code path imports neither torch nor the onnx packages: a fresh
interpreter where they cannot be imported loads the node, messages, geometry, scale policies and
DepthEstimator, runs a frame, and gets the depth that the torch backend computes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lsmdepth_ros.checkpoints import save_checkpoint
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions
from lsmdepth_ros.networks import build_depth_model
from lsmdepth_ros.onnx.export import export_onnx

BLOCKER = Path(__file__).parent / "torch_blocker"
CHILD = r"""
import json, sys
import numpy as np
try:
    import torch  # noqa: F401
    sys.exit("the blocker did not block torch")
except ImportError:
    pass
import lsmdepth_ros.ros.node, lsmdepth_ros.ros.messages, lsmdepth_ros.geometry, lsmdepth_ros.scale
import lsmdepth_ros.ros.pipeline, lsmdepth_ros.ros.lifecycle_node
lsmdepth_ros.ros.node.make_depth_node_class()  # the node class: rclpy, params, pipeline
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions
from lsmdepth_ros.scale import ScaleOptions
est = DepthEstimator(EstimatorOptions(model_path=sys.argv[1], num_threads=1,
                                      scale=ScaleOptions(policy="fixed", factor=2.0)))
image = np.load(sys.argv[2])
depth = est.estimate(image, "bgr8")
np.save(sys.argv[3], depth)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "onnx"))
print(json.dumps({"backend": est.backend, "device": est.device, "heavy": heavy}))
"""


def _run_without_torch(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCKER), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_onnx_runtime_path_runs_without_torch(tmp_path):
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", height=64, width=192).eval()
    with torch.no_grad():  # random decoder weights give a nearly flat map; widen it
        for p in model.decoder.parameters():
            p.mul_(4.0)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, min_depth=0.1, max_depth=80.0)
    onnx_path = tmp_path / "m.onnx"
    export_onnx(model, onnx_path, min_depth=0.1, max_depth=80.0, verify=False)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (96, 320, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)

    out = _run_without_torch(["-c", CHILD, str(onnx_path), str(tmp_path / "image.npy"),
                              str(tmp_path / "depth.npy")], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["backend"] == "onnxruntime" and report["heavy"] == []

    # The same frame through the torch backend (this process has torch), times the fixed scale.
    reference = DepthEstimator(EstimatorOptions(model_path=str(ckpt), num_threads=1))
    expected = 2.0 * reference.estimate(image, "bgr8")
    got = np.load(tmp_path / "depth.npy")
    assert got.shape == (96, 320) and np.isfinite(got).all()
    assert np.abs(got / expected - 1).max() < 1e-4


def test_blocker_really_blocks():
    out = _run_without_torch(["-c", "import torch"], timeout=120)
    assert out.returncode != 0 and "torch-free runtime check" in out.stderr


@pytest.mark.parametrize("module", ["lsmdepth_ros.onnx.spec", "lsmdepth_ros.onnx.runtime"])
def test_onnx_description_modules_do_not_import_torch(module):
    out = _run_without_torch(["-c", f"import {module}"], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
