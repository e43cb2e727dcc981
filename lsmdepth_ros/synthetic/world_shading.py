"""Appearance of the randomised world: textures, light, cast shadows, AO-like darkening, sky, fog.

Everything here changes colour only; depth comes from raycast.py untouched. Textures are mapped
in world coordinates (the same surface point has the same albedo in every frame). Light is one
directional source (the sun outdoors, a key light indoors) plus a tinted ambient term; cast
shadows are exact shadow rays against the boxes that cast them, restricted per box to the pixels
where its shadow volume projects. Ambient occlusion is approximated by darkening the ground near
the footprints of boxes and box faces near the floor (and near the ceiling indoors).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsmdepth_ros.synthetic.raycast import (
    CEILING,
    CORNER_BITS,
    GROUND,
    SKY,
    RayHits,
    box_rects,
)
from lsmdepth_ros.synthetic.textures import (
    TEX_SIZE,
    sample_texture,
    sky_gradient,
    world_atlas,
)
from lsmdepth_ros.synthetic.world_scene import WorldScene

_AO_RADIUS, _AO_STRENGTH = 0.3, 0.45


@dataclass(frozen=True)
class Lighting:
    to_light: tuple       # unit vector towards the light (world, y down: up is -y)
    sun: tuple            # RGB intensity of the directional light
    ambient: tuple        # RGB intensity of the ambient light
    shadows: bool
    sky_horizon: tuple    # sky gradient (outdoor) and fog colour
    sky_zenith: tuple
    fog_density: float    # 1/m; colour -> fog colour by 1 - exp(-density * distance)
    emission: float       # brightness of lamps and windows


def sample_lighting(rng: np.random.Generator, indoor: bool) -> Lighting:
    """Random light: sunny or overcast outdoors (sun 25-75 deg high), a key light indoors."""
    elevation = np.radians(rng.uniform(45, 85) if indoor else rng.uniform(25, 75))
    azimuth = rng.uniform(0, 2 * np.pi)
    c = np.cos(elevation)
    to_light = (c * np.sin(azimuth), -np.sin(elevation), c * np.cos(azimuth))
    warm = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.65, 0.95)])
    sky_tint = np.array([rng.uniform(0.7, 0.95), rng.uniform(0.85, 1.0), 1.0])
    overcast = (not indoor) and rng.random() < 0.3
    if indoor:
        sun, ambient = rng.uniform(0.15, 0.55) * warm, rng.uniform(0.45, 0.85) * warm[::-1] ** 0.3
    elif overcast:
        sun, ambient = rng.uniform(0.05, 0.2) * warm, rng.uniform(0.7, 1.0) * sky_tint ** 0.5
    else:
        sun, ambient = rng.uniform(0.5, 0.9) * warm, rng.uniform(0.25, 0.5) * sky_tint
    if overcast:
        horizon = np.full(3, rng.uniform(0.6, 0.85))
        zenith = horizon * rng.uniform(0.8, 1.0)
    else:
        horizon = np.array([0.78, 0.85, 0.95]) * rng.uniform(0.85, 1.1)
        zenith = np.array([rng.uniform(0.2, 0.45), rng.uniform(0.4, 0.6), rng.uniform(0.8, 1.0)])
        if rng.random() < 0.15:  # low sun: a warm horizon
            horizon = np.array([1.0, rng.uniform(0.6, 0.8), rng.uniform(0.4, 0.6)])
    fog = rng.uniform(0.0, 0.02 if not indoor else 0.01) if rng.random() < 0.4 else 0.0
    return Lighting(tuple(to_light), tuple(sun), tuple(ambient),
                    bool(rng.random() < (0.7 if indoor else 0.95)) and not overcast,
                    tuple(np.clip(horizon, 0, 1)), tuple(np.clip(zenith, 0, 1)), float(fog),
                    float(rng.uniform(1.1, 1.8)))


def _surface_params(scene: WorldScene, obj: np.ndarray, p: np.ndarray):
    """Per-pixel (texture, tile, contrast, albedo, uv offset, emissive) of the hit surfaces."""
    n = obj.shape[0]
    tex = np.empty(n, np.int64)
    tile = np.empty(n, np.float32)
    contrast = np.empty(n, np.float32)
    albedo = np.empty((n, 3), np.float32)
    offset = np.zeros((n, 2), np.float32)
    emissive = np.zeros(n, bool)
    box = obj >= 0
    ids = obj[box]
    tex[box], tile[box], contrast[box] = scene.texture[ids], scene.tile[ids], scene.contrast[ids]
    albedo[box], offset[box], emissive[box] = scene.albedo[ids], scene.uv_offset[ids], \
        scene.emissive[ids]

    def assign(mask, m):
        tex[mask], tile[mask], contrast[mask], albedo[mask] = m.texture, m.tile, m.contrast, \
            m.albedo

    ground = obj == GROUND
    assign(ground, scene.ground)
    for x0, x1, material in scene.bands:  # later bands paint over earlier ones
        assign(ground & (p[:, 0] >= x0) & (p[:, 0] < x1), material)
    if scene.ceiling_material is not None:
        assign(obj == CEILING, scene.ceiling_material)
    return tex, tile, contrast, albedo, offset, emissive


def _pixel_rects(lo: np.ndarray, hi: np.ndarray, T_world_cam: np.ndarray, K: np.ndarray,
                 shape: tuple[int, int]) -> np.ndarray:
    """Pixel rectangles [M, 4] (-1: not in view) of world boxes [lo, hi] ([M, 3] each)."""
    corners = lo[:, None] + CORNER_BITS * (hi - lo)[:, None]
    R, o = T_world_cam[:3, :3], T_world_cam[:3, 3]
    return box_rects((corners - o) @ R, K, shape[1], shape[0], 1e9)


def _shadow_mask(scene: WorldScene, light: Lighting, P: np.ndarray, lit: np.ndarray,
                 T_world_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[H, W] True where a box blocks the light; P: [H, W, 3] hit points, lit: candidates."""
    L = np.asarray(light.to_light, np.float64)
    L = np.where(np.abs(L) < 1e-6, 1e-6, L)  # no zero component: slab divisions stay finite
    inv_L = (1.0 / L).astype(np.float32)
    casters = np.nonzero(scene.casts_shadow)[0]
    shadow = np.zeros(lit.shape, bool)
    if casters.size == 0 or not lit.any():
        return shadow
    bmin, bmax = scene.bmin[casters], scene.bmax[casters]
    corners = bmin[:, None] + CORNER_BITS * (bmax - bmin)[:, None]          # [M, 8, 3]
    s = np.maximum(corners[..., 1] / L[1], 0.0)                              # to the ground
    dropped = corners - s[..., None] * L
    rects = _pixel_rects(np.minimum(corners.min(1), dropped.min(1)),
                         np.maximum(corners.max(1), dropped.max(1)), T_world_cam, K, lit.shape)
    for j in np.nonzero(rects[:, 0] >= 0)[0]:
        u0, u1, v0, v1 = rects[j]
        cand = lit[v0:v1, u0:u1] & ~shadow[v0:v1, u0:u1]
        if not cand.any():
            continue
        q = P[v0:v1, u0:u1][cand]
        t1 = (bmin[j].astype(np.float32) - q) * inv_L
        t2 = (bmax[j].astype(np.float32) - q) * inv_L
        tnear = np.minimum(t1, t2).max(axis=1)
        tfar = np.maximum(t1, t2).min(axis=1)
        blocked = (tnear <= tfar) & (tfar > 1e-3)
        if blocked.any():
            view = shadow[v0:v1, u0:u1]
            idx = np.nonzero(cand)
            view[idx[0][blocked], idx[1][blocked]] = True
    return shadow


