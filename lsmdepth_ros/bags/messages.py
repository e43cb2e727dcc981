"""rosbags adapter of `ros.conversions`: build rosbags messages from numpy, read them back.

The readers are the shared, duck-typed ones (`image_to_numpy`, `camera_model`, ...), re-exported
here with the few views the bag tools need; the builders make rosbags dataclasses of a typestore
(default: `bagfile.get_typestore()`), the twin of `ros.messages` for rclpy. Conversions raise
MessageError (a ValueError); the bag tools add the bag and topic to the message.
"""
from __future__ import annotations

import numpy as np

from lsmdepth_ros.bags.bagfile import get_typestore
from lsmdepth_ros.ros.conversions import (
    FLOAT32,
    LITTLE_ENDIAN,
    CameraModel,
    MessageError,
    camera_model,
    cloud_layout,
    cloud_to_numpy,
    cloud_to_xyz_rgb,
    compressed_to_rgb,
    depth_to_metres,
    fill_cloud,
    header_ns,
    image_camera_matrix,
    image_fields,
    image_to_numpy,
    image_to_rgb,
    ns_to_stamp,
    projection_matrix,
    stamp_to_ns,
)

__all__ = ["CameraModel", "MessageError", "camera_info_to_numpy", "camera_model",
           "cloud_to_numpy", "cloud_to_points_and_colors", "cloud_to_xyz", "compressed_to_rgb",
           "depth_to_metres", "header_ns", "image_to_numpy", "image_to_rgb", "make_camera_info",
           "make_header", "make_odometry", "make_tf_message", "numpy_to_image",
           "numpy_to_pointcloud2", "stamp_to_ns"]


# ----------------------------------------------------------------------------------------------
# readers the bag tools share

def camera_info_to_numpy(msg) -> tuple[np.ndarray, int, int]:
    """sensor_msgs/CameraInfo -> (the image's 3x3 intrinsics, width, height) as the node reads
    them: P's (the rectified image's camera, as depth_image_proc), K when P is unset; K is
    checked either way."""
    return image_camera_matrix(msg), int(msg.width), int(msg.height)


def cloud_to_xyz(msg) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> [N, 3] float64 of the finite x, y, z points."""
    xyz = cloud_to_numpy(msg).astype(np.float64)
    return xyz[np.isfinite(xyz).all(axis=1)]


def cloud_to_points_and_colors(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """PointCloud2 -> (xyz [N, 3] float32, rgb [N, 3] uint8 or None), invalid points kept (NaN)."""
    xyz, rgb = cloud_to_xyz_rgb(msg)
    return xyz.reshape(-1, 3), None if rgb is None else rgb.reshape(-1, 3)


# ----------------------------------------------------------------------------------------------
# builders

def make_header(stamp_ns: int, frame_id: str, store=None):
    ts = store or get_typestore()
    sec, nanosec = ns_to_stamp(stamp_ns)
    return ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
        frame_id=str(frame_id))


def numpy_to_image(array: np.ndarray, encoding: str, stamp_ns: int = 0, frame_id: str = "",
                   store=None):
    """Array [H, W] or [H, W, C] -> sensor_msgs/Image (no row padding)."""
    ts = store or get_typestore()
    fields, data = image_fields(array, encoding)
    return ts.types["sensor_msgs/msg/Image"](header=make_header(stamp_ns, frame_id, ts),
                                             data=data.copy(), **fields)


def make_camera_info(K, width: int, height: int, stamp_ns: int = 0, frame_id: str = "",
                     store=None, D=None, P=None, distortion_model: str = "plumb_bob"):
    """CameraInfo with K, R = I, P = [K | 0] (unless given) and D zeros (unless given)."""
    ts = store or get_typestore()
    K = np.asarray(K, np.float64).reshape(3, 3)
    D = np.zeros(5) if D is None else np.asarray(D, np.float64).ravel()
    P = np.asarray(P, np.float64).reshape(3, 4) if P is not None else projection_matrix(K)
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                       do_rectify=False)
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=make_header(stamp_ns, frame_id, ts), height=int(height), width=int(width),
        distortion_model=distortion_model, d=D, k=K.ravel().copy(), r=np.eye(3).ravel(),
        p=P.ravel().copy(), binning_x=0, binning_y=0, roi=roi)


def numpy_to_pointcloud2(points: np.ndarray, rgb: np.ndarray | None = None, stamp_ns: int = 0,
                         frame_id: str = "", store=None):
    """xyz [N, 3] or organised [H, W, 3] (NaN = invalid) + optional uint8 rgb -> PointCloud2
    in the layout the node publishes (depth_image_proc's)."""
    ts = store or get_typestore()
    pts = np.asarray(points, np.float32)
    if pts.shape[-1] != 3 or pts.ndim not in (2, 3):
        raise MessageError("cloud", f"points must be [N, 3] or [H, W, 3], got {pts.shape}")
    h, w = (pts.shape[0], pts.shape[1]) if pts.ndim == 3 else (1, pts.shape[0])
    names, step = cloud_layout(rgb is not None)
    data = np.zeros(h * w * step, np.uint8)
    fill_cloud(data.view(np.float32).reshape(h, w, step // 4), pts.reshape(h, w, 3),
               None if rgb is None else np.asarray(rgb, np.uint8).reshape(h, w, 3))
    PointField = ts.types["sensor_msgs/msg/PointField"]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=make_header(stamp_ns, frame_id, ts), height=h, width=w,
        fields=[PointField(name=n, offset=o, datatype=FLOAT32, count=1) for n, o in names],
        is_bigendian=not LITTLE_ENDIAN, point_step=step, row_step=step * w,
        data=data, is_dense=bool(np.isfinite(pts).all()))


def _pose_parts(T, ts):
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, np.float64)
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    quaternion = ts.types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z),
                                                          w=float(w))
    return quaternion, [float(v) for v in T[:3, 3]]


def make_odometry(T_frame_child, stamp_ns: int, frame_id: str, child_frame_id: str, store=None):
    """nav_msgs/Odometry holding the pose T_frame_child (zero twist, zero covariance)."""
    ts = store or get_typestore()
    q, t = _pose_parts(T_frame_child, ts)
    pose = ts.types["geometry_msgs/msg/Pose"](
        position=ts.types["geometry_msgs/msg/Point"](x=t[0], y=t[1], z=t[2]), orientation=q)
    vec = ts.types["geometry_msgs/msg/Vector3"]
    twist = ts.types["geometry_msgs/msg/Twist"](linear=vec(x=0.0, y=0.0, z=0.0),
                                                angular=vec(x=0.0, y=0.0, z=0.0))
    return ts.types["nav_msgs/msg/Odometry"](
        header=make_header(stamp_ns, frame_id, ts), child_frame_id=child_frame_id,
        pose=ts.types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=ts.types["geometry_msgs/msg/TwistWithCovariance"](twist=twist,
                                                                 covariance=np.zeros(36)))


def make_tf_message(transforms, store=None):
    """tf2_msgs/TFMessage of (T_parent_child, stamp_ns, parent, child) tuples."""
    ts = store or get_typestore()
    vec = ts.types["geometry_msgs/msg/Vector3"]
    out = []
    for T, stamp_ns, parent, child in transforms:
        q, t = _pose_parts(T, ts)
        out.append(ts.types["geometry_msgs/msg/TransformStamped"](
            header=make_header(stamp_ns, parent, ts), child_frame_id=child,
            transform=ts.types["geometry_msgs/msg/Transform"](
                translation=vec(x=t[0], y=t[1], z=t[2]), rotation=q)))
    return ts.types["tf2_msgs/msg/TFMessage"](transforms=out)
