"""Multi-scale depth decoder: sigmoid disparity at full, 1/2 and 1/4 (, 1/8) resolution.

The layout is monodepth2's, which Lite-Mono keeps: one upsampling step per encoder level, ELU
conv blocks, reflection padding, stored in the same ``decoder.<n>`` ModuleList order so official
``depth.pth`` files load strictly. The two differ only in three settings:

=============== ======================= ==========================================
setting         Lite-Mono (default)     monodepth2
=============== ======================= ==========================================
``num_ch_dec``  half the encoder widths  16, 32, 64, 128, 256
``upsample``    bilinear                 nearest
disparity head  conv, bilinear x2        conv at the level's resolution
=============== ======================= ==========================================

With ``skip_attention=True`` (LSMDepth) every skip connection that the decoder uses first passes
a dual-channel (channel + spatial) attention gate.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import Conv3x3, ConvBlock, dual_attention, upsample2x


def decoder_keys(num_levels: int, num_scales: int) -> list[tuple]:
    """Module order of the reference decoder's ModuleList: upconvs from deep to shallow, then
    one disparity head per scale."""
    keys: list[tuple] = []
    for i in range(num_levels - 1, -1, -1):
        keys += [("upconv", i, 0), ("upconv", i, 1)]
    return keys + [("dispconv", s) for s in range(num_scales)]


def init_decoder_weights(m: nn.Module) -> None:
    """Lite-Mono decoder initialisation: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class DepthDecoder(nn.Module):
    def __init__(self, num_ch_enc: Sequence[int], num_scales: int = 3,
                 skip_attention: bool = False, attention_reduction: int = 8, *,
                 num_ch_dec: Sequence[int] | None = None, upsample_mode: str = "bilinear",
                 upsample_disp: bool = True):
        super().__init__()
        if not 1 <= num_scales <= len(num_ch_enc):
            raise ValueError(f"num_scales must be in 1..{len(num_ch_enc)}, got {num_scales}")
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        self.num_ch_dec = ([c // 2 for c in self.num_ch_enc] if num_ch_dec is None
                           else [int(c) for c in num_ch_dec])
        self.num_scales = num_scales
        self.upsample_mode = upsample_mode
        self.upsample_disp = upsample_disp
        levels = len(self.num_ch_enc)

        convs: dict[tuple, nn.Module] = {}
        for i in range(levels - 1, -1, -1):
            ch_in = self.num_ch_enc[-1] if i == levels - 1 else self.num_ch_dec[i + 1]
            convs[("upconv", i, 0)] = ConvBlock(ch_in, self.num_ch_dec[i])
            ch_in = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if i > 0 else 0)
            convs[("upconv", i, 1)] = ConvBlock(ch_in, self.num_ch_dec[i])
        for s in range(num_scales):
            convs[("dispconv", s)] = Conv3x3(self.num_ch_dec[s], 1)
        self._index = {k: n for n, k in enumerate(decoder_keys(levels, num_scales))}
        self.decoder = nn.ModuleList(convs[k] for k in decoder_keys(levels, num_scales))

        # Skips are encoder levels 0..levels-2; the deepest level is the decoder's input.
        self.skip_att = nn.ModuleDict({
            str(i): dual_attention(self.num_ch_enc[i], attention_reduction)
            for i in range(levels - 1)} if skip_attention else {})
        self.apply(init_decoder_weights)

    def _conv(self, *key) -> nn.Module:
        return self.decoder[self._index[key]]

    def forward(self, features: Sequence[torch.Tensor]) -> dict[tuple, torch.Tensor]:
        outputs: dict[tuple, torch.Tensor] = {}
        x = features[-1]
        for i in range(len(self.num_ch_enc) - 1, -1, -1):
            x = upsample2x(self._conv("upconv", i, 0)(x), self.upsample_mode)
            if i > 0:
                skip = features[i - 1]
                if str(i - 1) in self.skip_att:
                    skip = self.skip_att[str(i - 1)](skip)
                x = torch.cat((x, skip), dim=1)
            x = self._conv("upconv", i, 1)(x)
            if i < self.num_scales:
                disp = self._conv("dispconv", i)(x)
                outputs[("disp", i)] = torch.sigmoid(upsample2x(disp) if self.upsample_disp
                                                     else disp)
        return outputs
