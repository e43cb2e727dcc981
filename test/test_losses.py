"""Self-supervised losses against independent hand computations (numpy references)."""
import math

import numpy as np
import pytest
import torch

from lsmdepth_ros import geometry
from lsmdepth_ros.training import photometric as losses

# ----------------------------------------------------------------------------------------------
# numpy references written from the papers' formulas, independent of the torch code


def _reflect_pad(a):
    return np.pad(a, ((1, 1), (1, 1)), mode="reflect")


def _ssim_dissimilarity_np(x, y, c1=0.01 ** 2, c2=0.03 ** 2):
    """(1 - SSIM) / 2 clamped, loop over 3x3 windows of one 2-D channel."""
    xp, yp = _reflect_pad(x), _reflect_pad(y)
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            wx = xp[i:i + 3, j:j + 3].ravel()
            wy = yp[i:i + 3, j:j + 3].ravel()
            mx, my = wx.mean(), wy.mean()
            vx = (wx ** 2).mean() - mx ** 2
            vy = (wy ** 2).mean() - my ** 2
            cxy = (wx * wy).mean() - mx * my
            ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
            out[i, j] = np.clip((1 - ssim) / 2, 0, 1)
    return out


def _intrinsics(fx, fy, cx, cy, batch=1):
    K = torch.tensor([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
                     dtype=torch.float32)
    K = K.unsqueeze(0).repeat(batch, 1, 1)
    return K, torch.linalg.inv(K)


def _translation(tx, ty, tz, batch=1):
    T = torch.eye(4).unsqueeze(0).repeat(batch, 1, 1)
    T[:, 0, 3], T[:, 1, 3], T[:, 2, 3] = tx, ty, tz
    return T


def _sigmoid_for_depth(depth, min_depth=0.1, max_depth=100.0):
    """Sigmoid output that geometry.disp_to_depth maps to `depth` (inverse of its formula)."""
    return (1.0 / depth - 1.0 / max_depth) / (1.0 / min_depth - 1.0 / max_depth)


# ----------------------------------------------------------------------------------------------
# SSIM and photometric error

def test_ssim_of_identical_images_is_zero():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 11, generator=g)
    assert torch.count_nonzero(losses.ssim_dissimilarity(x, x.clone())) == 0


def test_ssim_and_photometric_match_numpy_reference():
    rng = np.random.default_rng(3)
    x = rng.random((2, 5, 6))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    tx = torch.tensor(x, dtype=torch.float64).unsqueeze(0)
    ty = torch.tensor(y, dtype=torch.float64).unsqueeze(0)
    ssim = losses.ssim_dissimilarity(tx, ty)[0].numpy()
    ref = np.stack([_ssim_dissimilarity_np(x[c], y[c]) for c in range(2)])
    np.testing.assert_allclose(ssim, ref, rtol=1e-10, atol=1e-12)
    assert ref.max() > 0.05  # the pair is really dissimilar: the comparison means something

    photometric = losses.photometric_error(tx, ty)[0, 0].numpy()
    ref_photo = 0.85 * ref.mean(0) + 0.15 * np.abs(x - y).mean(0)
    np.testing.assert_allclose(photometric, ref_photo, rtol=1e-10, atol=1e-12)


def test_ssim_hand_value_on_a_tiny_pair():
    # Constant windows: sigma = 0, so SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1) * C2 / C2.
    x = torch.full((1, 1, 3, 3), 0.2, dtype=torch.float64)
    y = torch.full((1, 1, 3, 3), 0.6, dtype=torch.float64)
    c1 = 0.01 ** 2
    ssim = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
    expected = (1 - ssim) / 2
    out = losses.ssim_dissimilarity(x, y)
    torch.testing.assert_close(out, torch.full_like(out, expected))


# ----------------------------------------------------------------------------------------------
# view synthesis with a known rigid motion

