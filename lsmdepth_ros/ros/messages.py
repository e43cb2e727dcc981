"""numpy <-> sensor_msgs (Image, CompressedImage, CameraInfo, PointCloud2) for rclpy.

No cv_bridge / sensor_msgs_py: plain numpy views over the message buffers. Message `data`
fields are filled with `array.array('B')` built from the numpy buffer (one copy; assigning bytes
or an ndarray makes rclpy check every element in Python).

Every reader validates its message and raises `MessageError` saying what was wrong, what was
expected and what to do; the node turns those into throttled warnings.
"""
from __future__ import annotations

import array
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from lsmdepth_ros.geometry import depth_to_points, scale_intrinsics
from lsmdepth_ros.inference import ENCODINGS

LITTLE_ENDIAN = sys.byteorder == "little"

# Encodings we can read into numpy: name -> (dtype, channels)
_NUMPY_ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1),
}


class MessageError(ValueError):
    """An input message the node cannot use; `kind` groups warnings for throttling."""

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


def byte_array(arr: np.ndarray) -> array.array:
    """An array('B') copy of a numpy array's bytes (C order), fast to assign to msg.data."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return out


# ----------------------------------------------------------------------------------------------
# Image

def image_to_numpy(msg: Image, supported: tuple[str, ...] | None = None) -> np.ndarray:
    """A numpy view [h, w] or [h, w, c] of an Image, honouring `step` padding and endianness.

    `supported` limits the accepted encodings (default: all that numpy can represent here).
    """
    enc = msg.encoding
    allowed = supported if supported is not None else tuple(_NUMPY_ENCODINGS)
    if enc not in allowed or enc not in _NUMPY_ENCODINGS:
        raise MessageError("encoding", f"image encoding '{enc}' is not supported; expected one of "
                           f"{', '.join(allowed)}. Convert it upstream (e.g. image_proc debayer).")
    dtype, channels = _NUMPY_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise MessageError("size", f"image is empty ({w}x{h}); expected a non-zero width and "
                           "height. Check the camera driver.")
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if step < row:
        raise MessageError("step", f"image step {step} is shorter than one row of {w} {enc} "
                           f"pixels ({row} bytes); the message header is inconsistent.")
    n = len(msg.data)
    if n < step * h:
        raise MessageError("data", f"image data has {n} bytes but step*height = {step}*{h} = "
                           f"{step * h}; the message is truncated.")
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=step * h)
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    shape = (h, w, channels) if channels > 1 else (h, w)
    strides = (step, channels * itemsize, itemsize) if channels > 1 else (step, itemsize)
    view = np.ndarray(shape, dtype=dt, buffer=buf, strides=strides)
    if dt.byteorder not in ("=", "|") and dt != np.dtype(dtype):
        view = view.astype(dtype)   # foreign byte order: one converting copy
    return view


def input_image_to_numpy(msg: Image) -> tuple[np.ndarray, str]:
    """The node's input: an 8-bit colour or mono image as (view, encoding)."""
    return image_to_numpy(msg, supported=tuple(ENCODINGS)), msg.encoding


