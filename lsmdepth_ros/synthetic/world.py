"""The domain-randomised world: a random scene, camera, light and sensor per seed, exact depth.

    drive = WorldDrive(seed=3, options=WorldOptions(width=640, height=192, frames=20))
    frame = drive.render(5)   # Frame(rgb uint8, depth float32 NaN = sky, pose T_world_cam, K, ...)

Per drive (all drawn from the seed, nothing else):
- a scene kind from `options.scenes` (street, campus, room, corridor, warehouse) and its layout;
- a camera: height 0.2-2.0 m above the surface it stands on, pitch +-10 deg, roll +-3 deg, a yaw
  off the direction of travel (+-15 deg, or for `look_around_prob` of the drives 20-90 deg to
  either side: robots turn and hand-held cameras look at walls, shelves and furniture, not only
  down a clear path, and a network that only saw open paths reads the top centre of every image
  as far away), horizontal FOV 45-100 deg, and the aspect ratio of the real
  camera (`source_aspect`): the node squashes any camera image to the network's size, so a
  4:3 camera's image reaches the network with fy/fx = aspect * height / width, and the world
  renders exactly that image;
- light (sun / key light, ambient, shadows, sky, fog) and a sensor (exposure, white balance,
  noise, blur, vignetting, JPEG).
The camera moves forward along the scene's clear path; angles and height vary smoothly per frame
and stay inside the ranges. Poses are REP 103 optical frames in the world (x right, y down).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from lsmdepth_ros.synthetic.drive import Frame, rot_x, rot_y, rot_z
from lsmdepth_ros.synthetic.indoor_layouts import corridor, room, warehouse
from lsmdepth_ros.synthetic.outdoor_layouts import campus, street
from lsmdepth_ros.synthetic.raycast import cast_rays
from lsmdepth_ros.synthetic.sensor import (
    NO_EFFECTS,
    SensorModel,
    apply_sensor,
    sample_sensor,
)
from lsmdepth_ros.synthetic.world_shading import Lighting, sample_lighting, shade_world

LAYOUTS = {"street": street, "campus": campus, "room": room, "corridor": corridor,
           "warehouse": warehouse}
OUTDOOR_SCENES = ("street", "campus")
INDOOR_SCENES = ("room", "corridor", "warehouse")
#: metres per frame (at `fps` = 10: walking robots to cars)
SPEED = {"street": (0.15, 1.5), "campus": (0.1, 0.6), "room": (0.03, 0.2),
         "corridor": (0.05, 0.3), "warehouse": (0.05, 0.5)}


@dataclass(frozen=True)
class WorldOptions:
    """What the randomised world draws from, and the image size it renders."""

    width: int = 640
    height: int = 192
    frames: int = 20
    fps: float = 10.0
    scenes: tuple = tuple(LAYOUTS)
    camera_height: tuple = (0.2, 2.0)     # metres above the floor / road / pavement
    pitch_deg: tuple = (-10.0, 10.0)
    roll_deg: tuple = (-3.0, 3.0)
    yaw_deg: tuple = (-15.0, 15.0)        # off the direction of travel
    look_around_prob: float = 0.35        # drives whose camera looks to a side ...
    look_around_deg: tuple = (20.0, 90.0)  # ... by this much (either side)
    hfov_deg: tuple = (45.0, 100.0)
    source_aspect: tuple = (1.25, 3.4)    # width / height of the real camera's image
    sensor_effects: bool = True
    far: float = 150.0                    # anything farther is sky (NaN depth)

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"image size must be at least 8x8, got {self.width}x{self.height}")
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        object.__setattr__(self, "scenes", tuple(self.scenes))
        unknown = [s for s in self.scenes if s not in LAYOUTS]
        if unknown or not self.scenes:
            raise ValueError(f"scenes must be a non-empty subset of {tuple(LAYOUTS)}, got "
                             f"{self.scenes}")
        for name in ("camera_height", "pitch_deg", "roll_deg", "yaw_deg", "hfov_deg",
                     "source_aspect", "look_around_deg"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
            object.__setattr__(self, name, (float(lo), float(hi)))
        if not (0 < self.hfov_deg[0] and self.hfov_deg[1] < 180):
            raise ValueError(f"hfov_deg must lie in (0, 180), got {self.hfov_deg}")
        if self.camera_height[0] <= 0:
            raise ValueError(f"camera_height must be positive, got {self.camera_height}")
        if not 0.0 <= self.look_around_prob <= 1.0:
            raise ValueError(f"look_around_prob must lie in [0, 1], got {self.look_around_prob}")
        if not (max(abs(v) for v in self.yaw_deg) < self.look_around_deg[0]
                and self.look_around_deg[1] <= 90.0):
            raise ValueError("look_around_deg must lie beyond yaw_deg and at most 90 deg, got "
                             f"{self.look_around_deg} with yaw_deg {self.yaw_deg}")


@dataclass(frozen=True)
class CameraSetup:
    """One drive's camera: mounting (metres, radians) and intrinsics at the rendered size."""

    height: float
    pitch: float
    roll: float
    yaw: float
    hfov: float
    source_aspect: float
    K: np.ndarray


