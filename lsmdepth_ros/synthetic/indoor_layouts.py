"""Indoor layouts of the randomised world: rooms, corridors and warehouse aisles.

Walls are thin boxes, the ceiling a plane. Walls, ceilings and lamps do not cast shadows (the
key light stands for windows and lamps inside the space); furniture, shelves and clutter do.
The camera path runs along +z from z = 0 to z = `length` at x = `camera_x`, and stays clear.
"""
from __future__ import annotations

import numpy as np

from lsmdepth_ros.synthetic.world_scene import (
    FLOOR,
    OBJECT,
    PHOTOS,
    WALL,
    Material,
    SceneBuilder,
    WorldScene,
    add_clutter,
    add_steps,
    add_table,
    random_material,
)

_WALL_T = 0.12


def _shell(b: SceneBuilder, x0, x1, z0, z1, height, wall: Material) -> None:
    """Four walls around [x0, x1] x [z0, z1] (no shadows: the light is inside)."""
    t = _WALL_T
    b.box(x0 - t, x0, 0.0, height, z0 - t, z1 + t, wall, shadow=False)
    b.box(x1, x1 + t, 0.0, height, z0 - t, z1 + t, wall, shadow=False)
    b.box(x0, x1, 0.0, height, z0 - t, z0, wall, shadow=False)
    b.box(x0, x1, 0.0, height, z1, z1 + t, wall, shadow=False)


def _wall_features(b: SceneBuilder, x_wall: float, inward: float, z0: float, z1: float,
                   height: float, door_every=(2.5, 8.0)) -> None:
    """Doors (recessed panels with frames), pictures, windows and skirting along a side wall."""
    rng = b.rng
    skirting = random_material(rng, ("noise_fine", "planks"), saturation=0.2)
    xa, xb = sorted((x_wall, x_wall + inward * 0.02))
    b.box(xa, xb, 0.0, rng.uniform(0.05, 0.12), z0, z1, skirting, shadow=False)
    z = z0 + rng.uniform(0.3, door_every[0])
    while z < z1 - 1.2:
        kind = rng.random()
        if kind < 0.45:   # a door: panel slightly proud of the wall, frame around it
            w, h = rng.uniform(0.8, 1.2), rng.uniform(2.0, min(2.4, height - 0.1))
            door = random_material(rng, ("planks", "noise", "noise_fine", "stripes"),
                                   tile=(0.5, 2.0))
            xa, xb = sorted((x_wall, x_wall + inward * rng.uniform(0.02, 0.06)))
            b.box(xa, xb, 0.0, h, z, z + w, door, shadow=False)
            frame = random_material(rng, OBJECT, tile=(0.3, 1.0))
            xa, xb = sorted((x_wall, x_wall + inward * 0.08))
            b.box(xa, xb, 0.0, h + 0.08, z - 0.08, z, frame, shadow=False)
            b.box(xa, xb, 0.0, h + 0.08, z + w, z + w + 0.08, frame, shadow=False)
            b.box(xa, xb, h, h + 0.08, z, z + w, frame, shadow=False)
            z += w + 0.1
        elif kind < 0.75:  # a picture / poster / notice board
            w, h = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.2)
            bottom = rng.uniform(0.9, max(height - h - 0.2, 1.0))
            xa, xb = sorted((x_wall, x_wall + inward * 0.03))
            b.box(xa, xb, bottom, bottom + h, z, z + w,
                  random_material(rng, PHOTOS, tile=(w, w * 2), saturation=0.3,
                                  contrast=(0.8, 1.0)), shadow=False)
            z += w
        else:              # a window: bright daylight
            w = rng.uniform(0.8, 2.5)
            bottom = rng.uniform(0.7, 1.1)
            top = min(bottom + rng.uniform(1.0, 1.8), height - 0.15)
            xa, xb = sorted((x_wall, x_wall + inward * 0.01))
            b.box(xa, xb, bottom, top, z, z + w,
                  random_material(rng, ("noise", "camera", "moon"), saturation=0.2,
                                  base=(0.9, 0.95, 1.0), contrast=(0.1, 0.4)),
                  shadow=False, emissive=True)
            z += w
        z += rng.uniform(*door_every)


