"""onnxruntime sessions for the depth backend: which execution provider runs, and why.

Providers are tried in the order a robot wants them: TensorRT (engine cache on disk, so only
the first start pays the minutes of engine building; fp16 when allowed), then CUDA, then the
CPU. onnxruntime silently drops a provider it cannot start (missing CUDA/TensorRT libraries),
so the one that actually runs is read back from the session, reported in `OrtSession.device`
(the node logs it at start-up and in its diagnostics) and warned about when it is not the first
choice. No torch here.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TENSORRT, CUDA, CPU = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                       "CPUExecutionProvider")
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)


def default_trt_cache_dir() -> Path:
    return Path.home() / ".cache" / "lsmdepth_ros" / "tensorrt"


def choose_providers(available, device: str, fp16: bool, trt_cache_dir: str | os.PathLike
                     ) -> list[str | tuple[str, dict]]:
    """The providers argument of InferenceSession for `device` ('auto' | 'cuda' | 'cpu'),
    restricted to the `available` ones, best first."""
    wanted = [CPU] if device == "cpu" else list(PROVIDER_ORDER)
    chosen: list[str | tuple[str, dict]] = []
    for name in wanted:
        if name not in available:
            continue
        if name == TENSORRT:
            chosen.append((name, {"trt_engine_cache_enable": True,
                                  "trt_engine_cache_path": str(trt_cache_dir),
                                  "trt_fp16_enable": bool(fp16)}))
        else:
            chosen.append(name)
    return chosen or [CPU]


@dataclass
class OrtSession:
    session: object          # onnxruntime.InferenceSession
    requested: list[str]     # provider names, best first
    active: str              # the provider that runs the graph
    device: str              # for people: provider plus precision / threads / cache


def open_session(path: str | os.PathLike, *, device: str = "auto", fp16: bool = True,
                 num_threads: int = 0, trt_cache_dir: str = "",
                 say: Callable[[str], None] = print) -> OrtSession:
    """An InferenceSession on the best provider; `say` gets a warning when a GPU provider
    was wanted but does not run. onnxruntime errors propagate (the caller words them)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    gpu = {TENSORRT, CUDA} & available
    if device == "cuda" and not gpu:
        say("CUDA was requested but onnxruntime has no TensorRT/CUDA provider (install "
            "onnxruntime-gpu); falling back to the CPU")
    cache = Path(trt_cache_dir).expanduser() if trt_cache_dir else default_trt_cache_dir()
    providers = choose_providers(available, device, fp16, cache)
    requested = [p if isinstance(p, str) else p[0] for p in providers]
    if TENSORRT in requested:
        cache.mkdir(parents=True, exist_ok=True)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # onnxruntime's own warnings are for its developers
    if num_threads > 0:
        opts.intra_op_num_threads = num_threads
    session = ort.InferenceSession(str(path), opts, providers=providers)
    active = session.get_providers()[0]
    if active != requested[0]:
        say(f"onnxruntime could not start {requested[0]} (check its CUDA/TensorRT libraries); "
            f"the depth network runs on {active}")
    if active == TENSORRT:
        detail = f"{'fp16' if fp16 else 'fp32'}, engine cache {cache}"
    elif active == CUDA:
        detail = "the graph's own precision"
    else:
        detail = (f"{num_threads} thread{'s' if num_threads > 1 else ''}" if num_threads > 0
                  else "default threads")
        say("running the depth network on the CPU (onnxruntime CPUExecutionProvider): expect "
            "a low frame rate")
    return OrtSession(session, requested, active, f"{active} ({detail})")
