"""SigLoss (the Monocular-Depth-Estimation-Toolbox convention, warm-up included), L1, the
multi-scale depth supervision and sparse LiDAR simulation, against numpy hand computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lsmdepth_ros.training.depth_losses import (
    DepthSupervisionLoss,
    DepthSupervisionOptions,
    SigLoss,
    masked_l1,
    sig_loss,
    simulate_lidar,
)


def _numpy_sig(pred, gt, max_depth=None, warm=False):
    """The toolbox's formula written out in numpy (float64)."""
    pred, gt = np.asarray(pred, np.float64).ravel(), np.asarray(gt, np.float64).ravel()
    valid = gt > 0
    if max_depth is not None:
        valid &= gt <= max_depth
    p, g = pred[valid], gt[valid]
    if warm:
        d = np.log(p + 0.1) - np.log(g + 0.1)
        return np.sqrt(0.15 * d.mean() ** 2)
    d = np.log(p) - np.log(g)
    return np.sqrt(d.var(ddof=1) + 0.15 * d.mean() ** 2)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 60.0, (2, 1, 6, 8))
    gt[0, 0, 0, :3] = 0.0           # invalid pixels
    gt[1, 0, 2, 2] = np.nan         # NaN is invalid too
    gt[1, 0, 5, 7] = 95.0           # beyond a max_depth of 80
    pred = gt * rng.uniform(0.7, 1.4, gt.shape)
    pred[np.isnan(pred) | (pred <= 0)] = 3.0
    return pred, gt


def test_sig_loss_matches_the_toolbox_formula(pair):
    pred, gt = pair
    got = sig_loss(torch.tensor(pred), torch.tensor(gt))
    assert got.item() == pytest.approx(_numpy_sig(pred, np.nan_to_num(gt)), rel=1e-10)
    got = sig_loss(torch.tensor(pred), torch.tensor(gt), max_depth=80.0)
    assert got.item() == pytest.approx(_numpy_sig(pred, np.nan_to_num(gt), 80.0), rel=1e-10)


def test_sig_loss_by_hand_on_three_pixels():
    pred = torch.tensor([2.0, 4.0, 8.0], dtype=torch.float64)
    gt = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    g = np.log([2.0, 4.0, 8.0])                   # mean 2 ln 2, unbiased variance (ln 2)^2
    expected = np.sqrt(np.log(2) ** 2 + 0.15 * (2 * np.log(2)) ** 2)
    assert sig_loss(pred, gt).item() == pytest.approx(expected, rel=1e-12)
    assert g.var(ddof=1) == pytest.approx(np.log(2) ** 2)


def test_scale_term_only_penalises_scale():
    gt = torch.linspace(1.0, 50.0, 40, dtype=torch.float64)
    exact = sig_loss(gt.clone(), gt).item()
    scaled = sig_loss(2.0 * gt, gt).item()
    assert exact == pytest.approx(0.0, abs=1e-12)
    # a global scale leaves var(g) = 0: only sqrt(0.15) * |ln 2| remains
    assert scaled == pytest.approx(np.sqrt(0.15) * np.log(2.0), rel=1e-12)


def test_warm_up_variant_counts_calls_or_follows_the_step(pair):
    pred, gt = (torch.tensor(v) for v in pair)
    gt = torch.nan_to_num(gt)
    loss = SigLoss(loss_weight=10.0, warm_up=True, warm_iter=2)
    warm = 10.0 * _numpy_sig(pred.numpy(), gt.numpy(), warm=True)
    full = 10.0 * _numpy_sig(pred.numpy(), gt.numpy())
    assert warm != pytest.approx(full)
    got = [loss(pred, gt).item() for _ in range(3)]
    assert got == pytest.approx([warm, warm, full], rel=1e-10)
    stepped = SigLoss(warm_up=True, warm_iter=5)
    assert stepped(pred, gt, step=4).item() == pytest.approx(warm / 10, rel=1e-10)
    assert stepped(pred, gt, step=5).item() == pytest.approx(full / 10, rel=1e-10)
    assert stepped.warm_up_counter == 0


