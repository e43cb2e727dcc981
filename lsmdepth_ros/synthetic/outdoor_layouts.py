"""Outdoor layouts of the randomised world: streets and campus paths.

Each builder lays out a scene around a camera path along +z from z = 0 to z = `length` at lateral
position `camera_x` (chosen here), keeps that path clear, and may put obstacles beyond its end.
"""
from __future__ import annotations

import numpy as np

from lsmdepth_ros.synthetic.world_scene import (
    FLOOR,
    GROUND_OUTDOOR,
    OBJECT,
    ROAD,
    WALL,
    SceneBuilder,
    WorldScene,
    add_clutter,
    add_steps,
    random_material,
)


def _buildings(b: SceneBuilder, side: float, front: float, z0: float, z1: float,
               gap_prob: float = 0.3) -> None:
    """Blocks of varied height, depth and setback along one side, with gaps."""
    rng = b.rng
    z = z0
    while z < z1:
        if rng.random() < gap_prob:
            z += rng.uniform(3.0, 15.0)
        length = rng.uniform(6.0, 30.0)
        inner = front + rng.uniform(0.0, 4.0)
        outer = inner + rng.uniform(6.0, 20.0)
        x0, x1 = (inner, outer) if side > 0 else (-outer, -inner)
        mat = random_material(b.rng, WALL, tile=(1.5, 5.0), saturation=0.4)
        b.box(x0, x1, 0.0, rng.uniform(3.0, 25.0), z, z + length, mat)
        if rng.random() < 0.5:  # a doorway / shop front: a dark recess box in front of the wall
            face = inner if side > 0 else -inner
            dz = rng.uniform(1.0, 3.0)
            zc = z + rng.uniform(0.0, max(length - dz, 0.1))
            b.box(face - 0.05, face + 0.05, 0.0, rng.uniform(2.0, 3.0), zc, zc + dz,
                  random_material(rng, OBJECT, tile=(0.5, 2.0)))
        z += length


def _trees(b: SceneBuilder, xs, z0: float, z1: float, spacing=(6.0, 20.0)) -> None:
    rng = b.rng
    z = z0 + rng.uniform(0.0, spacing[0])
    while z < z1:
        x = rng.uniform(*xs)
        trunk = rng.uniform(0.15, 0.4)
        h = rng.uniform(2.0, 4.0)
        bark = random_material(rng, ("noise", "noise_fine", "concrete"), tile=(0.5, 1.5),
                               base=(0.35, 0.25, 0.15))
        b.box(x - trunk / 2, x + trunk / 2, 0.0, h, z - trunk / 2, z + trunk / 2, bark)
        crown = rng.uniform(1.5, 4.5)
        leaves = random_material(rng, ("grass", "noise", "carpet"), tile=(0.5, 2.0),
                                 base=(0.2, 0.45, 0.15))
        b.box(x - crown / 2, x + crown / 2, h, h + rng.uniform(1.5, 4.0), z - crown / 2,
              z + crown / 2, leaves)
        z += rng.uniform(*spacing)


def _poles(b: SceneBuilder, xs, z0: float, z1: float) -> None:
    rng = b.rng
    z = z0 + rng.uniform(0.0, 10.0)
    while z < z1:
        x = rng.uniform(*xs)
        h = rng.uniform(1.0, 7.0)  # bollards to street lights
        w = rng.uniform(0.08, 0.25)
        mat = random_material(rng, OBJECT, tile=(0.5, 2.0))
        b.box(x - w / 2, x + w / 2, 0.0, h, z, z + w, mat)
        if h > 2.5 and rng.random() < 0.5:  # a sign plate
            b.box(x - 0.5, x + 0.5, h - 0.8, h - 0.1, z - 0.05, z,
                  random_material(rng, OBJECT, saturation=1.0))
        z += rng.uniform(5.0, 25.0)