def _lamps(b: SceneBuilder, x0, x1, z0, z1, height, spacing=(2.0, 5.0)) -> None:
    rng = b.rng
    lamp = random_material(rng, ("noise_fine",), saturation=0.1, base=(1.0, 0.97, 0.9),
                           contrast=(0.0, 0.1))
    lw, ll = rng.uniform(0.2, 0.6), rng.uniform(0.6, 1.5)
    xs = np.linspace(x0, x1, int(rng.integers(1, 4)) + 2)[1:-1]
    z = z0 + rng.uniform(0.5, spacing[0])
    while z < z1 - ll:
        for x in xs:
            b.box(x - lw / 2, x + lw / 2, height - 0.04, height, z, z + ll, lamp, shadow=False,
                  emissive=True)
        z += rng.uniform(*spacing)


def _ceiling_and_floor(rng: np.random.Generator):
    ceiling = random_material(rng, ("tiles", "noise", "concrete", "noise_fine"), tile=(0.6, 2.5),
                              saturation=0.1, base=(0.9, 0.9, 0.88), contrast=(0.1, 0.6))
    floor = random_material(rng, FLOOR, tile=(0.5, 3.0), saturation=0.5)
    return ceiling, floor


def _space(rng: np.random.Generator, length: float, heights, widths, behind, ahead,
           margin: float):
    """An indoor space around the path: (height, x0, x1, z0, z1, camera_x, wall material)."""
    height, width = rng.uniform(*heights), rng.uniform(*widths)
    x0, x1 = -width / 2, width / 2
    z0, z1 = -rng.uniform(*behind), length + rng.uniform(*ahead)
    camera_x = rng.uniform(x0 + margin, x1 - margin)
    wall = random_material(rng, WALL, tile=(0.8, 4.0), saturation=0.3, contrast=(0.1, 0.6))
    return height, x0, x1, z0, z1, camera_x, wall


def room(rng: np.random.Generator, length: float, camera_height: float) -> WorldScene:
    """A room (office, flat, lab): furniture, tables, cabinets, doors, windows, steps, clutter."""
    b = SceneBuilder(rng)
    height, x0, x1, z0, z1, camera_x, wall = _space(rng, length, (2.4, 3.6), (3.0, 10.0),
                                                    (0.8, 3.0), (2.0, 8.0), 0.8)
    width = x1 - x0
    _shell(b, x0, x1, z0, z1, height, wall)
    for xw, inward in ((x0, 1.0), (x1, -1.0)):
        _wall_features(b, xw, inward, z0, z1, height)
    _lamps(b, x0, x1, z0, z1, height)
    for _ in range(int(rng.integers(2, 10))):  # furniture
        kind = rng.integers(4)
        x, z = rng.uniform(x0 + 0.4, x1 - 0.4), rng.uniform(z0 + 0.4, z1 - 0.4)
        mat = random_material(rng, OBJECT, tile=(0.3, 2.0))
        if kind == 0:
            add_table(b, x, z, rng.uniform(0.6, 2.0), rng.uniform(0.5, 1.2),
                      rng.uniform(0.45, 1.0), mat)
            add_clutter(b, int(rng.integers(0, 4)), (x - 0.3, x + 0.3), (z - 0.2, z + 0.2),
                        size=(0.05, 0.3), support=0.75)
        elif kind == 1:  # cabinet / wardrobe / bookcase against a side wall
            d, w = rng.uniform(0.3, 0.7), rng.uniform(0.5, 2.5)
            xa, xb = (x0, x0 + d) if rng.random() < 0.5 else (x1 - d, x1)
            b.box(xa, xb, 0.0, rng.uniform(0.6, height - 0.2), z, z + w, mat)
        elif kind == 2:  # sofa / bed: seat + back
            w, d = rng.uniform(0.8, 2.2), rng.uniform(0.7, 2.0)
            b.box(x - w / 2, x + w / 2, 0.0, rng.uniform(0.35, 0.6), z, z + d, mat)
            b.box(x - w / 2, x + w / 2, 0.0, rng.uniform(0.7, 1.1), z + d - 0.2, z + d, mat)
        else:            # a pillar
            s = rng.uniform(0.2, 0.6)
            b.box(x - s / 2, x + s / 2, 0.0, height, z, z + s, mat, shadow=True)
    if rng.random() < 0.3:  # a raised platform with steps at the far end
        add_steps(b, x0, x1, z1 - rng.uniform(1.5, 3.0), int(rng.integers(1, 4)),
                  rng.uniform(0.12, 0.2), rng.uniform(0.25, 0.35),
                  random_material(rng, FLOOR, tile=(0.5, 2.0)))
    add_clutter(b, int(rng.integers(0, 12)), (x0 + 0.2, x1 - 0.2), (z0 + 0.2, z1 - 0.2))
    b.clear_tube(camera_x, 0.6, -1.0, length + 0.8, 0.01, camera_height + 0.4)
    ceiling, floor = _ceiling_and_floor(rng)
    bands = []
    if rng.random() < 0.4:  # a rug
        w = rng.uniform(1.0, min(3.0, width))
        xc = rng.uniform(x0 + w / 2, x1 - w / 2)
        bands.append((xc - w / 2, xc + w / 2, random_material(rng, ("carpet", "stripes",
                                                                      "checker"))))
    return b.build("room", floor, bands, height, ceiling, camera_x)


