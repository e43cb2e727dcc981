"""monodepth2 (Godard et al., ICCV 2019): the ResNet encoder of ``networks/resnet_encoder.py``.

Kept module for module so the published ``encoder.pth`` loads strictly: the torchvision ResNet
sits under ``encoder.`` (``encoder.conv1.weight``, ``encoder.layer4.1.bn2.running_var``, ... and
the ImageNet classifier ``encoder.fc.*``, which monodepth2 saves but never runs). Built with
``weights=None``: nothing is downloaded; load trained weights through ``checkpoints``.

Five feature levels: relu(bn1(conv1)) at 1/2, then layer1 (after the max pool) .. layer4 at
1/4 .. 1/32; 64, 64, 128, 256, 512 channels for ResNet-18 (x4 from layer1 on for ResNet-50).
Input: RGB in [0, 1], normalised here as monodepth2 does, ``(x - 0.45) / 0.225``.

The matching decoder is ``decoder.DepthDecoder`` with monodepth2's settings (see
``monodepth2_decoder``): four disparity scales, nearest upsampling, no upsampled heads.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from .decoder import DepthDecoder

# The published monodepth2 models use ResNet-18 (all KITTI releases) and ResNet-50 (mono 640x192).
RESNETS = {18: resnet18, 50: resnet50}
MONODEPTH2_DECODER_WIDTHS = (16, 32, 64, 128, 256)
MONODEPTH2_SCALES = 4


class ResnetEncoder(nn.Module):
    def __init__(self, num_layers: int = 18):
        super().__init__()
        if num_layers not in RESNETS:
            raise ValueError(f"monodepth2 ResNet-{num_layers} is not supported; expected one of "
                             f"{sorted(RESNETS)}")
        self.encoder = RESNETS[num_layers](weights=None)
        widths = [64, 64, 128, 256, 512]
        self.num_ch_enc = widths[:1] + [c * 4 for c in widths[1:]] if num_layers > 34 else widths

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.encoder
        x = (x - 0.45) / 0.225
        features = [net.relu(net.bn1(net.conv1(x)))]
        features.append(net.layer1(net.maxpool(features[-1])))
        for layer in (net.layer2, net.layer3, net.layer4):
            features.append(layer(features[-1]))
        return features


def monodepth2_decoder(num_ch_enc) -> DepthDecoder:
    """monodepth2's ``DepthDecoder(num_ch_enc, scales=range(4))``."""
    return DepthDecoder(num_ch_enc, MONODEPTH2_SCALES, num_ch_dec=MONODEPTH2_DECODER_WIDTHS,
                        upsample_mode="nearest", upsample_disp=False)
