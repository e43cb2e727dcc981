"""Procedural driving scenes with exact depth and poses, rendered by vectorised ray casting.

No downloads, deterministic per seed, any resolution. Used by the tests, the demo, the default
weights and as a sanity-check data set for self-supervised training.

World frame (metres): x right, y DOWN, z forward along the road (KITTI-odometry style, so the
optical frame of an un-rotated camera is parallel to it). The ground is the plane y = 0; "up" is -y.
The road runs along +z, centred on x = 0, with raised sidewalks (kerbs), building blocks with gaps
and varying setback on both sides, parked cars, poles with signs and crates. Everything that is
not ground is an axis-aligned box; the camera weaves and turns slightly, so the boxes are seen at
varying angles. The scene is static (the self-supervised assumption).

Camera: optical frame of REP 103 (x right, y down, z forward). `SyntheticDrive.poses[i]` is the
4x4 camera-to-world transform T_world_cam of frame i. Intrinsics default to KITTI's normalised K
(fx = 0.58 W, fy = 1.92 H, cx = 0.5 W, cy = 0.5 H, monodepth2's values).

Rendering: per-pixel nearest hit of the ground plane and every box (slab test, restricted to the
box's projected bounding rectangle). Depth is z along the optical axis in metres; sky and anything
beyond `far` are NaN. Colour is Lambertian shading (fixed sun) of albedo textures mapped in WORLD
coordinates (skimage's gravel/grass/brick photos and tileable procedural noise, mip-mapped), so a
surface point has the same colour in every frame: photometric consistency holds except on
occlusions, which is what self-supervised training needs. The sky colour depends only on the ray
direction (it is infinitely far).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from lsmdepth_ros.geometry import (
    normalized_to_pixel_intrinsics,
    pixel_rays,
    scale_intrinsics,
)
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import MonoDataset, sequence_items

#: KITTI's normalised intrinsics as monodepth2 uses them (row 0 times width, row 1 times height).
KITTI_K_NORMALIZED = np.array([[0.58, 0.0, 0.5],
                               [0.0, 1.92, 0.5],
                               [0.0, 0.0, 1.0]])

# Materials: index -> (texture index, texture tile size in metres, texture contrast).
ROAD, GRASS, SIDEWALK, BUILDING, CAR_BODY, CAR_CABIN, POLE, SIGN, CRATE = range(9)
_MATERIALS = np.array([
    # texture, tile [m], contrast
    (0, 3.0, 0.9),   # ROAD: gravel photo
    (1, 2.0, 0.9),   # GRASS: grass photo
    (4, 2.0, 0.8),   # SIDEWALK: procedural paving
    (2, 3.0, 0.8),   # BUILDING: brick photo
    (3, 2.5, 0.6),   # CAR_BODY: procedural noise
    (3, 1.5, 0.6),   # CAR_CABIN
    (5, 1.0, 0.7),   # POLE
    (3, 1.0, 0.9),   # SIGN
    (5, 1.5, 0.9),   # CRATE
], dtype=np.float64)

_TEX_SIZE = 256
_SUN = np.array([0.35, -0.8, 0.45]) / np.linalg.norm([0.35, -0.8, 0.45])  # towards the sun
_AMBIENT, _DIFFUSE = 0.45, 0.6


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
class Scene:
    """Static world: the road and a list of axis-aligned boxes with materials."""

    road_half_width: float
    bmin: np.ndarray      # [N, 3] box minimum corners (world)
    bmax: np.ndarray      # [N, 3]
    material: np.ndarray  # [N] material index
    color: np.ndarray     # [N, 3] albedo
    uv_offset: np.ndarray  # [N, 2] texture offset in metres (boxes do not look alike)
    window_spacing: np.ndarray  # [N] window pitch on buildings [m] (0: no windows)

    def surface_table(self) -> dict[str, np.ndarray]:
        """Per-surface shading constants, float32; rows N and N+1 are the road and the grass."""
        table = getattr(self, "_surface_table", None)
        if table is None:
            material = np.concatenate([self.material, [ROAD, GRASS]])
            mat = _MATERIALS[material]
            table = {
                "material": material,
                "color": np.concatenate([self.color, [[0.42, 0.42, 0.44], [0.35, 0.5, 0.22]]]
                                        ).astype(np.float32),
                "offset": np.concatenate([self.uv_offset, np.zeros((2, 2))]).astype(np.float32),
                "texture": mat[:, 0].astype(np.int64),
                "texels_per_m": (_TEX_SIZE / mat[:, 1]).astype(np.float32),
                "contrast": mat[:, 2].astype(np.float32),
            }
            self._surface_table = table
        return table


@dataclass
class Frame:
    """One rendered frame."""

    index: int
    rgb: np.ndarray     # [H, W, 3] uint8
    depth: np.ndarray   # [H, W] float32 metres, z along the optical axis, NaN = sky / invalid
    pose: np.ndarray    # [4, 4] float64 T_world_cam
    K: np.ndarray       # [3, 3] float64 pixel intrinsics
    stamp_ns: int


# ----------------------------------------------------------------------------------------------
# textures

def _tileable_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """Periodic 1/f^beta noise in [0, 1] (periodic so that world-space tiling has no seams)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** beta
    spectrum[0, 0] = 0
    img = np.fft.irfft2(spectrum, s=(size, size))
    img = (img - img.min()) / (img.max() - img.min())
    return img


