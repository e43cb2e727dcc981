"""Building blocks shared by the Lite-Mono and LSMDepth networks.

Attribute names (``conv``, ``bn_gelu``, ``ddwconv``, ``pwconv1`` ...) follow the Lite-Mono
reference code so that official state dicts load with ``strict=True``; the maths is written here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d, StochasticDepth


class BNGELU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class StemConv(nn.Module):
    """Bias-free convolution, optionally followed by BatchNorm + GELU (Lite-Mono's ``Conv``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1,
                 padding: int = 1, bn_act: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn_gelu = BNGELU(out_ch) if bn_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.bn_gelu(x) if self.bn_gelu is not None else x


class SeparableConvBNGELU(nn.Module):
    """3x3 depthwise + 1x1 pointwise convolution, BatchNorm, GELU: a dense 3x3 conv's job at
    about 1/7 of its multiply-adds for 48 channels."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.dwconv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False)
        self.pwconv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn_gelu = BNGELU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_gelu(self.pwconv(self.dwconv(x)))


class DilatedDepthwiseConv(nn.Module):
    """3x3 depthwise convolution with dilation and 'same' padding (Lite-Mono's ``CDilated``)."""

    def __init__(self, dim: int, kernel: int = 3, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel, padding=(kernel // 2) * dilation,
                              dilation=dilation, groups=dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DeformableDepthwiseConv(nn.Module):
    """Depthwise deformable convolution (torchvision ``deform_conv2d``; ONNX ``DeformConv``).

    A 1x1 convolution predicts one (dy, dx) offset per kernel tap and pixel, shared by all
    channels (1x1 keeps it at 2.3 k parameters for 128 channels instead of 21 k for 3x3; the
    features it reads already have a wide receptive field). The offset predictor starts at
    zero, so an untrained block equals a dilated depthwise convolution.
    """

    def __init__(self, dim: int, kernel: int = 3, dilation: int = 1):
        super().__init__()
        padding = (kernel // 2) * dilation
        self.offset = nn.Conv2d(dim, 2 * kernel * kernel, 1)
        self.conv = DeformConv2d(dim, dim, kernel, padding=padding, dilation=dilation,
                                 groups=dim, bias=False)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # torchvision's deform_conv2d has no bfloat16 CPU kernel: under CPU autocast
            # (training's cpu_amp) this block runs in float32
            with torch.autocast("cpu", enabled=False):
                x = x.float()
                return self.conv(x, self.offset(x))
        return self.conv(x, self.offset(x))


class InvertedMLP(nn.Module):
    """Base of the encoder blocks: the channels-last inverted-bottleneck MLP with layer scale
    (``[norm ->] pwconv1 -> GELU -> pwconv2``, times ``gamma``) that every block ends with.
    The layers are attributes of the block itself so the reference key names (``pwconv1``,
    ``gamma``, ...) stay, and are created where the block's ``__init__`` calls ``add_mlp`` so
    the initialisation order is unchanged."""

    def add_mlp(self, dim: int, expan_ratio: int, layer_scale_init: float,
                norm: bool = True) -> None:
        if norm:
            self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expan_ratio * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expan_ratio * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))

    def mlp(self, tokens: torch.Tensor, norm: bool = True) -> torch.Tensor:
        return self.gamma * self.pwconv2(self.act(self.pwconv1(
            self.norm(tokens) if norm else tokens)))


class DilatedConvBlock(InvertedMLP):
    """Local block: (deformable or dilated) depthwise conv, BN, inverted-bottleneck MLP,
    layer scale and stochastic depth (one layer of Lite-Mono's CDC module).

    ``legacy_unused_norm`` adds the LayerNorm the Lite-Mono reference declares but never applies;
    it only exists so official checkpoints load strictly and parameter counts match.
    """

    def __init__(self, dim: int, dilation: int, drop_path: float = 0.0,
                 layer_scale_init: float = 1e-6, expan_ratio: int = 6,
                 deformable: bool = False, legacy_unused_norm: bool = False):
        super().__init__()
        conv_type = DeformableDepthwiseConv if deformable else DilatedDepthwiseConv
        self.ddwconv = conv_type(dim, 3, dilation)
        self.bn1 = nn.BatchNorm2d(dim)
        # the reference declares a LayerNorm here and never applies it (see the docstring)
        self.add_mlp(dim, expan_ratio, layer_scale_init, norm=legacy_unused_norm)
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.ddwconv(x)).permute(0, 2, 3, 1)  # channels last for the Linear layers
        y = self.mlp(y, norm=False)
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class FourierPositionalEncoding(nn.Module):
    """Sine/cosine encoding of normalised (y, x) pixel positions, projected to ``dim`` channels
    (Lite-Mono's ``PositionalEncodingFourier``, DETR-style). ``affine=True`` adds the learned
    scalar scale and offset (``pos_weight``, ``pos_bias``) of the published LSMDepth code."""

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0,
                 affine: bool = False):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        if affine:
            self.pos_weight = nn.Parameter(torch.ones(1, 1, 1, 1))
            self.pos_bias = nn.Parameter(torch.zeros(1, 1, 1, 1))
        self.affine = affine

    def forward(self, height: int, width: int) -> torch.Tensor:
        """Return [1, dim, height, width]."""
        device = self.token_projection.weight.device
        eps, scale = 1e-6, 2 * math.pi
        y = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * scale
        x = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * scale
        idx = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / self.hidden_dim)

        def encode(pos: torch.Tensor) -> torch.Tensor:  # [n] -> [n, hidden_dim] interleaved sin/cos
            p = pos[:, None] / dim_t
            return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)

        pos_y = encode(y)[:, None, :].expand(height, width, self.hidden_dim)
        pos_x = encode(x)[None, :, :].expand(height, width, self.hidden_dim)
        pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1).unsqueeze(0)
        pos = self.token_projection(pos.to(self.token_projection.weight.dtype))
        return pos * self.pos_weight + self.pos_bias if self.affine else pos


