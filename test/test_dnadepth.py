"""DNA-Depth (dna-depth-b0/b1): the reference's parameter counts, shapes, the neighbour
aggregation wiring against an explicit re-statement of the reference graph, the blocks' maths,
gradients, checkpoints, the estimator and ONNX parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsmdepth_ros.checkpoints import load_checkpoint, save_checkpoint
from lsmdepth_ros.networks import available_models, build_depth_model, count_parameters
from lsmdepth_ros.networks.dnadepth import (
    ConvChannelAttention,
    SeparableConv,
    upsample_nearest,
)

# The reference's counts (boyagesmile/DNA-Depth, encoder + decoder), 4.15 M / 6.66 M in its table
REFERENCE_PARAMS = {"dna-depth-b0": 4_149_952, "dna-depth-b1": 6_655_588}
H, W = 64, 192


@pytest.fixture(scope="module")
def b0():
    """An untrained b0 whose output visibly depends on the input. With the reference's PyTorch
    default initialisation every aggregation node shrinks the input-dependent part of its
    features ~30x, so the raw untrained disparity is constant to ~1e-7; widen the decoder's
    convolutions and calibrate the encoder's batch-norm statistics so the comparisons below
    (ONNX, estimator) compare real images, not a constant."""
    torch.manual_seed(0)
    model = build_depth_model("dna-depth-b0", height=H, width=W)
    with torch.no_grad():
        for p in model.decoder.parameters():
            if p.ndim == 4:
                p.mul_(1.8)
        norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None           # cumulative average over the calibration batch
        model.train()(torch.rand(8, 3, H, W))
        for m in norms:
            m.momentum = 0.01
    return model.eval()


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_registered_with_reference_parameter_counts(name):
    assert name in available_models()
    model = build_depth_model(name, height=192, width=640)
    assert count_parameters(model) == REFERENCE_PARAMS[name]
    assert count_parameters(model.decoder) == 554_564     # same decoder for both encoders
    assert model.num_scales == 4 and model.name == name
    assert model.options == {"height": 192, "width": 640, "drop_path_rate": 0.2,
                             "decoder_dropout": 0.5}
    with pytest.raises(ValueError, match="unknown option"):
        build_depth_model(name, dilations="640x192")


def test_encoder_levels_and_output_shapes(b0):
    x = torch.rand(2, 3, H, W)
    with torch.no_grad():
        feats = b0.encoder(x)
        assert [f.shape[1] for f in feats] == [16, 24, 40, 112, 320]
        assert [f.shape[-2:] for f in feats] == [(H >> s, W >> s) for s in range(1, 6)]
        for h, w in ((H, W), (96, 320)):
            out = b0(torch.rand(2, 3, h, w))
            assert set(out) == {("disp", s) for s in range(4)}
            for s in range(4):
                d = out[("disp", s)]
                assert d.shape == (2, 1, h >> s, w >> s)
                assert torch.isfinite(d).all() and d.min() > 0 and d.max() < 1
            assert not torch.allclose(out[("disp", 0)][0], out[("disp", 0)][1])


def _reference_graph(dec, feats):
    """The reference EfficientDecoder.forward, node by node (fpn{level}_{round})."""
    l1, l2, l3, l4, l5 = (conv(f) for conv, f in zip(dec.reduce, feats))
    fpn = {(lvl, r): dec.rounds[r][lvl - 1] for r in range(4) for lvl in range(1, 5 - r)}
    x4 = fpn[4, 0](l5, l4, l3)
    x3 = fpn[3, 0](l4, l3, l2)
    x2 = fpn[2, 0](l3, l2, l1)
    x1 = fpn[1, 0](l2, l1)
    l3 = fpn[3, 1](x4, x3, x2)
    l2 = fpn[2, 1](x3, x2, x1)
    l1 = fpn[1, 1](x2, x1)
    x2 = fpn[2, 2](l3, l2, l1)
    x1 = fpn[1, 2](l2, l1)
    x1 = fpn[1, 3](x2, x1)
    x0 = dec.full_res(upsample_nearest(x1))
    return {("disp", s): torch.sigmoid(dec.heads[s](dec.attention[s](f)))
            for s, f in enumerate((x0, x1, x2, l3))}


def test_decoder_wiring_equals_the_reference_graph(b0):
    with torch.no_grad():
        feats = b0.encoder(torch.rand(1, 3, H, W))
        got, expected = b0.decoder(feats), _reference_graph(b0.decoder, feats)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert [len(r) for r in b0.decoder.rounds] == [4, 3, 2, 1]
    assert all((node.from_finer is None) == (j == 0)
               for r in b0.decoder.rounds for j, node in enumerate(r))


def test_separable_conv_uses_tf_same_padding():
    torch.manual_seed(1)
    x = torch.rand(1, 4, 8, 10)
    for stride, pad in ((1, (1, 1, 1, 1)), (2, (0, 1, 0, 1))):
        conv = SeparableConv(4, 6, stride=stride)
        y = F.conv2d(F.pad(x, pad), conv.depthwise.weight, stride=stride, groups=4)
        y = F.conv2d(y, conv.pointwise.weight, conv.pointwise.bias)
        torch.testing.assert_close(conv(x), y)
        assert conv(x).shape[-2:] == (8 // stride, 10 // stride)


def test_channel_attention_is_a_squeeze_excitation_gate():
    torch.manual_seed(2)
    att = ConvChannelAttention(32)
    x = torch.rand(2, 32, 5, 7)
    w1 = att.fc[0].weight[:, :, 0, 0]      # [2, 32]
    w2 = att.fc[2].weight[:, :, 0, 0]      # [32, 2]
    gate = torch.sigmoid(torch.relu(x.mean((2, 3)) @ w1.T) @ w2.T)
    torch.testing.assert_close(att(x), x * gate[:, :, None, None])
    assert sum(p.numel() for p in att.parameters()) == 2 * 32 * 2


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(3)
    model = build_depth_model("dna-depth-b0", height=H, width=W).train()
    out = model(torch.rand(2, 3, H, W))
    sum(v.mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]


def test_checkpoint_estimator_and_onnx_parity(b0, tmp_path):
    from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions
    from lsmdepth_ros.onnx.export import export_onnx

    path = save_checkpoint(tmp_path / "dna.pt", b0, min_depth=0.1, max_depth=80.0)
    loaded, info = load_checkpoint(path)
    assert info.name == "dna-depth-b0" and info.options["height"] == H
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x)[("disp", 0)], b0(x)[("disp", 0)])

    est = DepthEstimator(EstimatorOptions(model_path=str(path), num_threads=1))
    assert est.network_size == (W, H) and est.model_name == "dna-depth-b0"
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    with torch.no_grad():
        disp = b0(torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None])
    expected = 1 / (1 / 80.0 + (1 / 0.1 - 1 / 80.0) * disp[("disp", 0)][0, 0].double().numpy())
    np.testing.assert_allclose(est.estimate(img), expected, rtol=1e-5)

    onnx_path = tmp_path / "dna.onnx"
    diff = export_onnx(b0, onnx_path, min_depth=0.1, max_depth=80.0)
    assert diff < 1e-4
    ort_est = DepthEstimator(EstimatorOptions(model_path=str(onnx_path), num_threads=1))
    np.testing.assert_allclose(ort_est.estimate(img), est.estimate(img), rtol=1e-4)
