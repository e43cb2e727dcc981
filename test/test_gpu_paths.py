"""GPU paths checked without a GPU: onnxruntime's provider order and options (TensorRT with an
engine cache and fp16, then CUDA, then the CPU), the provider that actually runs as reported to
the user, and the torch backend's CUDA fp16 placement, with the providers / CUDA mocked."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lsmdepth_ros.checkpoints import save_checkpoint
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions
from lsmdepth_ros.networks import build_depth_model
from lsmdepth_ros.onnx import runtime
from lsmdepth_ros.onnx.export import export_onnx
from lsmdepth_ros.onnx.runtime import CPU, CUDA, TENSORRT, choose_providers

ALL = {TENSORRT, CUDA, CPU}
_REAL_SESSION = ort.InferenceSession


def test_provider_order_and_tensorrt_options(tmp_path):
    got = choose_providers(ALL, "auto", True, tmp_path)
    assert got == [(TENSORRT, {"trt_engine_cache_enable": True,
                               "trt_engine_cache_path": str(tmp_path),
                               "trt_fp16_enable": True}), CUDA, CPU]
    assert choose_providers(ALL, "cuda", False, tmp_path)[0][1]["trt_fp16_enable"] is False
    assert choose_providers(ALL, "cpu", True, tmp_path) == [CPU]
    assert choose_providers({CUDA, CPU}, "auto", True, tmp_path) == [CUDA, CPU]
    assert choose_providers({CPU}, "cuda", True, tmp_path) == [CPU]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", height=64, width=192).eval()
    folder = tmp_path_factory.mktemp("gpu")
    export_onnx(model, folder / "m.onnx", min_depth=0.1, max_depth=80.0, verify=False)
    save_checkpoint(folder / "m.pt", model, min_depth=0.1, max_depth=80.0)
    return folder


class _FakeGpuSession:
    """An InferenceSession that was asked for GPU providers: records the request, runs on the
    CPU, and reports `active` as the providers that started (as onnxruntime does)."""
    requests: ClassVar[list] = []
    active: ClassVar[list] = [TENSORRT, CUDA, CPU]

    def __init__(self, path, options, providers):
        type(self).requests.append(providers)
        self._real = _REAL_SESSION(path, options, providers=[CPU])

    def get_providers(self):
        return list(self.active)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.parametrize("active, device_prefix, warned", [
    ([TENSORRT, CUDA, CPU], "TensorrtExecutionProvider (fp16, engine cache", False),
    ([CUDA, CPU], "CUDAExecutionProvider", True),     # TensorRT libraries missing
    ([CPU], "CPUExecutionProvider", True),
])
def test_reported_provider_is_the_one_that_runs(model_files, monkeypatch, tmp_path, active,
                                                device_prefix, warned):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(_FakeGpuSession, "requests", [])
    monkeypatch.setattr(_FakeGpuSession, "active", active)
    monkeypatch.setattr(ort, "InferenceSession", _FakeGpuSession)
    said = []
    cache = tmp_path / "trt"
    est = DepthEstimator(EstimatorOptions(model_path=str(model_files / "m.onnx"),
                                          trt_cache_dir=str(cache)), say=said.append)
    (request,) = _FakeGpuSession.requests
    assert [p if isinstance(p, str) else p[0] for p in request] == [TENSORRT, CUDA, CPU]
    assert request[0][1]["trt_engine_cache_path"] == str(cache) and cache.is_dir()
    assert est.device.startswith(device_prefix)
    assert any("could not start TensorrtExecutionProvider" in s for s in said) == warned
    depth = est.estimate(np.full((64, 192, 3), 128, np.uint8))
    assert depth.shape == (64, 192) and np.isfinite(depth).all()


def test_torch_backend_puts_the_model_on_cuda_in_fp16(model_files, monkeypatch):
    moved = []

    def fake_to(self, *args, **kwargs):
        moved.append(args)
        return self

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.nn.Module, "to", fake_to)
    said = []
    est = DepthEstimator(EstimatorOptions(model_path=str(model_files / "m.pt")), say=said.append)
    assert moved[-1] == (torch.device("cuda"), torch.float16)
    assert est.device == "cuda:Fake GPU (fp16)" and not said
    DepthEstimator(EstimatorOptions(model_path=str(model_files / "m.pt"), fp16=False))
    assert moved[-1] == (torch.device("cuda"), torch.float32)
    DepthEstimator(EstimatorOptions(model_path=str(model_files / "m.pt"), device="cpu"),
                   say=said.append)
    assert moved[-1] == (torch.device("cpu"), torch.float32)
    assert any("on the CPU" in s for s in said)


def test_default_trt_cache_dir_is_under_the_user_cache():
    assert runtime.default_trt_cache_dir().parts[-3:] == (".cache", "lsmdepth_ros", "tensorrt")
