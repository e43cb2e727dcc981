"""A synthetic drive as a robot would record it: camera, ground-truth depth, odometry and TF.

Topics: /camera/image_raw (rgb8), /camera/camera_info, /camera/depth_gt (32FC1 metres, REP 118)
at the drive's frame rate; /odom (nav_msgs/Odometry, odom -> base_link) every 43 ms (23.3 Hz, so
its stamps rarely meet the camera's; the first sample is at the first image, the last one at the
last image, so every image lies inside the odometry); /tf_static once: base_link ->
camera_optical_frame (REP 103 optical frame, 0.2 m ahead of the base, at the camera height).

The renderer's world frame is x right, y down, z forward; the odometry frame is REP 103's
(x forward, y left, z up), so T_odom_world is a fixed rotation. The odometry between frames
follows a cubic spline through the rendered camera poses (rotation: scipy's RotationSpline), so
the camera pose interpolated from /odom at an image stamp is that image's pose to well below a
millimetre.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.bags.bagfile import BagWriter, get_typestore
from lsmdepth_ros.bags.messages import (
    make_camera_info,
    make_odometry,
    make_tf_message,
    numpy_to_image,
)
from lsmdepth_ros.synthetic import SyntheticDrive, SyntheticOptions

IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
DEPTH_TOPIC = "/camera/depth_gt"
ODOM_TOPIC = "/odom"
TF_STATIC_TOPIC = "/tf_static"
FRAME_ID = "camera_optical_frame"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
ODOM_PERIOD_NS = 43_000_000

# REP 103 body axes (x forward, y left, z up) of the renderer's / the optical frame's axes
# (x right, y down, z forward): the same fixed rotation for world -> odom and optical -> base
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_extrinsic(options: SyntheticOptions) -> np.ndarray:
    """T_base_camera: the optical frame 0.2 m ahead of base_link, at the camera height."""
    T = np.eye(4)
    T[:3, :3] = R_BODY_OPTICAL
    T[:3, 3] = (0.2, 0.0, options.camera_height)
    return T


def odometry_poses(drive: SyntheticDrive) -> tuple[np.ndarray, np.ndarray]:
    """(stamps ns [M], T_odom_base [M, 4, 4]) of the drive's odometry."""
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, RotationSpline

    T_odom_world = np.eye(4)
    T_odom_world[:3, :3] = R_BODY_OPTICAL
    cams = T_odom_world @ drive.poses                          # T_odom_cam of every frame
    t = np.array([drive.stamp_ns(i) for i in range(len(drive))], np.int64)
    stamps = np.arange(t[0], t[-1], ODOM_PERIOD_NS, dtype=np.int64)
    stamps = np.append(stamps, t[-1])
    seconds, knots = stamps / 1e9, t / 1e9
    position = CubicSpline(knots, cams[:, :3, 3], axis=0)(seconds)
    rotation = RotationSpline(knots, Rotation.from_matrix(cams[:, :3, :3]))(seconds)
    T = np.tile(np.eye(4), (stamps.size, 1, 1))
    T[:, :3, :3] = rotation.as_matrix()
    T[:, :3, 3] = position
    return stamps, T @ np.linalg.inv(camera_extrinsic(drive.options))


def write_synthetic_bag(path: str | Path, seed: int = 0, options: SyntheticOptions | None = None,
                        storage: str = "mcap", with_depth: bool = True, sequence: int = 0,
                        overwrite: bool = False) -> Path:
    """Render one drive into a rosbag2 bag (camera, depth, odometry and TF topics above).

    The drive is sequence `sequence` of seed `seed`: the same frames as SyntheticDataset(seed=...)
    and write_kitti_layout(seed=...) produce for that sequence.
    """
    from lsmdepth_ros.training.datasets.synthetic import (
        SyntheticDrive,
        SyntheticOptions,
        drive_seed,
    )

    options = options or SyntheticOptions()
    drive = SyntheticDrive(drive_seed(seed, sequence), options)
    store = get_typestore()
    odom_stamps, odom_poses = odometry_poses(drive)
    with BagWriter(path, storage=storage, typestore=store, overwrite=overwrite) as writer:
        writer.write(TF_STATIC_TOPIC, 0, make_tf_message(
            [(camera_extrinsic(options), 0, BASE_FRAME, FRAME_ID)], store), latched=True)
        k = 0
        for frame in drive:
            stamp = frame.stamp_ns
            while k < odom_stamps.size and odom_stamps[k] <= stamp:   # in time order, as recorded
                writer.write(ODOM_TOPIC, int(odom_stamps[k]), make_odometry(
                    odom_poses[k], int(odom_stamps[k]), ODOM_FRAME, BASE_FRAME, store))
                k += 1
            writer.write(IMAGE_TOPIC, stamp, numpy_to_image(frame.rgb, "rgb8", stamp, FRAME_ID,
                                                            store))
            writer.write(CAMERA_INFO_TOPIC, stamp, make_camera_info(
                frame.K, options.width, options.height, stamp, FRAME_ID, store))
            if with_depth:
                writer.write(DEPTH_TOPIC, stamp, numpy_to_image(
                    frame.depth.astype(np.float32), "32FC1", stamp, FRAME_ID, store))
    return Path(path)
