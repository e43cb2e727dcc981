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

from .blocks import LinearAttentionBlock, SeparableConvBNGELU, StemConv
from .litemono import LITE_MONO_VARIANTS, HybridEncoder

# Lite-Mono's widths, depths and dilation tables (one table for both networks).
LSMDEPTH_SPEC = LITE_MONO_VARIANTS["lite-mono"]


class LSMDepthEncoder(HybridEncoder):
    def __init__(self, height: int = 192, width: int = 640, drop_path_rate: float = 0.2,
                 dilations: str = "auto", deformable_blocks: int = 2, heads: int = 8,
                 layer_scale_init: float = 1e-6, expan_ratio: int = 6):
        d0 = LSMDEPTH_SPEC.dims[0]
        # The two dense 3x3 convs Lite-Mono runs at 1/2 resolution are about a quarter of its
        # multiply-adds; depthwise-separable ones do the same job far cheaper.
        stem = nn.Sequential(StemConv(3, d0, 3, stride=2, padding=1, bn_act=True),
                             SeparableConvBNGELU(d0, d0), SeparableConvBNGELU(d0, d0))
        super().__init__(LSMDEPTH_SPEC, height, width, LinearAttentionBlock,
                         drop_path_rate=drop_path_rate, dilations=dilations,
                         deformable_blocks=deformable_blocks, stem=stem, heads=heads,
                         layer_scale_init=layer_scale_init, expan_ratio=expan_ratio)
