"""Checkpoint files: weights-only round trips, clear errors, and official Lite-Mono / LSMDepth
weight folders keyed exactly as the reference code names its modules."""
from __future__ import annotations

import os

import pytest
import torch

from lsmdepth_ros.checkpoints import (
    CheckpointError,
    identify_official,
    load_checkpoint,
    save_checkpoint,
)
from lsmdepth_ros.networks import build_depth_model

SIZE = {"height": 64, "width": 192}


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def official_lite_mono_encoder_shapes(dims, depths):
    """Key -> shape of the reference ``LiteMono`` encoder state dict, written from the
    reference's module tree (Conv/BNGELU stem, stem2, DilatedConv and LGFI blocks)."""
    d0 = dims[0]
    shapes = {}
    for i, cin in enumerate((3, d0, d0)):
        shapes[f"downsample_layers.0.{i}.conv.weight"] = (d0, cin, 3, 3)
        shapes.update(_bn(f"downsample_layers.0.{i}.bn_gelu.bn", d0))
    shapes["stem2.0.conv.weight"] = (d0, d0 + 3, 3, 3)
    for i in range(2):
        shapes[f"downsample_layers.{i + 1}.0.conv.weight"] = (dims[i + 1], 2 * dims[i] + 3, 3, 3)
    for i, (d, depth) in enumerate(zip(dims, depths)):
        for j in range(depth):
            p = f"stages.{i}.{j}"
            mlp = {f"{p}.norm.weight": (d,), f"{p}.norm.bias": (d,),
                   f"{p}.pwconv1.weight": (6 * d, d), f"{p}.pwconv1.bias": (6 * d,),
                   f"{p}.pwconv2.weight": (d, 6 * d), f"{p}.pwconv2.bias": (d,),
                   f"{p}.gamma": (d,)}
            shapes.update(mlp)
            if j < depth - 1:  # DilatedConv
                shapes[f"{p}.ddwconv.conv.weight"] = (d, 1, 3, 3)
                shapes.update(_bn(f"{p}.bn1", d))
            else:  # LGFI
                if i == 0:
                    shapes[f"{p}.pos_embd.token_projection.weight"] = (d, 64, 1, 1)
                    shapes[f"{p}.pos_embd.token_projection.bias"] = (d,)
                shapes.update({f"{p}.norm_xca.weight": (d,), f"{p}.norm_xca.bias": (d,),
                               f"{p}.gamma_xca": (d,), f"{p}.xca.temperature": (8, 1, 1),
                               f"{p}.xca.qkv.weight": (3 * d, d), f"{p}.xca.qkv.bias": (3 * d,),
                               f"{p}.xca.proj.weight": (d, d), f"{p}.xca.proj.bias": (d,)})
    return shapes


