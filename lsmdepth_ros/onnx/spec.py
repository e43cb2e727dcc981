"""How to feed any ONNX depth model and read its output: the input size, the pixel format and
normalisation, and whether the output is depth, disparity, inverse depth or sigmoid disparity.

Sources, first one that says wins: the estimator's ``onnx_*`` options (node parameters), the
file's metadata (``lsmdepth.*`` keys; `lsmdepth export` writes them, `describe_onnx` adds them
to a third-party file; read through onnxruntime, so no onnx or torch package is needed), the graph's fixed input shape, and the defaults below.

Metadata keys: ``lsmdepth.input_width`` / ``input_height`` (pixels), ``lsmdepth.input_format``
(``rgb01`` | ``rgb255`` | ``bgr01`` | ``bgr255``: channel order and pixel range before
normalisation), ``lsmdepth.input_mean`` / ``input_std`` (three comma-separated numbers in that
range, e.g. ``0.485,0.456,0.406``), ``lsmdepth.output`` (see OUTPUT_KINDS),
``lsmdepth.output_scale``, ``lsmdepth.min_depth`` / ``max_depth``.

Output kinds -> depth in metres (non-finite or non-positive values -> NaN):

* ``sigmoid_disparity``: monodepth2's sigmoid in (0, 1), mapped with the min/max depth range;
* ``depth``: ``output_scale * value`` (e.g. 0.001 for a model that predicts millimetres);
* ``inverse_depth``: ``1 / (output_scale * value)`` (value in 1/m when the scale is 1);
* ``disparity``: ``output_scale / value`` (``output_scale`` = fx * baseline for a stereo
  disparity in pixels; 1 for a relative disparity such as MiDaS or Depth Anything, whose depth
  is then only known up to scale and shift: pair it with a scale policy).

Layouts: the input may be NCHW or NHWC (read from the graph's input shape); the output may be
[1,1,h,w], [1,h,w], [h,w] or [1,h,w,1] at any size (it is resized to the input size).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lsmdepth_ros.atomic_files import atomic_path
from lsmdepth_ros.geometry import DepthRange, disp_to_depth

META = "lsmdepth."
OUTPUT_KINDS = ("sigmoid_disparity", "depth", "disparity", "inverse_depth")
INPUT_FORMATS = ("rgb01", "rgb255", "bgr01", "bgr255")
DEFAULT_RANGE = DepthRange()


@dataclass(frozen=True)
class OnnxModelSpec:
    input_size: tuple[int, int]          # (width, height)
    input_format: str = "rgb01"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: str = "sigmoid_disparity"
    output_scale: float = 1.0
    depth_range: DepthRange = DEFAULT_RANGE
    channels_last: bool = False          # NHWC input

    @property
    def identity_input(self) -> bool:
        """True when the network takes the estimator's RGB [0,1] NCHW batch unchanged."""
        return (self.input_format == "rgb01" and self.mean == (0.0, 0.0, 0.0)
                and self.std == (1.0, 1.0, 1.0) and not self.channels_last)


def session_metadata(session) -> dict[str, str]:
    """The ``metadata_props`` of the model an onnxruntime InferenceSession runs."""
    return dict(session.get_modelmeta().custom_metadata_map)


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict, through onnxruntime (CPU session)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # No graph optimisation: only the metadata is wanted, not a runnable session.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors have no common base class
        raise ValueError(f"{path} is not a readable ONNX file: {exc}") from exc
    return session_metadata(session)


def parse_triple(text: str, what: str) -> tuple[float, float, float]:
    """'0.485, 0.456, 0.406' -> (0.485, 0.456, 0.406), with a clear error otherwise."""
    try:
        values = tuple(float(v) for v in str(text).replace(";", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be three comma-separated numbers (R, G, B), e.g. "
                         f"'0.485,0.456,0.406'; got {text!r}")
    return values  # type: ignore[return-value]


def _static_input_layout(shape) -> tuple[tuple[int, int] | None, bool]:
    """((width, height) or None when symbolic, channels_last) from a graph input shape."""
    dims = list(shape or [])
    if len(dims) != 4:
        return None, False
    channels_last = dims[3] == 3 and dims[1] != 3
    h, w = (dims[1], dims[2]) if channels_last else (dims[2], dims[3])
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return (w, h), channels_last
    return None, channels_last


def resolve_spec(path: str | os.PathLike, meta: dict[str, str], input_shape, *,
                 input_width: int = 0, input_height: int = 0, input_format: str = "auto",
                 mean: str = "", std: str = "", output: str = "auto", output_scale: float = 0.0,
                 min_depth: float = 0.0, max_depth: float = 0.0) -> OnnxModelSpec:
    """Combine declared options, file metadata and the graph's input shape; ValueError naming
    what is missing and how to declare it."""
    def meta_get(key: str) -> str | None:
        value = meta.get(META + key)
        return value if value not in (None, "") else None

    graph_size, channels_last = _static_input_layout(input_shape)
    if input_width > 0 and input_height > 0:
        size = (int(input_width), int(input_height))
    elif meta_get("input_width") and meta_get("input_height"):
        size = (int(meta_get("input_width")), int(meta_get("input_height")))
    elif graph_size is not None:
        size = graph_size
    else:
        raise ValueError(f"ONNX model '{path}' has a variable input size and no "
                         "lsmdepth.input_width/height metadata; declare the size it was "
                         "trained at with onnx_input_width and onnx_input_height")

    fmt = input_format if input_format != "auto" else (meta_get("input_format") or "rgb01")
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"ONNX model '{path}': input format {fmt!r} is not one of "
                         f"{', '.join(INPUT_FORMATS)}")
    mean_v = parse_triple(mean or meta_get("input_mean") or "0,0,0", "onnx mean")
    std_v = parse_triple(std or meta_get("input_std") or "1,1,1", "onnx std")
    if min(abs(s) for s in std_v) == 0:
        raise ValueError(f"onnx std must not contain 0, got {std_v}")

    kind = output if output != "auto" else meta_get("output")
    if kind is None:
        raise ValueError(f"ONNX model '{path}' does not say what it outputs (no lsmdepth.output "
                         f"metadata); set onnx_output to one of {', '.join(OUTPUT_KINDS)}, or "
                         "embed it with lsmdepth_ros.onnx.spec.describe_onnx")
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"ONNX model '{path}': output kind {kind!r} is not one of "
                         f"{', '.join(OUTPUT_KINDS)}")
    scale = output_scale if output_scale > 0 else float(meta_get("output_scale") or 1.0)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"onnx output scale must be a positive number, got {scale}")

    lo = min_depth if min_depth > 0 else (float(meta_get("min_depth")) if meta_get("min_depth")
                                          else None)
    hi = max_depth if max_depth > 0 else (float(meta_get("max_depth")) if meta_get("max_depth")
                                          else None)
    if kind == "sigmoid_disparity" and (lo is None or hi is None):
        raise ValueError(f"ONNX model '{path}' outputs a sigmoid disparity but its depth range "
                         "is unknown (no lsmdepth.min_depth/max_depth metadata); re-export it "
                         "with `lsmdepth export` or set onnx_min_depth and onnx_max_depth")
    rng = DepthRange(lo if lo is not None else DEFAULT_RANGE.min_depth,
                     hi if hi is not None else DEFAULT_RANGE.max_depth)
    return OnnxModelSpec(input_size=size, input_format=fmt, mean=mean_v, std=std_v,
                         output=kind, output_scale=scale, depth_range=rng,
                         channels_last=channels_last)


