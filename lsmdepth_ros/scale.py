"""Scale policies: turning up-to-scale monocular depth into metres.

A network trained self-supervised on monocular video predicts depth only up to an unknown
global scale. Which policy to use:

* ``none``: the model is already metric (trained with stereo pairs of known baseline, or with
  metric supervision), or relative depth is all you need.
* ``fixed``: the scale is known once for the set-up, e.g. 5.4 for monodepth2 / Lite-Mono
  models trained on KITTI stereo (0.54 m baseline over the 0.1 training baseline).
* ``camera_height``: a monocular model on a ground vehicle whose camera height above a mostly
  flat ground is known. The ground plane is fitted (RANSAC) to the back-projected points in the
  lower part of the image and the depth is scaled so that the camera sits at the configured
  height; the measured height is smoothed over time so the scale does not flicker. Needs the
  ground visible in the lower part of the image and the camera roughly level (tilt limit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lsmdepth_ros.geometry import depth_to_points
from lsmdepth_ros.options import option

SCALE_POLICIES = ("none", "fixed", "camera_height")


@dataclass(frozen=True)
class ScaleOptions:
    policy: str = option("none", "How the up-to-scale network depth becomes metres: 'none' "
                         "(model already metric), 'fixed' (multiply by factor), 'camera_height' "
                         "(fit the ground plane, scale so the camera is camera_height above it)",
                         live=True, choices=SCALE_POLICIES)
    factor: float = option(1.0, "Depth multiplier of the 'fixed' policy (5.4 for KITTI "
                           "stereo-trained monodepth2 / Lite-Mono weights)", live=True,
                           bounds=(0.0, 1e6))
    camera_height: float = option(1.65, "Height of the camera's optical centre above the ground "
                                  "in metres ('camera_height' policy)", live=True,
                                  bounds=(0.0, 1000.0))
    ground_region: float = option(0.35, "Lower fraction of the image rows searched for the ground "
                                  "plane ('camera_height' policy)", live=True, bounds=(0.0, 1.0))
    max_ground_tilt_deg: float = option(25.0, "Largest angle in degrees between the fitted ground "
                                        "normal and the camera's down axis; steeper planes (walls) "
                                        "are rejected", live=True, bounds=(0.0, 90.0))
    smoothing: float = option(0.1, "Weight of each new ground-height measurement in the "
                              "exponential average (1 = no smoothing)", live=True,
                              bounds=(0.0, 1.0))
    inlier_threshold: float = option(0.03, "Point-to-plane distance counted as ground, as a fraction "
                                     "of the plane's distance from the camera", live=True,
                                     bounds=(0.0, 1.0))
    min_inlier_fraction: float = option(0.3, "Fraction of the ground-region points that must lie on "
                                        "the plane for a measurement to count", live=True,
                                        bounds=(0.0, 1.0))
    ransac_iterations: int = option(64, "Plane hypotheses tried per frame", live=True,
                                    bounds=(1, 100000))
    max_points: int = option(2000, "Ground-region points sampled per frame for the fit", live=True,
                             bounds=(3, 10000000))

    def __post_init__(self) -> None:
        if self.policy not in SCALE_POLICIES:
            raise ValueError(f"scale policy {self.policy!r} is unknown; expected one of "
                             f"{', '.join(SCALE_POLICIES)}")
        if not (self.factor > 0 and math.isfinite(self.factor)):
            raise ValueError(f"scale factor must be a positive finite number, got {self.factor}")
        if not (self.camera_height > 0 and math.isfinite(self.camera_height)):
            raise ValueError(f"camera_height must be positive metres, got {self.camera_height}")
        if not (0.0 < self.ground_region <= 1.0):
            raise ValueError(f"ground_region must be in (0, 1], got {self.ground_region}")
        if not (0.0 < self.smoothing <= 1.0):
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")


@dataclass(frozen=True)
class GroundPlane:
    """Plane n . p = height in the optical frame (n unit, pointing down towards the ground)."""

    normal: np.ndarray
    height: float
    inlier_fraction: float


def fit_ground_plane(points: np.ndarray, *, max_tilt_deg: float = 25.0,
                     inlier_threshold: float = 0.03, iterations: int = 64,
                     rng: np.random.Generator | None = None) -> GroundPlane | None:
    """RANSAC plane below the camera through [N, 3] points, refined by least squares.

    Only planes whose normal is within `max_tilt_deg` of the optical y axis (down) and that lie
    below the camera are accepted. Returns None when no such plane exists.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if pts.shape[0] < 3:
        return None
    rng = np.random.default_rng(0) if rng is None else rng
    cos_tilt = math.cos(math.radians(max_tilt_deg))
    # All hypotheses at once: [I, 3] normals from random point triples.
    idx = rng.integers(0, pts.shape[0], size=(iterations, 3))
    a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norm = np.linalg.norm(normals, axis=1)
    ok = norm > 1e-12
    normals[ok] /= norm[ok, None]
    normals *= np.where(normals[:, 1:2] < 0, -1.0, 1.0)  # point the normal down (+y)
    heights = np.einsum("ij,ij->i", normals, a)
    ok &= (normals[:, 1] >= cos_tilt) & (heights > 0)
    if not ok.any():
        return None
    normals, heights = normals[ok], heights[ok]
    residual = np.abs(pts @ normals.T - heights[None, :])       # [N, I]
    inliers = residual < inlier_threshold * heights[None, :]
    best = int(np.argmax(inliers.sum(axis=0)))
    mask = inliers[:, best]
    if mask.sum() < 3:
        return None
    # Least-squares refinement on the inliers: the normal is the smallest singular vector.
    sel = pts[mask]
    centroid = sel.mean(axis=0)
    _, _, vt = np.linalg.svd(sel - centroid, full_matrices=False)
    normal = vt[-1] * (1.0 if vt[-1][1] >= 0 else -1.0)
    height = float(normal @ centroid)
    if not (height > 0 and normal[1] >= cos_tilt):
        normal, height = normals[best], float(heights[best])
    residual = np.abs(pts @ normal - height)
    fraction = float((residual < inlier_threshold * height).mean())
    return GroundPlane(normal=normal, height=height, inlier_fraction=fraction)