def sample_camera(rng: np.random.Generator, options: WorldOptions) -> CameraSetup:
    w, h = options.width, options.height
    hfov = np.radians(rng.uniform(*options.hfov_deg))
    aspect = rng.uniform(*options.source_aspect)
    fx = w / (2 * np.tan(hfov / 2))
    fy = fx * aspect * h / w
    cx = w / 2 + rng.uniform(-0.02, 0.02) * w
    cy = h / 2 + rng.uniform(-0.03, 0.03) * h
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    height = float(rng.uniform(*options.camera_height))
    pitch = float(np.radians(rng.uniform(*options.pitch_deg)))
    roll = float(np.radians(rng.uniform(*options.roll_deg)))
    yaw = float(np.radians(rng.uniform(*options.yaw_deg)))
    # drawn after the rest so that every other camera value of a seed stays what it was
    look, side, turn = rng.uniform(), rng.choice((-1.0, 1.0)), rng.uniform(*options.look_around_deg)
    if look < options.look_around_prob:
        yaw = float(side * np.radians(turn))
    return CameraSetup(height, pitch, roll, yaw, float(hfov), float(aspect), K)


def yaw_limits(options: WorldOptions, yaw: float) -> tuple[float, float]:
    """The range (radians) a drive's yaw wobbles in: the travel range, or its look-around side."""
    lo, hi = np.radians(options.yaw_deg)
    if lo - 1e-9 <= yaw <= hi + 1e-9:
        return float(lo), float(hi)
    a, b = np.radians(options.look_around_deg)
    return (float(a), float(b)) if yaw > 0 else (float(-b), float(-a))


def _wobble(rng: np.random.Generator, n: int, base: float, amplitude: float, lo: float,
            hi: float, period=(15.0, 60.0)) -> np.ndarray:
    """Smooth per-frame variation around `base`, kept inside [lo, hi]."""
    i = np.arange(n, dtype=np.float64)
    value = base + amplitude * np.sin(2 * np.pi * i / rng.uniform(*period) + rng.uniform(0, 7))
    return np.clip(value, lo, hi)


@dataclass
class WorldDrive:
    """One deterministic drive through a randomised scene (see the module docstring)."""

    seed: int
    options: WorldOptions = field(default_factory=WorldOptions)

    def __post_init__(self) -> None:
        opt = self.options
        scene_ss, camera_ss, light_ss, sensor_ss, path_ss = \
            np.random.SeedSequence(int(self.seed)).spawn(5)
        rng = np.random.default_rng(scene_ss)
        self.kind = opt.scenes[int(rng.integers(len(opt.scenes)))]
        self.camera = sample_camera(np.random.default_rng(camera_ss), opt)
        path_rng = np.random.default_rng(path_ss)
        speed = path_rng.uniform(*SPEED[self.kind])
        length = speed * max(opt.frames - 1, 1)
        self.scene = LAYOUTS[self.kind](rng, length, self.camera.height)
        if self.scene.ceiling is not None:  # never at or above the ceiling
            cap = self.scene.ceiling - 0.3
            if self.camera.height > cap:
                self.camera = replace(self.camera, height=cap)
        self.lighting: Lighting = sample_lighting(np.random.default_rng(light_ss),
                                                  self.scene.indoor)
        self.sensor: SensorModel = (sample_sensor(np.random.default_rng(sensor_ss))
                                    if opt.sensor_effects else NO_EFFECTS)
        self.K = self.camera.K
        self.poses = self._trajectory(path_rng, speed)

    def _trajectory(self, rng: np.random.Generator, speed: float) -> np.ndarray:
        opt, cam, n = self.options, self.camera, self.options.frames
        rad = np.radians
        i = np.arange(n, dtype=np.float64)
        z = speed * (i + 0.15 * np.sin(2 * np.pi * i / rng.uniform(10, 40) + rng.uniform(0, 7)))
        x = self.scene.camera_x + rng.uniform(0.0, 0.2) * np.sin(
            2 * np.pi * z / rng.uniform(5.0, 30.0) + rng.uniform(0, 7))
        height = _wobble(rng, n, cam.height, 0.03, *opt.camera_height)
        if self.scene.ceiling is not None:
            height = np.minimum(height, self.scene.ceiling - 0.3)
        pitch = _wobble(rng, n, cam.pitch, rad(1.5), *rad(opt.pitch_deg))
        roll = _wobble(rng, n, cam.roll, rad(0.7), *rad(opt.roll_deg))
        yaw = _wobble(rng, n, cam.yaw, rad(3.0), *yaw_limits(opt, cam.yaw))
        poses = np.tile(np.eye(4), (n, 1, 1))
        for j in range(n):
            poses[j, :3, :3] = rot_y(yaw[j]) @ rot_x(pitch[j]) @ rot_z(roll[j])
            poses[j, :3, 3] = (x[j], -(self.scene.camera_support + height[j]), z[j])
        self.heights = height  # above the surface the camera stands on
        return poses

    def __len__(self) -> int:
        return self.options.frames

    def stamp_ns(self, index: int) -> int:
        return round(index * 1e9 / self.options.fps)

    def render_scene(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(scene colour float32 [H, W, 3] before the sensor, exact depth float32 [H, W])."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range for a drive of {len(self)} frames")
        opt, pose = self.options, self.poses[index]
        hits = cast_rays(self.scene.bmin, self.scene.bmax, pose, self.K, opt.width, opt.height,
                         opt.far, ceiling=self.scene.ceiling)
        return shade_world(self.scene, self.lighting, hits, pose, self.K), hits.depth

    def render(self, index: int) -> Frame:
        colour, depth = self.render_scene(index)
        noise_rng = np.random.default_rng([int(self.seed), 1, int(index)])
        rgb = apply_sensor(colour, self.sensor, noise_rng)
        return Frame(index, rgb, depth, self.poses[index].copy(), self.K.copy(),
                     self.stamp_ns(index))

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.render(i)