def official_lite_mono_decoder_shapes(enc):
    dec = [c // 2 for c in enc]
    convs = [(dec[2], enc[2]), (dec[2], dec[2] + enc[1]), (dec[1], dec[2]),
             (dec[1], dec[1] + enc[0]), (dec[0], dec[1]), (dec[0], dec[0])]
    shapes = {}
    for k, (cout, cin) in enumerate(convs):
        shapes[f"decoder.{k}.conv.conv.weight"] = (cout, cin, 3, 3)
        shapes[f"decoder.{k}.conv.conv.bias"] = (cout,)
    for s in range(3):
        shapes[f"decoder.{6 + s}.conv.weight"] = (1, dec[s], 3, 3)
        shapes[f"decoder.{6 + s}.conv.bias"] = (1,)
    return shapes


def official_lsmdepth_decoder_shapes(enc):
    """The reference LSMDepth ``DepthDecoder`` (skip_att / skip_conv / decoder.<n>)."""
    dec = [c // 2 for c in enc]
    shapes = {}

    def channel_att(prefix, c):
        shapes.update({f"{prefix}.fc.0.weight": (c // 8, c), f"{prefix}.fc.0.bias": (c // 8,),
                       f"{prefix}.fc.2.weight": (c, c // 8), f"{prefix}.fc.2.bias": (c,)})

    for i, c in enumerate(enc):
        channel_att(f"skip_att.{i}.0", c)
        shapes[f"skip_att.{i}.1.conv.weight"] = (1, 2, 7, 7)
        shapes[f"skip_att.{i}.1.conv.bias"] = (1,)
        shapes[f"skip_conv.{i}.conv.weight"] = (dec[i], c, 1, 1)
        shapes[f"skip_conv.{i}.conv.bias"] = (dec[i],)
    k = 0
    for i in (2, 1, 0):
        cin = enc[2] if i == 2 else dec[i + 1]
        shapes[f"decoder.{k}.conv.0.conv.weight"] = (dec[i], cin, 3, 3)
        shapes[f"decoder.{k}.conv.0.conv.bias"] = (dec[i],)
        cin = dec[i] + (dec[i - 1] if i > 0 else 0)
        shapes[f"decoder.{k + 1}.0.conv.conv.weight"] = (dec[i], cin, 3, 3)
        shapes[f"decoder.{k + 1}.0.conv.conv.bias"] = (dec[i],)
        channel_att(f"decoder.{k + 1}.1", dec[i])
        k += 2
    for s in range(3):
        shapes[f"decoder.{k + s}.0.conv.weight"] = (64, dec[s], 3, 3)
        shapes[f"decoder.{k + s}.0.conv.bias"] = (64,)
        shapes[f"decoder.{k + s}.2.conv.weight"] = (1, 64, 3, 3)
        shapes[f"decoder.{k + s}.2.conv.bias"] = (1,)
    return shapes


OFFICIAL = {  # name -> (dims, depths)
    "lite-mono": ((48, 80, 128), (4, 4, 10)), "lite-mono-small": ((48, 80, 128), (4, 4, 7)),
    "lite-mono-tiny": ((32, 64, 128), (4, 4, 7)), "lite-mono-8m": ((64, 128, 224), (4, 4, 10)),
}


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_lite_mono_state_dict_keys_match_reference(name):
    dims, depths = OFFICIAL[name]
    model = build_depth_model(name, **SIZE)
    assert _shapes(model.encoder) == official_lite_mono_encoder_shapes(dims, depths)
    assert _shapes(model.decoder) == official_lite_mono_decoder_shapes(dims)


def test_lsmdepth_official_decoder_keys_match_reference():
    model = build_depth_model("lsmdepth-official", **SIZE)
    assert _shapes(model.decoder) == official_lsmdepth_decoder_shapes((48, 80, 128))
    assert _shapes(model.encoder) == official_lite_mono_encoder_shapes(*OFFICIAL["lite-mono"])


def _random_state(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randint(0, 100, (), generator=g) if k.endswith("num_batches_tracked")
                else torch.rand(s, generator=g) * 0.2 + 0.9 if k.endswith("running_var")
                else torch.randn(s, generator=g) * 0.05)
            for k, s in shapes.items()}


def _write_official_folder(folder, enc_state, dec_state, height, width):
    folder.mkdir()
    torch.save({**enc_state, "height": height, "width": width, "use_stereo": False},
               folder / "encoder.pth")
    torch.save(dec_state, folder / "depth.pth")
    return folder


@pytest.mark.parametrize("name,dec_shapes", [
    ("lite-mono", official_lite_mono_decoder_shapes),
    ("lsmdepth-official", official_lsmdepth_decoder_shapes),
])
def test_official_folder_loads_every_tensor(tmp_path, name, dec_shapes):
    dims, depths = OFFICIAL["lite-mono"]
    enc_state = _random_state(official_lite_mono_encoder_shapes(dims, depths), 1)
    dec_state = _random_state(dec_shapes(dims), 2)
    folder = _write_official_folder(tmp_path / "weights", enc_state, dec_state, 320, 1024)
    model, info = load_checkpoint(folder)
    assert (info.name, info.source, info.min_depth, info.max_depth) == (name, "official", 0.1, 100.0)
    assert (info.options["height"], info.options["width"]) == (320, 1024)
    assert not model.training
    for key, value in enc_state.items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    for key, value in dec_state.items():
        assert torch.equal(model.decoder.state_dict()[key], value), key
    # 1024x320 weights get the reference's 1024x320 dilation table.
    assert model.encoder.stages[2][8].ddwconv.conv.dilation == (10, 10)
    with torch.no_grad():
        disp = model(torch.rand(1, 3, 64, 192))[("disp", 0)]
    assert disp.shape == (1, 1, 64, 192) and torch.isfinite(disp).all()


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_variants_are_identified(name):
    dims, depths = OFFICIAL[name]
    def empty(shapes):
        return {k: torch.empty(s) for k, s in shapes.items()}

    enc = empty(official_lite_mono_encoder_shapes(dims, depths))
    assert identify_official(enc, empty(official_lite_mono_decoder_shapes(dims))) == (name, {})
    variant = {"lite-mono": "light", "lite-mono-small": "light-s", "lite-mono-tiny": "light-t",
               "lite-mono-8m": "light-m"}[name]
    assert identify_official(enc, empty(official_lsmdepth_decoder_shapes(dims))) == (
        "lsmdepth-official", {"variant": variant})


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
    del payload["options"]["deformable_blocks"]
    torch.save(payload, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not match model lite-mono"):
        load_checkpoint(tmp_path / "wrong.pt")
    payload["model"] = "resnet-9000"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="resnet-9000"):
        load_checkpoint(tmp_path / "unknown.pt")


def test_incomplete_official_folder_raises(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save({"height": 192, "width": 640}, folder / "encoder.pth")
    with pytest.raises(CheckpointError, match="depth.pth"):
        load_checkpoint(folder)


def test_save_rejects_what_weights_only_loading_cannot_read(tmp_path):
    model = build_depth_model("lite-mono-tiny", **SIZE)
    with pytest.raises(TypeError, match="extra"):
        save_checkpoint(tmp_path / "x.pt", model, extra={"when": object()})
    with pytest.raises(ValueError, match="min_depth"):
        save_checkpoint(tmp_path / "x.pt", model, min_depth=10.0, max_depth=1.0)
    assert not (tmp_path / "x.pt").exists()
