"""DepthEstimator (torch and onnxruntime), pre/post-processing, scale policies, colour map."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch

from lsmdepth_ros import resources
from lsmdepth_ros.checkpoints import load_checkpoint
from lsmdepth_ros.geometry import depth_to_points
from lsmdepth_ros.inference import (
    DepthEstimator,
    EstimatorOptions,
    ModelLoadError,
    image_to_rgb,
)
from lsmdepth_ros.scale import (
    CameraHeightScale,
    FixedScale,
    NoScale,
    ScaleOptions,
    fit_ground_plane,
    make_scale_policy,
)
from lsmdepth_ros.visualisation import COLORMAPS, colorize_depth

NET_H, NET_W = 64, 192
MIN_D, MAX_D = 0.1, 80.0


@pytest.fixture(scope="module")
def checkpoint(random_checkpoint_factory):
    # Random decoder weights give a nearly flat disparity; widen it so resizing is visible.
    return random_checkpoint_factory(height=NET_H, width=NET_W, min_depth=MIN_D, max_depth=MAX_D,
                                     decoder_gain=4.0)


@pytest.fixture(scope="module")
def estimator(checkpoint):
    return DepthEstimator(EstimatorOptions(model_path=str(checkpoint), num_threads=1))


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    return base


def _reference_disp(checkpoint, rgb_net: np.ndarray) -> np.ndarray:
    """The network's sigmoid disparity computed directly with torch (independent path)."""
    model, _ = load_checkpoint(checkpoint)
    x = torch.from_numpy(rgb_net.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return model.eval()(x)[("disp", 0)][0, 0].numpy()


def test_facts_from_checkpoint(estimator, checkpoint):
    assert estimator.backend == "torch"
    assert estimator.device.startswith("cpu")
    assert estimator.network_size == (NET_W, NET_H)
    assert estimator.model_name == "lsmdepth"
    assert (estimator.depth_range.min_depth, estimator.depth_range.max_depth) == (MIN_D, MAX_D)
    assert estimator.model_path == checkpoint


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "rgba8", "bgra8"])
def test_preprocess_every_encoding_gives_rgb01(estimator, encoding):
    rgb = _image(NET_H, NET_W)
    if encoding == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    img = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., 0],
           "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
           "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])}[encoding]
    img = np.ascontiguousarray(img)
    seen, batch = estimator.preprocess(img, encoding)
    np.testing.assert_array_equal(seen, rgb)
    expected = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    np.testing.assert_allclose(batch[0], expected, atol=1e-7)
    np.testing.assert_array_equal(image_to_rgb(img, encoding), rgb)


def test_preprocess_resizes_with_area_filter(estimator):
    img = _image(2 * NET_H + 32, 2 * NET_W + 64, seed=1)
    seen, _ = estimator.preprocess(img, "rgb8")
    np.testing.assert_array_equal(seen, cv2.resize(img, (NET_W, NET_H),
                                                   interpolation=cv2.INTER_AREA))