def _plane_pair(shift_u, shift_v, h=24, w=32, seed=0):
    """Target and source images of a fronto-parallel textured plane.

    The source camera is displaced so the plane appears moved by (-shift_u, -shift_v) pixels:
    source(u, v) = texture(u + shift_u, v + shift_v), target(u, v) = texture(u, v).
    """
    rng = np.random.default_rng(seed)
    texture = rng.random((3, h + shift_v, w + shift_u)).astype(np.float32)
    target = torch.from_numpy(texture[:, :h, :w].copy()).unsqueeze(0)
    source = torch.from_numpy(texture[:, shift_v:shift_v + h, shift_u:shift_u + w].copy()).unsqueeze(0)
    return target, source


def test_known_translation_warps_source_into_target_exactly():
    depth_m, fx, fy = 5.0, 40.0, 40.0
    du, dv = 3, 2  # pixels
    target, source = _plane_pair(du, dv)
    h, w = target.shape[-2:]
    K, inv_K = _intrinsics(fx, fy, (w - 1) / 2, (h - 1) / 2)
    # The source camera sits at c = (du Z / fx, dv Z / fy, 0) in the target frame, so a target
    # point p maps to p - c in the source camera: T's translation is -c.
    T = _translation(-du * depth_m / fx, -dv * depth_m / fy, 0.0)
    depth = torch.full((1, 1, h, w), depth_m)
    warped = losses.warp_source(source, depth, K, inv_K, T)
    # Pixels whose source location (u - du, v - dv) is inside the image are exact.
    interior = (slice(None), slice(None), slice(dv, h), slice(du, w))
    torch.testing.assert_close(warped[interior], target[interior], atol=1e-4, rtol=0)
    # ...and the wrong depth does not do it (the test can fail).
    wrong = losses.warp_source(source, depth * 2, K, inv_K, T)
    assert (wrong[interior] - target[interior]).abs().mean() > 0.1


def test_full_loss_is_near_zero_for_the_true_depth_and_pose():
    depth_m, f = 8.0, 48.0
    du = 4
    target, source_next = _plane_pair(du, 0, seed=1)
    h, w = target.shape[-2:]
    # Frame -1 moves the other way: build it from a texture shifted to the left.
    rng = np.random.default_rng(1)
    tex = rng.random((3, h, w + du)).astype(np.float32)
    target = torch.from_numpy(tex[:, :, du:].copy()).unsqueeze(0)
    source_prev = torch.from_numpy(tex[:, :, :w].copy()).unsqueeze(0)
    source_next = torch.from_numpy(np.concatenate(
        [tex[:, :, 2 * du:], rng.random((3, h, du)).astype(np.float32)], axis=2)).unsqueeze(0)
    K, inv_K = _intrinsics(f, f, (w - 1) / 2, (h - 1) / 2)
    t = du * depth_m / f
    poses = {-1: _translation(+t, 0, 0), 1: _translation(-t, 0, 0)}
    sources = {-1: source_prev, 1: source_next}
    sig = _sigmoid_for_depth(depth_m)
    disps = [torch.full((1, 1, h >> s, w >> s), sig) for s in range(3)]
    loss = losses.SelfSupervisedLoss(losses.LossOptions(automask_noise=0.0))
    result = loss(disps, target, sources, poses, K, inv_K)
    # Per-pixel minimum over the two sources: every pixel is explained by at least one of them
    # (the left border by frame +1, the right border by frame -1), up to SSIM's 3x3 border.
    assert result.total.item() < 0.02
    torch.testing.assert_close(result.depth, torch.full_like(result.depth, depth_m), rtol=1e-5, atol=0)
    wrong = loss([d * 0.5 for d in disps], target, sources, poses, K, inv_K)
    assert wrong.total.item() > 5 * result.total.item() + 0.02
    # Constant disparities at every scale upsample to the same full-resolution depth, so the
    # per-scale losses are identical (smoothness of a constant is 0).
    torch.testing.assert_close(result.per_scale[1], result.per_scale[0])
    torch.testing.assert_close(result.per_scale[2], result.per_scale[0])


