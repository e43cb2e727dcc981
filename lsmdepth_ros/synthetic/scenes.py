"""Scene layouts of the synthetic world: a static ground plane and axis-aligned boxes.

World frame (metres): x right, y DOWN, z forward along the road (KITTI-odometry style, so the
optical frame of an un-rotated camera is parallel to it). The ground is the plane y = 0; "up" is -y.
The street runs along +z, centred on x = 0, with raised sidewalks (kerbs), building blocks with
gaps and varying setback on both sides, parked cars, poles with signs and crates. Everything that
is not ground is an axis-aligned box. The scene is static (the self-supervised assumption).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsmdepth_ros.synthetic.textures import TEX_SIZE

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
                "texels_per_m": (TEX_SIZE / mat[:, 1]).astype(np.float32),
                "contrast": mat[:, 2].astype(np.float32),
            }
            self._surface_table = table
        return table



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
