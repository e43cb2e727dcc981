"""The shared geometry facts, against hand computations."""
import numpy as np
import torch

from lsmdepth_ros import geometry


def test_scale_intrinsics_follows_pixel_centres():
    K = np.array([[100.0, 0, 49.5], [0, 80.0, 19.5], [0, 0, 1]])
    half = geometry.scale_intrinsics(K, (100, 40), (50, 20))
    # the image centre (49.5, 19.5) stays the centre (24.5, 9.5); focal lengths halve
    np.testing.assert_allclose(half, [[50.0, 0, 24.5], [0, 40.0, 9.5], [0, 0, 1]])
    P = np.hstack([K, [[10.0], [4.0], [0.0]]])
    np.testing.assert_allclose(geometry.scale_intrinsics(P, (100, 40), (200, 80))[:, 3],
                               [20.0, 8.0, 0.0])


def test_disp_to_depth_maps_sigmoid_range_to_depth_range():
    _, depth = geometry.disp_to_depth(np.array([0.0, 1.0, 0.5]), 0.1, 100.0)
    np.testing.assert_allclose(depth, [100.0, 0.1, 1 / (0.01 + 0.5 * 9.99)])


def test_sparse_depth_image_keeps_nearest_and_ignores_outside():
    u = np.array([1, 1, 3, -1, 4])
    v = np.array([0, 0, 1, 0, 0])
    z = np.array([5.0, 2.0, 7.0, 1.0, 1.0])
    depth = geometry.sparse_depth_image(u, v, z, height=2, width=4)
    assert depth[0, 1] == 2.0 and depth[1, 3] == 7.0
    assert np.isnan(depth).sum() == 6
    assert (geometry.sparse_depth_image(u, v, z, 2, 4, empty=0.0) == 0).sum() == 6


def test_depth_to_points_reprojects_through_K():
    K = np.array([[50.0, 0, 3.5], [0, 40.0, 2.5], [0, 0, 1]])
    depth = np.full((6, 8), 4.0, np.float32)
    depth[0, 0] = np.nan
    pts = geometry.depth_to_points(depth, K)
    uv = geometry.project_points(pts.reshape(-1, 3)[1:], K)
    vs, us = np.mgrid[0:6, 0:8]
    np.testing.assert_allclose(uv, np.stack([us, vs], -1).reshape(-1, 2)[1:], atol=1e-4)
    assert np.isnan(pts[0, 0]).all()


def test_inverted_pose_is_the_inverse_transform():
    aa = torch.tensor([[[0.1, -0.2, 0.05]]])
    t = torch.tensor([[[0.3, 0.0, -1.0]]])
    T = geometry.transformation_from_parameters(aa, t)
    T_inv = geometry.transformation_from_parameters(aa, t, invert=True)
    torch.testing.assert_close(T @ T_inv, torch.eye(4).unsqueeze(0), atol=1e-6, rtol=0)