def _ground_occlusion(scene: WorldScene, P: np.ndarray, ground: np.ndarray,
                      T_world_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[H, W] factor <= 1 darkening the ground near the footprints of boxes standing on it."""
    ao = np.ones(ground.shape, np.float32)
    standing = np.nonzero(scene.bmax[:, 1] > -0.05)[0]   # bottom on the ground plane
    if standing.size == 0 or not ground.any():
        return ao
    reach = 3 * _AO_RADIUS
    lo = scene.bmin[standing] - [reach, 0.0, reach]
    hi = scene.bmax[standing] + [reach, 0.0, reach]
    lo[:, 1], hi[:, 1] = -0.01, 0.01  # the ground strip around the footprint
    rects = _pixel_rects(lo, hi, T_world_cam, K, ground.shape)
    for j in np.nonzero(rects[:, 0] >= 0)[0]:
        u0, u1, v0, v1 = rects[j]
        g = ground[v0:v1, u0:u1]
        if not g.any():
            continue
        q = P[v0:v1, u0:u1][g]
        i = standing[j]
        dx = np.maximum(np.maximum(scene.bmin[i, 0] - q[:, 0], q[:, 0] - scene.bmax[i, 0]), 0)
        dz = np.maximum(np.maximum(scene.bmin[i, 2] - q[:, 2], q[:, 2] - scene.bmax[i, 2]), 0)
        dist = np.sqrt(dx * dx + dz * dz)
        ao[v0:v1, u0:u1][g] *= (1 - _AO_STRENGTH * np.exp(-dist / _AO_RADIUS)).astype(np.float32)
    return ao


def shade_world(scene: WorldScene, light: Lighting, hits: RayHits, T_world_cam: np.ndarray,
                K: np.ndarray) -> np.ndarray:
    """RGB float32 [H, W, 3] (>= 0, about [0, 1]) of a ray-cast view of `scene`."""
    atlas = world_atlas()
    H, W = hits.t.shape
    o = T_world_cam[:3, 3].astype(np.float32)
    valid = hits.obj != SKY
    P = o + hits.t[..., None] * hits.d                    # hit points [H, W, 3]
    obj, face, d, t, p = hits.obj[valid], hits.face[valid], hits.d[valid], hits.t[valid], \
        P[valid]
    axis = face // 2
    sign = (face % 2).astype(np.float32) * 2 - 1
    tex, tile, contrast, albedo, offset, emissive = _surface_params(scene, obj, p)

    texels_per_m = np.float32(TEX_SIZE) / tile
    a = np.where(axis == 0, p[:, 2], p[:, 0]) + offset[:, 0]
    b = np.where(axis == 1, p[:, 2], p[:, 1]) + offset[:, 1]
    dnorm = np.sqrt(np.einsum("ij,ij->i", d, d))
    cos = np.abs(d[np.arange(d.shape[0]), axis]) / dnorm
    footprint = t * dnorm * (texels_per_m / np.float32(K[0, 0])) / np.sqrt(np.maximum(cos, 0.05))
    level = np.clip(np.floor(np.log2(np.maximum(footprint, 1e-6)) + 0.5), 0,
                    atlas.levels - 1).astype(np.int64)
    texval = sample_texture(atlas, tex, level, a * texels_per_m, b * texels_per_m)
    albedo = albedo * (1.0 + contrast[:, None] * (texval[:, None] - 1.0))

    L = np.asarray(light.to_light, np.float32)
    ndotl = np.clip(sign * L.take(axis), 0.0, None)
    sunlit = np.ones(ndotl.shape, np.float32)
    lit_full = np.zeros((H, W), bool)
    lit_full[valid] = (ndotl > 0) & ~emissive
    if light.shadows:
        shadow = _shadow_mask(scene, light, P, lit_full, T_world_cam, K)
        sunlit = np.where(shadow[valid], 0.0, 1.0).astype(np.float32)
    ground_full = hits.obj == GROUND
    ao = _ground_occlusion(scene, P, ground_full, T_world_cam, K)[valid]
    height = -p[:, 1]  # above the ground plane
    vertical = axis != 1
    ao = ao * np.where(vertical, 1 - _AO_STRENGTH * np.exp(-np.maximum(height, 0) / _AO_RADIUS),
                       1.0).astype(np.float32)
    if scene.ceiling is not None:
        gap = np.maximum(scene.ceiling - height, 0)
        ao = ao * np.where(vertical, 1 - 0.5 * _AO_STRENGTH * np.exp(-gap / _AO_RADIUS), 1.0)

    light_rgb = (np.asarray(light.ambient, np.float32) * ao[:, None]
                 + np.asarray(light.sun, np.float32) * (ndotl * sunlit)[:, None])
    colour = albedo * light_rgb
    colour[emissive] = albedo[emissive] * np.float32(light.emission)

    rgb = np.empty((H, W, 3), np.float32)
    rgb[valid] = colour
    rgb[~valid] = _sky(hits.d[~valid], light)
    if light.fog_density > 0:
        # the sky sits at the render distance (t = far there): haze veils it, it does not erase it
        dist = hits.t * np.sqrt(np.einsum("hwc,hwc->hw", hits.d, hits.d))
        keep = np.exp(-light.fog_density * dist)[..., None].astype(np.float32)
        rgb = rgb * keep + np.asarray(light.sky_horizon, np.float32) * (1 - keep)
    return rgb


def _sky(d: np.ndarray, light: Lighting) -> np.ndarray:
    """Sky colour from the ray direction only (infinitely far): gradient + clouds + sun glow."""
    if d.shape[0] == 0:
        return np.zeros((0, 3), np.float32)
    base, clouds, n = sky_gradient(d, light.sky_horizon, light.sky_zenith, world_atlas())
    glow = np.clip(n @ np.asarray(light.to_light), 0, 1) ** 32
    return (base * (0.85 + 0.2 * clouds[:, None]) + 0.5 * glow[:, None]).astype(np.float32)
