"""Synthetic drives: camera options, the trajectory through a scene, and frames to render.

Camera: optical frame of REP 103 (x right, y down, z forward). `SyntheticDrive.poses[i]` is the
4x4 camera-to-world transform T_world_cam of frame i. Intrinsics default to KITTI's normalised K
(fx = 0.58 W, fy = 1.92 H, cx = 0.5 W, cy = 0.5 H, monodepth2's values). The camera weaves and
turns slightly, so the boxes are seen at varying angles.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from lsmdepth_ros.geometry import (
    KITTI_K_NORMALIZED,
    normalized_to_pixel_intrinsics,
    scale_intrinsics,
)
from lsmdepth_ros.synthetic.renderer import render
from lsmdepth_ros.synthetic.scenes import build_scene


@dataclass(frozen=True)
class SyntheticOptions:
    """What a synthetic drive looks like and how it is rendered."""

    width: int = 640
    height: int = 192
    frames: int = 100
    speed: float = 1.0            # metres travelled per frame (10 m/s at 10 Hz)
    fps: float = 10.0             # for bag time stamps
    camera_height: float = 1.65   # KITTI's camera height above the road
    far: float = 200.0            # render distance; anything farther is sky (NaN depth)
    weave_amplitude: float = 0.8  # lateral weave of the trajectory [m]
    weave_wavelength: float = 70.0
    K_normalized: tuple = tuple(map(tuple, KITTI_K_NORMALIZED))
    supersample: int = 1          # render colour at n x n samples per pixel then area-average

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"image size must be at least 8x8, got {self.width}x{self.height}")
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {self.supersample}")

    @property
    def K(self) -> np.ndarray:
        """3x3 pixel intrinsics at (width, height)."""
        return normalized_to_pixel_intrinsics(np.array(self.K_normalized), self.width, self.height)



@dataclass
class Frame:
    """One rendered frame."""

    index: int
    rgb: np.ndarray     # [H, W, 3] uint8
    depth: np.ndarray   # [H, W] float32 metres, z along the optical axis, NaN = sky / invalid
    pose: np.ndarray    # [4, 4] float64 T_world_cam
    K: np.ndarray       # [3, 3] float64 pixel intrinsics
    stamp_ns: int



def trajectory(options: SyntheticOptions, seed: int) -> np.ndarray:
    """Camera-to-world poses [frames, 4, 4] of a forward drive that weaves and turns slightly."""
    rng = np.random.default_rng(seed + 7919)
    phase = rng.uniform(0, 2 * np.pi, size=4)
    n = options.frames
    i = np.arange(n, dtype=np.float64)
    # speed varies smoothly +-20 %; position = cumulative distance
    speed = options.speed * (1.0 + 0.2 * np.sin(2 * np.pi * i / 60.0 + phase[0]))
    z = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    k = 2 * np.pi / options.weave_wavelength
    x = options.weave_amplitude * np.sin(k * z + phase[1])
    heading = np.arctan(options.weave_amplitude * k * np.cos(k * z + phase[1]))
    pitch = 0.01 * np.sin(2 * np.pi * i / 23.0 + phase[2])
    roll = 0.008 * np.sin(2 * np.pi * i / 31.0 + phase[3])
    y = -options.camera_height + 0.02 * np.sin(2 * np.pi * i / 17.0 + phase[2])
    poses = np.tile(np.eye(4), (n, 1, 1))
    for j in range(n):
        poses[j, :3, :3] = rot_y(heading[j]) @ rot_x(pitch[j]) @ rot_z(roll[j])
        poses[j, :3, 3] = (x[j], y[j], z[j])
    return poses


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def relative_pose(T_world_a: np.ndarray, T_world_b: np.ndarray) -> np.ndarray:
    """T_b_a: maps points in camera a's frame to camera b's (monodepth2's target->source T)."""
    return np.linalg.inv(T_world_b) @ T_world_a

@dataclass
class SyntheticDrive:
    """One deterministic drive: scene, camera poses, and rendering of any frame.

    >>> drive = SyntheticDrive(seed=3, options=SyntheticOptions(frames=20, width=320, height=96))
    >>> frame = drive.render(5)      # Frame(rgb uint8, depth float32 NaN-invalid, pose, K, stamp)
    """

    seed: int
    options: SyntheticOptions = field(default_factory=SyntheticOptions)

    def __post_init__(self) -> None:
        self.poses = trajectory(self.options, self.seed)
        span = float(self.poses[-1, 2, 3])
        self.scene = build_scene(self.seed, -40.0, span + self.options.far + 20.0)
        self.K = self.options.K

    def __len__(self) -> int:
        return self.options.frames

    def stamp_ns(self, index: int) -> int:
        return round(index * 1e9 / self.options.fps)

    def render(self, index: int) -> Frame:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range for a drive of {len(self)} frames")
        opt = self.options
        w, h, s = opt.width, opt.height, opt.supersample
        pose = self.poses[index]
        if s == 1:
            rgb, depth = render(self.scene, pose, self.K, w, h, opt.far)
        else:
            import cv2

            Ks = scale_intrinsics(self.K, (w, h), (w * s, h * s))
            rgb_s, _ = render(self.scene, pose, Ks, w * s, h * s, opt.far)
            rgb = cv2.resize(rgb_s, (w, h), interpolation=cv2.INTER_AREA)
            _, depth = render(self.scene, pose, self.K, w, h, opt.far, shade=False)
        rgb8 = np.round(rgb * 255.0).astype(np.uint8)
        return Frame(index, rgb8, depth, pose.copy(), self.K.copy(), self.stamp_ns(index))

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.render(i)


def drive_seed(seed: int, sequence: int) -> int:
    """Seed of sequence k of a data set with seed s (distinct data sets do not share drives)."""
    return int(seed) * 100003 + int(sequence)