def test_no_valid_pixels_gives_zero_with_a_gradient():
    pred = torch.ones(1, 1, 2, 2, requires_grad=True)
    loss = sig_loss(pred, torch.zeros(1, 1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and pred.grad is not None
    with pytest.raises(ValueError, match="same shape"):
        sig_loss(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 4, 4))


def test_masked_l1(pair):
    pred, gt = pair
    gt0 = np.nan_to_num(gt)
    valid = gt0 > 0
    expected = np.abs(pred - gt0)[valid].mean()
    assert masked_l1(torch.tensor(pred), torch.tensor(gt)).item() == pytest.approx(expected)


def test_multiscale_supervision_resizes_each_scale_to_the_ground_truth():
    gt = torch.full((1, 1, 8, 8), 5.0, dtype=torch.float64)
    gt[..., :2, :] = 0.0
    depths = {0: torch.full((1, 1, 8, 8), 5.0, dtype=torch.float64),
              1: torch.full((1, 1, 4, 4), 10.0, dtype=torch.float64)}
    loss = DepthSupervisionLoss(DepthSupervisionOptions(loss="sig", loss_weight=2.0))(depths, gt)
    # scale 0 exact (0); scale 1 is 2x everywhere: sqrt(0.15) ln 2; mean over scales, x2 weight
    assert loss.item() == pytest.approx(2.0 * 0.5 * np.sqrt(0.15) * np.log(2), rel=1e-9)
    l1 = DepthSupervisionLoss(DepthSupervisionOptions(loss="l1"))(depths, gt)
    assert l1.item() == pytest.approx(0.5 * 5.0)
    with pytest.raises(ValueError, match="'sig' or 'l1'"):
        DepthSupervisionOptions(loss="huber")


def test_simulated_lidar_is_a_sparse_subset_on_scan_lines():
    depth = torch.rand(2, 1, 48, 64) * 40 + 1
    depth[0, 0, 40, :10] = 0.0
    sparse = simulate_lidar(depth, rows=8, keep=0.5, generator=torch.Generator().manual_seed(0))
    hit = sparse > 0
    assert torch.equal(sparse[hit], depth[hit])          # values copied, never invented
    rows = hit.any(dim=-1)[:, 0].any(0).nonzero().flatten()
    assert len(rows) <= 8 and rows.min() >= 48 // 3      # lower 2/3, few lines
    frac = hit.float().sum() / (2 * len(rows) * 64)
    assert 0.35 < frac < 0.65
    assert not hit[0, 0, 40, :10].any()                  # invalid stays invalid


def test_few_supervised_steps_reduce_sigloss_on_a_fixed_batch():
    from lsmdepth_ros.geometry import disp_to_depth
    from lsmdepth_ros.networks import build_depth_model

    torch.manual_seed(0)
    model = build_depth_model("lite-mono-tiny", height=64, width=96)
    model.train()
    images = torch.rand(2, 3, 64, 96)
    gt = (2.0 + 30.0 * torch.linspace(0, 1, 64)[None, None, :, None]).expand(2, 1, 64, 96).clone()
    criterion = DepthSupervisionLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        disps = model(images)
        depths = {s: disp_to_depth(d, 0.1, 100.0)[1] for (_, s), d in disps.items()}
        loss = criterion(depths, gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_objective_modes_add_the_right_terms():
    from lsmdepth_ros.geometry import disp_to_depth
    from lsmdepth_ros.training.loss_terms import TrainingObjective
    from lsmdepth_ros.training.photometric import LossResult
    from lsmdepth_ros.training.supervision import check_supervision

    torch.manual_seed(0)
    disps = {("disp", 0): torch.rand(2, 1, 16, 24) * 0.9 + 0.05,
             ("disp", 1): torch.rand(2, 1, 8, 12) * 0.9 + 0.05}
    target = torch.rand(2, 3, 16, 24)
    gt = torch.rand(2, 1, 16, 24) * 30 + 1
    depths = {s: disp_to_depth(d, 0.1, 100.0)[1] for (_, s), d in disps.items()}
    expected = DepthSupervisionLoss()(depths, gt).item()

    sup = TrainingObjective("supervised", {})
    out = sup(disps, target, {"depth_gt": gt}, step=0)
    assert out.total.item() == pytest.approx(expected, rel=1e-6)
    assert out.depth.shape == (2, 1, 16, 24)

    photometric = LossResult(total=torch.tensor(0.25))
    lidar = TrainingObjective("self+lidar", {"depth_weight": 0.5})
    out = lidar(disps, target, {"depth_gt": gt}, step=0, photometric=photometric)
    assert out.total.item() == pytest.approx(0.25 + 0.5 * expected, rel=1e-6)

    with pytest.raises(KeyError, match="load_depth=True"):
        sup(disps, target, {}, step=0)
    with pytest.raises(ValueError, match="supervision must be one of"):
        check_supervision("teacher-forcing", {})
    with pytest.raises(ValueError, match="unknown supervision_options"):
        check_supervision("supervised", {"sig_weight": 1.0})
    with pytest.raises(ValueError, match="needs supervision_options.teacher"):
        check_supervision("distill", {})


def test_objective_semantic_term_uses_sample_labels():
    from lsmdepth_ros.training.distill import semantic_consistency_loss
    from lsmdepth_ros.training.loss_terms import TrainingObjective

    torch.manual_seed(1)
    disps = {("disp", 0): torch.rand(1, 1, 12, 16) * 0.9 + 0.05}
    labels = torch.zeros(1, 1, 12, 16, dtype=torch.long)
    labels[..., 8:] = 3
    obj = TrainingObjective("self", {"semantic_weight": 0.2})
    out = obj(disps, torch.rand(1, 3, 12, 16), {"semantic": labels}, step=0)
    expected = 0.2 * semantic_consistency_loss(disps[("disp", 0)], labels[:, 0])
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(KeyError, match="segmentation_model"):
        obj(disps, torch.rand(1, 3, 12, 16), {}, step=0)


# ----------------------------------------------------------------------------------------------
# the Trainer's supervision modes (tiny: lite-mono-tiny at 32x96, batch 2)

TINY = {"model": "lite-mono-tiny", "height": 32, "width": 96, "batch_size": 2,
        "num_workers": 0, "progress": False, "log_interval": 0, "image_interval": 0,
        "val_samples": 2, "warmup_steps": 0, "augment": False, "threads": 1,
        "model_options": {"drop_path_rate": 0.0},
        "data_options": {"train_sequences": 1, "val_sequences": 1, "frames_per_sequence": 6}}


def _first_batch(trainer):
    return next(iter(trainer.make_loader(0)))


def test_trainer_supervised_mode_loads_depth_only_and_steps_on_sigloss(tmp_path):
    import copy

    from lsmdepth_ros.geometry import disp_to_depth
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.trainer import Trainer

    cfg = TrainConfig(**TINY, supervision="supervised", steps=3, log_dir=str(tmp_path),
                      run_name="sup", supervision_options={"sig_warm_up": True,
                                                           "sig_warm_iter": 1})
    assert cfg.source_frame_ids == []          # frame_ids [0, -1, 1] is ignored: no photometric
    trainer = Trainer(cfg)
    sample = _first_batch(trainer)
    assert "depth_gt" in sample and ("color", -1, 0) not in sample
    depth_ref = copy.deepcopy(trainer.depth).train()
    pose_before = trainer.pose
    with torch.no_grad():
        disps = depth_ref(sample[("color_aug", 0, 0)])
    depths = {s: disp_to_depth(d, cfg.min_depth, cfg.max_depth)[1] for (_, s), d in disps.items()}
    gt = sample["depth_gt"]
    # step 0 < warm_iter: the warm-up form; the trainer passes its global step
    expected = DepthSupervisionLoss(DepthSupervisionOptions(warm_up=True, warm_iter=1))(
        depths, gt, step=0)
    out = trainer.train_step(sample)
    assert out.finite and out.loss == pytest.approx(expected.item(), rel=1e-5)
    assert set(out.losses.terms) == {"depth"}
    summary = trainer.train()
    assert summary.steps == 3 and all(np.isfinite(summary.losses))
    assert trainer.pose is None and pose_before is None   # no PoseNet without source frames
    assert 0 < summary.metrics["abs_rel"] < 1
    trainer.close()


def test_trainer_self_plus_lidar_adds_the_sparse_term(tmp_path):
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.trainer import Trainer

    cfg = TrainConfig(**TINY, supervision="self+lidar", steps=1, log_dir=str(tmp_path),
                      run_name="lidar", supervision_options={"lidar_rows": 8,
                                                             "depth_weight": 0.5})
    trainer = Trainer(cfg)
    sample = _first_batch(trainer)
    assert "depth_gt" in sample and ("color", -1, 0) in sample
    out = trainer.train_step(sample)
    scales = list(out.losses.photometric.per_scale.values())
    assert len(scales) == 3 and out.losses.photometric.automask is not None
    photometric = sum(float(v.detach()) for v in scales) / len(scales)
    assert float(out.losses.terms["photometric"].detach()) == pytest.approx(photometric, rel=1e-6)
    lidar = float(out.losses.terms["depth"].detach())
    assert out.loss == pytest.approx(photometric + lidar, rel=1e-5) and lidar > 0
    trainer.close()


def test_config_rejects_bad_supervision(tmp_path):
    from lsmdepth_ros.training.config import TrainConfig

    with pytest.raises(ValueError, match="supervision must be one of"):
        TrainConfig(supervision="teacher")
    with pytest.raises(ValueError, match="frame_ids"):
        TrainConfig(supervision="self+lidar", frame_ids=[0])
    TrainConfig(supervision="supervised", frame_ids=[0])        # fine: no photometric loss
    with pytest.raises(ValueError, match="unknown supervision_options"):
        TrainConfig(supervision="supervised", supervision_options={"weight": 1})
    with pytest.raises(ValueError, match="does not provide"):
        from lsmdepth_ros.training.datasets.registry import build_datasets

        build_datasets(TrainConfig(supervision="supervised", data_kind="folder",
                                   data_path=str(tmp_path)), 3)