def corridor(rng: np.random.Generator, length: float, camera_height: float) -> WorldScene:
    """A long corridor: doors both sides, side openings, lamps, radiators, benches, bins."""
    b = SceneBuilder(rng)
    height, x0, x1, z0, z1, camera_x, wall = _space(rng, length, (2.3, 3.2), (1.4, 3.2),
                                                    (1.0, 5.0), (8.0, 50.0), 0.6)
    t = _WALL_T
    # side walls in segments; a gap is an opening onto a cross corridor (a far wall behind it)
    for xw, inward in ((x0, 1.0), (x1, -1.0)):
        z = z0
        while z < z1:
            seg = rng.uniform(4.0, 20.0)
            xa, xb = (xw - t, xw) if inward > 0 else (xw, xw + t)
            b.box(xa, xb, 0.0, height, z, min(z + seg, z1), wall, shadow=False)
            _wall_features(b, xw, inward, z, min(z + seg, z1), height, door_every=(1.5, 5.0))
            z += seg
            if rng.random() < 0.35 and z < z1 - 3.0:
                gap = rng.uniform(1.2, 3.0)
                back = xw - inward * rng.uniform(1.5, 6.0)
                # the cross corridor runs `reach` past the opening each way and is closed there:
                # a ray through the opening at a grazing angle must still hit a wall, not the sky
                reach = rng.uniform(0.5, 3.0)
                za, zb = z - reach, z + gap + reach
                xa, xb = sorted((back, back - inward * t))
                b.box(xa, xb, 0.0, height, za, zb, wall, shadow=False)
                xa, xb = sorted((xw, back - inward * t))
                b.box(xa, xb, 0.0, height, za - t, za, wall, shadow=False)
                b.box(xa, xb, 0.0, height, zb, zb + t, wall, shadow=False)
                z += gap
    b.box(x0, x1, 0.0, height, z1, z1 + t, random_material(rng, WALL + ("planks",)),
          shadow=False)
    _lamps(b, x0, x1, z0, z1, height, spacing=(2.0, 4.0))
    z = z0 + rng.uniform(0.5, 4.0)
    while z < z1:  # radiators, benches, bins along the walls
        s = 1.0 if rng.random() < 0.5 else -1.0
        wall_x = x1 if s > 0 else x0
        d, w, h = rng.uniform(0.1, 0.5), rng.uniform(0.3, 2.0), rng.uniform(0.3, 1.2)
        xa, xb = sorted((wall_x, wall_x - s * d))
        b.box(xa, xb, rng.uniform(0.0, 0.2), h, z, z + w, random_material(rng, OBJECT))
        z += w + rng.uniform(1.0, 8.0)
    if rng.random() < 0.3:
        add_steps(b, x0, x1, length + rng.uniform(3.0, 12.0), int(rng.integers(2, 10)),
                  rng.uniform(0.14, 0.19), rng.uniform(0.26, 0.32),
                  random_material(rng, FLOOR + ("concrete",), tile=(0.5, 2.0)))
    b.clear_tube(camera_x, 0.5, -1.0, length + 1.0, 0.01, camera_height + 0.4)
    add_clutter(b, int(rng.integers(0, 4)), (x0 + 0.2, x1 - 0.2), (length + 2.0, z1),
                size=(0.2, 0.7))
    ceiling, floor = _ceiling_and_floor(rng)
    return b.build("corridor", floor, [], height, ceiling, camera_x)