def prepare_input(batch: np.ndarray, spec: OnnxModelSpec) -> np.ndarray:
    """The estimator's [1,3,H,W] RGB [0,1] float32 batch -> what the network takes."""
    if spec.identity_input:
        return batch
    x = batch[:, ::-1] if spec.input_format.startswith("bgr") else batch
    # mean/std are per channel in the model's own channel order
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    gain = np.float32(255.0 if spec.input_format.endswith("255") else 1.0)
    x = (x * gain - mean[None, :, None, None]) / std[None, :, None, None]
    if spec.channels_last:
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def output_map(raw: np.ndarray, spec: OnnxModelSpec) -> np.ndarray:
    """The network's first output -> float32 [H, W] at the input size."""
    out = np.asarray(raw, dtype=np.float32)
    squeezed = out.reshape([d for d in out.shape if d != 1] or [1])
    if squeezed.ndim != 2:
        raise ValueError(f"the ONNX model's output has shape {out.shape}; expected one depth "
                         "map ([1,1,h,w], [1,h,w], [h,w] or [1,h,w,1])")
    w, h = spec.input_size
    if squeezed.shape != (h, w):
        squeezed = cv2.resize(squeezed, (w, h), interpolation=cv2.INTER_LINEAR)
    return squeezed


def output_to_depth(value: np.ndarray, spec: OnnxModelSpec) -> np.ndarray:
    """Output map (any kind) -> depth in metres, float32, NaN where invalid."""
    v = np.asarray(value, dtype=np.float32)
    if spec.output == "sigmoid_disparity":
        rng = spec.depth_range
        return disp_to_depth(v, rng.min_depth, rng.max_depth)[1].astype(np.float32, copy=False)
    s = np.float32(spec.output_scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.output == "depth":
            depth = v * s
        elif spec.output == "inverse_depth":
            depth = np.float32(1.0) / (v * s)
        else:  # disparity
            depth = s / v
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth.astype(np.float32, copy=False)


def describe_onnx(src: str | os.PathLike, dst: str | os.PathLike | None = None, *,
                  output: str, input_width: int | None = None, input_height: int | None = None,
                  input_format: str = "rgb01", mean: str | None = None, std: str | None = None,
                  output_scale: float | None = None, min_depth: float | None = None,
                  max_depth: float | None = None, model: str | None = None) -> Path:
    """Embed the lsmdepth.* description into an ONNX file (atomically; in place by default),
    so the node runs it with no onnx_* parameters."""
    import onnx

    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {', '.join(OUTPUT_KINDS)}, got {output!r}")
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {', '.join(INPUT_FORMATS)}, got "
                         f"{input_format!r}")
    for text, what in ((mean, "mean"), (std, "std")):
        if text is not None:
            parse_triple(text, what)
    values = {"output": output, "input_format": input_format, "input_width": input_width,
              "input_height": input_height, "input_mean": mean, "input_std": std,
              "output_scale": output_scale, "min_depth": min_depth, "max_depth": max_depth,
              "model": model}
    src = Path(src)
    proto = onnx.load(str(src))
    kept = {p.key: p.value for p in proto.metadata_props}
    kept.update({META + k: (repr(float(v)) if isinstance(v, float) else str(v))
                 for k, v in values.items() if v is not None})
    del proto.metadata_props[:]
    for key, value in kept.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    dst = Path(dst) if dst is not None else src
    with atomic_path(dst) as tmp:
        onnx.save(proto, str(tmp))
    return dst