def _paving(rng: np.random.Generator, size: int) -> np.ndarray:
    noise = _tileable_noise(rng, size, 1.2)
    tiles = 4
    u = (np.arange(size) * tiles / size) % 1.0
    joints = (np.minimum(u, 1 - u) < 0.03)
    grid = joints[None, :] | joints[:, None]
    return np.where(grid, 0.25, 0.55 + 0.45 * noise)


def _photo(name: str, size: int) -> np.ndarray:
    import cv2
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float32) / 255.0
    if img.ndim == 3:
        img = img.mean(axis=2)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class _Atlas:
    flat: np.ndarray      # all mip levels of all textures, flattened, float32, mean ~1
    offsets: np.ndarray   # [T, L] start of (texture, level) in flat
    sizes: np.ndarray     # [L] side length of level l
    levels: int


@lru_cache(maxsize=1)
def _atlas() -> _Atlas:
    rng = np.random.default_rng(20240607)  # textures are fixed; only the layout depends on seed
    size = _TEX_SIZE
    textures = [
        _photo("gravel", size),
        _photo("grass", size),
        _photo("brick", size),
        _tileable_noise(rng, size, 1.0),
        _paving(rng, size),
        _tileable_noise(rng, size, 0.7),
    ]
    levels = int(np.log2(size)) - 1  # down to 4x4
    flat, offsets, sizes = [], np.zeros((len(textures), levels), np.int64), []
    pos = 0
    for t, tex in enumerate(textures):
        level = (tex / tex.mean()).astype(np.float32)
        for lv in range(levels):
            if t == 0:
                sizes.append(level.shape[0])
            offsets[t, lv] = pos
            flat.append(level.ravel())
            pos += level.size
            level = 0.25 * (level[0::2, 0::2] + level[1::2, 0::2] + level[0::2, 1::2]
                            + level[1::2, 1::2])
    return _Atlas(np.concatenate(flat), offsets, np.array(sizes, np.int64), levels)