class XCA(nn.Module):
    """Cross-covariance attention (XCiT): a d_h x d_h channel attention per head, linear in the
    number of pixels (the attention Lite-Mono uses).

    ``softmax=False`` is the published LSMDepth ``LinearAttention``: the same L2-normalised
    cross-covariance, used as it is (no learned temperature, no softmax).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, softmax: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.softmax = softmax
        if softmax:
            self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, d_h, N]
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = q @ k.transpose(-2, -1)
        if self.softmax:
            attn = (attn * self.temperature).softmax(dim=-1)
        out = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        return self.proj(out)


class LinearAttention(nn.Module):
    """Multi-head kernelised linear attention (Katharopoulos et al. 2020, phi = elu + 1).

    softmax(QK^T)V is replaced by phi(Q)(phi(K)^T V) / (phi(Q) sum_n phi(K)): cost and memory are
    linear in the number of pixels, so it can run on the high-resolution first stage.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"LinearAttention: dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.eps = eps
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[1:]
        # Heads are groups of channels. Written with [C, C] products masked block-diagonally
        # instead of per-head [d_h, d_h] ones: the same numbers, but no 5-D transposes, which
        # cost more than the products themselves at 7680 tokens (ORT profile, 640x192).
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # [B, N, C] each
        # phi = elu + 1, written exp(min(x, 0)) + relu(x): the same function, and ONNX Runtime's
        # CPU Elu kernel is not vectorised (2.5x slower than these ops together).
        q, k = (torch.exp(torch.clamp(t, max=0.0)) + F.relu(t) for t in (q, k))
        head = torch.arange(c, device=x.device) // (c // self.num_heads)
        same_head = (head[:, None] == head[None, :]).to(x.dtype)  # [C, C]
        # Scale by 1/N before the sums so the numbers stay O(1) at any resolution.
        kv = (k.transpose(1, 2) @ v) * (same_head / n)  # [B, C, C]
        k_mean = k.mean(dim=1)[:, :, None] * same_head  # q @ this = per-head q . mean(k)
        num, den = (q @ torch.cat((kv, k_mean), dim=2)).split(c, dim=2)
        return self.proj(num / (den + self.eps))


