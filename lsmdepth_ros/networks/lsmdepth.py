"""LSMDepth encoder: the hybrid-attention network the LSMDepth paper describes, built to run.

Skeleton and widths are Lite-Mono's (stem, RGB pyramid re-injection, three stages of dims
48/80/128 and depths 4/4/10 at 1/4, 1/8, 1/16). Differences, and why:

* The stem's two 3x3 convs at 1/2 resolution are depthwise-separable (dense ones cost about a
  quarter of Lite-Mono's multiply-adds), which pays for the attention added elsewhere.
* Speed on CPUs (``mlp_ratios``): an ONNX Runtime profile at 640x192 (1 thread) put a third of
  the time in the 1/4-resolution stage, five sixths of that in the blocks' MLPs (7,680 tokens x
  48 x 288 each way). The MLP expansion is therefore 3 / 4 / 6 per stage instead of 6
  everywhere (cheap where tokens are few, as the early stages of EfficientFormer or MobileViT).
  ``downsample="2x2"`` makes the stride-2 convs that enter each stage dense 2x2 "patch merging"
  convs (ConvNeXt, Swin; 4 taps instead of 9): 5 % faster, but in a side-by-side 600-step
  training (3 seeds) held-out AbsRel went from 0.1289 with 3x3 convs to 0.1342 (Lite-Mono
  0.1259), so the default keeps 3x3. ``mlp_ratios=(6, 6, 6)`` is the first design (0.1277 over
  seeds 0 and 1, 0.86x Lite-Mono's latency); checkpoints saved before these options existed load
  as that, and every checkpoint records its own options.
* The RGB-pyramid convs are split (``HybridEncoder(split_rgb=True)``): the same weights and
  function, in a graph whose convs ONNX Runtime runs in its fast blocked layout (about 0.82 ->
  0.72x Lite-Mono's latency on 2 threads, 0.79 -> 0.72x on 1; Lite-Mono keeps its authors' graph).
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
from .litemono import LITE_MONO_VARIANTS, HybridEncoder, init_encoder_weights

# Lite-Mono's widths, depths and dilation tables (one table for both networks).
LSMDEPTH_SPEC = LITE_MONO_VARIANTS["lite-mono"]
DOWNSAMPLE_KINDS = ("3x3", "2x2")  # kernel of the stride-2 convs entering each stage
# The design before `mlp_ratios` / `downsample` existed (checkpoints without them).
LEGACY_MLP_RATIOS, LEGACY_DOWNSAMPLE = (6, 6, 6), "3x3"


class LSMDepthEncoder(HybridEncoder):
    def __init__(self, height: int = 192, width: int = 640, drop_path_rate: float = 0.2,
                 dilations: str = "auto", deformable_blocks: int = 2, heads: int = 8,
                 layer_scale_init: float = 1e-6, mlp_ratios: tuple[int, int, int] = (3, 4, 6),
                 downsample: str = "3x3"):
        if len(tuple(mlp_ratios)) != len(LSMDEPTH_SPEC.dims) or min(mlp_ratios) < 1:
            raise ValueError(f"mlp_ratios must be {len(LSMDEPTH_SPEC.dims)} integers >= 1 (one "
                             f"per stage), got {mlp_ratios}")
        if downsample not in DOWNSAMPLE_KINDS:
            raise ValueError(f"downsample must be one of {DOWNSAMPLE_KINDS}, got {downsample!r}")
        d = LSMDEPTH_SPEC.dims
        # The two dense 3x3 convs Lite-Mono runs at 1/2 resolution are about a quarter of its
        # multiply-adds; depthwise-separable ones do the same job far cheaper.
        stem = nn.Sequential(StemConv(3, d[0], 3, stride=2, padding=1, bn_act=True),
                             SeparableConvBNGELU(d[0], d[0]), SeparableConvBNGELU(d[0], d[0]))
        super().__init__(LSMDEPTH_SPEC, height, width, LinearAttentionBlock,
                         drop_path_rate=drop_path_rate, dilations=dilations,
                         deformable_blocks=deformable_blocks, stem=stem, heads=heads,
                         layer_scale_init=layer_scale_init, expan_ratio=tuple(mlp_ratios),
                         split_rgb=True)
        if downsample == "2x2":  # same keys and output sizes as the 3x3 convs it replaces
            self.stem2 = nn.Sequential(StemConv(d[0] + 3, d[0], 2, stride=2, padding=0))
            for i in (1, 2):  # input: previous stage's input and output + the RGB pyramid
                self.downsample_layers[i] = nn.Sequential(
                    StemConv(d[i - 1] * 2 + 3, d[i], 2, stride=2, padding=0))
            for layer in (self.stem2, self.downsample_layers[1], self.downsample_layers[2]):
                layer.apply(init_encoder_weights)
