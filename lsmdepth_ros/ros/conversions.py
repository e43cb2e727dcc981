"""numpy <-> sensor_msgs (Image, CompressedImage, CameraInfo, PointCloud2) and stamps, written once.

Duck-typed: rclpy messages and rosbags' dataclasses share field names, so every reader here
takes either, and every writer returns the field values or fills a buffer that the thin adapters
(`ros.messages` for rclpy, `bags.messages` for rosbags) wrap into their message type. No rclpy,
no rosbags: the bag tools run on machines without ROS.

Every reader validates its message and raises `MessageError` saying what was wrong, what was
expected and what to do; the node turns those into throttled warnings, the bag tools into
errors that name the bag and topic.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import cv2
import numpy as np

from lsmdepth_ros.image_encodings import (
    CONVERTED,
    converted_shape,
    stretch_to_8bit,
    to_native,
)
from lsmdepth_ros.inference import INPUT_ENCODINGS
from lsmdepth_ros.inference import image_to_rgb as array_to_rgb

LITTLE_ENDIAN = sys.byteorder == "little"
NS_PER_S = 1_000_000_000


class MessageError(ValueError):
    """A message that cannot be used; `kind` groups warnings for throttling."""

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


# ----------------------------------------------------------------------------------------------
# time

def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec) of a builtin_interfaces/Time."""
    return int(stamp_ns) // NS_PER_S, int(stamp_ns) % NS_PER_S


def header_ns(msg) -> int:
    """The header stamp of a stamped message, in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


# ----------------------------------------------------------------------------------------------
# Image

# encoding -> (dtype, channels): the encodings numpy can represent
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "rgb16": (np.dtype(np.uint16), 3), "bgr16": (np.dtype(np.uint16), 3),
    "mono8": (np.dtype(np.uint8), 1), "mono16": (np.dtype(np.uint16), 1),
    "8UC1": (np.dtype(np.uint8), 1), "8UC3": (np.dtype(np.uint8), 3),
    "16UC1": (np.dtype(np.uint16), 1), "16SC1": (np.dtype(np.int16), 1),
    "32FC1": (np.dtype(np.float32), 1), "64FC1": (np.dtype(np.float64), 1),
    # YUV 4:2:2 (2 bytes per pixel), Bayer and the rest image_encodings converts
    **{enc: converted_shape(enc) for enc in CONVERTED},
}



def image_to_numpy(msg, supported: tuple[str, ...] | None = None) -> np.ndarray:
    """A numpy view [h, w] or [h, w, c] of an Image, honouring `step` padding and endianness.

    `supported` limits the accepted encodings (default: all of IMAGE_ENCODINGS). A last row
    without its padding (some drivers) is accepted; foreign byte order costs one copy.
    """
    enc = msg.encoding
    allowed = supported if supported is not None else tuple(IMAGE_ENCODINGS)
    if enc not in allowed or enc not in IMAGE_ENCODINGS:
        raise MessageError("encoding", f"image encoding '{enc}' is not supported; expected one of "
                           f"{', '.join(allowed)}. Convert it upstream (e.g. image_proc debayer).")
    dtype, channels = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise MessageError("size", f"image is empty ({w}x{h}); expected a non-zero width and "
                           "height. Check the camera driver.")
    row = w * channels * dtype.itemsize
    if step < row:
        raise MessageError("step", f"image step {step} is shorter than one row of {w} {enc} "
                           f"pixels ({row} bytes); the message header is inconsistent.")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < step * (h - 1) + row:
        raise MessageError("data", f"image data has {buf.size} bytes but {w}x{h} {enc} with step "
                           f"{step} needs {step * (h - 1) + row}; the message is truncated.")
    if buf.size < step * h:   # last row without padding: one copy
        buf = np.concatenate([buf, np.zeros(step * h - buf.size, np.uint8)])
    dt = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    shape = (h, w, channels) if channels > 1 else (h, w)
    strides = (step, channels * dtype.itemsize, dtype.itemsize) if channels > 1 else \
        (step, dtype.itemsize)
    view = np.ndarray(shape, dtype=dt, buffer=buf[: step * h], strides=strides)
    if dt.byteorder not in ("=", "|") and dt != dtype:
        view = view.astype(dtype)   # foreign byte order: one converting copy
    return view


def input_image_to_numpy(msg) -> tuple[np.ndarray, str]:
    """A camera image the estimator takes as (array, native 8-bit encoding): a view for rgb8,
    bgr8, mono8, rgba8 and bgra8; YUV 4:2:2, Bayer and 16-bit images converted (a copy)."""
    try:
        return to_native(image_to_numpy(msg, supported=INPUT_ENCODINGS), msg.encoding)
    except ValueError as exc:  # MessageError is one: keep its kind
        if isinstance(exc, MessageError):
            raise
        raise MessageError("encoding", str(exc)) from exc


def image_to_rgb(msg) -> np.ndarray:
    """An 8-bit colour or mono Image -> contiguous uint8 RGB [H, W, 3] (the estimator's
    conversion, so bag tools see the colours the node sees)."""
    return array_to_rgb(*input_image_to_numpy(msg))


def compressed_to_numpy(msg) -> tuple[np.ndarray, str]:
    """Decode a CompressedImage (jpeg/png; 16-bit png stretched to 8 bits as image_encodings
    does) into (array, encoding: bgr8, bgra8 or mono8)."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise MessageError("size", "compressed image is empty; expected jpeg or png bytes.")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MessageError("decode", f"cannot decode compressed image (format '{msg.format}'); "
                           "expected jpeg or png (compressedDepth is not an input).")
    if img.dtype == np.uint16:   # 16-bit PNG (thermal / machine-vision cameras)
        img = stretch_to_8bit(img)
    if img.dtype != np.uint8:
        raise MessageError("encoding", f"compressed image decodes to {img.dtype}; expected 8 or "
                           "16 bits.")
    if img.ndim == 2:
        return img, "mono8"
    return img, {3: "bgr8", 4: "bgra8"}[img.shape[2]]