def street(rng: np.random.Generator, length: float, camera_height: float) -> WorldScene:
    """A road with kerbed sidewalks, buildings, parked cars, trees, poles and clutter."""
    b = SceneBuilder(rng)
    road_half = rng.uniform(3.0, 7.5)
    sidewalk = rng.uniform(1.5, 4.5)
    kerb = rng.uniform(0.08, 0.2)
    z0, z1 = -30.0, length + 160.0
    on_sidewalk = rng.random() < 0.4   # a delivery robot on the pavement, else a car / cart
    side = 1.0 if rng.random() < 0.5 else -1.0
    if on_sidewalk:
        camera_x = side * (road_half + sidewalk * rng.uniform(0.35, 0.65))
        support = kerb
    else:
        camera_x = rng.uniform(-road_half + 1.0, road_half - 1.0)
        support = 0.0
    pave = random_material(rng, ("paving", "tiles", "concrete", "brick"), tile=(1.0, 4.0),
                           saturation=0.2)
    for s in (-1.0, 1.0):
        x0, x1 = sorted((s * road_half, s * (road_half + sidewalk)))
        for z in np.arange(z0, z1, 15.0):
            b.box(x0, x1, 0.0, kerb, z, z + 15.0, pave)
        _buildings(b, s, road_half + sidewalk, z0, z1)
        # parked cars along the kerb: body + cabin
        z = z0 + rng.uniform(0.0, 10.0)
        while z < z1:
            clen, cw = rng.uniform(3.5, 5.0), rng.uniform(1.6, 2.0)
            x0, x1 = sorted((s * (road_half - 0.3), s * (road_half - 0.3 - cw)))
            colour = random_material(rng, ("noise", "noise_fine"), tile=(1, 3), saturation=1.0)
            b.box(x0, x1, 0.2, rng.uniform(0.8, 1.1), z, z + clen, colour)
            b.box(x0 + 0.15, x1 - 0.15, 0.9, rng.uniform(1.3, 1.7), z + 1.0, z + clen - 1.0,
                  random_material(rng, ("noise_fine",), saturation=0.2, base=(0.15, 0.18, 0.2)))
            z += clen + rng.uniform(1.0, 25.0)
        xs = sorted((s * (road_half + 0.3), s * (road_half + 0.8)))
        _poles(b, xs, z0, z1)
        _trees(b, sorted((s * (road_half + sidewalk * 0.6), s * (road_half + sidewalk - 0.5))),
               z0, z1)
        xa, xb = sorted((s * (road_half + 0.2), s * (road_half + sidewalk - 0.2)))
        add_clutter(b, int(rng.integers(2, 12)), (xa, xb), (z0, z1), support=kerb)
    add_clutter(b, int(rng.integers(0, 6)), (-road_half, road_half), (0.0, z1), size=(0.2, 1.2))
    b.clear_tube(camera_x, 0.9, -2.0, length + 2.0, support + 0.02, support + camera_height + 0.6)
    road = random_material(rng, ROAD, tile=(2.0, 5.0), saturation=0.1, base=(0.4, 0.4, 0.42))
    bands = [(-road_half, road_half, road)]
    if rng.random() < 0.7:  # lane markings
        paint = random_material(rng, ("noise_fine",), saturation=0.2, base=(0.9, 0.9, 0.85))
        for x in (-road_half + 0.4, 0.0, road_half - 0.4):
            bands.append((x - 0.07, x + 0.07, paint))
    return b.build("street", random_material(rng, GROUND_OUTDOOR, tile=(1.0, 4.0)), bands,
                   None, None, camera_x, support)


def campus(rng: np.random.Generator, length: float, camera_height: float) -> WorldScene:
    """A paved path through lawns: buildings set back, trees, benches, hedges, steps, bollards."""
    b = SceneBuilder(rng)
    path_half = rng.uniform(0.8, 2.5)
    z0, z1 = -20.0, length + 120.0
    camera_x = rng.uniform(-path_half * 0.5, path_half * 0.5)
    for s in (-1.0, 1.0):
        _buildings(b, s, path_half + rng.uniform(6.0, 30.0), z0, z1, gap_prob=0.5)
        edge = path_half + rng.uniform(0.3, 2.0)
        _trees(b, sorted((s * edge, s * (edge + 8.0))), z0, z1, spacing=(4.0, 15.0))
        _poles(b, sorted((s * (path_half + 0.3), s * (path_half + 1.0))), z0, z1)
        z = z0 + rng.uniform(0.0, 10.0)
        while z < z1:  # benches, hedges and low walls beside the path
            kind = rng.integers(3)
            x = s * (path_half + rng.uniform(0.3, 1.5))
            if kind == 0:   # bench: seat + back
                mat = random_material(rng, ("planks", "noise", "concrete"), tile=(0.5, 2.0))
                xa, xb = sorted((x, x + s * 0.5))
                b.box(xa, xb, 0.4, 0.48, z, z + 1.8, mat)
                b.box(xa, xb, 0.0, 0.4, z + 0.1, z + 0.3, mat)
                b.box(xa, xb, 0.0, 0.4, z + 1.5, z + 1.7, mat)
            elif kind == 1:  # hedge
                xa, xb = sorted((x, x + s * rng.uniform(0.5, 1.5)))
                b.box(xa, xb, 0.0, rng.uniform(0.4, 1.6), z, z + rng.uniform(3.0, 15.0),
                      random_material(rng, ("grass", "carpet", "noise"), base=(0.2, 0.4, 0.15)))
            else:            # low wall
                xa, xb = sorted((x, x + s * rng.uniform(0.2, 0.5)))
                b.box(xa, xb, 0.0, rng.uniform(0.3, 1.2), z, z + rng.uniform(2.0, 12.0),
                      random_material(rng, WALL, tile=(0.5, 2.0)))
            z += rng.uniform(3.0, 20.0)
        add_clutter(b, int(rng.integers(0, 8)), sorted((s * path_half, s * (path_half + 6.0))),
                    (z0, z1), size=(0.2, 1.0))
    if rng.random() < 0.6:  # steps up to a terrace, ahead across the path or beside it
        width = rng.uniform(2.0, 8.0)
        xc = camera_x if rng.random() < 0.5 else rng.choice([-1.0, 1.0]) * (path_half + 3.0)
        add_steps(b, xc - width / 2, xc + width / 2, length + rng.uniform(2.0, 15.0),
                  int(rng.integers(2, 8)), rng.uniform(0.12, 0.2), rng.uniform(0.25, 0.4),
                  random_material(rng, ("concrete", "paving", "brick", "tiles"), tile=(0.5, 2.0)))
    b.clear_tube(camera_x, 0.7, -2.0, length + 1.5, 0.02, camera_height + 0.6)
    add_clutter(b, int(rng.integers(0, 3)), (camera_x - 1.0, camera_x + 1.0),
                (length + 2.0, length + 8.0), size=(0.2, 0.8))
    path = random_material(rng, ("paving", "tiles", "gravel", "concrete") + FLOOR[:1],
                           tile=(0.8, 3.0), saturation=0.3)
    ground = random_material(rng, ("grass", "grass", "gravel", "noise"), tile=(1.0, 3.0),
                             base=(0.3, 0.45, 0.2))
    return b.build("campus", ground, [(-path_half, path_half, path)], None, None, camera_x)