class ScalePolicy:
    """Turns depth from the network (network resolution) into a metric multiplier."""

    needs_depth = False

    def __init__(self, options: ScaleOptions):
        self.options = options

    def update(self, depth: np.ndarray, K: np.ndarray | None) -> float:
        """Observe one frame's unscaled depth (with its intrinsics) and return the multiplier."""
        return self.factor

    @property
    def factor(self) -> float:
        return 1.0

    def with_options(self, options: ScaleOptions) -> ScalePolicy:
        """The policy for new options, keeping the measured state when the kind is unchanged."""
        if type(self) is _POLICY_CLASSES[options.policy]:
            self.options = options
            return self
        return make_scale_policy(options)


class NoScale(ScalePolicy):
    pass


class FixedScale(ScalePolicy):
    @property
    def factor(self) -> float:
        return float(self.options.factor)


class CameraHeightScale(ScalePolicy):
    """Scale so that the fitted ground plane is `camera_height` metres below the camera."""

    needs_depth = True

    def __init__(self, options: ScaleOptions):
        super().__init__(options)
        self._log_height: float | None = None   # smoothed log of the unscaled ground distance
        self.last_plane: GroundPlane | None = None
        self._rng = np.random.default_rng(0)

    def reset(self) -> None:
        self._log_height = None
        self.last_plane = None

    @property
    def measured(self) -> bool:
        return self._log_height is not None

    @property
    def factor(self) -> float:
        if self._log_height is None:
            return 1.0   # nothing measured yet: leave the depth as predicted
        return float(self.options.camera_height / math.exp(self._log_height))

    def measure(self, depth: np.ndarray, K: np.ndarray) -> GroundPlane | None:
        """Fit the ground plane to the lower image region; None when there is no usable ground."""
        o = self.options
        h = depth.shape[0]
        top = min(h - 1, round(h * (1.0 - o.ground_region)))
        region = depth[top:]
        # Back-project with the full-image K shifted to the region's first row.
        K_region = np.array(K, dtype=np.float64, copy=True)
        K_region[1, 2] -= top
        pts = depth_to_points(region, K_region)
        pts = pts[np.isfinite(pts[..., 2])]
        if pts.shape[0] < 10:
            return None
        if pts.shape[0] > o.max_points:
            pts = pts[self._rng.choice(pts.shape[0], o.max_points, replace=False)]
        plane = fit_ground_plane(pts, max_tilt_deg=o.max_ground_tilt_deg,
                                 inlier_threshold=o.inlier_threshold,
                                 iterations=o.ransac_iterations, rng=self._rng)
        if plane is None or plane.inlier_fraction < o.min_inlier_fraction:
            return None
        return plane

    def update(self, depth: np.ndarray, K: np.ndarray | None) -> float:
        if K is None:
            return self.factor   # no intrinsics this frame: keep the last scale
        plane = self.measure(depth, K)
        self.last_plane = plane
        if plane is not None:
            log_h = math.log(plane.height)
            a = self.options.smoothing
            self._log_height = log_h if self._log_height is None else (
                (1.0 - a) * self._log_height + a * log_h)
        return self.factor


_POLICY_CLASSES: dict[str, type[ScalePolicy]] = {
    "none": NoScale, "fixed": FixedScale, "camera_height": CameraHeightScale}


def make_scale_policy(options: ScaleOptions) -> ScalePolicy:
    return _POLICY_CLASSES[options.policy](options)
