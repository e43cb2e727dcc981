"""The procedural world: scenes, camera trajectories, a ray-casting renderer and writers.

Exact depth and poses, no downloads, deterministic per seed, any resolution. numpy (+ OpenCV for
resizing and encoding); no torch, no ROS. The torch data set that renders it on the fly is
`lsmdepth_ros.training.datasets.SyntheticDataset`.

- `scenes`: layouts (ground plane + axis-aligned boxes with materials)
- `textures`: the albedo texture atlas (skimage photos + procedural noise)
- `renderer`: `render(scene, T_world_cam, K, width, height)` -> (rgb, depth)
- `drive`: `SyntheticOptions`, `SyntheticDrive` (trajectory + frames), `drive_seed`
- `writer`: KITTI-like folders (`write_kitti_layout`); rosbag2 bags with odometry and TF are
  written by `lsmdepth_ros.bags.synthetic_bag` (bags sit on top of the core)

The domain-randomised world (streets, campus paths, rooms, corridors, warehouse aisles; random
camera, light and sensor per drive) reuses the ray casting:
- `world`: `WorldOptions`, `WorldDrive` (same Frame interface as `SyntheticDrive`)
- `world_scene`, `outdoor_layouts`, `indoor_layouts`: the scene description and its builders
- `world_shading`: textures, light, cast shadows, AO-like darkening, sky, fog
- `sensor`: exposure, white balance, noise, blur, vignetting, JPEG
"""
from lsmdepth_ros.synthetic.drive import (
    KITTI_K_NORMALIZED,
    Frame,
    SyntheticDrive,
    SyntheticOptions,
    drive_seed,
    relative_pose,
)
from lsmdepth_ros.synthetic.renderer import render
from lsmdepth_ros.synthetic.scenes import Scene, build_scene
from lsmdepth_ros.synthetic.world import WorldDrive, WorldOptions

__all__ = [
    "KITTI_K_NORMALIZED",
    "Frame",
    "Scene",
    "SyntheticDrive",
    "SyntheticOptions",
    "WorldDrive",
    "WorldOptions",
    "build_scene",
    "drive_seed",
    "relative_pose",
    "render",
]