def test_coarse_scales_are_upsampled_to_full_resolution_before_warping():
    target, source = _plane_pair(2, 0, h=16, w=24, seed=5)
    K, inv_K = _intrinsics(30.0, 30.0, 11.5, 7.5)
    g = torch.Generator().manual_seed(2)
    coarse = torch.rand(1, 1, 8, 12, generator=g) * 0.5 + 0.1
    upsampled = torch.nn.functional.interpolate(coarse, size=(16, 24), mode="bilinear",
                                                align_corners=False)
    opts = losses.LossOptions(automask=False, smoothness_weight=0.0)
    loss = losses.SelfSupervisedLoss(opts)
    T = {1: _translation(-0.3, 0.0, 0.05)}
    a = loss([upsampled, coarse], target, {1: source}, T, K, inv_K)
    torch.testing.assert_close(a.per_scale[1], a.per_scale[0])


# ----------------------------------------------------------------------------------------------
# smoothness and auto-masking

def test_edge_aware_smoothness_hand_values():
    disp = torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]]).reshape(1, 1, 2, 3)
    flat = torch.zeros(1, 3, 2, 3)
    # x-gradients |1|, |2| in each row, no y-gradient: mean 1.5
    assert losses.edge_aware_smoothness(disp, flat).item() == pytest.approx(1.5)
    edge = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]).reshape(1, 1, 2, 3).repeat(1, 3, 1, 1)
    # an image edge between columns 1 and 2 weights that gradient by exp(-1)
    expected = (1.0 + 2.0 * math.exp(-1.0)) / 2
    assert losses.edge_aware_smoothness(disp, edge).item() == pytest.approx(expected)
    vertical = torch.tensor([[1.0, 1.0], [3.0, 3.0], [4.0, 4.0]]).reshape(1, 1, 3, 2)
    assert losses.edge_aware_smoothness(vertical, torch.zeros(1, 3, 3, 2)).item() == pytest.approx(1.5)


def test_mean_normalised_smoothness_is_scale_invariant():
    g = torch.Generator().manual_seed(4)
    disp = torch.rand(2, 1, 6, 8, generator=g) + 0.1
    image = torch.rand(2, 3, 6, 8, generator=g)
    a = losses.edge_aware_smoothness(losses.normalise_disparity(disp), image)
    b = losses.edge_aware_smoothness(losses.normalise_disparity(disp * 7.0), image)
    torch.testing.assert_close(a, b)
    m = losses.normalise_disparity(disp).mean(dim=(2, 3))
    torch.testing.assert_close(m, torch.ones_like(m))


def test_automask_selects_identity_where_the_image_is_static():
    g = torch.Generator().manual_seed(6)
    image = torch.rand(1, 3, 16, 24, generator=g)
    K, inv_K = _intrinsics(30.0, 30.0, 11.5, 7.5)
    disp = [torch.full((1, 1, 16, 24), _sigmoid_for_depth(4.0))]
    poses = {-1: _translation(0.4, 0, 0), 1: _translation(-0.4, 0, 0)}
    static = {-1: image.clone(), 1: image.clone()}
    loss = losses.SelfSupervisedLoss(losses.LossOptions(smoothness_weight=0.0))
    masked = loss(disp, image, static, poses, K, inv_K)
    # Nothing moved, so the un-warped (identity) error wins everywhere and the loss is ~0.
    assert masked.automask.float().mean().item() < 0.01
    assert abs(masked.total.item()) < 1e-4
    unmasked = losses.SelfSupervisedLoss(losses.LossOptions(smoothness_weight=0.0, automask=False))
    assert unmasked(disp, image, static, poses, K, inv_K).total.item() > 0.05


def test_automask_keeps_pixels_explained_by_motion():
    depth_m, f, du = 5.0, 40.0, 3
    target, source = _plane_pair(du, 0, seed=7)
    h, w = target.shape[-2:]
    K, inv_K = _intrinsics(f, f, (w - 1) / 2, (h - 1) / 2)
    poses = {1: _translation(-du * depth_m / f, 0, 0)}
    disp = [torch.full((1, 1, h, w), _sigmoid_for_depth(depth_m))]
    result = losses.SelfSupervisedLoss()(disp, target, {1: source}, poses, K, inv_K)
    used = result.automask[0, 1:-1, du + 1:-1]
    assert used.float().mean().item() > 0.99


