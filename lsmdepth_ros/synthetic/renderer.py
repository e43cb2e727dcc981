"""Rendering of the synthetic world by vectorised ray casting (exact depth by construction).

Per-pixel nearest hit of the ground plane and every box (slab test, restricted to the box's
projected bounding rectangle). Depth is z along the optical axis in metres; sky and anything
beyond `far` are NaN. Colour is Lambertian shading (fixed sun) of albedo textures mapped in WORLD
coordinates (textures.py), so a surface point has the same colour in every frame: photometric
consistency holds except on occlusions, which is what self-supervised training needs. The sky
colour depends only on the ray direction (it is infinitely far).
"""
from __future__ import annotations

import numpy as np

from lsmdepth_ros.synthetic.raycast import GROUND, SKY, cast_rays
from lsmdepth_ros.synthetic.scenes import BUILDING, Scene
from lsmdepth_ros.synthetic.textures import sample_texture, sky_gradient, texture_atlas

_SUN = np.array([0.35, -0.8, 0.45]) / np.linalg.norm([0.35, -0.8, 0.45])  # towards the sun
_AMBIENT, _DIFFUSE = 0.45, 0.6

def render(scene: Scene, T_world_cam: np.ndarray, K: np.ndarray, width: int, height: int,
           far: float = 200.0, shade: bool = True):
    """Ray-cast one view. Returns (rgb float32 [H,W,3] in [0,1] or None, depth float32 [H,W]).

    Depth is z along the optical axis (metres); NaN where the ray hits nothing within `far`.
    """
    K = np.asarray(K, np.float64)
    hits = cast_rays(scene.bmin, scene.bmax, T_world_cam, K, width, height, far)
    depth = hits.depth
    if not shade:
        return None, depth
    d, zbuf, obj, face = hits.d, hits.t, hits.obj, hits.face
    o = T_world_cam[:3, 3]
    valid = obj != SKY
    rgb = np.empty((height, width, 3), np.float32)
    rgb[~valid] = _sky(d[~valid])
    rgb[valid] = _shade_surfaces(scene, o, d[valid], zbuf[valid], obj[valid], face[valid], K)
    return rgb, depth


def _shade_surfaces(scene: Scene, o, d, t, obj, face, K) -> np.ndarray:
    atlas = texture_atlas()
    table = scene.surface_table()
    n = t.shape[0]
    p = o.astype(np.float32) + t[:, None] * d  # hit points (world)
    axis = face // 2
    sign = (face % 2).astype(np.float32) * 2 - 1

    ground = obj == GROUND
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
    texval = sample_texture(atlas, table["texture"].take(surface), level, a * texels_per_m,
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
    base, clouds, _ = sky_gradient(d, np.array([0.78, 0.85, 0.95]), np.array([0.35, 0.55, 0.9]),
                                   texture_atlas())
    return np.clip(base * (0.9 + 0.15 * clouds[:, None]), 0, 1).astype(np.float32)