class StripPool(nn.Module):
    """Strip pooling (published LSMDepth): the input plus its row means and column means, then
    a 1x1 convolution, so every pixel sees its whole row and column."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Broadcasting the [.., H, 1] / [.., 1, W] means equals the reference's nearest
        # upsampling of its adaptive pools, and exports to ONNX at any input size.
        return self.conv(x + x.mean(dim=3, keepdim=True) + x.mean(dim=2, keepdim=True))


def squeeze_excitation(dim: int) -> nn.Sequential:
    """Published LSMDepth channel gate: average pool, 1x1 conv to max(dim // 16, 4), GELU, 1x1
    conv, sigmoid (an ``nn.Sequential`` so the keys are the reference's ``se.1`` / ``se.3``)."""
    hidden = max(dim // 16, 4)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, hidden, 1), nn.GELU(),
                         nn.Conv2d(hidden, dim, 1), nn.Sigmoid())


class LGFI(InvertedMLP):
    """Lite-Mono's Local-Global Features Interaction block, kept bit-compatible with the
    reference: the attention output feeds the MLP, whose result is added to the block input.

    ``published_lsmdepth=True`` is the global block of the published LSMDepth code (its second
    class named ``Light``): strip pooling before the tokens, the positional encoding with its
    learned scale/offset, the attention without temperature and softmax (``XCA(softmax=False)``)
    and a squeeze-excitation gate on the MLP output; the residual still adds the block input.
    """

    def __init__(self, dim: int, num_heads: int, use_pos_emb: bool, drop_path: float = 0.0,
                 layer_scale_init: float = 1e-6, expan_ratio: int = 6,
                 published_lsmdepth: bool = False):
        super().__init__()
        self.strip_pool = StripPool(dim) if published_lsmdepth else None
        self.pos_embd = (FourierPositionalEncoding(dim, affine=published_lsmdepth)
                         if use_pos_emb else None)
        self.norm_xca = nn.LayerNorm(dim, eps=1e-6)
        self.gamma_xca = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.xca = XCA(dim, num_heads=num_heads, softmax=not published_lsmdepth)
        self.se = squeeze_excitation(dim) if published_lsmdepth else None
        self.add_mlp(dim, expan_ratio, layer_scale_init)
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        mixed = self.strip_pool(x) if self.strip_pool is not None else x
        tokens = mixed.flatten(2).transpose(1, 2)  # [B, N, C]
        if self.pos_embd is not None:
            tokens = tokens + self.pos_embd(h, w).flatten(2).transpose(1, 2)
        tokens = tokens + self.gamma_xca * self.xca(self.norm_xca(tokens))
        y = self.mlp(tokens)
        y = y.transpose(1, 2).reshape(b, c, h, w)
        if self.se is not None:
            y = y * self.se(y)
        return x + self.drop_path(y)


class LinearAttentionBlock(InvertedMLP):
    """LSMDepth global block: pre-norm linear attention and inverted-bottleneck MLP, each with its
    own residual, layer scale and stochastic depth."""

    def __init__(self, dim: int, num_heads: int, use_pos_emb: bool, drop_path: float = 0.0,
                 layer_scale_init: float = 1e-6, expan_ratio: int = 6):
        super().__init__()
        self.pos_embd = FourierPositionalEncoding(dim) if use_pos_emb else None
        self.norm_attn = nn.LayerNorm(dim, eps=1e-6)
        self.attn = LinearAttention(dim, num_heads=num_heads)
        self.gamma_attn = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.add_mlp(dim, expan_ratio, layer_scale_init)
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        if self.pos_embd is not None:
            tokens = tokens + self.pos_embd(h, w).flatten(2).transpose(1, 2)
        tokens = tokens + self.drop_path(self.gamma_attn * self.attn(self.norm_attn(tokens)))
        tokens = tokens + self.drop_path(self.mlp(tokens))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel gate (global average pool -> MLP -> sigmoid)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class SpatialAttention(nn.Module):
    """CBAM spatial gate: 7x7 conv over the channel mean and max maps -> sigmoid."""

    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


def dual_attention(channels: int, reduction: int = 8) -> nn.Sequential:
    """Dual-channel attention on a skip connection: channel gate, then spatial gate."""
    return nn.Sequential(ChannelAttention(channels, reduction), SpatialAttention())


class Conv3x3(nn.Module):
    """Reflection-padded 3x3 convolution (monodepth2 ``Conv3x3``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(int(in_ch), int(out_ch), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 + ELU (monodepth2 ``ConvBlock``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = Conv3x3(in_ch, out_ch)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.conv(x))


def upsample2x(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """x2 upsampling: bilinear with align_corners=False (Lite-Mono, LSMDepth) or nearest
    (monodepth2)."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)
