"""Checkpoint files: weights-only round trips and clear errors. Official weights folders
(Lite-Mono, LSMDepth, monodepth2) are tested in test_official_weights.py."""
from __future__ import annotations

import os

import pytest
import torch

from lsmdepth_ros.checkpoints import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from lsmdepth_ros.networks import build_depth_model

SIZE = {"height": 64, "width": 192}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", **SIZE).eval()
    with torch.no_grad():  # make BN statistics non-trivial so they must round-trip too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    extra = {"step": 12, "config": {"lr": 1e-4, "frames": [0, -1, 1], "name": "x"},
             "pose_state_dict": {"w": torch.arange(4.0)}}
    save_checkpoint(path, model, min_depth=0.5, max_depth=80.0, extra=extra)
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded, info = load_checkpoint(path)
    assert (info.name, info.min_depth, info.max_depth) == ("lsmdepth", 0.5, 80.0)
    assert info.options == model.options and info.source == "lsmdepth_ros"
    assert info.extra["step"] == 12 and info.extra["config"]["frames"] == [0, -1, 1]
    assert torch.equal(info.extra["pose_state_dict"]["w"], torch.arange(4.0))
    assert not loaded.training
    x = torch.rand(2, 3, 64, 192)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for key in a:
        assert torch.equal(a[key], b[key])


def test_file_is_weights_only_loadable_and_written_atomically(saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    assert payload["model"] == "lsmdepth" and payload["options"]["height"] == 64
    assert os.listdir(path.parent) == ["model.pt"]  # no temp files left behind


def test_missing_and_corrupt_files_raise_checkpoint_error(tmp_path, saved):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved[1].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an lsmdepth_ros checkpoint"):
        load_checkpoint(foreign)
    assert issubclass(CheckpointError, ValueError)


def test_mismatched_or_unknown_model_raises(tmp_path, saved):
    payload = torch.load(saved[1], weights_only=True)
    payload["model"] = "lite-mono"
    for lsmdepth_only in ("deformable_blocks", "mlp_ratios", "downsample"):
        del payload["options"][lsmdepth_only]
    torch.save(payload, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not match model lite-mono"):
        load_checkpoint(tmp_path / "wrong.pt")
    payload["model"] = "resnet-9000"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="resnet-9000"):
        load_checkpoint(tmp_path / "unknown.pt")


def test_save_rejects_what_weights_only_loading_cannot_read(tmp_path):
    model = build_depth_model("lite-mono-tiny", **SIZE)
    with pytest.raises(TypeError, match="extra"):
        save_checkpoint(tmp_path / "x.pt", model, extra={"when": object()})
    with pytest.raises(ValueError, match="min_depth"):
        save_checkpoint(tmp_path / "x.pt", model, min_depth=10.0, max_depth=1.0)
    assert not (tmp_path / "x.pt").exists()


def test_lsmdepth_checkpoint_saved_before_the_speed_options_rebuilds_the_first_design(tmp_path):
    """Files written before mlp_ratios / downsample existed hold the first design's
    weights (MLP expansion 6, dense stride-2 convs): they must load as that, not as today's."""
    torch.manual_seed(0)
    old = build_depth_model("lsmdepth", height=64, width=192, mlp_ratios=(6, 6, 6),
                            downsample="3x3").eval()
    path = save_checkpoint(tmp_path / "old.pt", old)
    payload = torch.load(path, weights_only=True)
    del payload["options"]["mlp_ratios"], payload["options"]["downsample"]
    torch.save(payload, path)
    model, info = load_checkpoint(path)
    assert info.options["mlp_ratios"] == (6, 6, 6) and info.options["downsample"] == "3x3"
    image = torch.rand(1, 3, 64, 192)
    with torch.no_grad():
        torch.testing.assert_close(model(image)[("disp", 0)], old(image)[("disp", 0)])