def compressed_to_rgb(msg) -> np.ndarray:
    return array_to_rgb(*compressed_to_numpy(msg))


def image_fields(arr: np.ndarray, encoding: str) -> tuple[dict, np.ndarray]:
    """The fields of an Image holding `arr` (no row padding) and its bytes as a uint8 array."""
    if encoding not in IMAGE_ENCODINGS:
        raise MessageError("encoding", f"unsupported image encoding '{encoding}'; supported: "
                           f"{', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    arr = np.asarray(arr)
    shape_ok = arr.ndim == 2 and channels == 1 or arr.ndim == 3 and arr.shape[2] == channels
    if not shape_ok or arr.dtype.kind != dtype.kind or arr.dtype.itemsize != dtype.itemsize:
        raise MessageError("encoding", f"{encoding} needs a {dtype} array of shape [H, W"
                           f"{'' if channels == 1 else f', {channels}'}], got {arr.dtype} "
                           f"{arr.shape}")
    arr = np.ascontiguousarray(arr)
    big = arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not LITTLE_ENDIAN)
    fields = {"height": int(arr.shape[0]), "width": int(arr.shape[1]), "encoding": encoding,
              "is_bigendian": int(big), "step": int(arr.strides[0])}
    return fields, arr.reshape(-1).view(np.uint8)


def depth_to_metres(array: np.ndarray, encoding: str) -> np.ndarray:
    """REP 118 depth image -> float32 metres, NaN invalid (32FC1 metres or 16UC1 millimetres)."""
    if encoding == "32FC1":
        depth = array.astype(np.float32, copy=True)
        depth[~(depth > 0)] = np.nan
        return depth
    if encoding in ("16UC1", "mono16"):
        depth = array.astype(np.float32) / 1000.0
        depth[array == 0] = np.nan
        return depth
    raise MessageError("encoding", f"depth encoding '{encoding}' is not a depth image; expected "
                       "32FC1 (metres) or 16UC1 (millimetres), REP 118")