def compressed_to_numpy(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """Decode a CompressedImage (jpeg/png) into (array, encoding)."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise MessageError("size", "compressed image is empty; expected jpeg or png bytes.")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MessageError("decode", f"cannot decode compressed image (format '{msg.format}'); "
                           "expected jpeg or png (compressedDepth is not an input).")
    if img.dtype != np.uint8:
        raise MessageError("encoding", f"compressed image decodes to {img.dtype}; expected 8-bit.")
    if img.ndim == 2:
        return img, "mono8"
    return img, {3: "bgr8", 4: "bgra8"}[img.shape[2]]


def numpy_to_image(arr: np.ndarray, encoding: str, header=None) -> Image:
    """Image message from a numpy array (copied), `step` = width * pixel size."""
    arr = np.ascontiguousarray(arr)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and
                                                          not LITTLE_ENDIAN))
    msg.step = int(arr.strides[0])
    _set_data(msg, byte_array(arr))
    return msg


def depth_to_image(depth: np.ndarray, header=None) -> Image:
    """REP 118 depth image: 32FC1 metres, NaN where invalid."""
    return numpy_to_image(depth.astype(np.float32, copy=False), "32FC1", header)


# ----------------------------------------------------------------------------------------------
# CameraInfo

def camera_matrix(info: CameraInfo) -> np.ndarray:
    """Validated 3x3 K of a CameraInfo; MessageError when unusable."""
    K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if info.width == 0 or info.height == 0:
        raise MessageError("camera_info", f"camera_info has size {info.width}x{info.height}; "
                           "expected the image size. Is the camera calibrated?")
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageError("camera_info", f"camera_info K has no usable focal length "
                           f"(fx={K[0, 0]}, fy={K[1, 1]}); expected positive finite values. "
                           "Calibrate the camera (camera_calibration) and publish its K.")
    return K


def camera_info_for(info: CameraInfo, K: np.ndarray, size: tuple[int, int],
                    header=None) -> CameraInfo:
    """CameraInfo for an image of `size` (w, h) whose intrinsics are K (3x3).

    K and P are rescaled from the input camera_info's size when `size` differs; P is always
    filled ([K | 0] when the input had none), since depth_image_proc reads fx, cx from P.
    """
    out = CameraInfo()
    out.header = info.header if header is None else header
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = list(info.r)
    out.binning_x, out.binning_y, out.roi = info.binning_x, info.binning_y, info.roi
    src_size = (int(info.width), int(info.height))
    P = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
    if not np.all(np.isfinite(P)) or P[0, 0] <= 0 or P[1, 1] <= 0:
        P = np.zeros((3, 4))
        P[:, :3] = camera_matrix(info)
    if src_size != tuple(size):
        P = scale_intrinsics(P, src_size, size)
    out.width, out.height = int(size[0]), int(size[1])
    out.k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(-1)]
    out.p = [float(v) for v in P.reshape(-1)]
    return out


# ----------------------------------------------------------------------------------------------
# PointCloud2 (depth_image_proc layout)

def _cloud_fields(with_rgb: bool) -> list[PointField]:
    names = ["x", "y", "z"] + (["rgb"] if with_rgb else [])
    offsets = [0, 4, 8, 16]
    return [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
            for n, o in zip(names, offsets)]


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> float32 [...] holding 0x00RRGGBB bits (PCL / RViz 'rgb' field)."""
    rgb = rgb.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.view(np.float32)


def _set_data(msg, data: array.array) -> None:
    """Assign a ready array('B') to msg.data without the setter's second 4 MB copy.

    Generated messages keep the field in `_data`; their setter copies the array whenever field
    checks are off (the default), which costs as much as building the whole cloud.
    """
    if hasattr(msg, "_data"):
        msg._data = data
    else:   # a future message implementation: fall back to the public setter
        msg.data = data


def _cloud_message(h: int, w: int, with_rgb: bool, header) -> tuple[PointCloud2, np.ndarray]:
    """An organised cloud message whose data buffer is returned as float32 [h, w, step/4]."""
    step = 32 if with_rgb else 16
    data = array.array("B", bytes(h * w * step))    # zeroed: padding bytes are never garbage
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = h, w
    msg.fields = _cloud_fields(with_rgb)
    msg.is_bigendian = not LITTLE_ENDIAN
    msg.point_step = step
    msg.row_step = step * w
    msg.is_dense = False
    _set_data(msg, data)
    return msg, np.frombuffer(data, dtype=np.float32).reshape(h, w, step // 4)


def _write_rgb(buf: np.ndarray, rgb: np.ndarray) -> None:
    """Write 0x00RRGGBB of uint8 RGB [h, w, 3] into the float32 at byte offset 16 of each point."""
    if rgb.shape[:2] != buf.shape[:2]:
        raise ValueError(f"rgb shape {rgb.shape[:2]} != cloud shape {buf.shape[:2]}")
    words = buf.view(np.uint32)[..., 4]
    if LITTLE_ENDIAN:   # BGRA bytes are the little-endian word 0xAARRGGBB: one SIMD conversion
        bgra = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA)
        np.bitwise_and(bgra.view(np.uint32)[..., 0], np.uint32(0x00FFFFFF), out=words)
    else:
        words[...] = pack_rgb(rgb).view(np.uint32)


def points_to_cloud(points: np.ndarray, header=None, rgb: np.ndarray | None = None
                    ) -> PointCloud2:
    """Organised PointCloud2 from points [h, w, 3] (NaN invalid) and optional RGB [h, w, 3].

    x, y, z float32 at offsets 0/4/8, point_step 16; with colour an `rgb` float32 at offset 16
    and point_step 32 (as depth_image_proc). is_dense is False: the cloud keeps NaN points.
    """
    h, w = points.shape[:2]
    msg, buf = _cloud_message(h, w, rgb is not None, header)
    buf[..., :3] = points
    if rgb is not None:
        _write_rgb(buf, rgb)
    return msg


def depth_to_cloud(depth: np.ndarray, K, header=None, rgb: np.ndarray | None = None,
                   stride: int = 1, max_range: float | None = None) -> PointCloud2:
    """The node's cloud: `geometry.depth_to_points` written straight into the message buffer.

    `rgb`, when given, is already at the cloud's (strided) resolution.
    """
    h, w = depth[::stride, ::stride].shape
    msg, buf = _cloud_message(h, w, rgb is not None, header)
    _fill_cloud(buf, depth, K, rgb, stride, max_range)
    return msg


def _fill_cloud(buf, depth, K, rgb, stride, max_range) -> None:
    depth_to_points(depth, K, stride, max_range, out=buf[..., :3])
    if rgb is not None:
        _write_rgb(buf, rgb)


class CloudBuilder:
    """depth_to_cloud that refills one message per cloud shape instead of allocating.

    rclpy serialises a message inside publish(), so once published the same buffer can carry
    the next frame: no 2-4 MB allocation (and its page faults) per frame. Publish each returned
    message before the next build() and do not keep it.
    """

    def __init__(self):
        self._key = None
        self._msg: PointCloud2 | None = None
        self._buf: np.ndarray | None = None

    def build(self, depth: np.ndarray, K, header=None, rgb: np.ndarray | None = None,
              stride: int = 1, max_range: float | None = None) -> PointCloud2:
        h, w = depth[::stride, ::stride].shape
        key = (h, w, rgb is not None)
        if key != self._key:
            self._msg, self._buf = _cloud_message(h, w, rgb is not None, None)
            self._key = key
        if header is not None:
            self._msg.header = header
        _fill_cloud(self._buf, depth, K, rgb, stride, max_range)
        return self._msg


def cloud_to_numpy(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """(xyz float32 [h, w, 3], rgb uint8 [h, w, 3] or None) of a float32 x/y/z(/rgb) cloud."""
    offsets = {f.name: f.offset for f in msg.fields}
    if any(f.datatype != PointField.FLOAT32 for f in msg.fields if f.name in "xyz"):
        raise MessageError("cloud", "cloud x/y/z fields must be FLOAT32")
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, msg.point_step)
    xyz = np.stack([raw[..., offsets[c]:offsets[c] + 4].copy().view(np.float32)[..., 0]
                    for c in "xyz"], axis=-1)
    rgb = None
    if "rgb" in offsets:
        o = offsets["rgb"]
        packed = raw[..., o:o + 4].copy().view(np.uint32)[..., 0]
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255],
                       axis=-1).astype(np.uint8)
    return xyz, rgb