def test_minimum_reprojection_hand_example():
    reproj = torch.tensor([[[[0.3]], [[0.1]]]])          # two sources
    identity = torch.tensor([[[[0.2]], [[0.05]]]])
    error, used = losses.minimum_reprojection(reproj, identity)
    assert error.item() == pytest.approx(0.05) and not used.item()
    error, used = losses.minimum_reprojection(reproj, None)
    assert error.item() == pytest.approx(0.1) and used.item()


def test_disparity_dict_and_bad_input_messages():
    img = torch.rand(1, 3, 8, 8)
    K, inv_K = _intrinsics(8.0, 8.0, 3.5, 3.5)
    loss = losses.SelfSupervisedLoss()
    out = {("disp", 0): torch.full((1, 1, 8, 8), 0.3), ("disp", 1): torch.full((1, 1, 4, 4), 0.3)}
    res = loss(out, img, {1: img}, {1: torch.eye(4)[None]}, K[:, :3, :3], inv_K[:, :3, :3])
    assert set(res.per_scale) == {0, 1}
    with pytest.raises(ValueError, match="same frame ids"):
        loss(out, img, {1: img}, {-1: torch.eye(4)[None]}, K, inv_K)
    with pytest.raises(ValueError, match="intrinsics"):
        losses.as_homogeneous_4x4(torch.eye(2)[None])


def test_disp_to_depth_round_trip_used_by_tests():
    sig = _sigmoid_for_depth(7.0)
    _, depth = geometry.disp_to_depth(torch.tensor(sig), 0.1, 100.0)
    assert depth.item() == pytest.approx(7.0, rel=1e-5)


def test_box_filter_is_3x3_average_pooling():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 4, 7, 9, generator=g, dtype=torch.float64)
    torch.testing.assert_close(losses.box_filter3x3(x), torch.nn.functional.avg_pool2d(x, 3, 1))


def test_true_depth_and_pose_of_the_synthetic_drive_minimise_the_loss():
    # End to end with the data set's conventions: K, ("pose_gt", i) (T from frame 0 into frame i)
    # and "depth_gt" must make the warped sources match the target far better than wrong guesses.
    from torch.utils.data import default_collate

    from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset

    ds = SyntheticDataset(1, 8, 64, 192, seed=0, num_scales=1, is_train=False, load_depth=True)
    b = default_collate([ds[i] for i in (1, 4)])
    depth = b["depth_gt"].clone()
    depth[depth <= 0] = 100.0  # sky
    disp = [((1 / depth - 1 / 100.0) / (1 / 0.1 - 1 / 100.0)).clamp(0, 1)]
    target = b[("color", 0, 0)]
    sources = {f: b[("color", f, 0)] for f in (-1, 1)}
    poses = {f: b[("pose_gt", f)] for f in (-1, 1)}
    loss = losses.SelfSupervisedLoss(losses.LossOptions(automask=False, smoothness_weight=0.0))

    def total(d, p):
        return loss(d, target, sources, p, b[("K", 0)], b[("inv_K", 0)]).total.item()

    true = total(disp, poses)
    identity = {f: torch.eye(4).repeat(2, 1, 1) for f in poses}
    inverted = {f: torch.linalg.inv(T) for f, T in poses.items()}
    doubled = [((1 / (2 * depth) - 1 / 100.0) / (1 / 0.1 - 1 / 100.0)).clamp(0, 1)]
    assert true < 0.6 * total(disp, identity)
    assert true < 0.6 * total(disp, inverted)
    assert true < 0.7 * total(doubled, poses)


def test_nonfinite_depth_does_not_crash_the_backward_pass():
    # torch's CPU grid_sample backward segfaults on NaN coordinates; warp_source guards it
    source = torch.rand(1, 3, 8, 8, requires_grad=True)
    depth = torch.full((1, 1, 8, 8), math.nan, requires_grad=True)
    K, inv_K = _intrinsics(8.0, 8.0, 3.5, 3.5)
    warped = losses.warp_source(source, depth, K, inv_K, _translation(0.1, 0, 0))
    warped.sum().backward()
    assert source.grad is not None and torch.isfinite(source.grad).all()
