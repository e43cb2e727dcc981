"""``lsmdepth-official``: the published LSMDepth code (CdpLab/LSMDepth) as its trainer runs it,
state-dict compatible, so the authors' ``encoder.pth`` / ``depth.pth`` load strictly and give
their disparities.

Encoder (``networks/depth_encoder.py``): the Lite-Mono skeleton (``litemono.HybridEncoder``:
stem, RGB pyramid, three stages, dilation tables) with

* local blocks as Lite-Mono's: dilated depthwise conv, BatchNorm ``bn1``, inverted-bottleneck
  MLP, layer scale; the LayerNorm ``norm`` the file declares is never applied (kept for the keys);
* the global block that closes each stage (the file's first class named ``Light``):
  ``blocks.LGFI(published_lsmdepth=True)``: strip pooling (row and column means added to the
  input, 1x1 conv), the Fourier positional encoding with a learned scale/offset in stage 0,
  LayerNorm + cross-covariance attention *without* temperature or softmax (the file's own
  ``LinearAttention``), LayerNorm + MLP with layer scale, a squeeze-excitation gate
  (``se``: pool, 1x1 conv to max(dim // 16, 4), GELU, 1x1 conv, sigmoid), residual to the input.

As published the file cannot build its encoder: the block class and the encoder class are both
named ``Light``, so the second definition shadows the first and the encoder's ``Light(dim=...)``
calls construct the encoder again (endless recursion). Reproduced here is what runs once the two
names stop clashing: the first ``Light`` is the block, the second the encoder. The file only defines ``--model light``
(48/80/128 channels, 4/4/10 blocks); ``light-s`` / ``light-t`` / ``light-m``, which its
options list and a comment promise, are built here with the matching Lite-Mono widths and depths
(no published weights exist for them).

The deformable branch (``DeformableDilatedConv``) is not reproduced: its offset conv has
``groups=dim`` with ``2*k*k = 18`` output channels, which PyTorch refuses to build for 48, 80 or
128 channels, and the encoder never passes ``use_deformable`` to its blocks, so no published
weights contain it. Our own ``lsmdepth`` model has a working deformable block (``blocks``).

Decoder (``networks/depth_decoder.py``), module for module:

* every encoder level gets channel+spatial attention and a 1x1 conv (+ReLU) to half width;
* each up-step is conv3x3 + InstanceNorm + ReLU, bilinear x2 upsample, concat, ConvBlock +
  channel attention;
* each disparity head is conv3x3(->64) + ReLU + conv3x3(->1), bilinear x2, sigmoid; scales
  0, 1, 2 (the trainer's ``--scales``).

The reference computes the deepest level's skip branch and never uses it; its weights are kept
(so checkpoints load) but it is not computed here, which leaves the outputs unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from .blocks import (
    LGFI,
    ChannelAttention,
    Conv3x3,
    ConvBlock,
    dual_attention,
    upsample2x,
)
from .decoder import decoder_keys, init_decoder_weights
from .litemono import HybridEncoder, lite_mono_spec

OFFICIAL_VARIANTS = {
    "light": "lite-mono", "light-s": "lite-mono-small",
    "light-t": "lite-mono-tiny", "light-m": "lite-mono-8m",
}


def official_encoder(variant: str = "light", height: int = 192, width: int = 640,
                     drop_path_rate: float = 0.2, dilations: str = "auto") -> HybridEncoder:
    if variant not in OFFICIAL_VARIANTS:
        raise ValueError(f"unknown LSMDepth variant {variant!r}; expected one of "
                         f"{sorted(OFFICIAL_VARIANTS)}")
    return HybridEncoder(lite_mono_spec(OFFICIAL_VARIANTS[variant]), height, width,
                         partial(LGFI, published_lsmdepth=True), drop_path_rate=drop_path_rate,
                         dilations=dilations, legacy_unused_norm=True)


class _ConvReLU1x1(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))


class _ConvInstanceNormReLU(nn.Module):
    """The reference's ``DeformConvBlock`` (despite the name, a regular conv3x3 block)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Sequential(Conv3x3(in_ch, out_ch), nn.InstanceNorm2d(out_ch),
                                  nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class OfficialLSMDepthDecoder(nn.Module):
    def __init__(self, num_ch_enc: Sequence[int], num_scales: int = 3):
        super().__init__()
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        self.num_ch_dec = [c // 2 for c in self.num_ch_enc]
        self.num_scales = num_scales
        levels = len(self.num_ch_enc)
        self.skip_att = nn.ModuleDict({str(i): dual_attention(c) for i, c in enumerate(self.num_ch_enc)})
        self.skip_conv = nn.ModuleDict({str(i): _ConvReLU1x1(c, self.num_ch_dec[i])
                                        for i, c in enumerate(self.num_ch_enc)})
        convs: dict[tuple, nn.Module] = {}
        for i in range(levels - 1, -1, -1):
            ch_in = self.num_ch_enc[-1] if i == levels - 1 else self.num_ch_dec[i + 1]
            convs[("upconv", i, 0)] = _ConvInstanceNormReLU(ch_in, self.num_ch_dec[i])
            ch_in = self.num_ch_dec[i] + (self.num_ch_dec[i - 1] if i > 0 else 0)
            convs[("upconv", i, 1)] = nn.Sequential(ConvBlock(ch_in, self.num_ch_dec[i]),
                                                    ChannelAttention(self.num_ch_dec[i]))
        for s in range(num_scales):
            convs[("dispconv", s)] = nn.Sequential(Conv3x3(self.num_ch_dec[s], 64),
                                                   nn.ReLU(inplace=True), Conv3x3(64, 1))
        keys = decoder_keys(levels, num_scales)
        self._index = {k: n for n, k in enumerate(keys)}
        self.decoder = nn.ModuleList(convs[k] for k in keys)
        self.apply(init_decoder_weights)

    def _conv(self, *key) -> nn.Module:
        return self.decoder[self._index[key]]

    def forward(self, features: Sequence[torch.Tensor]) -> dict[tuple, torch.Tensor]:
        levels = len(self.num_ch_enc)
        # Only levels 0..levels-2 are used as skips (see module docstring).
        skips = [self.skip_conv[str(i)](self.skip_att[str(i)](features[i])) for i in range(levels - 1)]
        outputs: dict[tuple, torch.Tensor] = {}
        x = features[-1]
        for i in range(levels - 1, -1, -1):
            x = upsample2x(self._conv("upconv", i, 0)(x))
            if i > 0:
                x = torch.cat((x, skips[i - 1]), dim=1)
            x = self._conv("upconv", i, 1)(x)
            if i < self.num_scales:
                outputs[("disp", i)] = torch.sigmoid(upsample2x(self._conv("dispconv", i)(x)))
        return outputs
