"""DNA-Depth (Wang et al., ICASSP 2024, "Deep Neighbor Layer Aggregation for Lightweight
Self-Supervised Monocular Depth Estimation"): an EfficientNet encoder and a decoder that
repeatedly fuses every feature level with its two neighbours, then gates each disparity head
with a channel attention.

Encoder: torchvision ``efficientnet_b0`` / ``efficientnet_b1`` (``weights=None``, nothing is
downloaded), its ``features`` up to the last MBConv stage; the 1x1 "head" convolution to 1280
channels and the classifier are dropped (the reference never uses them). Five feature levels:
16, 24, 40, 112, 320 channels at 1/2, 1/4, 1/8, 1/16, 1/32. Batch-norm momentum 0.01 and eps
1e-3, as the reference's TF-ported EfficientNet. Images go in as RGB in [0, 1] without
mean/std normalisation, as the reference trainer feeds them.

Decoder (the reference's ``EfficientDecoder``), width 64 everywhere:

* each level is reduced to 64 channels by a separable convolution (3x3 depthwise, 1x1
  pointwise with bias, no normalisation); dropout 0.5 on the two deepest levels in training;
* a *neighbour aggregation* node at level i concatenates the upsampled level i+1 (32 ch), level
  i (32 ch) and the downsampled level i-1 (32 ch, stride-2 separable conv with TF "same"
  padding), fuses them (separable conv, reflection-padded 3x3 conv, swish); the level-1/2 node
  has no finer neighbour;
* four rounds of such nodes, each round dropping the deepest level (4 + 3 + 2 + 1 nodes);
* a full-resolution stage: upsample, separable conv to 32 ch, 3x3 conv, swish, separable conv;
* disparity s (s = 0..3, at 1/2^s) = sigmoid(separable conv(channel attention(features))),
  the channel attention a squeeze-excitation gate written with bias-free 1x1 convolutions
  (reduction 16), the reference's bias-free linear layers in convolution form.

Parameter counts at any input size (encoder + decoder): ``dna-depth-b0`` 4,149,952 and
``dna-depth-b1`` 6,655,588, equal to the reference's (4.15 M / 6.66 M in its model table).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import efficientnet_b0, efficientnet_b1

from .blocks import Conv3x3

DNA_VARIANTS = {"dna-depth-b0": efficientnet_b0, "dna-depth-b1": efficientnet_b1}
# torchvision `features` indices whose outputs are the reference's reduction_1..5 endpoints
FEATURE_STAGES = (1, 2, 3, 5, 7)
DECODER_WIDTH = 64
ATTENTION_REDUCTION = 16


class EfficientNetEncoder(nn.Module):
    """torchvision EfficientNet features -> five levels at 1/2 .. 1/32."""

    def __init__(self, variant: str = "dna-depth-b0", drop_path_rate: float = 0.2):
        super().__init__()
        if variant not in DNA_VARIANTS:
            raise ValueError(f"unknown DNA-Depth variant {variant!r}; expected one of "
                             f"{sorted(DNA_VARIANTS)}")
        norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
        net = DNA_VARIANTS[variant](weights=None, stochastic_depth_prob=drop_path_rate,
                                    norm_layer=norm)
        self.features = net.features[:FEATURE_STAGES[-1] + 1]
        self.num_ch_enc = [int(self.features[i][-1].out_channels) for i in FEATURE_STAGES]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, stage in enumerate(self.features):
            x = stage(x)
            if i in FEATURE_STAGES:
                out.append(x)
        return out


class SeparableConv(nn.Module):
    """3x3 depthwise (no bias) + 1x1 pointwise (bias) convolution, TF "same" zero padding."""

    def __init__(self, in_ch: int, out_ch: int | None = None, stride: int = 1):
        super().__init__()
        out_ch = in_ch if out_ch is None else out_ch
        self.stride = stride
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride=stride, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # TF "same": total padding so that out = ceil(in / stride), the extra pixel on the end
        pad_h = max((math.ceil(h / self.stride) - 1) * self.stride + 3 - h, 0)
        pad_w = max((math.ceil(w / self.stride) - 1) * self.stride + 3 - w, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return self.pointwise(self.depthwise(x))


class ConvChannelAttention(nn.Module):
    """Squeeze-excitation gate with bias-free 1x1 convolutions: x * sigmoid(W2 relu(W1 avg(x)))."""

    def __init__(self, channels: int, reduction: int = ATTENTION_REDUCTION):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1, bias=False),
                                nn.ReLU(inplace=True),
                                nn.Conv2d(channels // reduction, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


def upsample_nearest(x: torch.Tensor) -> torch.Tensor:
    """x2 nearest-neighbour upsampling (monodepth2's ``upsample``, used by the reference)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class NeighbourAggregation(nn.Module):
    """Fuse a level with its coarser (upsampled) and finer (downsampled) neighbours."""

    def __init__(self, width: int = DECODER_WIDTH, has_finer: bool = True):
        super().__init__()
        half = width // 2
        self.from_coarser = SeparableConv(width, half)
        self.from_same = SeparableConv(width, half)
        self.from_finer = SeparableConv(width, half, stride=2) if has_finer else None
        self.mix = SeparableConv(width + half if has_finer else width, width)
        self.fuse = Conv3x3(width, width)

    def forward(self, coarser: torch.Tensor, same: torch.Tensor,
                finer: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.from_coarser(upsample_nearest(coarser)), self.from_same(same)]
        if self.from_finer is not None:
            if finer is None:
                raise ValueError("this aggregation node needs the finer neighbour level")
            parts.append(self.from_finer(finer))
        return F.silu(self.fuse(self.mix(torch.cat(parts, 1))))


class DNADecoder(nn.Module):
    """Neighbour-layer aggregation decoder; {("disp", s)} for s in 0..3 at 1/2^s."""

    num_scales = 4

    def __init__(self, num_ch_enc: Sequence[int], width: int = DECODER_WIDTH,
                 dropout: float = 0.5):
        super().__init__()
        if len(num_ch_enc) != 5:
            raise ValueError(f"the DNA decoder needs 5 encoder levels, got {len(num_ch_enc)}")
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        half = width // 2
        self.dropout = nn.Dropout(dropout)
        self.reduce = nn.ModuleList(SeparableConv(c, width) for c in self.num_ch_enc)
        # rounds[r][j] fuses level j+1 (1-based: 1 = 1/2) in round r; level 1 has no finer one
        self.rounds = nn.ModuleList(
            nn.ModuleList(NeighbourAggregation(width, has_finer=j > 0) for j in range(n))
            for n in (4, 3, 2, 1))
        self.full_res = nn.Sequential(SeparableConv(width, half), Conv3x3(half, half), nn.SiLU(),
                                      SeparableConv(half))
        self.attention = nn.ModuleList([ConvChannelAttention(half)] +
                                       [ConvChannelAttention(width) for _ in range(3)])
        self.heads = nn.ModuleList([SeparableConv(half, 1)] +
                                   [SeparableConv(width, 1) for _ in range(3)])

    def forward(self, features: Sequence[torch.Tensor]) -> dict[tuple, torch.Tensor]:
        levels = list(features)
        levels[3], levels[4] = self.dropout(levels[3]), self.dropout(levels[4])
        levels = [conv(f) for conv, f in zip(self.reduce, levels)]   # 1/2 .. 1/32
        at_scale: dict[int, torch.Tensor] = {}
        for nodes in self.rounds:
            # each round refines levels 1/2 .. 1/2^n from the previous round's n+1 levels
            new = [node(levels[j + 1], levels[j], levels[j - 1] if j > 0 else None)
                   for j, node in enumerate(nodes)]
            levels = new
            # disparity s (1/2^s) reads the last round that produced level s
            at_scale[len(new)] = new[-1]
        at_scale[0] = self.full_res(upsample_nearest(levels[0]))
        return {("disp", s): torch.sigmoid(self.heads[s](self.attention[s](at_scale[s])))
                for s in range(self.num_scales)}


def build_dna_depth(variant: str, drop_path_rate: float = 0.2, decoder_dropout: float = 0.5
                    ) -> tuple[EfficientNetEncoder, DNADecoder]:
    encoder = EfficientNetEncoder(variant, drop_path_rate)
    return encoder, DNADecoder(encoder.num_ch_enc, dropout=decoder_dropout)