def _sample(atlas: _Atlas, tex: np.ndarray, level: np.ndarray, a: np.ndarray,
            b: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup at (a, b) in level-0 texels of texture `tex` at mip `level`."""
    size = atlas.sizes[level]          # powers of two: wrap with a bit mask
    mask = size - 1
    scale = np.ldexp(np.float32(1.0), -level.astype(np.int32)).astype(np.float32)
    x = a * scale - 0.5
    y = b * scale - 0.5
    x0f = np.floor(x)
    y0f = np.floor(y)
    fx = x - x0f
    fy = y - y0f
    x0 = x0f.astype(np.int64) & mask
    y0 = y0f.astype(np.int64) & mask
    x1 = (x0 + 1) & mask
    y1 = (y0 + 1) & mask
    base = atlas.offsets[tex, level]
    r0 = base + y0 * size
    r1 = base + y1 * size
    f = atlas.flat
    top = f.take(r0 + x0) * (1 - fx) + f.take(r0 + x1) * fx
    bot = f.take(r1 + x0) * (1 - fx) + f.take(r1 + x1) * fx
    return top * (1 - fy) + bot * fy


# ----------------------------------------------------------------------------------------------
# scene layout

def build_scene(seed: int, z_start: float, z_end: float) -> Scene:
    """Random but deterministic layout of a street covering z in [z_start, z_end]."""
    rng = np.random.default_rng(seed)
    road_half = float(rng.uniform(4.5, 6.5))
    sidewalk = float(rng.uniform(2.0, 3.5))
    kerb = float(rng.uniform(0.12, 0.2))
    boxes: list[tuple] = []  # (bmin, bmax, material, color, window_spacing)

    def add(bmin, bmax, material, color, windows=0.0):
        boxes.append((bmin, bmax, material, color, windows))

    for side in (-1.0, 1.0):
        def xs(inner, outer, side=side):
            """x-interval at distance [inner, outer] from the road centre on this side."""
            return (inner, outer) if side > 0 else (-outer, -inner)

        # raised sidewalk in 15 m slabs (small boxes keep the projected rectangles tight)
        sw_color = rng.uniform(0.55, 0.7) * np.array([1.0, 0.98, 0.93])
        x0, x1 = xs(road_half, road_half + sidewalk)
        for z in np.arange(z_start, z_end, 15.0):
            add((x0, -kerb, z), (x1, 0.0, z + 15.0), SIDEWALK, sw_color)

        # building blocks with gaps, varying setback, height and colour
        z = z_start
        front0 = road_half + sidewalk
        while z < z_end:
            if rng.random() < 0.3:  # a gap, sometimes closed by a building farther back
                gap = rng.uniform(4.0, 12.0)
                if rng.random() < 0.7:
                    inner = front0 + rng.uniform(8.0, 16.0)
                    x0, x1 = xs(inner, inner + 10.0)
                    add((x0, -rng.uniform(6.0, 20.0), z), (x1, 0.0, z + gap), BUILDING,
                        _building_color(rng), rng.uniform(2.5, 4.0))
                z += gap
            length = rng.uniform(8.0, 25.0)
            inner = front0 + rng.uniform(0.0, 3.0)
            x0, x1 = xs(inner, inner + rng.uniform(8.0, 15.0))
            add((x0, -rng.uniform(5.0, 18.0), z), (x1, 0.0, z + length), BUILDING,
                _building_color(rng), rng.uniform(2.5, 4.0))
            z += length

        # parked cars along the kerb: body + cabin
        z = z_start + rng.uniform(0.0, 10.0)
        while z < z_end:
            clen = rng.uniform(3.8, 4.8)
            x0, x1 = xs(road_half - 0.3 - 1.8, road_half - 0.3)
            color = rng.uniform(0.05, 0.9, size=3)
            add((x0, -0.95, z), (x1, -0.2, z + clen), CAR_BODY, color)
            add((x0 + 0.15, -1.45, z + 1.0), (x1 - 0.15, -0.95, z + clen - 1.0), CAR_CABIN,
                0.35 * color + 0.1)
            z += clen + rng.uniform(1.5, 30.0)

        # poles (street lights / signs) and crates on the sidewalk
        z = z_start + rng.uniform(0.0, 10.0)
        while z < z_end:
            height = rng.uniform(3.5, 7.0)
            x0, x1 = xs(road_half + 0.4, road_half + 0.6)
            add((x0, -height, z), (x1, -kerb, z + 0.2), POLE, np.array([0.45, 0.45, 0.5]))
            if rng.random() < 0.5:  # a sign plate facing the traffic
                sx0, sx1 = xs(road_half - 0.1, road_half + 1.1)
                add((sx0, -height - 0.1, z - 0.05), (sx1, -height + 0.7, z),
                    SIGN, rng.uniform(0.1, 0.95, size=3))
            z += rng.uniform(10.0, 25.0)
        z = z_start + rng.uniform(0.0, 20.0)
        while z < z_end:
            s = rng.uniform(0.5, 1.3)
            inner = road_half + sidewalk - s - rng.uniform(0.0, 0.5)
            x0, x1 = xs(inner, inner + s)
            add((x0, -kerb - s, z), (x1, -kerb, z + s * rng.uniform(0.8, 2.0)), CRATE,
                rng.uniform(0.2, 0.8, size=3))
            z += rng.uniform(8.0, 40.0)

    n = len(boxes)
    return Scene(
        road_half_width=road_half,
        bmin=np.array([b[0] for b in boxes], np.float64).reshape(n, 3),
        bmax=np.array([b[1] for b in boxes], np.float64).reshape(n, 3),
        material=np.array([b[2] for b in boxes], np.int64),
        color=np.array([b[3] for b in boxes], np.float64).reshape(n, 3),
        uv_offset=rng.uniform(0.0, 50.0, size=(n, 2)),
        window_spacing=np.array([b[4] for b in boxes], np.float64),
    )


def _building_color(rng: np.random.Generator) -> np.ndarray:
    base = np.array([[0.75, 0.45, 0.35], [0.8, 0.75, 0.6], [0.6, 0.6, 0.62], [0.55, 0.65, 0.75],
                     [0.85, 0.8, 0.75]])[rng.integers(5)]
    return np.clip(base * rng.uniform(0.8, 1.15), 0, 1)


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
        poses[j, :3, :3] = _rot_y(heading[j]) @ _rot_x(pitch[j]) @ _rot_z(roll[j])
        poses[j, :3, 3] = (x[j], y[j], z[j])
    return poses


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def relative_pose(T_world_a: np.ndarray, T_world_b: np.ndarray) -> np.ndarray:
    """T_b_a: maps points in camera a's frame to camera b's (monodepth2's target->source T)."""
    return np.linalg.inv(T_world_b) @ T_world_a


# ----------------------------------------------------------------------------------------------
# rendering

_NEAR = 0.05


def _box_rect(corners_cam: np.ndarray, K: np.ndarray, width: int, height: int):
    """Pixel rectangle (u0, u1, v0, v1) containing a box's projection, or None if invisible.

    Corners behind the near plane are replaced by the box edges' intersections with it.
    """
    z = corners_cam[:, 2]
    front = z > _NEAR
    if not front.any():
        return None
    pts = corners_cam[front]
    if not front.all():
        a, b = _BOX_EDGES[:, 0], _BOX_EDGES[:, 1]
        crossing = front[a] != front[b]
        pa, pb = corners_cam[a[crossing]], corners_cam[b[crossing]]
        s = (_NEAR - pa[:, 2]) / (pb[:, 2] - pa[:, 2])
        pts = np.concatenate([pts, pa + s[:, None] * (pb - pa)])
    u = K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]
    v = K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]
    u0, u1 = int(np.floor(u.min())), int(np.ceil(u.max())) + 1
    v0, v1 = int(np.floor(v.min())), int(np.ceil(v.max())) + 1
    u0, v0 = max(u0, 0), max(v0, 0)
    u1, v1 = min(u1, width), min(v1, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return u0, u1, v0, v1


def _box_rects(corners_cam: np.ndarray, K: np.ndarray, width: int, height: int,
               far: float) -> np.ndarray:
    """Pixel rectangles [M, 4] (u0, u1, v0, v1) of M boxes' corners [M, 8, 3]; -1 = invisible.

    Boxes entirely in front of the camera are projected in one vectorised step; the few that
    cross the near plane (beside the camera) go through `_box_rect`.
    """
    z = corners_cam[..., 2]
    rects = np.full((corners_cam.shape[0], 4), -1, np.int64)
    front = (z > _NEAR).all(axis=1) & (z.min(axis=1) < far)
    if front.any():
        c = corners_cam[front]
        u = K[0, 0] * c[..., 0] / c[..., 2] + K[0, 2]
        v = K[1, 1] * c[..., 1] / c[..., 2] + K[1, 2]
        r = np.stack([np.floor(u.min(1)), np.ceil(u.max(1)) + 1,
                      np.floor(v.min(1)), np.ceil(v.max(1)) + 1], axis=1)
        r = np.clip(r, 0, [width, width, height, height]).astype(np.int64)
        r[(r[:, 0] >= r[:, 1]) | (r[:, 2] >= r[:, 3])] = -1
        rects[front] = r
    for k in np.nonzero(~front & (z > _NEAR).any(axis=1) & (z.min(axis=1) < far))[0]:
        rect = _box_rect(corners_cam[k], K, width, height)
        if rect is not None:
            rects[k] = rect
    return rects


_CORNER_BITS = np.array([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])
_BOX_EDGES = np.array([(a, a | (1 << k)) for a in range(8) for k in range(3) if not a & (1 << k)])


def render(scene: Scene, T_world_cam: np.ndarray, K: np.ndarray, width: int, height: int,
           far: float = 200.0, shade: bool = True):
    """Ray-cast one view. Returns (rgb float32 [H,W,3] in [0,1] or None, depth float32 [H,W]).

    Depth is z along the optical axis (metres); NaN where the ray hits nothing within `far`.
    """
    K = np.asarray(K, np.float64)
    R = T_world_cam[:3, :3]
    o = T_world_cam[:3, 3]
    rays = pixel_rays(K, width, height)  # (x/z, y/z): the camera ray with z = 1
    d_cam = np.empty((height, width, 3), np.float32)
    d_cam[..., :2] = rays
    d_cam[..., 2] = 1.0
    d = d_cam @ R.T.astype(np.float32)  # world direction; the ray parameter t is the depth z
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv_d = np.ascontiguousarray(np.moveaxis(1.0 / d, 2, 0))  # planar [3, H, W]
        zbuf = np.full((height, width), far, np.float32)  # farther = sky
        obj = np.full((height, width), -1, np.int32)  # -1 sky, -2 ground, >= 0 box index
        face = np.zeros((height, width), np.int8)      # normal code: axis * 2 + (positive side)

        # ground plane y = 0 (rays going down: d_y > 0 since y points down)
        t = -np.float32(o[1]) * inv_d[1]
        ground = (t > _NEAR) & (t < far)
        zbuf[ground] = t[ground]
        obj[ground] = -2
        face[ground] = 2  # -y normal (up)

        # boxes overlapping the depth range [cam z - far, cam z + far] along the road
        near_boxes = np.nonzero((scene.bmax[:, 2] > o[2] - far) & (scene.bmin[:, 2] < o[2] + far))[0]
        lo_all = (scene.bmin - o).astype(np.float32)
        hi_all = (scene.bmax - o).astype(np.float32)
        corners = (scene.bmin[near_boxes, None] + _CORNER_BITS
                   * (scene.bmax[near_boxes] - scene.bmin[near_boxes])[:, None])
        corners_cam = (corners - o) @ R
        rects = _box_rects(corners_cam, K, width, height, far)
        zmin = corners_cam[..., 2].min(axis=1)
        for j in np.argsort(zmin):  # near to far: hidden boxes are skipped below
            u0, u1, v0, v1 = rects[j]
            if u0 < 0:
                continue
            i = near_boxes[j]
            if zmin[j] >= zbuf[v0:v1, u0:u1].max():
                continue  # entirely behind what is already drawn in its rectangle
            lo, hi = lo_all[i], hi_all[i]
            tnear = tfar = None
            entry = []
            for k in range(3):
                inv = inv_d[k, v0:v1, u0:u1]
                t1, t2 = lo[k] * inv, hi[k] * inv
                tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
                entry.append(tmin)
                tnear = tmin if tnear is None else np.maximum(tnear, tmin)
                tfar = tmax if tfar is None else np.minimum(tfar, tmax)
            zb = zbuf[v0:v1, u0:u1]
            hit = (tnear <= tfar) & (tnear > _NEAR) & (tnear < zb)
            if not hit.any():
                continue
            th = tnear[hit]
            zb[hit] = th
            obj[v0:v1, u0:u1][hit] = i
            # the entry face is the axis whose slab is entered last; max side if d < 0
            axis = np.where(entry[0][hit] == th, 0, np.where(entry[1][hit] == th, 1, 2))
            d_axis = np.choose(axis, [inv_d[k, v0:v1, u0:u1][hit] for k in range(3)])
            face[v0:v1, u0:u1][hit] = axis * 2 + (d_axis < 0)

    valid = obj != -1
    depth = np.where(valid, zbuf, np.nan).astype(np.float32)
    if not shade:
        return None, depth
    rgb = np.empty((height, width, 3), np.float32)
    rgb[~valid] = _sky(d[~valid])
    rgb[valid] = _shade_surfaces(scene, o, d[valid], zbuf[valid], obj[valid], face[valid], K)
    return rgb, depth


def _shade_surfaces(scene: Scene, o, d, t, obj, face, K) -> np.ndarray:
    atlas = _atlas()
    table = scene.surface_table()
    n = t.shape[0]
    p = o.astype(np.float32) + t[:, None] * d  # hit points (world)
    axis = face // 2
    sign = (face % 2).astype(np.float32) * 2 - 1

    ground = obj == -2
    on_road = ground & (np.abs(p[:, 0]) < scene.road_half_width)
    nb = scene.bmin.shape[0]
    surface = np.where(ground, np.where(on_road, nb, nb + 1), obj)
    material = table["material"].take(surface)
    color = table["color"].take(surface, axis=0)
    offset = table["offset"].take(surface, axis=0)
    texels_per_m = table["texels_per_m"].take(surface)

    # texture coordinates (metres) in the face's plane
    a = np.where(axis == 0, p[:, 2], p[:, 0]) + offset[:, 0]
    b = np.where(axis == 1, p[:, 2], p[:, 1]) + offset[:, 1]
    # mip level from the pixel footprint on the surface (geometric mean of the two axes)
    dnorm = np.sqrt(np.einsum("ij,ij->i", d, d))
    cos = np.abs(d[np.arange(n), axis]) / dnorm
    footprint = t * dnorm * (texels_per_m / np.float32(K[0, 0])) / np.sqrt(np.maximum(cos, 0.05))
    level = np.clip(np.floor(np.log2(np.maximum(footprint, 1e-6)) + 0.5), 0,
                    atlas.levels - 1).astype(np.int64)
    texval = _sample(atlas, table["texture"].take(surface), level, a * texels_per_m,
                     b * texels_per_m)
    albedo = color * (1.0 + table["contrast"].take(surface)[:, None] * (texval[:, None] - 1.0))

    # painted road markings: dashed centre line and solid edge lines
    x, z = p[:, 0], p[:, 2]
    centre = on_road & (np.abs(x) < 0.08) & ((z % 9.0) < 3.0)
    edge = on_road & (np.abs(np.abs(x) - (scene.road_half_width - 0.35)) < 0.08)
    paint = centre | edge
    albedo[paint] = 0.9 * (0.85 + 0.15 * texval[paint, None])

    # windows on building walls (vertical faces)
    wall = (material == BUILDING) & (axis != 1)
    if wall.any():
        idx = np.nonzero(wall)[0]
        box = obj[idx]
        spacing = scene.window_spacing[box]
        along = (np.where(axis[idx] == 0, p[idx, 2], p[idx, 0]) + offset[idx, 0]) / spacing
        up = -p[idx, 1]
        fa, fb = along % 1.0, (up / 3.2) % 1.0
        top = -scene.bmin[box, 1]
        win = (fa > 0.25) & (fa < 0.75) & (fb > 0.35) & (fb < 0.8) & (up > 2.5) & (up < top - 1.0)
        idx = idx[win]
        albedo[idx] = np.array([0.12, 0.15, 0.22], np.float32) * (0.6 + 0.4 * texval[idx, None])

    # Lambertian: n . sun with n = sign * e_axis
    shading = _AMBIENT + _DIFFUSE * np.clip(sign * _SUN.astype(np.float32).take(axis), 0.0, None)
    albedo *= shading[:, None]
    return np.clip(albedo, 0.0, 1.0, out=albedo)


def _sky(d: np.ndarray) -> np.ndarray:
    """Sky colour from the ray direction only (it is at infinity): gradient + cloud texture."""
    if d.shape[0] == 0:
        return np.zeros((0, 3), np.float32)
    atlas = _atlas()
    n = d / np.linalg.norm(d, axis=1, keepdims=True)
    elevation = np.clip(-n[:, 1], 0.0, 1.0)
    azimuth = np.arctan2(n[:, 0], n[:, 2])
    horizon, zenith = np.array([0.78, 0.85, 0.95]), np.array([0.35, 0.55, 0.9])
    w = np.sqrt(elevation)[:, None]
    base = (1 - w) * horizon + w * zenith
    clouds = _sample(atlas, np.full(n.shape[0], 3), np.full(n.shape[0], 2),
                     azimuth * 300.0, elevation * 600.0)
    return np.clip(base * (0.9 + 0.15 * clouds[:, None]), 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# drives

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


# ----------------------------------------------------------------------------------------------
# torch data set rendering on the fly

def drive_seed(seed: int, sequence: int) -> int:
    """Seed of sequence k of a data set with seed s (distinct data sets do not share drives)."""
    return int(seed) * 100003 + int(sequence)


class SyntheticDataset(MonoDataset):
    """Synthetic drives rendered on the fly, in the monodepth2 sample format (see base.py).

    Sequence k is `SyntheticDrive(drive_seed(seed, k), options)`, rendered at the data set's
    (width, height), so the images need no resizing at scale 0. Rendered frames are kept in an
    LRU cache of `cache_frames` frames per process (neighbouring samples share frames).
    Ground-truth depth ("depth_gt") and relative poses (("pose_gt", i)) are exact.

    To train from files instead, write a folder with `write_kitti_layout` (or `lsmdepth synth`)
    and read it with `kitti.synthetic_folder_dataset`.
    """

    def __init__(self, num_sequences: int = 4, frames_per_sequence: int = 100,
                 height: int = 192, width: int = 640, seed: int = 0,
                 frame_ids: tuple[int, ...] = (0, -1, 1), num_scales: int = 4,
                 is_train: bool = False, load_depth: bool = True,
                 augment: AugmentOptions | None = None, cache_frames: int = 256,
                 options: SyntheticOptions | None = None):
        base = options or SyntheticOptions()
        self.options = replace(base, width=int(width), height=int(height),
                               frames=int(frames_per_sequence))
        self.seed = int(seed)
        self.drives = {f"{k:04d}": SyntheticDrive(drive_seed(seed, k), self.options)
                       for k in range(int(num_sequences))}
        items = sequence_items({k: len(d) for k, d in self.drives.items()}, tuple(frame_ids))
        super().__init__(items, height, width, frame_ids, num_scales, is_train, load_depth,
                         augment)
        self._cache: OrderedDict = OrderedDict()
        self._cache_frames = int(cache_frames)

    def frame(self, sequence: str, frame_index: int) -> Frame:
        key = (sequence, frame_index)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        frame = self.drives[sequence].render(frame_index)
        if self._cache_frames > 0:
            self._cache[key] = frame
            while len(self._cache) > self._cache_frames:
                self._cache.popitem(last=False)
        return frame

    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        return self.frame(sequence, frame_index).rgb

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        # images of coarser scales are area-downsampled renders: pixel-centre scaling is exact
        return scale_intrinsics(self.options.K, (self.options.width, self.options.height),
                                (width, height))

    def load_depth_gt(self, sequence: str, frame_index: int) -> np.ndarray:
        return self.frame(sequence, frame_index).depth

    def relative_pose(self, sequence: str, frame_index: int, offset: int) -> np.ndarray:
        poses = self.drives[sequence].poses
        return relative_pose(poses[frame_index], poses[frame_index + offset])
