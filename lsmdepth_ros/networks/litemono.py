"""Lite-Mono encoder (Zhang et al., CVPR 2023), state-dict compatible with the official code.

Variants: ``lite-mono`` (dims 48/80/128, depths 4/4/10), ``lite-mono-small`` (48/80/128,
4/4/7), ``lite-mono-tiny`` (32/64/128, 4/4/7), ``lite-mono-8m`` (64/128/224, 4/4/10). With the
3-scale decoder they have exactly 3,074,747 / 2,476,859 / 2,147,659 / 8,775,851 parameters.

Dilation rule for any input size (a multiple of 32). The reference only defines dilation rates
for 640x192 ([1, 2, 3] per CDC group) and 1024x320 ([1, 2, 5], larger receptive field). We use
the table of the official resolution *nearest in log pixel count*: inputs with H*W below
sqrt(640*192 * 1024*320) ~= 200,659 px (e.g. 640x192, 320x96, 832x256) use the 640x192 table,
larger ones (1024x320, 1280x384) the 1024x320 table. ``lite-mono-8m`` uses the 640x192 table at
both sizes, as the reference does. Pass ``dilations="640x192"`` or ``"1024x320"`` to pin a table
(e.g. to run weights trained at one size at another). The dilations change only the sampling
pattern, never the parameters, so any table loads any checkpoint of the same variant.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import LGFI, DeformableDepthwiseConv, DilatedConvBlock, StemConv

SMALL_SIZE = (192, 640)
LARGE_SIZE = (320, 1024)
_PIXEL_THRESHOLD = math.sqrt(SMALL_SIZE[0] * SMALL_SIZE[1] * LARGE_SIZE[0] * LARGE_SIZE[1])
DILATION_TABLES = ("auto", "640x192", "1024x320")


@dataclass(frozen=True)
class Variant:
    dims: tuple[int, int, int]
    depths: tuple[int, int, int]
    small_dilations: tuple[tuple[int, ...], ...]
    large_dilations: tuple[tuple[int, ...], ...]


_D10_SMALL = ((1, 2, 3), (1, 2, 3), (1, 2, 3, 1, 2, 3, 2, 4, 6))
_D10_LARGE = ((1, 2, 5), (1, 2, 5), (1, 2, 5, 1, 2, 5, 2, 4, 10))
_D7_SMALL = ((1, 2, 3), (1, 2, 3), (1, 2, 3, 2, 4, 6))
_D7_LARGE = ((1, 2, 5), (1, 2, 5), (1, 2, 5, 2, 4, 10))

LITE_MONO_VARIANTS: dict[str, Variant] = {
    "lite-mono": Variant((48, 80, 128), (4, 4, 10), _D10_SMALL, _D10_LARGE),
    "lite-mono-small": Variant((48, 80, 128), (4, 4, 7), _D7_SMALL, _D7_LARGE),
    "lite-mono-tiny": Variant((32, 64, 128), (4, 4, 7), _D7_SMALL, _D7_LARGE),
    "lite-mono-8m": Variant((64, 128, 224), (4, 4, 10), _D10_SMALL, _D10_SMALL),
}


def select_dilations(variant: Variant, height: int, width: int, table: str = "auto"):
    """The dilation table for an input size; see the module docstring for the rule."""
    if table not in DILATION_TABLES:
        raise ValueError(f"dilations={table!r} is not one of {DILATION_TABLES}")
    if table == "auto":
        table = "1024x320" if height * width >= _PIXEL_THRESHOLD else "640x192"
    return variant.large_dilations if table == "1024x320" else variant.small_dilations


# The block that closes a stage: (dim, num_heads, *, use_pos_emb, drop_path, layer_scale_init,
# expan_ratio) -> module
GlobalBlock = Callable[..., nn.Module]


class HybridEncoder(nn.Module):
    """The Lite-Mono encoder skeleton: a 3-conv stem at 1/2, then three stages at 1/4, 1/8, 1/16.

    Each stage's input is the previous stage's input and output plus the average-pooled RGB
    image, concatenated and downsampled by a stride-2 conv. Every stage is ``depths[i] - 1``
    local blocks (dilated depthwise convs, the per-stage dilation table) closed by one
    ``global_block``; Lite-Mono, LSMDepth and the published LSMDepth code differ only in the
    global block, the stem and the local-block options below, so they share this one factory
    (and its state-dict key names).

    ``deformable_blocks``: the last that many local blocks of the 1/16 stage are deformable.
    ``expan_ratio``: the blocks' MLP expansion, one for all stages or one per stage.
    ``legacy_unused_norm``: keep the reference's declared-but-unused LayerNorm in local blocks
    (only so official checkpoints load strictly).
    ``split_rgb``: compute the same function in a graph ONNX Runtime runs faster (same weights
    and keys, equal up to float rounding): each stride-2 conv over "features + RGB pyramid" as
    one conv over the features plus one over the 3 RGB channels (51 / 99 / 163 input channels
    are no multiple of 8, so ONNX Runtime's blocked NCHWc convs skip them and a slow generic
    conv ran them: 4.2 of 41 ms at 640x192 on 2 threads), and the pyramid's 3x3 average pools
    as fixed depthwise convs (the AveragePool kernel did not use a second thread).
    """

    def __init__(self, spec: Variant, height: int, width: int, global_block: GlobalBlock, *,
                 drop_path_rate: float = 0.2, dilations: str = "auto",
                 deformable_blocks: int = 0, legacy_unused_norm: bool = False,
                 stem: nn.Module | None = None, heads: int = 8,
                 layer_scale_init: float = 1e-6, expan_ratio: int | Sequence[int] = 6,
                 in_chans: int = 3, split_rgb: bool = False):
        super().__init__()
        self.split_rgb = split_rgb
        dims, depths = spec.dims, spec.depths
        ratios = ((expan_ratio,) * len(dims) if isinstance(expan_ratio, int)
                  else tuple(int(r) for r in expan_ratio))
        if len(ratios) != len(dims) or min(ratios) < 1:
            raise ValueError(f"expan_ratio must be an integer >= 1 or one per stage "
                             f"({len(dims)}), got {expan_ratio}")
        local_last_stage = depths[-1] - 1
        if not 0 <= deformable_blocks <= local_last_stage:
            raise ValueError(f"deformable_blocks must be in 0..{local_last_stage}, "
                             f"got {deformable_blocks}")
        self.dims = list(dims)
        self.num_ch_enc = list(dims)
        self.downsample_layers = nn.ModuleList([stem or nn.Sequential(
            StemConv(in_chans, dims[0], 3, stride=2, padding=1, bn_act=True),
            StemConv(dims[0], dims[0], 3, stride=1, padding=1, bn_act=True),
            StemConv(dims[0], dims[0], 3, stride=1, padding=1, bn_act=True),
        )])
        self.stem2 = nn.Sequential(StemConv(dims[0] + in_chans, dims[0], 3, stride=2, padding=1))
        for i in range(2):
            self.downsample_layers.append(nn.Sequential(
                StemConv(dims[i] * 2 + in_chans, dims[i + 1], 3, stride=2, padding=1)))
        self.input_pool = nn.AvgPool2d(3, stride=2, padding=1)
        # the same pool as a depthwise conv (zero padding counted, as count_include_pad does)
        k = self.input_pool.kernel_size
        self.register_buffer("pool_kernel", torch.full((in_chans, 1, k, k), 1.0 / (k * k)),
                             persistent=False)

        table = select_dilations(spec, height, width, dilations)
        rates = iter(drop_path_rates(depths, drop_path_rate))  # one rate per block, in order

        def make_block(stage: int, j: int) -> nn.Module:
            dim, rate = dims[stage], next(rates)
            if j == depths[stage] - 1:  # one global block closes every stage
                return global_block(dim, heads, use_pos_emb=stage == 0, drop_path=rate,
                                    layer_scale_init=layer_scale_init,
                                    expan_ratio=ratios[stage])
            deformable = stage == len(depths) - 1 and j >= local_last_stage - deformable_blocks
            return DilatedConvBlock(dim, table[stage][j], drop_path=rate,
                                    layer_scale_init=layer_scale_init,
                                    expan_ratio=ratios[stage], deformable=deformable,
                                    legacy_unused_norm=legacy_unused_norm)

        self.stages = nn.ModuleList(
            nn.Sequential(*[make_block(i, j) for j in range(depth)]) for i, depth in enumerate(depths))
        self.apply(init_encoder_weights)
        for m in self.modules():  # deformable offsets start at zero (a plain dilated conv)
            if isinstance(m, DeformableDepthwiseConv):
                nn.init.zeros_(m.offset.weight)
                nn.init.zeros_(m.offset.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - 0.45) / 0.225
        # RGB pyramid at 1/2, 1/4, 1/8 (count_include_pad average pooling, as the reference).
        pyramid = [self._pool(x)]
        for _ in range(2):
            pyramid.append(self._pool(pyramid[-1]))

        x = self.downsample_layers[0](x)
        stage_in = self._merge(self.stem2, (x, pyramid[0]))
        features = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                stage_in = self._merge(self.downsample_layers[i], (stage_in, x, pyramid[i]))
            x = stage(stage_in)
            features.append(x)
        return features

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if not self.split_rgb:
            return self.input_pool(x)
        pool = self.input_pool
        return F.conv2d(x, self.pool_kernel.to(x.dtype), stride=pool.stride,
                        padding=pool.padding, groups=x.shape[1])

    def _merge(self, layer: nn.Sequential, parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """`layer` (one bias-free StemConv) over the concatenation of `parts`, RGB last."""
        if not self.split_rgb or len(layer) != 1 or layer[0].bn_gelu is not None:
            return layer(torch.cat(parts, dim=1))
        conv = layer[0].conv
        features = parts[0] if len(parts) == 2 else torch.cat(parts[:-1], dim=1)
        c = features.shape[1]
        out = F.conv2d(features, conv.weight[:, :c], None, conv.stride, conv.padding)
        return out + F.conv2d(parts[-1], conv.weight[:, c:], None, conv.stride, conv.padding)


def drop_path_rates(depths: Sequence[int], max_rate: float) -> list[float]:
    """Linearly increasing stochastic-depth rates over all blocks (timm/Lite-Mono schedule)."""
    return [x.item() for x in torch.linspace(0, max_rate, sum(depths))]


def lite_mono_spec(variant: str) -> Variant:
    if variant not in LITE_MONO_VARIANTS:
        raise ValueError(f"unknown Lite-Mono variant {variant!r}; "
                         f"expected one of {sorted(LITE_MONO_VARIANTS)}")
    return LITE_MONO_VARIANTS[variant]


class LiteMonoEncoder(HybridEncoder):
    def __init__(self, variant: str = "lite-mono", height: int = 192, width: int = 640,
                 drop_path_rate: float = 0.2, dilations: str = "auto",
                 layer_scale_init: float = 1e-6, expan_ratio: int = 6):
        super().__init__(lite_mono_spec(variant), height, width, LGFI,
                         drop_path_rate=drop_path_rate, dilations=dilations,
                         legacy_unused_norm=True, layer_scale_init=layer_scale_init,
                         expan_ratio=expan_ratio)


def init_encoder_weights(m: nn.Module) -> None:
    """Lite-Mono's initialisation: Kaiming-normal (fan_out) convs/linears, unit norms."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.constant_(m.weight, 1.0)
        nn.init.constant_(m.bias, 0.0)
