"""evaluate_model and `lsmdepth evaluate` / `lsmdepth synth` wiring on synthetic data."""
import json

import numpy as np
import pytest
import torch

from lsmdepth_ros.cli import main
from lsmdepth_ros.metrics import EvalOptions, evaluate_depth_pairs
from lsmdepth_ros.training.datasets import SyntheticDataset, synthetic_folder_dataset
from lsmdepth_ros.training.heldout import evaluate_model

W, H = 128, 64


class OracleModel(torch.nn.Module):
    """Returns the sigmoid disparity that decodes to the true depth (sky -> max depth)."""

    def __init__(self, depths, min_depth, max_depth):
        super().__init__()
        self.depths, self.min_depth, self.max_depth = list(depths), min_depth, max_depth
        self.scale = 1.0

    def forward(self, images):
        out = []
        for _ in range(images.shape[0]):
            d = np.nan_to_num(self.depths.pop(0), nan=self.max_depth) * self.scale
            d = np.clip(d, self.min_depth, self.max_depth)
            disp = (1 / d - 1 / self.max_depth) / (1 / self.min_depth - 1 / self.max_depth)
            out.append(torch.from_numpy(disp.astype(np.float32))[None])
        return {("disp", 0): torch.stack(out)}


def test_evaluate_model_with_true_depth_is_exact_and_ordered():
    ds = SyntheticDataset(num_sequences=1, frames_per_sequence=5, height=H, width=W, seed=2,
                          frame_ids=(0,), num_scales=1, load_depth=True)
    depths = [ds.frame("0000", i).depth for i in range(5)]
    model = OracleModel(depths, 0.1, 100.0)
    model.scale = 0.5  # a scale error that median scaling must undo
    s = evaluate_model(model, ds, EvalOptions(crop=None), min_depth=0.1, max_depth=100.0,
                       batch_size=2)
    assert s.num_images == 5
    assert s.metrics["abs_rel"] < 1e-5 and s.metrics["a1"] == 1.0
    assert s.ratio_median == pytest.approx(2.0, rel=1e-5)
    # metric evaluation sees the factor 2 error: abs_rel = 0.5 wherever the clip allows
    model = OracleModel(depths, 0.1, 100.0)
    model.scale = 0.5
    metric = evaluate_model(model, ds, EvalOptions(crop=None, median_scaling=False),
                            min_depth=0.1, max_depth=100.0, batch_size=3)
    expect = evaluate_depth_pairs(((d, np.nan_to_num(d, nan=100.0) * 0.5) for d in depths),
                                  EvalOptions(crop=None, median_scaling=False))
    assert metric.metrics["abs_rel"] == pytest.approx(expect.metrics["abs_rel"], rel=1e-5)
    assert metric.metrics["abs_rel"] == pytest.approx(0.5, abs=1e-3)


@pytest.fixture(scope="module")
def checkpoint(random_checkpoint_factory):
    return random_checkpoint_factory(height=H, width=W, min_depth=0.1, max_depth=100.0)


def test_synth_and_evaluate_commands(tmp_path, checkpoint, capsys):
    out = tmp_path / "synth"
    assert main(["synth", str(out), "--sequences", "3", "--frames", "4", "--width", str(W),
                 "--height", str(H), "--seed", "5"]) == 0
    report_path = tmp_path / "eval.json"
    assert main(["evaluate", str(checkpoint), "--data", "synthetic", "--data-path", str(out),
                 "--split", "test", "--output", str(report_path), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "abs_rel" in printed and "median scaling ratio" in printed
    report = json.loads(report_path.read_text())
    assert report["num_images"] == 4 and report["options"]["crop"] is None
    # the same numbers as evaluating the loaded checkpoint directly
    from lsmdepth_ros.checkpoints import load_checkpoint

    model, info = load_checkpoint(checkpoint)
    ds = synthetic_folder_dataset(out, "test", height=H, width=W, frame_ids=(0,), num_scales=1,
                                  load_depth=True)
    direct = evaluate_model(model, ds, EvalOptions(crop=None), min_depth=info.min_depth,
                            max_depth=info.max_depth)
    for k, v in direct.metrics.items():
        assert report["metrics"][k] == pytest.approx(v, rel=1e-6)
    assert report["ratio_median"] == pytest.approx(direct.ratio_median, rel=1e-6)


def test_evaluate_command_errors(tmp_path, checkpoint, capsys):
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["evaluate", str(checkpoint), "--data", "kitti"]) == 2
    assert "--split-file" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x"), "--width", "4"]) == 2
    assert "at least 8x8" in capsys.readouterr().err


def test_folder_depth_formats_give_the_same_metric_figures(tmp_path, checkpoint):
    """One ground truth stored four ways (float .npy, float .tif, KITTI PNG, millimetre PNG
    with --depth-png-scale 1000): the same metric (unscaled) figures, so units are read right."""
    import cv2

    ds = SyntheticDataset(num_sequences=1, frames_per_sequence=2, height=H, width=W, seed=4,
                          frame_ids=(0,), num_scales=1, load_depth=True)
    frames = [ds.frame("0000", i) for i in range(2)]
    images = tmp_path / "images"
    images.mkdir()
    folders = {name: tmp_path / name for name in ("npy", "tif", "kitti", "mm")}
    for folder in folders.values():
        folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(images / f"{i:03d}.png"), f.rgb[:, :, ::-1])
        depth = np.where(np.isfinite(f.depth) & (f.depth < 60), f.depth, 0).astype(np.float32)
        np.save(folders["npy"] / f"{i:03d}.npy", depth)
        cv2.imwrite(str(folders["tif"] / f"{i:03d}.tif"), depth)
        cv2.imwrite(str(folders["kitti"] / f"{i:03d}.png"), np.round(depth * 256).astype(np.uint16))
        cv2.imwrite(str(folders["mm"] / f"{i:03d}.png"), np.round(depth * 1000).astype(np.uint16))
    results = {}
    for name, folder in folders.items():
        out = tmp_path / f"{name}.json"
        scale = ["--depth-png-scale", "1000"] if name == "mm" else []
        assert main(["evaluate", str(checkpoint), "--data", "folder", "--images", str(images),
                     "--depths", str(folder), "--no-median-scaling", "--output", str(out),
                     "--device", "cpu", *scale]) == 0
        results[name] = json.loads(out.read_text())["metrics"]
    for name in ("tif", "kitti", "mm"):
        for key in ("abs_rel", "rmse", "a1"):
            assert results[name][key] == pytest.approx(results["npy"][key], rel=2e-3), name
    # the millimetre PNG read as KITTI's would be 3.9x too far: a different figure
    out = tmp_path / "wrong.json"
    assert main(["evaluate", str(checkpoint), "--data", "folder", "--images", str(images),
                 "--depths", str(folders["mm"]), "--no-median-scaling", "--output", str(out),
                 "--device", "cpu"]) == 0
    wrong = json.loads(out.read_text())["metrics"]
    assert abs(wrong["rmse"] - results["npy"]["rmse"]) > 0.1 * results["npy"]["rmse"]
