"""Distillation (scale-and-shift-invariant, patch-wise), semantic consistency, segmentation and
teacher wrappers, against numpy hand computations."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

from lsmdepth_ros.geometry import disp_to_depth
from lsmdepth_ros.training.distill import (
    DistillationLoss,
    DistillOptions,
    EstimatorTeacher,
    ModelTeacher,
    SegmentationModel,
    align_scale_shift,
    depth_to_disparity,
    load_teacher,
    scale_shift_invariant_loss,
    semantic_consistency_loss,
)


def _rand(shape, seed=0, lo=0.1, hi=1.0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(lo, hi, shape))


def test_alignment_matches_numpy_least_squares():
    pred, target = _rand((3, 1, 6, 8), 0), _rand((3, 1, 6, 8), 1)
    mask = _rand((3, 1, 6, 8), 2) > 0.3
    scale, shift = align_scale_shift(pred, target, mask)
    for i in range(3):
        m = mask[i].numpy().ravel()
        A = np.stack([pred[i].numpy().ravel()[m], np.ones(m.sum())], 1)
        (s, t), *_ = np.linalg.lstsq(A, target[i].numpy().ravel()[m], rcond=None)
        assert scale[i].item() == pytest.approx(s, rel=1e-9)
        assert shift[i].item() == pytest.approx(t, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_ssi_loss_is_zero_for_an_affine_prediction_and_matches_numpy_otherwise(kind):
    target = _rand((2, 1, 8, 12), 3)
    affine = 3.5 * target - 0.2
    assert scale_shift_invariant_loss(affine, target, kind=kind).item() == pytest.approx(0, abs=1e-10)
    pred = _rand((2, 1, 8, 12), 4)
    got = scale_shift_invariant_loss(pred, target, kind=kind).item()
    residuals = []
    for i in range(2):
        p, t = pred[i].numpy().ravel(), target[i].numpy().ravel()
        (s, b), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), t, rcond=None)
        r = s * p + b - t
        residuals.append(np.abs(r) if kind == "l1" else r * r)
    assert got == pytest.approx(np.concatenate(residuals).mean(), rel=1e-9)


def test_invalid_teacher_pixels_are_ignored():
    target = _rand((1, 1, 8, 8), 5)
    pred = 2.0 * target + 1.0
    target[..., :3, :] = 0.0          # invalid: the prediction there disagrees completely
    target[..., 3, :2] = float("nan")
    pred[..., :3, :] = 7.0
    pred[..., 3, :2] = -4.0
    assert scale_shift_invariant_loss(pred, target).item() == pytest.approx(0.0, abs=1e-10)
    assert scale_shift_invariant_loss(pred, torch.zeros_like(target)).item() == 0.0


def test_patch_alignment_handles_piecewise_affine_teachers():
    target = _rand((1, 1, 8, 12), 6)
    pred = target.clone()
    # a different affine map in each patch of a 2x3 grid (4x4 pixels each)
    for r in range(2):
        for c in range(3):
            sl = (..., slice(4 * r, 4 * r + 4), slice(4 * c, 4 * c + 4))
            pred[sl] = (1 + r + 2 * c) * target[sl] + 0.3 * (c - r)
    assert scale_shift_invariant_loss(pred, target).item() > 1e-2
    assert scale_shift_invariant_loss(pred, target, grid=(2, 3)).item() == pytest.approx(0, abs=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        scale_shift_invariant_loss(pred, target, grid=(3, 3))


def test_distillation_loss_averages_scales_and_grids():
    teacher_disp = _rand((1, 1, 8, 8), 7, 0.05, 1.0)
    teacher_depth = 1.0 / teacher_disp
    s0 = 0.4 * teacher_disp + 0.1
    s1 = _rand((1, 1, 4, 4), 8)
    loss = DistillationLoss(DistillOptions(kind="l1", grids=[[1, 1], [2, 2]]))
    got = loss({("disp", 0): s0, ("disp", 1): s1}, teacher_depth).item()
    up = F.interpolate(s1, size=(8, 8), mode="bilinear", align_corners=False)
    target = depth_to_disparity(teacher_depth)
    expected = (scale_shift_invariant_loss(up, target) +
                scale_shift_invariant_loss(up, target, grid=(2, 2))).item() / 4
    assert got == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="rows, cols"):
        DistillOptions(grids=[[0, 2]])


def _numpy_second_differences(d, labels):
    n = d / (d.mean() + 1e-7)                     # the loss's mean normalisation (eps 1e-7)
    total, count = 0.0, 0
    h, w = d.shape
    for y in range(h):
        for x in range(w):
            for dy, dx in ((1, 0), (0, 1)):
                y2, x2 = y + 2 * dy, x + 2 * dx
                if y2 >= h or x2 >= w:
                    continue
                ls = {labels[y, x], labels[y + dy, x + dx], labels[y2, x2]}
                if len(ls) == 1 and -1 not in ls:
                    total += abs(n[y, x] - 2 * n[y + dy, x + dx] + n[y2, x2])
                    count += 1
    return total / count


def test_semantic_consistency_zero_for_planar_segments_and_hand_value_otherwise():
    h, w = 10, 12
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    labels = np.zeros((h, w), np.int64)
    labels[:, 6:] = 1
    labels[7:, :] = 2
    labels[0, 0] = -1
    planes = {0: (0.01, 0.02, 0.3), 1: (-0.02, 0.03, 0.9), 2: (0.0, 0.05, 0.2)}
    disp = np.zeros((h, w))
    for k, (a, b, c) in planes.items():
        disp[labels == k] = (a * u + b * v + c)[labels == k]
    disp[0, 0] = 5.0                              # unlabelled: never counted
    t = torch.from_numpy(disp)[None, None]
    lab = torch.from_numpy(labels)[None]
    assert semantic_consistency_loss(t, lab).item() == pytest.approx(0.0, abs=1e-12)
    bumped = disp.copy()
    bumped[3, 3] += 0.4                           # a bump inside segment 0
    got = semantic_consistency_loss(torch.from_numpy(bumped)[None, None], lab).item()
    assert got > 0
    assert got == pytest.approx(_numpy_second_differences(bumped, labels), rel=1e-9)


def test_semantic_boundary_hinge_by_hand():
    disp = torch.tensor([[[[1.0, 1.0, 1.2, 1.2]]]], dtype=torch.float64)
    labels = torch.tensor([[[0, 0, 1, 1]]])
    # one boundary pair, |log 1 - log 1.2| = 0.1823 < margin 0.5: hinge 0.3177; both pixel
    # triples of the row straddle the boundary, so the in-segment term is empty
    got = semantic_consistency_loss(disp, labels, boundary_margin=0.5, boundary_weight=2.0)
    assert got.item() == pytest.approx(2.0 * (0.5 - np.log(1.2)), rel=1e-9)
    small = semantic_consistency_loss(disp, labels, boundary_margin=0.1)
    assert small.item() == pytest.approx(0.0, abs=1e-12)


def test_segmentation_model_labels_are_argmax_at_image_size():
    net = torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.Conv2d(3, 4, 1))
    images = torch.rand(2, 3, 8, 12)
    labels = SegmentationModel(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(images)
    with torch.no_grad():
        logits = net((images - 0.5) / 0.25)
    expected = logits.argmax(1).repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert labels.shape == (2, 8, 12) and labels.dtype == torch.int64
    assert torch.equal(labels, expected)


def test_model_teacher_and_checkpoint_loading(tmp_path):
    from lsmdepth_ros.checkpoints import save_checkpoint
    from lsmdepth_ros.networks import build_depth_model

    torch.manual_seed(0)
    model = build_depth_model("lite-mono-tiny", height=64, width=96).eval()
    path = save_checkpoint(tmp_path / "t.pt", model, min_depth=0.5, max_depth=40.0)
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = disp_to_depth(model(images)[("disp", 0)], 0.5, 40.0)[1]
    teacher = load_teacher(path)
    assert isinstance(teacher, ModelTeacher)
    torch.testing.assert_close(teacher(images), expected)
    with pytest.raises(FileNotFoundError, match="teacher model"):
        load_teacher(tmp_path / "missing.pt")


def _mean_exp_onnx(path, h, w):
    """ONNX depth model: depth = exp(0.5 + channel mean of the RGB [0,1] input)."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Add", ["m", "half"], ["a"]),
             helper.make_node("Exp", ["a"], ["depth"])]
    graph = helper.make_graph(
        nodes, "mean_exp", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, h, w])],
        [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_teacher_through_the_estimator(tmp_path):
    path = _mean_exp_onnx(tmp_path / "teacher.onnx", 16, 24)
    teacher = load_teacher(path, onnx_output="depth")
    assert isinstance(teacher, EstimatorTeacher)
    images = torch.rand(2, 3, 16, 24)
    quantised = (images * 255).round() / 255            # the estimator sees 8-bit images
    expected = torch.exp(0.5 + quantised.mean(1, keepdim=True))
    torch.testing.assert_close(teacher(images), expected, rtol=1e-5, atol=1e-5)


def test_a_few_distillation_steps_reduce_the_ssi_loss():
    from lsmdepth_ros.networks import build_depth_model

    torch.manual_seed(0)
    student = build_depth_model("lite-mono-tiny", height=64, width=96).train()
    images = torch.rand(2, 3, 64, 96)
    ramp = torch.linspace(0, 1, 64)[None, None, :, None].expand(2, 1, 64, 96)
    teacher_depth = 1.0 / (0.05 + ramp + 0.3 * (torch.linspace(0, 1, 96) > 0.5).double().float())
    loss_fn = DistillationLoss(DistillOptions(grids=[[1, 1], [2, 2]]))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(student(images), teacher_depth)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_trainer_distill_mode_steps_on_the_teacher(tmp_path):
    import copy

    from lsmdepth_ros.checkpoints import save_checkpoint
    from lsmdepth_ros.networks import build_depth_model
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.trainer import Trainer

    torch.manual_seed(5)
    teacher_model = build_depth_model("lite-mono-tiny", height=32, width=96).eval()
    with torch.no_grad():
        for p in teacher_model.decoder.parameters():
            p.mul_(4.0)                       # a teacher with visible structure
    teacher_path = save_checkpoint(tmp_path / "teacher.pt", teacher_model, min_depth=0.1,
                                   max_depth=80.0)
    options = {"teacher": str(teacher_path), "distill_grids": [[1, 1], [2, 2]],
               "distill_weight": 2.0}
    cfg = TrainConfig(model="lite-mono-tiny", height=32, width=96, batch_size=2, num_workers=0,
                      progress=False, log_interval=0, image_interval=0, warmup_steps=0,
                      augment=False, threads=1, steps=2, frame_ids=[0], supervision="distill",
                      supervision_options=options, model_options={"drop_path_rate": 0.0},
                      data_options={"train_sequences": 1, "val_sequences": 0,
                                    "frames_per_sequence": 6},
                      log_dir=str(tmp_path), run_name="distill")
    trainer = Trainer(cfg)
    sample = next(iter(trainer.make_loader(0)))
    student = copy.deepcopy(trainer.depth).train()
    with torch.no_grad():
        images = sample[("color", 0, 0)]
        teacher_depth = disp_to_depth(teacher_model(images)[("disp", 0)], 0.1, 80.0)[1]
        expected = 2.0 * DistillationLoss(DistillOptions(grids=[[1, 1], [2, 2]]))(
            student(images), teacher_depth)
    out = trainer.train_step(sample)
    assert out.loss == pytest.approx(expected.item(), rel=1e-5)
    assert set(out.losses.terms) == {"distill"}
    trainer.close()
