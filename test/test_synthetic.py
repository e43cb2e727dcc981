"""The synthetic driving scenes: determinism, exact depth, and multi-view photometric consistency."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsmdepth_ros.geometry import backproject, project, scale_intrinsics
from lsmdepth_ros.synthetic import (
    Scene,
    SyntheticDrive,
    SyntheticOptions,
    raycast,
    relative_pose,
    render,
)
from lsmdepth_ros.synthetic.drive import rot_x, rot_y
from lsmdepth_ros.synthetic.scenes import CRATE
from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset

W, H = 320, 96
OPTIONS = SyntheticOptions(width=W, height=H, frames=12)


def _empty_scene(boxes=()):
    n = len(boxes)
    return Scene(road_half_width=5.0,
                 bmin=np.array([b[0] for b in boxes], float).reshape(n, 3),
                 bmax=np.array([b[1] for b in boxes], float).reshape(n, 3),
                 material=np.full(n, CRATE), color=np.full((n, 3), 0.5),
                 uv_offset=np.zeros((n, 2)), window_spacing=np.zeros(n))


def _pose(yaw=0.1, pitch=0.02, position=(0.3, -1.65, 2.0)):
    T = np.eye(4)
    T[:3, :3] = rot_y(yaw) @ rot_x(pitch)
    T[:3, 3] = position
    return T


def test_same_seed_same_frames_different_seed_different_frames():
    a = SyntheticDrive(7, OPTIONS).render(5)
    b = SyntheticDrive(7, OPTIONS).render(5)
    c = SyntheticDrive(8, OPTIONS).render(5)
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert np.array_equal(a.pose, b.pose)
    assert np.mean(np.abs(a.rgb.astype(int) - c.rgb.astype(int))) > 5


def test_frame_content_is_sane():
    frame = SyntheticDrive(1, OPTIONS).render(3)
    assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (H, W) and frame.depth.dtype == np.float32
    valid = np.isfinite(frame.depth)
    assert 0.5 < valid.mean() < 1.0  # some sky, mostly surfaces
    assert np.nanmin(frame.depth) > 0.05 and np.nanmax(frame.depth) <= OPTIONS.far
    assert not np.isinf(frame.depth).any()
    # texture everywhere: local contrast on surfaces (photometric losses need it)
    gray = frame.rgb.mean(axis=2)
    grad = np.abs(np.diff(gray, axis=1))[:, :][valid[:, 1:] & valid[:, :-1]]
    assert np.median(grad) > 1.0
    # KITTI-normalised intrinsics
    np.testing.assert_allclose(frame.K, [[0.58 * W, 0, 0.5 * W], [0, 1.92 * H, 0.5 * H], [0, 0, 1]])


def test_ground_depth_equals_analytic_plane_intersection():
    K = OPTIONS.K
    T = _pose()
    _, depth = render(_empty_scene(), T, K, W, H, far=200.0, shade=False)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1)
    dy = rays_cam @ T[:3, :3].T[:, 1]  # world y component (down) of each camera ray with z = 1
    with np.errstate(divide="ignore"):
        z = -T[1, 3] / dy  # depth at which the ray reaches y = 0
    expect = np.where((dy > 0) & (z < 200.0), z, np.nan)
    np.testing.assert_allclose(depth, expect, rtol=1e-5, equal_nan=True)
    assert np.isnan(depth[0]).all() and np.isfinite(depth[-1]).all()


def test_box_face_point_has_its_depth():
    K = OPTIONS.K
    T = _pose(yaw=0.0, pitch=0.0, position=(0.0, -1.65, 0.0))
    u, v, z = 200, 30, 12.5  # pixel and depth of a point on the box's front face
    p_cam = np.array([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z])
    p = T[:3, :3] @ p_cam + T[:3, 3]
    box = ((p[0] - 0.5, p[1] - 0.5, p[2]), (p[0] + 0.5, p[1] + 0.5, p[2] + 1.0))
    rgb, depth = render(_empty_scene([box]), T, K, W, H)
    assert depth[v, u] == pytest.approx(z, rel=1e-5)
    # the whole front face is at the same depth (camera looks straight along +z)
    assert np.allclose(depth[v - 2:v + 3, u - 2:u + 3], z, rtol=1e-5)
    # a pixel just outside the box's projected half-width (0.5 m -> fx*0.5/z px) sees the ground/sky
    off = int(np.ceil(K[0, 0] * 0.5 / z)) + 2
    assert depth[v, u + off] != pytest.approx(z, rel=1e-3)
    assert rgb.shape == (H, W, 3) and 0 <= rgb.min() and rgb.max() <= 1


def test_projected_rectangle_culling_matches_brute_force(monkeypatch):
    drive = SyntheticDrive(3, OPTIONS)
    fast = drive.render(4)
    monkeypatch.setattr(raycast, "box_rects",
                        lambda corners, K, w, h, far: np.tile([0, w, 0, h], (len(corners), 1)))
    slow = drive.render(4)
    assert np.array_equal(fast.depth, slow.depth, equal_nan=True)
    assert np.array_equal(fast.rgb, slow.rgb)


def test_trajectory_moves_forward_with_small_turns():
    poses = SyntheticDrive(2, SyntheticOptions(frames=80)).poses
    step = np.diff(poses[:, :3, 3], axis=0)
    assert np.all(step[:, 2] > 0.5)  # forward ~1 m per frame
    yaw = np.arctan2(poses[:, 0, 2], poses[:, 2, 2])
    assert 0.01 < np.ptp(yaw) < 0.3
    for T in poses:  # proper rotations
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    T01 = relative_pose(poses[0], poses[1])
    np.testing.assert_allclose(np.linalg.inv(poses[1]) @ poses[0], T01)


def _warp_error(sample, frame_id, src_depth):
    """Warp source frame into the target with the true depth and pose (monodepth2's path)."""
    depth = sample["depth_gt"][None]
    tgt, src = sample[("color", 0, 0)][None], sample[("color", frame_id, 0)][None]
    K, inv_K = sample[("K", 0)][None], sample[("inv_K", 0)][None]
    T = sample[("pose_gt", frame_id)][None]
    h, w = depth.shape[-2:]
    points = backproject(depth, inv_K)
    grid = project(points, K, T, h, w)
    warped = F.grid_sample(src, grid, padding_mode="border", align_corners=True)
    z_in_src = (T @ points)[:, 2].reshape(1, 1, h, w)
    seen = F.grid_sample(src_depth[None, None], grid, mode="nearest", align_corners=True)
    inside = (grid.abs() < 1).all(-1)[:, None]
    visible = (depth > 0) & inside & ((seen - z_in_src).abs() < 0.02 * z_in_src)
    assert visible.float().mean() > 0.5
    err = (warped - tgt).abs().mean(1, keepdim=True)[visible].mean()
    unwarped = (src - tgt).abs().mean(1, keepdim=True)[visible].mean()
    return float(err), float(unwarped)


@pytest.mark.parametrize("train", [False, True])
def test_true_depth_and_pose_warp_neighbours_onto_the_target(train):
    ds = SyntheticDataset(num_sequences=1, frames_per_sequence=8, height=H, width=W, seed=4,
                          is_train=train)
    torch.manual_seed(0)
    flips = set()
    for index in (1, 4):
        for _ in range(20):  # training samples: find both a flipped and an unflipped one
            sample = ds[index]
            if not train or sample["flipped"] not in flips:
                break
        flips.add(sample["flipped"])
        item = ds.items[index]
        for fid in (-1, 1):
            src_depth = torch.from_numpy(np.nan_to_num(ds.frame(item.sequence,
                                                                item.frame_index + fid).depth))
            if sample["flipped"]:
                src_depth = src_depth.flip(-1)
            err, unwarped = _warp_error(sample, fid, src_depth)
            assert err < 0.03, (index, fid, err)
            assert err < 0.4 * unwarped, (err, unwarped)
    if train:
        assert flips == {True, False}


def test_supersampling_averages_a_finer_render_and_keeps_exact_depth():
    import cv2

    small = SyntheticOptions(width=80, height=24, frames=3)
    plain = SyntheticDrive(3, small).render(1)
    ss = SyntheticDrive(3, SyntheticOptions(width=80, height=24, frames=3, supersample=2)).render(1)
    assert np.array_equal(ss.depth, plain.depth, equal_nan=True)
    # = a 2x render with K scaled by the pixel-centre convention, area-averaged
    drive = SyntheticDrive(3, small)
    fine, _ = render(drive.scene, drive.poses[1], scale_intrinsics(drive.K, (80, 24), (160, 48)),
                     160, 48)
    expect = cv2.resize(fine, (80, 24), interpolation=cv2.INTER_AREA) * 255
    assert np.abs(ss.rgb.astype(np.float32) - expect).max() <= 0.5 + 1e-3
    assert np.abs(plain.rgb.astype(np.float32) - expect).mean() > 1.0  # it does change pixels
