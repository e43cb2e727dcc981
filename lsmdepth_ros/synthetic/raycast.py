"""Exact ray casting of the synthetic world: ground plane, optional ceiling, axis-aligned boxes.

Per-pixel nearest hit of the planes and every box (slab test, restricted to the box's projected
bounding rectangle, boxes visited near to far). The ray of pixel (u, v) is d = R (x/z, y/z, 1),
so its parameter t at a hit IS the depth z along the optical axis: exact depth by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsmdepth_ros.geometry import pixel_rays

SKY, GROUND, CEILING = -1, -2, -3   # `obj` codes of what a pixel sees (>= 0: box index)


@dataclass
class RayHits:
    """What each pixel of one view sees."""

    d: np.ndarray      # [H, W, 3] float32 world ray direction with camera-z component 1
    t: np.ndarray      # [H, W] float32 depth of the hit (= far where nothing is hit)
    obj: np.ndarray    # [H, W] int32: SKY, GROUND, CEILING or the box index
    face: np.ndarray   # [H, W] int8 normal code: axis * 2 + (1 if the normal points to +axis)

    @property
    def depth(self) -> np.ndarray:
        """float32 [H, W] metres, NaN where nothing is hit within `far`."""
        return np.where(self.obj != SKY, self.t, np.nan).astype(np.float32)


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


def box_rects(corners_cam: np.ndarray, K: np.ndarray, width: int, height: int,
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


CORNER_BITS = np.array([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])
_BOX_EDGES = np.array([(a, a | (1 << k)) for a in range(8) for k in range(3) if not a & (1 << k)])



def cast_rays(bmin: np.ndarray, bmax: np.ndarray, T_world_cam: np.ndarray, K: np.ndarray,
              width: int, height: int, far: float = 200.0,
              ceiling: float | None = None) -> RayHits:
    """Nearest hit per pixel of the ground y = 0, the ceiling y = -ceiling (if given, metres
    above the ground) and the boxes [bmin, bmax] (world frame, y down)."""
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
        obj = np.full((height, width), SKY, np.int32)
        face = np.zeros((height, width), np.int8)

        # ground plane y = 0 (rays going down: d_y > 0 since y points down)
        t = -np.float32(o[1]) * inv_d[1]
        ground = (t > _NEAR) & (t < far)
        zbuf[ground] = t[ground]
        obj[ground] = GROUND
        face[ground] = 2  # -y normal (up)
        if ceiling is not None:  # y = -ceiling, seen by rays going up
            t = (-np.float32(ceiling) - np.float32(o[1])) * inv_d[1]
            up = (t > _NEAR) & (t < zbuf)
            zbuf[up] = t[up]
            obj[up] = CEILING
            face[up] = 3  # +y normal (down)

        # boxes within `far` of the camera along every axis
        near_boxes = np.nonzero(np.all((bmax > o - far) & (bmin < o + far), axis=1))[0]
        lo_all = (bmin - o).astype(np.float32)
        hi_all = (bmax - o).astype(np.float32)
        corners = (bmin[near_boxes, None] + CORNER_BITS
                   * (bmax[near_boxes] - bmin[near_boxes])[:, None])
        corners_cam = (corners - o) @ R
        rects = box_rects(corners_cam, K, width, height, far)
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
    return RayHits(d, zbuf, obj, face)
