"""The randomised world's scene description: boxes with per-box appearance, ground bands, ceiling.

Same frame as the classic drive (metres, x right, y DOWN, z forward; the ground is y = 0, "up" is
-y). A scene is the ground plane, an optional ceiling plane (indoors) and axis-aligned boxes, so
the renderer's exact ray casting (raycast.py) applies unchanged. Every surface carries its own
appearance (texture, tile size, contrast, albedo), drawn at random by the layout builders
(outdoor_layouts.py, indoor_layouts.py): domain randomisation, not a catalogue of materials.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsmdepth_ros.synthetic.textures import WORLD_TEXTURES

TEXTURE = {name: i for i, name in enumerate(WORLD_TEXTURES)}

# texture families a builder draws from (any photo may show up anywhere: randomisation)
PHOTOS = ("camera", "moon", "coffee", "chelsea", "rocket", "astronaut", "page", "coins")
GROUND_OUTDOOR = ("grass", "gravel", "noise", "concrete", "paving")
ROAD = ("gravel", "concrete", "noise_fine")
WALL = ("brick", "noise", "noise_fine", "concrete", "stripes", "tiles", "paving") + PHOTOS[:3]
FLOOR = ("planks", "tiles", "tiles_small", "carpet", "concrete", "noise", "checker")
OBJECT = tuple(WORLD_TEXTURES)


@dataclass(frozen=True)
class Material:
    texture: int          # index into WORLD_TEXTURES
    tile: float           # metres per texture repeat
    contrast: float       # 0: flat albedo, 1: the texture's full modulation
    albedo: tuple         # RGB in [0, 1]


def random_color(rng: np.random.Generator, base=None, saturation: float = 0.6,
                 lo: float = 0.1, hi: float = 0.9) -> np.ndarray:
    """An albedo: a random colour pulled towards grey (or towards `base`)."""
    grey = rng.uniform(lo, hi)
    tint = rng.uniform(lo, hi, 3)
    colour = (1 - saturation) * grey + saturation * tint
    if base is not None:
        colour = 0.5 * colour + 0.5 * np.asarray(base) * rng.uniform(0.8, 1.2)
    return np.clip(colour, 0.03, 0.97)


def random_material(rng: np.random.Generator, family: tuple[str, ...], tile=(0.5, 3.0),
                    base=None, saturation: float = 0.6, contrast=(0.4, 1.0)) -> Material:
    return Material(TEXTURE[family[rng.integers(len(family))]], float(rng.uniform(*tile)),
                    float(rng.uniform(*contrast)),
                    tuple(random_color(rng, base, saturation)))


@dataclass
class WorldScene:
    """A static scene of the randomised world (see the module docstring)."""

    kind: str
    bmin: np.ndarray           # [N, 3] box minimum corners (world)
    bmax: np.ndarray           # [N, 3]
    texture: np.ndarray        # [N] int64
    tile: np.ndarray           # [N] metres per repeat
    contrast: np.ndarray       # [N]
    albedo: np.ndarray         # [N, 3]
    uv_offset: np.ndarray      # [N, 2] metres (boxes do not look alike)
    emissive: np.ndarray       # [N] bool: lamps and windows (not shaded)
    casts_shadow: np.ndarray   # [N] bool (indoors, walls and ceilings do not block the key light)
    ground: Material           # default ground material
    bands: list                # [(x_lo, x_hi, Material)]: ground strips (road, path, lane marks)
    ceiling: float | None      # ceiling height above the ground (None: sky)
    ceiling_material: Material | None
    camera_x: float            # lateral position of the camera path
    camera_support: float      # height of the surface the camera stands on (kerb, floor)

    @property
    def indoor(self) -> bool:
        return self.ceiling is not None


class SceneBuilder:
    """Collects boxes given as x, z intervals and heights ABOVE the ground (h0 bottom, h1 top)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.rows: list[tuple] = []

    def box(self, x0, x1, h0, h1, z0, z1, material: Material, shadow: bool = True,
            emissive: bool = False) -> None:
        if x1 <= x0 or h1 <= h0 or z1 <= z0:
            return
        self.rows.append(((x0, -h1, z0), (x1, -h0, z1), material, shadow, emissive))

    def clear_tube(self, x: float, half_width: float, z0: float, z1: float, h0: float,
                   h1: float) -> None:
        """Remove boxes that would stand in the camera's way (the path it travels)."""
        def blocks(row):
            (bx0, by0, bz0), (bx1, by1, bz1) = row[0], row[1]
            return (bx0 < x + half_width and bx1 > x - half_width and bz0 < z1 and bz1 > z0
                    and -by1 < h1 and -by0 > h0)
        self.rows = [r for r in self.rows if not blocks(r)]

    def build(self, kind: str, ground: Material, bands, ceiling, ceiling_material,
              camera_x: float, camera_support: float = 0.0) -> WorldScene:
        n = len(self.rows)
        mats = [r[2] for r in self.rows]
        return WorldScene(
            kind=kind,
            bmin=np.array([r[0] for r in self.rows], np.float64).reshape(n, 3),
            bmax=np.array([r[1] for r in self.rows], np.float64).reshape(n, 3),
            texture=np.array([m.texture for m in mats], np.int64),
            tile=np.array([m.tile for m in mats], np.float64),
            contrast=np.array([m.contrast for m in mats], np.float64),
            albedo=np.array([m.albedo for m in mats], np.float64).reshape(n, 3),
            uv_offset=self.rng.uniform(0.0, 50.0, size=(n, 2)),
            emissive=np.array([r[4] for r in self.rows], bool),
            casts_shadow=np.array([r[3] for r in self.rows], bool),
            ground=ground, bands=list(bands), ceiling=ceiling, ceiling_material=ceiling_material,
            camera_x=float(camera_x), camera_support=float(camera_support))


def add_clutter(b: SceneBuilder, count: int, x_range, z_range, size=(0.1, 0.8),
                support: float = 0.0) -> None:
    """Boxes of varied sizes and looks standing on the floor (bins, crates, parcels, stones)."""
    rng = b.rng
    for _ in range(count):
        sx, sz = rng.uniform(*size), rng.uniform(*size)
        h = rng.uniform(size[0], size[1] * 1.5)
        x, z = rng.uniform(*x_range), rng.uniform(*z_range)
        b.box(x - sx / 2, x + sx / 2, support, support + h, z - sz / 2, z + sz / 2,
              random_material(rng, OBJECT, tile=(0.2, 1.5), saturation=0.9))


def add_steps(b: SceneBuilder, x0, x1, z0, count: int, rise: float, run: float,
              material: Material) -> None:
    """A flight of `count` steps rising along +z, topped by a landing (boxes on the ground)."""
    for k in range(count):
        start = z0 + k * run
        b.box(x0, x1, 0.0, rise * (k + 1), start, z0 + count * run + 0.5, material)


def add_table(b: SceneBuilder, x, z, width, depth, height, material: Material) -> None:
    top = 0.04
    b.box(x - width / 2, x + width / 2, height - top, height, z - depth / 2, z + depth / 2,
          material)
    leg = 0.05
    for sx in (-1, 1):
        for sz in (-1, 1):
            lx = x + sx * (width / 2 - leg)
            lz = z + sz * (depth / 2 - leg)
            b.box(lx - leg / 2, lx + leg / 2, 0.0, height - top, lz - leg / 2, lz + leg / 2,
                  material)