def warehouse(rng: np.random.Generator, length: float, camera_height: float) -> WorldScene:
    """Aisles between pallet racks (uprights, beams, loads), lane markings, pallets in aisles."""
    b = SceneBuilder(rng)
    height = rng.uniform(6.0, 12.0)
    aisle = rng.uniform(2.2, 4.0)
    depth = rng.uniform(0.9, 1.3)
    rack_h = rng.uniform(3.0, min(8.0, height - 1.0))
    bay = rng.uniform(2.2, 3.2)
    levels = np.sort(rng.uniform(0.0, rack_h, int(rng.integers(2, 6))))
    z0, z1 = -rng.uniform(2.0, 8.0), length + rng.uniform(15.0, 60.0)
    rows = int(rng.integers(1, 3))
    upright = random_material(rng, ("noise_fine", "stripes"), saturation=0.9)
    beam = random_material(rng, ("noise_fine",), saturation=0.9, base=(0.9, 0.45, 0.1))
    cross_every = rng.uniform(15.0, 40.0)
    for s in (-1.0, 1.0):
        for r in range(rows):  # rack rows: back to back pairs separated by aisles
            inner = aisle / 2 + r * (2 * depth + aisle)
            xa, xb = sorted((s * inner, s * (inner + 2 * depth)))
            z = z0
            while z < z1:
                if (z - z0) % cross_every < bay:  # a cross aisle
                    z += bay
                    continue
                for xu in (xa, xb - 0.1):
                    b.box(xu, xu + 0.1, 0.0, rack_h, z, z + 0.1, upright)
                for lv in levels:
                    b.box(xa, xb, lv, lv + 0.1, z, z + bay, beam)
                    for _ in range(int(rng.integers(0, 4))):  # loads on this level
                        w, h = rng.uniform(0.4, bay / 2), rng.uniform(0.2, 1.2)
                        zl = z + rng.uniform(0.1, bay - w - 0.1)
                        xl0 = xa + rng.uniform(0.0, 0.3)
                        b.box(xl0, xb - rng.uniform(0.0, 0.3), lv + 0.1, lv + 0.1 + h, zl,
                              zl + w, random_material(rng, OBJECT, tile=(0.3, 1.5)))
                z += bay
    outer = aisle / 2 + rows * (2 * depth + aisle)
    wall = random_material(rng, ("concrete", "noise", "brick", "stripes"), tile=(2.0, 6.0))
    _shell(b, -outer - 2.0, outer + 2.0, z0, z1, height, wall)
    _lamps(b, -outer, outer, z0, z1, height, spacing=(4.0, 8.0))
    camera_x = rng.uniform(-aisle / 2 + 0.8, aisle / 2 - 0.8)
    b.clear_tube(camera_x, 0.7, -1.0, length + 1.0, 0.01, camera_height + 0.5)
    for _ in range(int(rng.integers(0, 6))):  # pallets and parcels in the aisle, ahead
        w = rng.uniform(0.6, 1.2)
        x, z = rng.uniform(-aisle / 2 + 0.3, aisle / 2 - 0.3), rng.uniform(length + 2.0, z1)
        b.box(x - w / 2, x + w / 2, 0.0, rng.uniform(0.15, 1.6), z, z + w,
              random_material(rng, OBJECT, tile=(0.3, 1.5)))
    floor = random_material(rng, ("concrete", "noise", "noise_fine"), tile=(1.0, 5.0),
                            saturation=0.2)
    paint = random_material(rng, ("noise_fine",), saturation=0.3, base=(0.9, 0.8, 0.1))
    bands = [(s * aisle / 2 - 0.05, s * aisle / 2 + 0.05, paint) for s in (-1, 1)]
    ceiling = random_material(rng, ("stripes", "concrete", "noise"), tile=(1.0, 4.0),
                              saturation=0.1)
    return b.build("warehouse", floor, bands, height, ceiling, camera_x)
