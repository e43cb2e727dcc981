"""Independent descriptions of the published weight layouts, for test_official_weights.py.

Two things, both written from the authors' module trees (noahzn/Lite-Mono, CdpLab/LSMDepth,
nianticlabs/monodepth2), not from lsmdepth_ros' networks:

* key -> shape tables of the ``encoder.pth`` / ``depth.pth`` state dicts their trainers save;
* a functional forward pass (torch.nn.functional over such a state dict) that follows the
  authors' operations in their order: the reference the loaded models are compared with.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# --- key -> shape tables -------------------------------------------------------------------


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _conv(prefix, cout, cin, k, bias=True):
    return {f"{prefix}.weight": (cout, cin, k, k), **({f"{prefix}.bias": (cout,)} if bias else {})}


def _linear(prefix, cout, cin):
    return {f"{prefix}.weight": (cout, cin), f"{prefix}.bias": (cout,)}


def hybrid_encoder_shapes(dims, depths, family):
    """Lite-Mono ``LiteMono`` (family "lite-mono") or LSMDepth ``Light`` (family "lsmdepth")."""
    d0 = dims[0]
    shapes = {}
    for i, cin in enumerate((3, d0, d0)):
        shapes.update(_conv(f"downsample_layers.0.{i}.conv", d0, cin, 3, bias=False))
        shapes.update(_bn(f"downsample_layers.0.{i}.bn_gelu.bn", d0))
    shapes.update(_conv("stem2.0.conv", d0, d0 + 3, 3, bias=False))
    for i in range(2):
        shapes.update(_conv(f"downsample_layers.{i + 1}.0.conv", dims[i + 1], 2 * dims[i] + 3, 3,
                            bias=False))
    for i, (d, depth) in enumerate(zip(dims, depths)):
        for j in range(depth):
            p = f"stages.{i}.{j}"
            shapes.update({f"{p}.norm.weight": (d,), f"{p}.norm.bias": (d,), f"{p}.gamma": (d,),
                           **_linear(f"{p}.pwconv1", 6 * d, d), **_linear(f"{p}.pwconv2", d, 6 * d)})
            if j < depth - 1:  # DilatedConv (its LayerNorm `norm` is declared, never used)
                shapes[f"{p}.ddwconv.conv.weight"] = (d, 1, 3, 3)
                shapes.update(_bn(f"{p}.bn1", d))
                continue
            if i == 0:  # the global block of stage 0 has the positional encoding
                shapes.update(_conv(f"{p}.pos_embd.token_projection", d, 64, 1))
            shapes.update({f"{p}.norm_xca.weight": (d,), f"{p}.norm_xca.bias": (d,),
                           f"{p}.gamma_xca": (d,), **_linear(f"{p}.xca.qkv", 3 * d, d),
                           **_linear(f"{p}.xca.proj", d, d)})
            if family == "lite-mono":
                shapes[f"{p}.xca.temperature"] = (8, 1, 1)
            else:
                hidden = max(d // 16, 4)
                shapes.update({**_conv(f"{p}.strip_pool.conv", d, d, 1),
                               **_conv(f"{p}.se.1", hidden, d, 1), **_conv(f"{p}.se.3", d, hidden, 1)})
                if i == 0:
                    shapes.update({f"{p}.pos_embd.pos_weight": (1, 1, 1, 1),
                                   f"{p}.pos_embd.pos_bias": (1, 1, 1, 1)})
    return shapes


def plain_decoder_shapes(enc, dec):
    """Lite-Mono / monodepth2 ``DepthDecoder``: ModuleList of upconvs (deep -> shallow), heads."""
    levels = len(enc)
    shapes, k = {}, 0
    for i in range(levels - 1, -1, -1):
        cin = enc[-1] if i == levels - 1 else dec[i + 1]
        shapes.update(_conv(f"decoder.{k}.conv.conv", dec[i], cin, 3))
        shapes.update(_conv(f"decoder.{k + 1}.conv.conv", dec[i], dec[i] + (enc[i - 1] if i else 0), 3))
        k += 2
    for s in range(levels - 1 if levels == 5 else levels):  # 4 heads for monodepth2, 3 else
        shapes.update(_conv(f"decoder.{k + s}.conv", 1, dec[s], 3))
    return shapes


def lsmdepth_decoder_shapes(enc):
    """LSMDepth ``DepthDecoder``: skip_att / skip_conv for every level, then decoder.<n>."""
    dec = [c // 2 for c in enc]
    shapes = {}

    def channel_att(prefix, c):
        shapes.update({**_linear(f"{prefix}.fc.0", c // 8, c), **_linear(f"{prefix}.fc.2", c, c // 8)})

    for i, c in enumerate(enc):
        channel_att(f"skip_att.{i}.0", c)
        shapes.update(_conv(f"skip_att.{i}.1.conv", 1, 2, 7))
        shapes.update(_conv(f"skip_conv.{i}.conv", dec[i], c, 1))
    k = 0
    for i in (2, 1, 0):
        shapes.update(_conv(f"decoder.{k}.conv.0.conv", dec[i], enc[2] if i == 2 else dec[i + 1], 3))
        shapes.update(_conv(f"decoder.{k + 1}.0.conv.conv", dec[i], dec[i] + (dec[i - 1] if i else 0), 3))
        channel_att(f"decoder.{k + 1}.1", dec[i])
        k += 2
    for s in range(3):
        shapes.update({**_conv(f"decoder.{k + s}.0.conv", 64, dec[s], 3),
                       **_conv(f"decoder.{k + s}.2.conv", 1, 64, 3)})
    return shapes


RESNETS = {18: ((2, 2, 2, 2), False), 50: ((3, 4, 6, 3), True)}


def resnet_encoder_shapes(num_layers):
    """monodepth2 ``ResnetEncoder``: a torchvision ResNet under ``encoder.`` (fc included)."""
    blocks, bottleneck = RESNETS[num_layers]
    shapes = {**_conv("encoder.conv1", 64, 3, 7, bias=False), **_bn("encoder.bn1", 64)}
    cin, expansion = 64, 4 if bottleneck else 1
    for li, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for j in range(n):
            p = f"encoder.layer{li}.{j}"
            if bottleneck:
                convs = [(width, cin, 1), (width, width, 3), (width * 4, width, 1)]
            else:
                convs = [(width, cin, 3), (width, width, 3)]
            for c, (co, ci, k) in enumerate(convs, start=1):
                shapes.update({**_conv(f"{p}.conv{c}", co, ci, k, bias=False), **_bn(f"{p}.bn{c}", co)})
            if j == 0 and (li > 1 or cin != width * expansion):
                shapes.update({**_conv(f"{p}.downsample.0", width * expansion, cin, 1, bias=False),
                               **_bn(f"{p}.downsample.1", width * expansion)})
            cin = width * expansion
    shapes.update(_linear("encoder.fc", 1000, cin))
    return shapes


def resnet_channels(num_layers):
    e = 4 if RESNETS[num_layers][1] else 1
    return [64, 64 * e, 128 * e, 256 * e, 512 * e]


def random_state(shapes, seed):
    """Weights that make every branch matter: fan-in scaled, layer scales of order 0.5."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(int(torch.randint(1, 100, (), generator=g)))
        elif k.endswith("running_var"):
            state[k] = torch.rand(s, generator=g) * 0.5 + 0.75
        elif k.endswith(("gamma", "gamma_xca")):
            state[k] = torch.randn(s, generator=g) * 0.5
        elif k.endswith("temperature"):
            state[k] = torch.rand(s, generator=g) + 0.5
        elif len(s) <= 1:
            state[k] = torch.randn(s, generator=g) * 0.2
        else:
            state[k] = torch.randn(s, generator=g) / math.sqrt(math.prod(s[1:]))
    return state


