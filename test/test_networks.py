"""Depth and pose networks: sizes, ranges, parameter counts, gradients, determinism and the
maths of the blocks checked against direct computations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lsmdepth_ros.geometry import transformation_from_parameters
from lsmdepth_ros.networks import (
    DEFAULT_MODEL,
    available_models,
    build_depth_model,
    build_pose_model,
    count_parameters,
)
from lsmdepth_ros.networks.blocks import (
    DeformableDepthwiseConv,
    FourierPositionalEncoding,
    LinearAttention,
)
from lsmdepth_ros.networks.litemono import LITE_MONO_VARIANTS, select_dilations

ALL_MODELS = ["lsmdepth", "lsmdepth-official", "lite-mono", "lite-mono-small",
              "lite-mono-tiny", "lite-mono-8m"]
# The reference implementation's counts at 640x192, encoder + 3-scale decoder.
LITE_MONO_PARAMS = {"lite-mono": 3_074_747, "lite-mono-small": 2_476_859,
                    "lite-mono-tiny": 2_147_659, "lite-mono-8m": 8_775_851}


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.manual_seed(0)


def test_registry_lists_every_model_and_default():
    # DNA-Depth and monodepth2 (4 scales) are tested in test_dnadepth.py and
    # test_official_weights.py
    assert set(available_models()) == set(ALL_MODELS) | {"dna-depth-b0", "dna-depth-b1",
                                                         "monodepth2-r18", "monodepth2-r50"}
    assert DEFAULT_MODEL == "lsmdepth"


@pytest.mark.parametrize("name", sorted(LITE_MONO_PARAMS))
def test_lite_mono_parameter_counts_match_reference(name):
    assert count_parameters(build_depth_model(name, height=192, width=640)) == LITE_MONO_PARAMS[name]
    # The 1024x320 dilation table changes the sampling, never the parameters.
    assert count_parameters(build_depth_model(name, height=320, width=1024)) == LITE_MONO_PARAMS[name]


def test_lsmdepth_parameter_budget():
    n = count_parameters(build_depth_model("lsmdepth", height=192, width=640))
    assert n <= 3_100_000, n


def test_lsmdepth_speed_options_change_exactly_the_mlps_and_stride2_convs():
    first = build_depth_model("lsmdepth", mlp_ratios=(6, 6, 6), downsample="3x3")
    fast = build_depth_model("lsmdepth", downsample="2x2")
    assert build_depth_model("lsmdepth").options["downsample"] == "3x3"   # the default
    assert fast.options["mlp_ratios"] == (3, 4, 6) and fast.options["downsample"] == "2x2"
    for stage, (dim, ratio) in enumerate(zip((48, 80, 128), (3, 4, 6))):
        for block in fast.encoder.stages[stage]:
            assert block.pwconv1.out_features == dim * ratio == block.pwconv2.in_features
    # Independent count of the difference: per block, pwconv1 (weight + bias) and pwconv2
    # (weight) shrink by (6 - ratio) * dim hidden units; each stride-2 conv cin -> cout keeps
    # 4 of its 9 taps.
    mlp = sum(4 * (6 - r) * (2 * d * d + d) for d, r in ((48, 3), (80, 4)))
    convs = sum(cin * cout * (9 - 4) for cin, cout in ((48 + 3, 48), (2 * 48 + 3, 80),
                                                       (2 * 80 + 3, 128)))
    assert count_parameters(first) - count_parameters(fast) == mlp + convs
    image = torch.rand(1, 3, 64, 192)
    for model in (first, fast):  # same feature sizes whatever the downsampling
        shapes = [f.shape for f in model.encoder.eval()(image)]
        assert shapes == [(1, 48, 16, 48), (1, 80, 8, 24), (1, 128, 4, 12)]
    with pytest.raises(ValueError, match="mlp_ratios"):
        build_depth_model("lsmdepth", mlp_ratios=(3, 4))
    with pytest.raises(ValueError, match="downsample"):
        build_depth_model("lsmdepth", downsample="4x4")



@pytest.mark.parametrize("downsample", ["3x3", "2x2"])
def test_split_rgb_encoder_computes_the_concatenated_convs(downsample):
    # lsmdepth's split convs and conv pool are the same function as Lite-Mono's concatenation
    # and AvgPool2d(3, 2, 1, count_include_pad) with the same weights (and keys)
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", height=96, width=320, downsample=downsample).eval()
    encoder = model.encoder
    assert encoder.split_rgb
    assert not build_depth_model("lite-mono", height=64, width=192).encoder.split_rgb
    assert not build_depth_model("lsmdepth-official", height=64, width=192).encoder.split_rgb
    x = torch.rand(2, 3, 96, 320)
    with torch.no_grad():
        split = encoder(x)
        encoder.split_rgb = False
        joined = encoder(x)
    for a, b in zip(split, joined):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    odd = torch.rand(1, 3, 37, 51)
    encoder.split_rgb = True
    assert torch.allclose(encoder._pool(odd), F.avg_pool2d(odd, 3, 2, 1), atol=1e-6)
    assert not any("pool_kernel" in k for k in model.state_dict())

@pytest.mark.parametrize("name", ALL_MODELS)
def test_output_shapes_and_range_at_several_sizes(name):
    model = build_depth_model(name, height=64, width=192).eval()
    assert model.name == name and model.num_scales == 3
    assert model.options["height"] == 64 and model.options["width"] == 192
    sizes = [(64, 192), (32, 64)] + ([(96, 320)] if name == DEFAULT_MODEL else [(96, 128)])
    for h, w in sizes:
        x = torch.rand(2, 3, h, w)
        with torch.no_grad():
            out = model(x)
        assert set(out) == {("disp", s) for s in range(3)}
        for s in range(3):
            d = out[("disp", s)]
            assert d.shape == (2, 1, h // 2 ** s, w // 2 ** s)
            assert torch.isfinite(d).all() and d.min() > 0 and d.max() < 1
        # Different images give different disparities (the net is not a constant).
        assert not torch.allclose(out[("disp", 0)][0], out[("disp", 0)][1])


def test_bad_inputs_are_rejected_with_clear_errors():
    model = build_depth_model("lite-mono-tiny", height=64, width=192).eval()
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 64, 200))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        model(torch.rand(1, 1, 64, 192))
    with pytest.raises(ValueError, match="unknown depth model"):
        build_depth_model("monodepth9")
    with pytest.raises(ValueError, match="unknown option"):
        build_depth_model("lsmdepth", deformable=3)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_depth_model("lsmdepth", height=100)
    with pytest.raises(ValueError, match="dilations"):
        build_depth_model("lite-mono", dilations="huge")
    with pytest.raises(ValueError, match="variant"):
        build_depth_model("lsmdepth-official", variant="light-xl")


def test_dilation_rule():
    spec = LITE_MONO_VARIANTS["lite-mono"]
    assert select_dilations(spec, 192, 640)[2][-1] == 6
    assert select_dilations(spec, 96, 320)[2][-1] == 6
    assert select_dilations(spec, 320, 1024)[2][-1] == 10
    assert select_dilations(spec, 384, 1280)[2][-1] == 10
    assert select_dilations(spec, 320, 1024, "640x192")[2][-1] == 6
    assert select_dilations(LITE_MONO_VARIANTS["lite-mono-8m"], 320, 1024)[2][-1] == 6
    # ... and the built convolutions really use it.
    big = build_depth_model("lite-mono", height=320, width=1024)
    assert big.encoder.stages[2][8].ddwconv.conv.dilation == (10, 10)
    assert big.encoder.stages[0][2].ddwconv.conv.dilation == (5, 5)
    small = build_depth_model("lite-mono", height=192, width=640)
    assert small.encoder.stages[2][8].ddwconv.conv.dilation == (6, 6)


@pytest.mark.parametrize("name", ["lsmdepth", "lite-mono"])
def test_eval_is_deterministic_and_training_is_stochastic(name):
    model = build_depth_model(name, height=64, width=192, drop_path_rate=0.5)
    x = torch.rand(2, 3, 64, 192)
    model.eval()
    with torch.no_grad():
        a, b = model(x)[("disp", 0)], model(x)[("disp", 0)]
    assert torch.equal(a, b)
    model.train()
    for m in model.modules():  # keep BN statistics out of the comparison
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    # Layer scale starts at 1e-6, so make the residual branches matter before comparing.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("gamma", "gamma_attn", "gamma_xca")):
                p.fill_(1.0)
        torch.manual_seed(1)
        c = model(x)[("disp", 0)]
        torch.manual_seed(2)
        d = model(x)[("disp", 0)]
    assert not torch.equal(c, d), "stochastic depth should be active in training"


def _params_without_gradient(model, images):
    model.train()
    out = model(images)
    sum(o.mean() for o in out.values()).backward()
    return {n for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)}


def test_gradients_reach_every_lsmdepth_parameter():
    torch.manual_seed(0)
    model = build_depth_model("lsmdepth", height=64, width=192, drop_path_rate=0.0)
    assert _params_without_gradient(model, torch.rand(2, 3, 64, 192)) == set()


def test_lite_mono_only_unused_parameters_are_its_reference_dead_layernorms():
    torch.manual_seed(0)
    model = build_depth_model("lite-mono", height=64, width=192, drop_path_rate=0.0)
    depths = LITE_MONO_VARIANTS["lite-mono"].depths
    # The reference declares a LayerNorm in every dilated-conv block and never applies it.
    expected = {f"encoder.stages.{i}.{j}.norm.{w}" for i, d in enumerate(depths)
                for j in range(d - 1) for w in ("weight", "bias")}
    assert _params_without_gradient(model, torch.rand(2, 3, 64, 192)) == expected


def test_deformable_convolutions_really_run():
    model = build_depth_model("lsmdepth", height=64, width=192).eval()
    deform = [m for m in model.modules() if isinstance(m, DeformableDepthwiseConv)]
    assert len(deform) == model.options["deformable_blocks"] == 2
    block = deform[0]
    x = torch.randn(1, 128, 4, 12)
    with torch.no_grad():
        torch.nn.init.normal_(block.conv.weight)
        # Zero offsets: exactly a dilated depthwise convolution with the same weights.
        d = block.conv.dilation[0]
        plain = F.conv2d(x, block.conv.weight, padding=d, dilation=d, groups=128)
        torch.testing.assert_close(block(x), plain, atol=1e-5, rtol=1e-5)
        # A constant offset of (0, +1) px samples each tap one pixel to the right.
        block.offset.bias.copy_(torch.tensor([0.0, 1.0] * 9))
        padded = F.pad(x, (d - 1, d + 1, d, d))  # zeros outside the image, as deform_conv2d
        shifted = F.conv2d(padded, block.conv.weight, dilation=d, groups=128)
        torch.testing.assert_close(block(x), shifted, atol=1e-5, rtol=1e-5)


def test_linear_attention_matches_explicit_attention_matrix():
    torch.manual_seed(0)
    attn = LinearAttention(16, num_heads=2).eval()
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        got = attn(x)
        q, k, v = attn.qkv(x).reshape(2, 10, 3, 2, 8).permute(2, 0, 3, 1, 4)
        phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
        scores = phi_q @ phi_k.transpose(-2, -1)                    # [B, heads, N, N]
        weights = scores / scores.sum(dim=-1, keepdim=True)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, 16))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_fourier_encoding_matches_reference_cumsum_formula():
    torch.manual_seed(0)
    enc = FourierPositionalEncoding(dim=8)
    h, w, hidden = 3, 5, 32
    # The reference: cumulative sums of a mask, normalised by the last entry, times 2 pi.
    ones = torch.ones(1, h, w)
    y = ones.cumsum(1) / (ones.cumsum(1)[:, -1:, :] + 1e-6) * 2 * math.pi
    x = ones.cumsum(2) / (ones.cumsum(2)[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(hidden) // 2) / hidden)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    pos = torch.cat((py, px), dim=3).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(enc(h, w), enc.token_projection(pos), atol=1e-5, rtol=1e-5)


def test_pose_net_shapes_scaling_and_gradients():
    torch.manual_seed(0)
    pose = build_pose_model()
    frames = torch.rand(2, 6, 64, 192)
    axisangle, translation = pose(frames)
    assert axisangle.shape == translation.shape == (2, 1, 3)
    # monodepth2 scales the raw head output by 0.01.
    with torch.no_grad():
        raw = pose.decoder(pose.encoder((frames - 0.45) / 0.225)).mean(dim=(2, 3))
    torch.testing.assert_close(torch.cat([axisangle, translation], -1).view(2, 6), 0.01 * raw)
    T = transformation_from_parameters(axisangle, translation)
    R = T[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)
    (axisangle.sum() + translation.sum()).backward()
    missing = [n for n, p in pose.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    with pytest.raises(ValueError, match="stacked"):
        pose(torch.rand(1, 3, 64, 192))