def test_preprocess_rejects_bad_images(estimator):
    with pytest.raises(ValueError, match="not supported"):
        estimator.preprocess(np.zeros((8, 8, 3), np.uint8), "nv21")
    with pytest.raises(ValueError, match="yuv422 image must be uint8 HxWx2"):   # a YUV shape
        estimator.preprocess(np.zeros((8, 8, 3), np.uint8), "yuv422")
    with pytest.raises(ValueError, match="empty"):
        estimator.preprocess(np.zeros((0, 8, 3), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="HxWx3"):
        estimator.preprocess(np.zeros((8, 8), np.uint8), "bgr8")
    with pytest.raises(ValueError, match="uint8"):
        estimator.preprocess(np.zeros((8, 8, 3), np.float32), "rgb8")


def test_depth_at_input_resolution_matches_direct_computation(estimator, checkpoint):
    img = _image(96, 320, seed=2)
    K = np.array([[210.0, 0, 159.5], [0, 205.0, 47.5], [0, 0, 1]])
    result = estimator.run(img, "rgb8", K)
    rgb_net = cv2.resize(img, (NET_W, NET_H), interpolation=cv2.INTER_AREA)
    disp = cv2.resize(_reference_disp(checkpoint, rgb_net), (320, 96),
                      interpolation=cv2.INTER_LINEAR)
    expected = 1.0 / (1.0 / MAX_D + (1.0 / MIN_D - 1.0 / MAX_D) * disp.astype(np.float64))
    assert result.depth.shape == (96, 320) and result.depth.dtype == np.float32
    # two float32 forward passes (thread count, kernel choice) differ in their last bits: up to
    # 2e-5 relative with this random network, and depth's relative error is at most disparity's
    np.testing.assert_allclose(result.depth, expected, rtol=5e-5)
    assert np.ptp(result.depth) > 0.01 * np.mean(result.depth)   # not a constant image
    np.testing.assert_array_equal(result.K, K)   # K unchanged at the input resolution
    assert result.scale == 1.0
    assert set(result.timings_ms) == {"preprocess", "network", "postprocess", "total"}


def test_depth_at_network_resolution_scales_K(checkpoint):
    est = DepthEstimator(EstimatorOptions(model_path=str(checkpoint), num_threads=1,
                                          output_resolution="network"))
    img = _image(128, 384, seed=3)
    K = np.array([[300.0, 0, 190.0], [0, 290.0, 60.0], [0, 0, 1]])
    result = est.run(img, "rgb8", K)
    assert result.depth.shape == (NET_H, NET_W)
    sx, sy = NET_W / 384, NET_H / 128
    expected_K = np.array([[300 * sx, 0, (190 + 0.5) * sx - 0.5],
                           [0, 290 * sy, (60 + 0.5) * sy - 0.5], [0, 0, 1]])
    np.testing.assert_allclose(result.K, expected_K, rtol=1e-12)
    assert est.output_size((384, 128)) == (NET_W, NET_H)


def test_fixed_scale_and_live_clip_range(checkpoint):
    est = DepthEstimator(EstimatorOptions(model_path=str(checkpoint), num_threads=1))
    img = _image(NET_H, NET_W, seed=4)
    base = est.estimate(img)
    o = est.options
    est.update_options(EstimatorOptions(model_path=o.model_path, num_threads=1,
                                        scale=ScaleOptions(policy="fixed", factor=5.4)))
    np.testing.assert_allclose(est.estimate(img), 5.4 * base, rtol=1e-6)
    lo, hi = np.percentile(base, [25, 75])
    est.update_options(EstimatorOptions(model_path=o.model_path, num_threads=1,
                                        clip_min_depth=float(lo), clip_max_depth=float(hi)))
    clipped = est.estimate(img)
    inside = (base >= lo) & (base <= hi)
    assert np.isnan(clipped[~inside]).all() and 0 < (~inside).sum() < base.size
    np.testing.assert_allclose(clipped[inside], base[inside], rtol=1e-6)


def test_options_validation_names_the_problem():
    with pytest.raises(ValueError, match="backend"):
        EstimatorOptions(backend="tensorflow")
    with pytest.raises(ValueError, match="clip_max_depth"):
        EstimatorOptions(clip_min_depth=5.0, clip_max_depth=2.0)
    with pytest.raises(ValueError, match="policy"):
        ScaleOptions(policy="magic")


def test_model_file_problems_raise_clear_errors(tmp_path, checkpoint):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelLoadError, match="does not exist"):
        DepthEstimator(EstimatorOptions(model_path=str(missing)))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ModelLoadError, match="corrupt.pt"):
        DepthEstimator(EstimatorOptions(model_path=str(corrupt)))
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        DepthEstimator(EstimatorOptions(model_path=str(bad_onnx)))
    with pytest.raises(ModelLoadError, match="needs an .onnx"):
        DepthEstimator(EstimatorOptions(model_path=str(checkpoint), backend="onnxruntime"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA fallback")
def test_cuda_requested_without_cuda_falls_back_to_cpu(checkpoint):
    said = []
    est = DepthEstimator(EstimatorOptions(model_path=str(checkpoint), device="cuda",
                                          num_threads=1), say=said.append)
    assert est.device.startswith("cpu")
    assert any("CUDA was requested" in s and "CPU" in s for s in said)
    assert est.estimate(_image(NET_H, NET_W)).shape == (NET_H, NET_W)


def test_onnxruntime_backend_matches_torch(checkpoint, estimator, tmp_path):
    from lsmdepth_ros.onnx.export import export_onnx

    model, info = load_checkpoint(checkpoint)
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(model.eval(), onnx_path, min_depth=info.min_depth, max_depth=info.max_depth,
                verify=False)
    ort_est = DepthEstimator(EstimatorOptions(model_path=str(onnx_path), num_threads=1))
    assert ort_est.backend == "onnxruntime" and ort_est.device.startswith("CPUExecutionProvider")
    assert ort_est.network_size == estimator.network_size
    assert ort_est.depth_range == estimator.depth_range
    img = _image(96, 320, seed=5)
    _, batch = estimator.preprocess(img, "bgr8")
    d_torch = estimator.network_output(batch.copy())
    d_ort = ort_est.network_output(batch.copy())
    assert np.abs(d_torch - d_ort).max() < 1e-4
    # the old name stays for callers of the public estimator
    assert np.array_equal(estimator.predict_disparity(batch.copy()), d_torch)
    a, b = estimator.estimate(img, "bgr8"), ort_est.estimate(img, "bgr8")
    assert np.abs(a / b - 1).max() < 1e-4


# ----------------------------------------------------------------------------------------------
# scale policies on a synthetic ground plane with a known scale

def _ground_scene(h=96, w=320, cam_height=1.5, pitch_deg=4.0, box=True):
    """Depth of a camera `cam_height` above a flat ground, pitched down; a wall far ahead and
    (optionally) a box standing on the road. Returns (depth, K)."""
    K = np.array([[160.0, 0, w / 2 - 0.5], [0, 160.0, h / 2 - 0.5], [0, 0, 1]])
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    p = math.radians(pitch_deg)
    # Ground normal (pointing down) in the optical frame of a camera pitched down by p.
    n = np.array([0.0, math.cos(p), math.sin(p)])
    along = rays @ n
    with np.errstate(divide="ignore"):
        t_ground = np.where(along > 1e-6, cam_height / along, np.inf)
    depth = np.minimum(t_ground, 40.0)          # z of a ray is t (rays have z = 1)
    if box:                                      # something nearer on the road: outliers
        depth[int(0.7 * h):int(0.85 * h), int(0.4 * w):int(0.55 * w)] *= 0.6
    return depth.astype(np.float32), K


@pytest.mark.parametrize("pitch", [0.0, 4.0, -3.0])
def test_camera_height_policy_recovers_known_scale(pitch):
    depth, K = _ground_scene(pitch_deg=pitch)
    true_scale = 2.7
    policy = make_scale_policy(ScaleOptions(policy="camera_height", camera_height=1.5,
                                            smoothing=1.0))
    assert isinstance(policy, CameraHeightScale) and policy.factor == 1.0
    factor = policy.update(depth / true_scale, K)
    assert factor == pytest.approx(true_scale, rel=0.01)
    plane = policy.last_plane
    assert math.degrees(math.acos(plane.normal[1])) == pytest.approx(abs(pitch), abs=0.5)


def test_camera_height_policy_smooths_in_log_space():
    depth, K = _ground_scene()
    policy = CameraHeightScale(ScaleOptions(policy="camera_height", camera_height=1.5,
                                            smoothing=0.25))
    f1 = policy.update(depth / 2.0, K)                  # first measurement is taken as is
    assert f1 == pytest.approx(2.0, rel=0.01)
    f2 = policy.update(depth / 4.0, K)
    expected = math.exp(0.75 * math.log(2.0) + 0.25 * math.log(4.0))
    assert f2 == pytest.approx(expected, rel=0.01)
    # A live camera_height change rescales at once, keeping the measured ground distance.
    policy = policy.with_options(ScaleOptions(policy="camera_height", camera_height=3.0,
                                              smoothing=0.25))
    assert policy.factor == pytest.approx(2 * expected, rel=0.01)


def test_camera_height_policy_keeps_last_scale_without_ground():
    h, w = 96, 320
    K = np.array([[160.0, 0, 160], [0, 160.0, 48], [0, 0, 1]])
    wall = np.full((h, w), 3.0, np.float32)           # fronto-parallel wall: no ground plane
    policy = CameraHeightScale(ScaleOptions(policy="camera_height"))
    assert policy.update(wall, K) == 1.0 and not policy.measured
    depth, K2 = _ground_scene()
    f = policy.update(depth / 2.0, K2)
    assert policy.update(wall, K) == f                  # lost ground: previous scale kept
    assert policy.update(depth / 2.0, None) == f        # no intrinsics: previous scale kept


def test_ground_fit_rejects_walls_and_points_above():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-2, 2, (500, 2))
    wall = np.column_stack([xy[:, 0], xy[:, 1], np.full(500, 4.0)])
    assert fit_ground_plane(wall) is None
    ceiling = np.column_stack([xy[:, 0], np.full(500, -1.2), 2 + xy[:, 1]])
    assert fit_ground_plane(ceiling) is None            # plane above the camera
    ground = np.column_stack([xy[:, 0], np.full(500, 1.2), 3 + xy[:, 1]])
    plane = fit_ground_plane(ground)
    assert plane.height == pytest.approx(1.2, rel=1e-6) and plane.inlier_fraction == 1.0


def test_simple_policies():
    assert NoScale(ScaleOptions()).update(None, None) == 1.0
    assert FixedScale(ScaleOptions(policy="fixed", factor=5.4)).update(None, None) == 5.4
    p = make_scale_policy(ScaleOptions(policy="fixed", factor=2.0))
    assert p.with_options(ScaleOptions(policy="fixed", factor=3.0)).factor == 3.0
    assert isinstance(p.with_options(ScaleOptions(policy="camera_height")), CameraHeightScale)


def test_estimator_applies_camera_height_policy(checkpoint, monkeypatch):
    """Through the estimator: a network that sees a ground plane at an unknown scale gives
    metric depth once the camera_height policy has fitted it."""
    est = DepthEstimator(EstimatorOptions(
        model_path=str(checkpoint), num_threads=1, output_resolution="network",
        scale=ScaleOptions(policy="camera_height", camera_height=1.5, smoothing=1.0)))
    true_depth, K_net = _ground_scene(h=NET_H, w=NET_W, pitch_deg=2.0)
    true_scale = 3.3
    unscaled = np.clip(true_depth / true_scale, MIN_D, MAX_D)
    disp = ((1.0 / unscaled - 1.0 / MAX_D) / (1.0 / MIN_D - 1.0 / MAX_D)).astype(np.float32)
    monkeypatch.setattr(est, "network_output", lambda batch: disp)
    # The camera image is twice the network size; K is given at the camera's resolution.
    K_cam = np.array([[2 * K_net[0, 0], 0, 2 * K_net[0, 2] + 0.5],
                      [0, 2 * K_net[1, 1], 2 * K_net[1, 2] + 0.5], [0, 0, 1]])
    result = est.run(_image(2 * NET_H, 2 * NET_W), "rgb8", K_cam)
    assert result.scale == pytest.approx(true_scale, rel=0.01)
    np.testing.assert_allclose(result.K, K_net, atol=1e-9)
    np.testing.assert_allclose(result.depth, true_depth, rtol=0.011)


# ----------------------------------------------------------------------------------------------

def test_colorize_depth_maps_near_bright_far_dark_nan_black():
    depth = np.tile(np.linspace(1.0, 20.0, 100, dtype=np.float32), (10, 1))
    depth[0, 0] = np.nan
    for name, cmap in COLORMAPS.items():
        bgr = colorize_depth(depth, name)
        assert bgr.shape == (10, 100, 3) and bgr.dtype == np.uint8
        assert (bgr[0, 0] == 0).all()
        lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cmap)[:, 0]
        np.testing.assert_array_equal(bgr[5, 1], lut[255])   # nearest (2nd percentile clip)
        np.testing.assert_array_equal(bgr[5, -1], lut[0])    # farthest
    with pytest.raises(ValueError, match="colour map"):
        colorize_depth(depth, "rainbow-unicorn")


