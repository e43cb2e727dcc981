"""LSMDepth encoder: the hybrid-attention network the LSMDepth paper describes, built to run.

Skeleton and widths are Lite-Mono's (stem, RGB pyramid re-injection, three stages of dims
48/80/128 and depths 4/4/10 at 1/4, 1/8, 1/16). Differences, and why:

* The stem's two 3x3 convs at 1/2 resolution are depthwise-separable (dense ones cost about a
  quarter of Lite-Mono's multiply-adds), which pays for the attention added elsewhere.
* Global blocks (the last block of each stage) use kernelised *linear attention* (phi = elu+1)
  with pre-norm residuals instead of XCA; the first stage adds a Fourier positional encoding.
* Local blocks are dilated depthwise convolutions (same dilation rule as Lite-Mono, see
  ``litemono``); the last ``deformable_blocks`` local blocks of the 1/16 stage are *deformable*
  depthwise convolutions (torchvision ``deform_conv2d``). They sit at the lowest resolution so
  their cost stays small on CPU and they export to ONNX ``DeformConv`` (opset 19).
* No dead compute: there is no unused LayerNorm per block and nothing is computed and dropped.

The decoder (``decoder.DepthDecoder(skip_attention=True)``) adds dual-channel (channel +
spatial) attention on the skip connections it uses.
"""
from __future__ import annotations

from torch import nn

from .blocks import (
    DeformableDepthwiseConv,
    DilatedConvBlock,
    LinearAttentionBlock,
    SeparableConvBNGELU,
    StemConv,
)
from .litemono import (
    HybridEncoder,
    Variant,
    drop_path_rates,
    init_encoder_weights,
    select_dilations,
)

LSMDEPTH_SPEC = Variant(
    dims=(48, 80, 128), depths=(4, 4, 10),
    small_dilations=((1, 2, 3), (1, 2, 3), (1, 2, 3, 1, 2, 3, 2, 4, 6)),
    large_dilations=((1, 2, 5), (1, 2, 5), (1, 2, 5, 1, 2, 5, 2, 4, 10)),
)


class LSMDepthEncoder(HybridEncoder):
    def __init__(self, height: int = 192, width: int = 640, drop_path_rate: float = 0.2,
                 dilations: str = "auto", deformable_blocks: int = 2, heads: int = 8,
                 layer_scale_init: float = 1e-6, expan_ratio: int = 6):
        spec = LSMDEPTH_SPEC
        local_last_stage = spec.depths[2] - 1
        if not 0 <= deformable_blocks <= local_last_stage:
            raise ValueError(f"deformable_blocks must be in 0..{local_last_stage}, "
                             f"got {deformable_blocks}")
        table = select_dilations(spec, height, width, dilations)
        rates = drop_path_rates(spec.depths, drop_path_rate)
        offsets = [sum(spec.depths[:i]) for i in range(3)]

        def make_block(stage: int, j: int) -> nn.Module:
            dim, rate = spec.dims[stage], rates[offsets[stage] + j]
            if j == spec.depths[stage] - 1:
                return LinearAttentionBlock(dim, heads, use_pos_emb=stage == 0, drop_path=rate,
                                            layer_scale_init=layer_scale_init,
                                            expan_ratio=expan_ratio)
            deformable = stage == 2 and j >= local_last_stage - deformable_blocks
            return DilatedConvBlock(dim, table[stage][j], drop_path=rate,
                                    layer_scale_init=layer_scale_init, expan_ratio=expan_ratio,
                                    deformable=deformable)

        # The two dense 3x3 convs Lite-Mono runs at 1/2 resolution are about a quarter of its
        # multiply-adds; depthwise-separable ones do the same job far cheaper.
        stem = nn.Sequential(StemConv(3, spec.dims[0], 3, stride=2, padding=1, bn_act=True),
                             SeparableConvBNGELU(spec.dims[0], spec.dims[0]),
                             SeparableConvBNGELU(spec.dims[0], spec.dims[0]))
        super().__init__(spec.dims, spec.depths, make_block, stem=stem)
        self.apply(init_encoder_weights)
        for m in self.modules():  # deformable offsets start at zero (a plain dilated conv)
            if isinstance(m, DeformableDepthwiseConv):
                nn.init.zeros_(m.offset.weight)
                nn.init.zeros_(m.offset.bias)
