"""Eigen metrics and protocol on hand-made arrays; KITTI ground truth from velodyne and PNGs."""
import math

import cv2
import numpy as np
import pytest

from lsmdepth_ros.metrics import (
    EvalOptions,
    compute_depth_metrics,
    crop_mask,
    encode_depth_png,
    eval_mask,
    evaluate_depth_pair,
    evaluate_depth_pairs,
    read_depth_png,
)
from lsmdepth_ros.training.datasets.kitti_velodyne import (
    generate_depth_map,
    read_calib_file,
    velodyne_to_depth,
)


def test_metrics_match_hand_computation():
    gt = np.array([2.0, 4.0, 10.0, 1.0])
    pred = np.array([2.0, 5.0, 8.0, 2.0])
    m = compute_depth_metrics(gt, pred)
    # |gt - pred| / gt = 0, .25, .2, 1 ; (gt - pred)^2 = 0, 1, 4, 1
    assert m["abs_rel"] == pytest.approx((0 + 0.25 + 0.2 + 1.0) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 4 + 4 / 10 + 1 / 1) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 4 + 1) / 4))
    logs = [0, math.log(4 / 5), math.log(10 / 8), math.log(1 / 2)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(x * x for x in logs) / 4))
    # max ratios: 1, 1.25, 1.25, 2 -> < 1.25 strictly: 1 of 4; < 1.5625: 3; < 1.953125: 3
    assert m["a1"] == pytest.approx(0.25)
    assert m["a2"] == pytest.approx(0.75)
    assert m["a3"] == pytest.approx(0.75)


def test_perfect_prediction_and_bad_inputs():
    gt = np.linspace(1, 50, 20)
    m = compute_depth_metrics(gt, gt.copy())
    assert m == {"abs_rel": 0, "sq_rel": 0, "rmse": 0, "rmse_log": 0, "a1": 1, "a2": 1, "a3": 1}
    with pytest.raises(ValueError, match="same number"):
        compute_depth_metrics(gt, gt[:-1])
    with pytest.raises(ValueError, match="no valid pixels"):
        compute_depth_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="positive"):
        compute_depth_metrics(np.array([1.0, 0.0]), np.array([1.0, 1.0]))


def test_garg_crop_rows_and_columns():
    mask = crop_mask(375, 1242, "garg")
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    # monodepth2: crop = [0.40810811*h, 0.99189189*h, 0.03594771*w, 0.96405229*w] as int
    assert (rows[0], rows[-1] + 1) == (153, 371)
    assert (cols[0], cols[-1] + 1) == (44, 1197)
    assert crop_mask(4, 5, None).all()


def test_eval_mask_range_is_open_and_nan_safe():
    gt = np.array([[np.nan, 0.0, 1e-3, 0.5], [79.9, 80.0, 100.0, 3.0]])
    mask = eval_mask(gt, EvalOptions(crop=None))
    assert mask.tolist() == [[False, False, False, True], [True, False, False, True]]


def test_median_scaling_and_clipping():
    gt = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, np.nan]])
    pred = gt / 3.0  # right up to scale: median scaling makes it exact
    r = evaluate_depth_pair(gt, np.nan_to_num(pred, nan=1.0), EvalOptions(crop=None))
    assert r.ratio == pytest.approx(3.0) and r.valid_pixels == 5
    assert r.metrics["abs_rel"] == pytest.approx(0.0, abs=1e-12)  # float64 throughout
    # without median scaling the error is 2/3 everywhere
    r = evaluate_depth_pair(gt, np.nan_to_num(pred, nan=1.0),
                            EvalOptions(crop=None, median_scaling=False))
    assert r.ratio == 1.0 and r.metrics["abs_rel"] == pytest.approx(2 / 3)
    # predictions are clipped to max_depth after scaling: 1000 m -> 80 m
    gt2 = np.array([[10.0, 10.0, 10.0]])
    r = evaluate_depth_pair(gt2, np.array([[10.0, 10.0, 1000.0]]),
                            EvalOptions(crop=None, median_scaling=False))
    assert r.metrics["abs_rel"] == pytest.approx((80 - 10) / 10 / 3)


def test_prediction_is_resized_as_inverse_depth():
    gt = np.full((4, 4), 10.0)
    pred = np.array([[5.0, 20.0]])  # 1x2 -> 4x4: each half constant in inverse depth
    r = evaluate_depth_pair(gt, pred, EvalOptions(crop=None, median_scaling=False))
    assert r.valid_pixels == 16
    # bilinear in disparity between 1/5 and 1/20 on 4 columns (cv2 half-pixel convention)
    disp = cv2.resize(np.array([[0.2, 0.05]], np.float32), (4, 4), interpolation=cv2.INTER_LINEAR)
    expect = compute_depth_metrics(gt.ravel(), 1.0 / disp.ravel())
    assert r.metrics["abs_rel"] == pytest.approx(expect["abs_rel"], rel=1e-5)


