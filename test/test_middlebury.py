"""The real-image check: scikit-image's Middlebury motorcycle frame and `--data middlebury`."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lsmdepth_ros.cli import main
from lsmdepth_ros.metrics import EvalOptions, evaluate_depth_pair
from lsmdepth_ros.training.datasets.middlebury import (
    MOTORCYCLE,
    load_motorcycle,
    middlebury_dataset,
    skimage_data_dir,
    stereo_disparity_to_depth,
)


def _raw_disparity():
    with np.load(Path(skimage_data_dir()) / "motorcycle_disp.npz") as npz:
        return npz["arr_0"].astype(np.float64)


def test_depth_is_baseline_times_focal_over_disparity_plus_doffs():
    rgb, depth = load_motorcycle()
    disp = _raw_disparity()
    assert rgb.shape == (500, 741, 3) and rgb.dtype == np.uint8 and depth.shape == (500, 741)
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 500, 200), rng.integers(0, 741, 200)
    for y, x in zip(ys, xs):
        d = disp[y, x]
        if np.isfinite(d):
            assert depth[y, x] == pytest.approx(0.193001 * 994.978 / (d + 31.086), rel=1e-6)
        else:
            assert np.isnan(depth[y, x])
    assert np.isnan(depth).sum() == np.isinf(disp).sum() > 0
    # a motorcycle photographed from about 2-5 m
    assert 2.0 < np.nanmin(depth) < np.nanmax(depth) < 5.5


def test_disparity_conversion_rejects_impossible_values():
    depth = stereo_disparity_to_depth(np.array([np.inf, -40.0, 0.0, np.nan]), MOTORCYCLE)
    assert np.isnan(depth[[0, 1, 3]]).all()
    assert depth[2] == pytest.approx(0.193001 * 994.978 / 31.086, rel=1e-6)


def test_a_constant_depth_scores_the_issues_baseline():
    """Median-scaled constant depth: AbsRel = mean(|gt - median(gt)| / gt) = 0.212."""
    _, depth = load_motorcycle()
    gt = depth[np.isfinite(depth)].astype(np.float64)
    expected = np.mean(np.abs(gt - np.median(gt)) / gt)
    result = evaluate_depth_pair(depth, np.full(depth.shape, 7.0), EvalOptions(crop=None))
    assert result.metrics["abs_rel"] == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.212, abs=5e-4)


def test_evaluate_middlebury_command_scores_the_network_on_the_motorcycle(tmp_path, capsys):
    from lsmdepth_ros.checkpoints import load_checkpoint, save_checkpoint
    from lsmdepth_ros.networks import build_depth_model
    from lsmdepth_ros.training.heldout import predict_depth_batches

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, build_depth_model("lsmdepth", height=64, width=128), min_depth=0.1,
                    max_depth=100.0)
    out = tmp_path / "mb.json"
    assert main(["evaluate", str(ckpt), "--data", "middlebury", "--output", str(out),
                 "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == 1 and report["data"] == "middlebury"
    # the same figure from the image and the disparity file, computed here
    import cv2

    model, info = load_checkpoint(ckpt)
    rgb, _ = load_motorcycle()
    small = cv2.resize(rgb, (128, 64), interpolation=cv2.INTER_AREA)
    image = torch.from_numpy(small.transpose(2, 0, 1).copy()).float()[None] / 255.0
    pred = predict_depth_batches(model.eval(), image, info.min_depth, info.max_depth)[0]
    gt = stereo_disparity_to_depth(_raw_disparity(), MOTORCYCLE)
    direct = evaluate_depth_pair(gt, pred, EvalOptions(crop=None))
    assert report["metrics"]["abs_rel"] == pytest.approx(direct.metrics["abs_rel"], rel=1e-5)
    assert len(middlebury_dataset(64, 128)) == 1