# ----------------------------------------------------------------------------------------------
# CameraInfo

@dataclass(frozen=True)
class CameraModel:
    """The numbers of a CameraInfo message as arrays."""

    width: int
    height: int
    K: np.ndarray   # 3x3
    D: np.ndarray   # distortion coefficients
    R: np.ndarray   # 3x3 rectification
    P: np.ndarray   # 3x4 projection
    distortion_model: str

    @property
    def is_distorted(self) -> bool:
        return bool(np.any(self.D != 0))


def info_field(info, name: str):
    """A CameraInfo matrix field ('k', 'd', 'r', 'p'): ROS 1 messages (rosbags reading a ROS 1
    bag) spell them K, D, R, P."""
    value = getattr(info, name, None)
    return getattr(info, name.upper()) if value is None else value


def camera_matrix(info) -> np.ndarray:
    """Validated 3x3 K of a CameraInfo; MessageError when unusable."""
    K = np.asarray(info_field(info, "k"), dtype=np.float64).reshape(3, 3)
    if info.width == 0 or info.height == 0:
        raise MessageError("camera_info", f"camera_info has size {info.width}x{info.height}; "
                           "expected the image size. Is the camera calibrated?")
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageError("camera_info", f"camera_info K has no usable focal length "
                           f"(fx={K[0, 0]}, fy={K[1, 1]}); expected positive finite values. "
                           "Calibrate the camera (camera_calibration) and publish its K.")
    return K


def image_camera_matrix(info, source: str = "projection") -> np.ndarray:
    """The 3x3 intrinsics of the image a camera_info comes with. 'projection': the left 3x3 of
    P, the camera of the rectified image (image_geometry's fx, fy, cx, cy, what depth_image_proc
    builds clouds with), or K when P is unset or unusable; 'camera_matrix': K (an unrectified
    image). MessageError when unusable."""
    K = camera_matrix(info)
    if source == "camera_matrix":
        return K
    if source != "projection":
        raise ValueError(f"source must be 'projection' or 'camera_matrix', got {source!r}")
    return projection_matrix(K, info_field(info, "p"))[:, :3].copy()


def camera_model(info) -> CameraModel:
    """Every number of a CameraInfo (K validated)."""
    return CameraModel(int(info.width), int(info.height), camera_matrix(info),
                       np.asarray(info_field(info, "d"), np.float64).copy(),
                       np.asarray(info_field(info, "r"), np.float64).reshape(3, 3),
                       np.asarray(info_field(info, "p"), np.float64).reshape(3, 4),
                       str(info.distortion_model))


def projection_matrix(K, P=None) -> np.ndarray:
    """P of a CameraInfo: the given 3x4 P, or [K | 0] when it is absent or unusable
    (depth_image_proc reads fx, cx from P)."""
    if P is not None:
        P = np.asarray(P, np.float64).reshape(3, 4)
        if np.all(np.isfinite(P)) and P[0, 0] > 0 and P[1, 1] > 0:
            return P
    out = np.zeros((3, 4))
    out[:, :3] = np.asarray(K, np.float64).reshape(3, 3)
    return out


# ----------------------------------------------------------------------------------------------
# PointCloud2 (depth_image_proc layout: x, y, z float32 at 0/4/8, rgb float32 at 16)

FLOAT32 = 7
_FIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
                 FLOAT32: np.float32, 8: np.float64}
CLOUD_FIELDS = (("x", 0), ("y", 4), ("z", 8))
RGB_FIELD = ("rgb", 16)