def test_summary_averages_per_image_and_reports_ratios():
    a_gt, a_pred = np.full((2, 2), 4.0), np.full((2, 2), 2.0)        # ratio 2, exact after
    b_gt = np.array([[1.0, 2.0], [3.0, 4.0]])
    b_pred = np.array([[1.0, 1.0], [1.0, 1.0]])                     # ratio 2.5
    empty = (np.full((2, 2), np.nan), np.ones((2, 2)))               # skipped
    s = evaluate_depth_pairs([(a_gt, a_pred), (b_gt, b_pred), empty], EvalOptions(crop=None))
    assert s.num_images == 2 and s.num_skipped == 1
    assert s.ratio_median == pytest.approx(2.25) and s.ratio_std == pytest.approx(0.25)
    b_scaled = np.full(4, 2.5)
    b = compute_depth_metrics(b_gt.ravel(), b_scaled)
    assert s.metrics["abs_rel"] == pytest.approx((0 + b["abs_rel"]) / 2)
    assert s.metrics["a1"] == pytest.approx((1 + b["a1"]) / 2)
    d = s.to_dict(per_image=True)
    assert d["num_images"] == 2 and len(d["per_image"]) == 3 and d["per_image"][2]["metrics"] is None
    assert "abs_rel" in s.table()
    with pytest.raises(ValueError, match="none of the 1 images"):
        evaluate_depth_pairs([empty], EvalOptions(crop=None))


def test_depth_png_roundtrip(tmp_path):
    depth = np.array([[np.nan, 1.0, 12.3456], [80.0, 0.0, 255.0]], np.float32)
    cv2.imwrite(str(tmp_path / "d.png"), encode_depth_png(depth))
    back = read_depth_png(tmp_path / "d.png")
    assert np.isnan(back[0, 0]) and np.isnan(back[1, 1])
    ok = np.isfinite(depth) & (depth > 0)
    assert np.all(np.abs(back[ok] - depth[ok]) <= 0.5 / 256 + 1e-6)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw[0, 1] == 256
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="uint16"):
        read_depth_png(tmp_path / "rgb.png")


def _write_calib(folder, P_rect, R_rect, R_velo, T_velo, size):
    fmt = lambda a: " ".join(f"{v:.12e}" for v in np.ravel(a))
    (folder / "calib_cam_to_cam.txt").write_text(
        f"calib_time: 09-Jan-2012 13:57:47\nS_rect_02: {fmt(size)}\nR_rect_00: {fmt(R_rect)}\n"
        f"P_rect_02: {fmt(P_rect)}\n")
    (folder / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {fmt(R_velo)}\nT: {fmt(T_velo)}\n"
        "delta_f: 0 0\ndelta_c: 0 0\n")


def test_velodyne_projection_hand_placed_points(tmp_path):
    # velodyne: x forward, y left, z up -> camera: x = -y_v, y = -z_v, z = x_v (+ offset)
    R_velo = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float)
    T_velo = np.array([0.0, -0.1, 0.5])
    R_rect = np.eye(3)
    f, cx, cy, tx = 100.0, 50.0, 20.0, 30.0  # P_rect_02 with a baseline term tx
    P = np.array([[f, 0, cx, tx], [0, f, cy, 0], [0, 0, 1, 0]])
    _write_calib(tmp_path, P, R_rect, R_velo, T_velo, (100, 40))
    pts = np.array([
        [9.5, 0.0, 0.1, 0.3],    # cam (0, -0.2, 10): u = 530/10 = 53, v = 180/10 = 18
        [19.5, -2.0, 1.1, 0.9],  # cam (2, -1.2, 20): u = 1230/20 = 61.5 -> 62, v = 280/20 = 14
        [7.5, 0.0, 0.3, 0.1],    # cam (0, -0.4, 8):  u = 430/8 = 53.75 -> 54, v = 120/8 = 15
        [-5.0, 0.0, 0.0, 0.0],   # behind the scanner: dropped
        [1.0, 50.0, 0.0, 0.0],   # far left of the image: dropped
    ], np.float32)
    pts.tofile(tmp_path / "scan.bin")
    depth = generate_depth_map(tmp_path, tmp_path / "scan.bin", cam=2)
    assert depth.shape == (40, 100)
    # monodepth2's pixel = round(projection) - 1 (numpy rounds halves to even)
    assert depth[17, 52] == pytest.approx(10.0)
    assert depth[13, 61] == pytest.approx(20.0)
    assert depth[14, 53] == pytest.approx(8.0)
    assert np.count_nonzero(depth) == 3
    # Eigen-split ground truth (export_gt_depth.py): the scanner's forward distance x instead
    vel = generate_depth_map(tmp_path, tmp_path / "scan.bin", cam=2, vel_depth=True)
    assert (vel[17, 52], vel[13, 61], vel[14, 53]) == pytest.approx((9.5, 19.5, 7.5))
    assert read_calib_file(tmp_path / "calib_cam_to_cam.txt")["S_rect_02"].tolist() == [100, 40]


def test_velodyne_duplicates_keep_the_nearest_return():
    P = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    # homogeneous points whose projection is pixel (round(x/z)-1, round(y/z)-1) = (1, 1)
    pts = np.array([[2 * z, 2 * z, z, 1.0] for z in (5.0, 3.0, 4.0)])
    depth = velodyne_to_depth(pts, P, 4, 4)
    assert depth[1, 1] == 3.0 and np.count_nonzero(depth) == 1


def test_truncated_velodyne_scan_is_reported(tmp_path):
    np.zeros(7, np.float32).tofile(tmp_path / "bad.bin")
    from lsmdepth_ros.training.datasets.kitti_velodyne import load_velodyne_points

    with pytest.raises(ValueError, match="truncated"):
        load_velodyne_points(tmp_path / "bad.bin")


def test_old_import_path_of_the_metrics_is_the_same_functions():
    # scripts written against the first layout import from training.evaluate: same objects
    import lsmdepth_ros.training.evaluate as old
    from lsmdepth_ros import metrics
    from lsmdepth_ros.training import heldout

    assert old.compute_depth_metrics is metrics.compute_depth_metrics
    assert old.EvalOptions is metrics.EvalOptions
    assert old.evaluate_model is heldout.evaluate_model