def test_colorize_depth_with_fixed_limits_is_shared_across_images():
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_MAGMA)[:, 0]
    near_far = np.array([[2.0, 50.0, 8.0]], np.float32)
    other = np.array([[8.0, 3.0, 100.0]], np.float32)
    a = colorize_depth(near_far, vmin=2.0, vmax=50.0)
    b = colorize_depth(other, vmin=2.0, vmax=50.0)
    np.testing.assert_array_equal(a[0, 0], lut[255])      # vmin: brightest
    np.testing.assert_array_equal(a[0, 1], lut[0])        # vmax: darkest
    np.testing.assert_array_equal(b[0, 2], lut[0])        # beyond vmax: clipped
    np.testing.assert_array_equal(a[0, 2], b[0, 0])       # same depth, same colour
    # 8 m sits at (1/8 - 1/50) / (1/2 - 1/50) of the inverse-depth range
    level = int((1 / 8 - 1 / 50) / (1 / 2 - 1 / 50) * 255)
    assert any((a[0, 2] == lut[k]).all() for k in (level - 1, level, level + 1)), a[0, 2]


def test_points_from_estimator_depth_reproject(estimator):
    img = _image(96, 320, seed=7)
    K = np.array([[210.0, 0, 159.5], [0, 205.0, 47.5], [0, 0, 1]])
    result = estimator.run(img, "rgb8", K)
    pts = depth_to_points(result.depth, result.K)
    v, u = np.mgrid[0:96, 0:320]
    np.testing.assert_allclose(K[0, 0] * pts[..., 0] / pts[..., 2] + K[0, 2], u, atol=1e-3)
    np.testing.assert_allclose(K[1, 1] * pts[..., 1] / pts[..., 2] + K[1, 2], v, atol=1e-3)


def test_resources_point_at_shipped_files():
    assert resources.default_model_path().name == "lsmdepth_synthetic.pt"
    assert resources.default_model_path().parent.name == "models"
    profile = resources.fastdds_profile_path()
    root = ET.parse(profile).getroot()
    sizes = [e.text for e in root.iter() if e.tag.endswith("segment_size")]
    assert sizes == [str(32 * 1024 * 1024)]
    assert resources.params_file_path().is_file()
    env = resources.fastdds_env({"PATH": "/bin"})
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(profile)
    assert resources.fastdds_env({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"})[
        "FASTDDS_DEFAULT_PROFILES_FILE"] == "/mine.xml"
