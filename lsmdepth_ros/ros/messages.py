"""rclpy adapter of `ros.conversions`: the node's fast path from numpy to sensor_msgs.

The readers are the shared, duck-typed ones (re-exported here for the node). The writers build
rclpy messages and fill their `data` with `array.array('B')` built from the numpy buffer (one
copy; assigning bytes or an ndarray makes rclpy check every element in Python).
"""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from lsmdepth_ros.geometry import depth_to_points, scale_intrinsics
from lsmdepth_ros.ros.conversions import (
    LITTLE_ENDIAN,
    MessageError,
    camera_matrix,
    cloud_layout,
    cloud_to_xyz_rgb,
    compressed_to_numpy,
    fill_cloud,
    image_camera_matrix,
    image_fields,
    image_to_numpy,
    input_image_to_numpy,
    pack_rgb,
    projection_matrix,
    write_rgb,
)

__all__ = ["CloudBuilder", "MessageError", "camera_info_for", "camera_matrix", "cloud_to_numpy",
           "compressed_to_numpy", "depth_to_cloud", "depth_to_image", "image_camera_matrix",
           "image_to_numpy", "input_image_to_numpy", "numpy_to_image", "pack_rgb",
           "points_to_cloud"]


def byte_array(arr: np.ndarray) -> array.array:
    """An array('B') copy of a numpy array's bytes (C order), fast to assign to msg.data."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return out


def numpy_to_image(arr: np.ndarray, encoding: str, header=None) -> Image:
    """Image message from a numpy array (copied), `step` = width * pixel size."""
    fields, data = image_fields(arr, encoding)
    msg = Image(**fields)
    if header is not None:
        msg.header = header
    _set_data(msg, byte_array(data))
    return msg


def depth_to_image(depth: np.ndarray, header=None) -> Image:
    """REP 118 depth image: 32FC1 metres, NaN where invalid."""
    return numpy_to_image(depth.astype(np.float32, copy=False), "32FC1", header)


# ----------------------------------------------------------------------------------------------
# CameraInfo

def camera_info_for(info: CameraInfo, size: tuple[int, int], header=None) -> CameraInfo:
    """The input's CameraInfo for an image of `size` (w, h): K and P rescaled from the input's
    size when `size` differs; P is always filled ([K | 0] when the input had none), since
    depth_image_proc reads fx, cx from P. D and R are the input's.
    """
    out = CameraInfo()
    out.header = info.header if header is None else header
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = list(info.r)
    out.binning_x, out.binning_y, out.roi = info.binning_x, info.binning_y, info.roi
    src_size = (int(info.width), int(info.height))
    K = camera_matrix(info)
    P = projection_matrix(K, info.p)
    if src_size != tuple(size):
        K, P = scale_intrinsics(K, src_size, size), scale_intrinsics(P, src_size, size)
    out.width, out.height = int(size[0]), int(size[1])
    out.k = [float(v) for v in K.reshape(-1)]
    out.p = [float(v) for v in P.reshape(-1)]
    return out


# ----------------------------------------------------------------------------------------------
# PointCloud2 (depth_image_proc layout)

def _cloud_fields(with_rgb: bool) -> list[PointField]:
    return [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1)
            for n, o in cloud_layout(with_rgb)[0]]


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
    step = cloud_layout(with_rgb)[1]
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


def points_to_cloud(points: np.ndarray, header=None, rgb: np.ndarray | None = None
                    ) -> PointCloud2:
    """Organised PointCloud2 from points [h, w, 3] (NaN invalid) and optional RGB [h, w, 3].

    x, y, z float32 at offsets 0/4/8, point_step 16; with colour an `rgb` float32 at offset 16
    and point_step 32 (as depth_image_proc). is_dense is False: the cloud keeps NaN points.
    """
    h, w = points.shape[:2]
    msg, buf = _cloud_message(h, w, rgb is not None, header)
    fill_cloud(buf, points, rgb)
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
        write_rgb(buf, rgb)


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
    if any(f.datatype != PointField.FLOAT32 for f in msg.fields if f.name in "xyz"):
        raise MessageError("cloud", "cloud x/y/z fields must be FLOAT32")
    return cloud_to_xyz_rgb(msg)
