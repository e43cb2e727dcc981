"""DepthEstimator: image in, metric depth out. No ROS here; the node is a thin layer on top.

    est = DepthEstimator(EstimatorOptions(model_path="models/lsmdepth_synthetic.pt"))
    depth = est.estimate(image_hwc_uint8, encoding="bgr8")        # float32 metres, NaN invalid
    result = est.run(image, encoding="rgb8", K=K)                    # depth + K + timings

Backends: ``torch`` (a checkpoint from `lsmdepth_ros.checkpoints`; CUDA when available, fp16
there, else CPU) and ``onnxruntime`` (an `.onnx` from `lsmdepth_ros.onnx.export`, or any other
ONNX depth model whose input size, normalisation and output kind are declared by the
``onnx_*`` options or embedded in the file, see `lsmdepth_ros.onnx.spec`; providers tried in
the order TensorRT, CUDA, CPU, see `lsmdepth_ros.onnx.runtime`). Both give the same depth to
1e-4 on the CPU. With an .onnx model nothing here imports torch: the torch backend imports it
when it is built.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lsmdepth_ros.geometry import DepthRange, disp_to_depth, scale_intrinsics
from lsmdepth_ros.image_encodings import CONVERTED, to_native
from lsmdepth_ros.onnx.runtime import open_session
from lsmdepth_ros.onnx.spec import (
    INPUT_FORMATS,
    OUTPUT_KINDS,
    output_map,
    output_to_depth,
    parse_triple,
    prepare_input,
    resolve_spec,
    session_metadata,
)
from lsmdepth_ros.options import check_choices, option
from lsmdepth_ros.scale import ScaleOptions, ScalePolicy, make_scale_policy

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")
DEVICES = ("auto", "cuda", "cpu")
OUTPUT_RESOLUTIONS = ("input", "network")
INTERPOLATIONS = ("area", "linear")

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}
#: everything `DepthEstimator` takes: the native encodings above and those image_encodings
#: converts to them (YUV 4:2:2, Bayer, 16-bit, OpenCV type names)
INPUT_ENCODINGS = (*ENCODINGS, *CONVERTED)


class ModelLoadError(ValueError):
    """The model file is missing, corrupt, or not a depth model this package can run."""


@dataclass(frozen=True)
class EstimatorOptions:
    model_path: str = option("", "Checkpoint (.pt, from lsmdepth train/save_checkpoint), official "
                             "Lite-Mono folder, or .onnx file. Empty: the shipped "
                             "models/lsmdepth_synthetic.pt")
    backend: str = option("auto", "Inference backend: 'torch', 'onnxruntime', or 'auto' "
                          "(onnxruntime for .onnx files, torch otherwise)", choices=BACKENDS)
    device: str = option("auto", "'auto' (CUDA when available), 'cuda' (falls back to the CPU "
                         "with a warning when absent) or 'cpu'", choices=DEVICES)
    fp16: bool = option(True, "Half precision on CUDA (ignored on the CPU)")
    num_threads: int = option(0, "CPU threads for the network (0: the library default)",
                              bounds=(0, 1024))
    trt_cache_dir: str = option("", "TensorRT engine cache folder for the onnxruntime backend "
                                "(empty: ~/.cache/lsmdepth_ros/tensorrt)")
    output_resolution: str = option("input", "'input': depth at the camera's resolution; "
                                    "'network': depth at the network's input size (camera_info "
                                    "scaled to match)", choices=OUTPUT_RESOLUTIONS)
    interpolation: str = option("area", "Resize filter for the network input: 'area' (best for "
                                "shrinking) or 'linear'", choices=INTERPOLATIONS)
    clip_min_depth: float = option(0.0, "Depth below this many metres is published as NaN "
                                   "(0: no lower clip)", live=True, bounds=(0.0, 10000.0))
    clip_max_depth: float = option(0.0, "Depth beyond this many metres is published as NaN "
                                   "(0: no upper clip)", live=True, bounds=(0.0, 10000.0))
    onnx_input_width: int = option(0, "Input width of an ONNX model without lsmdepth metadata "
                                   "and with a variable input size (0: from the file)",
                                   bounds=(0, 16384))
    onnx_input_height: int = option(0, "Input height of such an ONNX model (0: from the file)",
                                    bounds=(0, 16384))
    onnx_input_format: str = option("auto", "Channel order and pixel range an ONNX model takes "
                                    "before normalisation ('auto': the file's metadata, else "
                                    "rgb01)", choices=("auto",) + INPUT_FORMATS)
    onnx_mean: str = option("", "Per-channel mean subtracted from an ONNX model's input, three "
                            "comma-separated numbers in its pixel range, e.g. "
                            "'0.485,0.456,0.406' (empty: the file's metadata, else none)")
    onnx_std: str = option("", "Per-channel std dividing an ONNX model's input, e.g. "
                           "'0.229,0.224,0.225' (empty: the file's metadata, else none)")
    onnx_output: str = option("auto", "What an ONNX model outputs: sigmoid_disparity, depth, "
                              "disparity or inverse_depth ('auto': the file's metadata)",
                              choices=("auto",) + OUTPUT_KINDS)
    onnx_output_scale: float = option(0.0, "ONNX output scale: depth = scale * value, "
                                      "1 / (scale * value) for inverse_depth, scale / value for "
                                      "disparity (0: the file's metadata, else 1)",
                                      bounds=(0.0, 1e9))
    onnx_min_depth: float = option(0.0, "Depth range of an ONNX model's sigmoid disparity, "
                                   "lower end in metres (0: the file's metadata)",
                                   bounds=(0.0, 10000.0))
    onnx_max_depth: float = option(0.0, "Upper end of that range in metres (0: the file's "
                                   "metadata)", bounds=(0.0, 10000.0))
    scale: ScaleOptions = field(default_factory=ScaleOptions,
                                metadata={"help": "Scale policy options (scale.*)"})

    def __post_init__(self) -> None:
        check_choices(self)
        for text, what in ((self.onnx_mean, "onnx_mean"), (self.onnx_std, "onnx_std")):
            if text:
                parse_triple(text, what)
        if min(self.onnx_input_width, self.onnx_input_height, self.onnx_output_scale,
               self.onnx_min_depth, self.onnx_max_depth) < 0:
            raise ValueError("onnx_input_width/height, onnx_output_scale and onnx_min/max_depth "
                             "must be >= 0 (0: take it from the file)")
        if self.clip_min_depth < 0 or self.clip_max_depth < 0 or not (
                math.isfinite(self.clip_min_depth) and math.isfinite(self.clip_max_depth)):
            raise ValueError(f"clip_min_depth/clip_max_depth must be >= 0 metres (0 disables), got "
                             f"{self.clip_min_depth}/{self.clip_max_depth}")
        if 0 < self.clip_max_depth <= self.clip_min_depth:
            raise ValueError(f"clip_max_depth ({self.clip_max_depth}) must exceed clip_min_depth "
                             f"({self.clip_min_depth})")


@dataclass
class DepthResult:
    depth: np.ndarray                 # float32 [h, w] metres, NaN invalid
    K: np.ndarray | None              # 3x3 intrinsics matching `depth` (None when not given)
    scale: float                      # multiplier applied by the scale policy
    network_rgb: np.ndarray           # uint8 [H, W, 3] RGB image the network saw
    timings_ms: dict = field(default_factory=dict)   # preprocess, network, postprocess, total


def image_to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """Image in one of INPUT_ENCODINGS -> contiguous HxWx3 RGB uint8 (a view when already rgb8)."""
    image, encoding = to_native(image, encoding)
    channels, code = _check_image(image, encoding)
    if code is None:
        return image if image.flags.c_contiguous else np.ascontiguousarray(image)
    return cv2.cvtColor(image if channels > 1 else image.reshape(image.shape[:2]), code)


def _check_image(image: np.ndarray, encoding: str) -> tuple[int, int | None]:
    if encoding not in ENCODINGS:
        raise ValueError(f"image encoding '{encoding}' is not supported; expected one of "
                         f"{', '.join(INPUT_ENCODINGS)} (convert it upstream, e.g. image_proc)")
    channels, code = ENCODINGS[encoding]
    if image.dtype != np.uint8:
        raise ValueError(f"{encoding} image must be uint8, got {image.dtype}")
    shape_ok = (image.ndim == 2 and channels == 1) or (image.ndim == 3 and image.shape[2] == channels)
    if not shape_ok:
        raise ValueError(f"{encoding} image must be HxW{'' if channels == 1 else f'x{channels}'}, "
                         f"got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape}); expected a non-zero size")
    return channels, code


# ----------------------------------------------------------------------------------------------
# backends: batch [1,3,H,W] float32 RGB in [0,1] -> the network's output map [H,W] float32
# (sigmoid disparity for this package's models); `to_depth` turns a (resized) map into metres

class _TorchBackend:
    name = "torch"

    def __init__(self, path: Path, device: str, fp16: bool, num_threads: int,
                 say: Callable[[str], None]):
        import torch

        from lsmdepth_ros.checkpoints import load_checkpoint

        if num_threads > 0:
            torch.set_num_threads(num_threads)
        try:
            model, info = load_checkpoint(path, map_location="cpu")
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(f"cannot load the depth model from '{path}': {exc}. Expected a "
                                 "checkpoint written by lsmdepth train / save_checkpoint (or an "
                                 "official Lite-Mono folder); check model_path.") from exc
        use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        if device == "cuda" and not use_cuda:
            say("CUDA was requested but torch finds no CUDA device; falling back to the CPU "
                "(set device:=cpu to silence this)")
        self.torch = torch
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.dtype = torch.float16 if (use_cuda and fp16) else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        if use_cuda:
            precision = "fp16" if self.dtype == torch.float16 else "fp32"
            self.device_name = f"cuda:{torch.cuda.get_device_name(self.device)} ({precision})"
        else:
            self.device_name = f"cpu ({torch.get_num_threads()} threads)"
            say(f"running the depth network on the CPU with {torch.get_num_threads()} threads "
                "(no CUDA device): expect a low frame rate")
        self.model_name = str(getattr(info, "name", getattr(model, "name", "unknown")))
        opts = dict(getattr(info, "options", None) or getattr(model, "options", {}))
        self.input_size = (int(opts["width"]), int(opts["height"]))
        self.depth_range = DepthRange(float(info.min_depth), float(info.max_depth))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=True)
            disp = self.model(x)[("disp", 0)]
            return disp[0, 0].float().cpu().numpy()

    def to_depth(self, disp: np.ndarray) -> np.ndarray:
        rng = self.depth_range
        return disp_to_depth(disp, rng.min_depth, rng.max_depth)[1].astype(np.float32, copy=False)


class _OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, options: EstimatorOptions, say: Callable[[str], None]):
        o = options
        try:
            opened = open_session(path, device=o.device, fp16=o.fp16,
                                  num_threads=o.num_threads, trt_cache_dir=o.trt_cache_dir,
                                  say=say)
        except Exception as exc:  # onnxruntime raises its own exception types
            import onnxruntime

            from lsmdepth_ros.onnx.operators import load_error_message
            raise ModelLoadError(load_error_message(path, exc, onnxruntime.__version__)) from exc
        self.session, self.device_name = opened.session, opened.device
        meta = session_metadata(self.session)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.model_name = str(meta.get("lsmdepth.model", path.stem))
        try:
            self.spec = resolve_spec(
                path, meta, inp.shape, input_width=o.onnx_input_width,
                input_height=o.onnx_input_height, input_format=o.onnx_input_format,
                mean=o.onnx_mean, std=o.onnx_std, output=o.onnx_output,
                output_scale=o.onnx_output_scale, min_depth=o.onnx_min_depth,
                max_depth=o.onnx_max_depth)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc
        self.input_size = self.spec.input_size
        self.depth_range = self.spec.depth_range

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = prepare_input(batch, self.spec)
        out = self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})
        return output_map(out[0], self.spec)

    def to_depth(self, value: np.ndarray) -> np.ndarray:
        return output_to_depth(value, self.spec)


# ----------------------------------------------------------------------------------------------

def resolve_model_path(model_path: str) -> Path:
    if model_path:
        return Path(model_path).expanduser()
    from lsmdepth_ros.resources import default_model_path

    return default_model_path()


class DepthEstimator:
    """Pre-processing, the network, disparity -> depth, scale policy and clipping."""

    def __init__(self, options: EstimatorOptions | None = None,
                 say: Callable[[str], None] | None = None):
        self.options = options or EstimatorOptions()
        self._say = say or log.warning
        path = resolve_model_path(self.options.model_path)
        if not path.exists():
            raise ModelLoadError(f"model file '{path}' does not exist; set model_path to a "
                                 "checkpoint (.pt), a Lite-Mono folder or an .onnx file")
        self.model_path = path
        backend = self.options.backend
        if backend == "auto":
            backend = "onnxruntime" if path.suffix.lower() == ".onnx" else "torch"
        o = self.options
        if backend == "torch":
            if path.suffix.lower() == ".onnx":
                raise ModelLoadError(f"'{path}' is an ONNX file; use backend 'onnxruntime' or "
                                     "'auto' for it")
            self._net = _TorchBackend(path, o.device, o.fp16, o.num_threads, self._say)
        else:
            if path.suffix.lower() != ".onnx":
                raise ModelLoadError(f"backend 'onnxruntime' needs an .onnx file, got '{path}'; "
                                     "export one with `lsmdepth export` or use backend 'torch'")
            self._net = _OnnxBackend(path, o, self._say)
        w, h = self._net.input_size
        self._batch = np.empty((1, 3, h, w), dtype=np.float32)
        self._lock = threading.Lock()
        self._scale: ScalePolicy = make_scale_policy(o.scale)

    # -- facts -------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._net.name

    @property
    def device(self) -> str:
        return self._net.device_name

    @property
    def model_name(self) -> str:
        return self._net.model_name

    @property
    def network_size(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        return self._net.input_size

    @property
    def depth_range(self) -> DepthRange:
        return self._net.depth_range

    @property
    def scale_policy(self) -> ScalePolicy:
        return self._scale

    def update_options(self, options: EstimatorOptions) -> None:
        """Apply live-changeable options (clip range, scale); the rest needs a new estimator."""
        with self._lock:
            self.options = options
            self._scale = self._scale.with_options(options.scale)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return input_size if self.options.output_resolution == "input" else self.network_size

    # -- steps -------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray, encoding: str = "rgb8") -> tuple[np.ndarray, np.ndarray]:
        """Resize + convert to RGB; returns (the network's RGB uint8 image, batch [1,3,H,W]).
        YUV, Bayer and 16-bit images become 8-bit RGB / mono first (image_encodings)."""
        image, encoding = to_native(image, encoding)
        channels, code = _check_image(image, encoding)
        w, h = self.network_size
        if image.shape[1] != w or image.shape[0] != h:
            shrinking = image.shape[1] > w and image.shape[0] > h
            interp = (cv2.INTER_AREA if self.options.interpolation == "area" and shrinking
                      else cv2.INTER_LINEAR)
            small = cv2.resize(image, (w, h), interpolation=interp)
        else:
            small = image
        small = small.reshape(h, w, channels)
        rgb = small if code is None else cv2.cvtColor(small if channels > 1 else small[..., 0], code)
        rgb = np.ascontiguousarray(rgb)
        np.multiply(rgb.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=self._batch[0],
                    casting="unsafe")
        return rgb, self._batch

    def network_output(self, batch: np.ndarray) -> np.ndarray:
        """The network's output map [H, W] at the network size: the sigmoid disparity for this
        package's models, else the ONNX model's declared output kind (see `output_to_depth`)."""
        return self._net(batch)

    def predict_disparity(self, batch: np.ndarray) -> np.ndarray:
        """Deprecated name of `network_output` (the map is not always a disparity)."""
        return self.network_output(batch)

    def output_to_depth(self, value: np.ndarray) -> np.ndarray:
        """A `network_output` map (or a resized one) -> depth in metres, before scaling."""
        return self._net.to_depth(value)

    def run(self, image: np.ndarray, encoding: str = "rgb8", K: np.ndarray | None = None
            ) -> DepthResult:
        """Depth for one image; `K` (3x3, at the image's resolution) enables the ground fit and
        is returned rescaled to the depth's resolution."""
        t0 = time.perf_counter()
        with self._lock:
            options, policy = self.options, self._scale
        in_size = (image.shape[1], image.shape[0])
        rgb, batch = self.preprocess(image, encoding)
        t1 = time.perf_counter()
        disp = self.network_output(batch)
        t2 = time.perf_counter()
        net_size = self.network_size
        K_net = None if K is None else scale_intrinsics(K, in_size, net_size)
        depth_net = self._net.to_depth(disp) if policy.needs_depth else None
        factor = policy.update(depth_net, K_net)
        if options.output_resolution == "input" and in_size != net_size:
            disp = cv2.resize(disp, in_size, interpolation=cv2.INTER_LINEAR)
            K_out = None if K is None else np.array(K, dtype=np.float64)
        else:
            K_out = K_net
        depth = self._to_depth(disp, factor, options)
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                   "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return DepthResult(depth=depth, K=K_out, scale=factor, network_rgb=rgb, timings_ms=timings)

    def estimate(self, image: np.ndarray, encoding: str = "rgb8",
                 K: np.ndarray | None = None) -> np.ndarray:
        """Depth in metres (float32, NaN invalid) at the output resolution."""
        return self.run(image, encoding, K).depth

    def _to_depth(self, disp: np.ndarray, factor: float, options: EstimatorOptions) -> np.ndarray:
        depth = self._net.to_depth(disp)
        if factor != 1.0:
            depth *= np.float32(factor)
        lo, hi = options.clip_min_depth, options.clip_max_depth
        if lo > 0 or hi > 0:
            bad = ~(depth >= lo) if lo > 0 else np.zeros(depth.shape, bool)
            if hi > 0:
                bad |= depth > hi
            depth[bad] = np.nan
        return depth