# --- the authors' forward passes, functionally -----------------------------------------------

def _c(sd, p, x, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"), stride, padding, dilation, groups)


def _b(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], False, 0.0, 1e-5)


def _l(sd, p, x):
    return F.linear(x, sd[f"{p}.weight"], sd[f"{p}.bias"])


def _ln(sd, p, x):
    return F.layer_norm(x, (x.shape[-1],), sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-6)


def _pos_fourier(sd, p, b, h, w, affine):
    """DETR positional encoding as the authors compute it (cumsum of a mask)."""
    not_mask = torch.ones(b, h, w)
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(32, dtype=torch.float32) // 2) / 32)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    pos = _c(sd, f"{p}.token_projection", torch.cat((py, px), dim=3).permute(0, 3, 1, 2))
    return pos * sd[f"{p}.pos_weight"] + sd[f"{p}.pos_bias"] if affine else pos


def _global_block(sd, p, x, family, pos):
    inp = x
    b, c, h, w = x.shape
    if family == "lsmdepth":  # StripPool
        rows = F.interpolate(F.adaptive_avg_pool2d(x, (h, 1)), (h, w), mode="nearest")
        cols = F.interpolate(F.adaptive_avg_pool2d(x, (1, w)), (h, w), mode="nearest")
        x = _c(sd, f"{p}.strip_pool.conv", x + rows + cols)
    t = x.reshape(b, c, h * w).permute(0, 2, 1)
    if pos:
        t = t + _pos_fourier(sd, f"{p}.pos_embd", b, h, w, family == "lsmdepth").reshape(
            b, -1, h * w).permute(0, 2, 1)
    qkv = _l(sd, f"{p}.xca.qkv", _ln(sd, f"{p}.norm_xca", t))
    qkv = qkv.reshape(b, h * w, 3, 8, c // 8).permute(2, 0, 3, 1, 4)
    q, k, v = (m.transpose(-2, -1) for m in qkv)  # [B, heads, d, N]
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = q @ k.transpose(-2, -1)
    if family == "lite-mono":
        attn = (attn * sd[f"{p}.xca.temperature"]).softmax(dim=-1)
    att = _l(sd, f"{p}.xca.proj", (attn @ v).permute(0, 3, 1, 2).reshape(b, h * w, c))
    t = t + sd[f"{p}.gamma_xca"] * att
    m = t.reshape(b, h, w, c)
    m = _l(sd, f"{p}.pwconv2", F.gelu(_l(sd, f"{p}.pwconv1", _ln(sd, f"{p}.norm", m))))
    m = (sd[f"{p}.gamma"] * m).permute(0, 3, 1, 2)
    if family == "lsmdepth":
        g = F.adaptive_avg_pool2d(m, 1)
        g = torch.sigmoid(_c(sd, f"{p}.se.3", F.gelu(_c(sd, f"{p}.se.1", g))))
        m = m * g
    return inp + m


def _local_block(sd, p, x, dilation):
    y = _c(sd, f"{p}.ddwconv.conv", x, padding=dilation, dilation=dilation, groups=x.shape[1])
    y = _b(sd, f"{p}.bn1", y).permute(0, 2, 3, 1)
    y = _l(sd, f"{p}.pwconv2", F.gelu(_l(sd, f"{p}.pwconv1", y)))
    return x + (sd[f"{p}.gamma"] * y).permute(0, 3, 1, 2)


def hybrid_encoder_forward(sd, x, dilations, family):
    x = (x - 0.45) / 0.225
    down = [x]
    for _ in range(3):
        down.append(F.avg_pool2d(down[-1], 3, stride=2, padding=1))
    for i in range(3):
        x = F.gelu(_b(sd, f"downsample_layers.0.{i}.bn_gelu.bn",
                      _c(sd, f"downsample_layers.0.{i}.conv", x, 2 if i == 0 else 1, 1)))
    x = _c(sd, "stem2.0.conv", torch.cat((x, down[1]), 1), 2, 1)
    tmp, features = [x], []
    for s in range(3):
        if s:
            x = _c(sd, f"downsample_layers.{s}.0.conv", torch.cat(tmp + [down[s + 1]], 1), 2, 1)
            tmp = [x]
        depth = len({k.split(".")[2] for k in sd if k.startswith(f"stages.{s}.")})
        for j in range(depth - 1):
            x = _local_block(sd, f"stages.{s}.{j}", x, dilations[s][j])
        x = _global_block(sd, f"stages.{s}.{depth - 1}", x, family, pos=s == 0)
        tmp.append(x)
        features.append(x)
    return features


def resnet_encoder_forward(sd, x, num_layers):
    blocks, bottleneck = RESNETS[num_layers]
    x = (x - 0.45) / 0.225
    x = F.relu(_b(sd, "encoder.bn1", _c(sd, "encoder.conv1", x, 2, 3)))
    features = [x]
    x = F.max_pool2d(x, 3, 2, 1)
    for li, n in enumerate(blocks, start=1):
        for j in range(n):
            p, stride = f"encoder.layer{li}.{j}", 2 if (li > 1 and j == 0) else 1
            if bottleneck:
                y = F.relu(_b(sd, f"{p}.bn1", _c(sd, f"{p}.conv1", x)))
                y = F.relu(_b(sd, f"{p}.bn2", _c(sd, f"{p}.conv2", y, stride, 1)))
                y = _b(sd, f"{p}.bn3", _c(sd, f"{p}.conv3", y))
            else:
                y = F.relu(_b(sd, f"{p}.bn1", _c(sd, f"{p}.conv1", x, stride, 1)))
                y = _b(sd, f"{p}.bn2", _c(sd, f"{p}.conv2", y, 1, 1))
            if f"{p}.downsample.0.weight" in sd:
                x = _b(sd, f"{p}.downsample.1", _c(sd, f"{p}.downsample.0", x, stride))
            x = F.relu(y + x)
        features.append(x)
    return features


def _c3(sd, p, x):  # monodepth2's Conv3x3: reflection pad, 3x3 conv
    return _c(sd, p, F.pad(x, (1, 1, 1, 1), mode="reflect"))


def plain_decoder_forward(sd, features, mode):
    """Lite-Mono (mode "bilinear", heads upsampled) / monodepth2 (mode "nearest")."""
    levels = len(features)
    x, k, kept = features[-1], 0, {}
    for i in range(levels - 1, -1, -1):
        x = F.elu(_c3(sd, f"decoder.{k}.conv.conv", x))
        x = F.interpolate(x, scale_factor=2, mode=mode)
        if i:
            x = torch.cat((x, features[i - 1]), 1)
        x = F.elu(_c3(sd, f"decoder.{k + 1}.conv.conv", x))
        kept[i] = x
        k += 2
    num_scales = 4 if levels == 5 else 3
    out = {}
    for s in range(num_scales):
        d = _c3(sd, f"decoder.{k + s}.conv", kept[s])
        if mode == "bilinear":
            d = F.interpolate(d, scale_factor=2, mode="bilinear")
        out[("disp", s)] = torch.sigmoid(d)
    return out


def _channel_att(sd, p, x):
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    y = torch.sigmoid(_l(sd, f"{p}.fc.2", F.relu(_l(sd, f"{p}.fc.0", y))))
    return x * y[:, :, None, None]


def lsmdepth_decoder_forward(sd, features):
    skips = []
    for i in range(3):
        s = _channel_att(sd, f"skip_att.{i}.0", features[i])
        att = torch.cat((s.mean(1, keepdim=True), s.max(1, keepdim=True)[0]), 1)
        s = s * torch.sigmoid(_c(sd, f"skip_att.{i}.1.conv", att, padding=3))
        skips.append(F.relu(_c(sd, f"skip_conv.{i}.conv", s)))
    x, k, out = features[-1], 0, {}
    for i in (2, 1, 0):
        x = F.relu(F.instance_norm(_c3(sd, f"decoder.{k}.conv.0.conv", x)))
        x = F.interpolate(x, scale_factor=2, mode="bilinear")
        if i:
            x = torch.cat((x, skips[i - 1]), 1)
        x = _channel_att(sd, f"decoder.{k + 1}.1", F.elu(_c3(sd, f"decoder.{k + 1}.0.conv.conv", x)))
        d = _c3(sd, f"decoder.{6 + i}.2.conv", F.relu(_c3(sd, f"decoder.{6 + i}.0.conv", x)))
        out[("disp", i)] = torch.sigmoid(F.interpolate(d, scale_factor=2, mode="bilinear"))
        k += 2
    return out