def cloud_layout(with_rgb: bool) -> tuple[list[tuple[str, int]], int]:
    """([(field name, byte offset)], point_step) of the clouds this package writes."""
    return list(CLOUD_FIELDS) + ([RGB_FIELD] if with_rgb else []), 32 if with_rgb else 16


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> float32 [...] holding 0x00RRGGBB bits (PCL / RViz 'rgb' field)."""
    rgb = np.asarray(rgb).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """float32 (or uint32) [...] of 0x00RRGGBB bits -> uint8 [..., 3] RGB."""
    bits = np.ascontiguousarray(packed).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)


def fill_cloud(buf: np.ndarray, points: np.ndarray, rgb: np.ndarray | None = None) -> None:
    """Write points [h, w, 3] and optional uint8 RGB [h, w, 3] into a cloud's data buffer viewed
    as float32 [h, w, point_step / 4] (native byte order)."""
    buf[..., :3] = points
    if rgb is not None:
        write_rgb(buf, rgb)


def write_rgb(buf: np.ndarray, rgb: np.ndarray) -> None:
    """Write 0x00RRGGBB of uint8 RGB [h, w, 3] into the float32 at byte offset 16 of each point."""
    if rgb.shape[:2] != buf.shape[:2]:
        raise ValueError(f"rgb shape {rgb.shape[:2]} != cloud shape {buf.shape[:2]}")
    words = buf.view(np.uint32)[..., 4]
    if LITTLE_ENDIAN:   # BGRA bytes are the little-endian word 0xAARRGGBB: one SIMD conversion
        bgra = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA)
        np.bitwise_and(bgra.view(np.uint32)[..., 0], np.uint32(0x00FFFFFF), out=words)
    else:
        words[...] = pack_rgb(rgb).view(np.uint32)


def cloud_to_numpy(msg, fields=("x", "y", "z")) -> np.ndarray:
    """PointCloud2 -> float32 [N, len(fields)], organised clouds flattened row by row (any field
    datatype, byte order, point_step and row padding)."""
    by_name = {f.name: f for f in msg.fields}
    fields = list(fields)
    missing = [f for f in fields if f not in by_name]
    if missing:
        raise MessageError("cloud", f"point cloud lacks fields {missing}; it has {list(by_name)}")
    order = ">" if msg.is_bigendian else "<"
    h, w, step = int(msg.height), int(msg.width), int(msg.point_step)
    data = np.frombuffer(msg.data, np.uint8)
    row_step = int(msg.row_step) or w * step
    if data.size < row_step * (h - 1) + w * step:
        raise MessageError("cloud", f"point cloud data is truncated: {h}x{w} points x {step} "
                           f"bytes (row_step {row_step}) need more than the {data.size} bytes")
    rows = np.lib.stride_tricks.as_strided(data, (h, w, step), (row_step, step, 1))
    rows = rows.reshape(h * w, step)
    out = np.empty((h * w, len(fields)), np.float32)
    for k, name in enumerate(fields):
        f = by_name[name]
        if f.datatype not in _FIELD_DTYPES:
            raise MessageError("cloud", f"point field '{name}' has unknown datatype {f.datatype}")
        dt = np.dtype(_FIELD_DTYPES[f.datatype]).newbyteorder(order)
        raw = np.ascontiguousarray(rows[:, f.offset: f.offset + dt.itemsize])
        out[:, k] = raw.view(dt)[:, 0]
    return out


def cloud_to_xyz_rgb(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """(xyz float32 [h, w, 3], uint8 rgb [h, w, 3] or None) of a cloud; invalid points kept."""
    h, w = int(msg.height), int(msg.width)
    if "rgb" not in {f.name for f in msg.fields}:
        return cloud_to_numpy(msg).reshape(h, w, 3), None
    data = cloud_to_numpy(msg, ("x", "y", "z", "rgb"))
    return data[:, :3].reshape(h, w, 3), unpack_rgb(data[:, 3]).reshape(h, w, 3)
