"""PoseNet: ResNet-18 on two stacked RGB frames + monodepth2's pose decoder.

``pose(torch.cat([img_a, img_b], 1))`` -> (axisangle [B,1,3], translation [B,1,3]), to be turned
into a 4x4 transform with ``geometry.transformation_from_parameters``. monodepth2 convention:
for source frame -1 feed (src, tgt) with invert=True; for +1 feed (tgt, src) with invert=False.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18


class PoseNet(nn.Module):
    def __init__(self, num_input_frames: int = 2, output_scale: float = 0.01):
        super().__init__()
        if num_input_frames < 2:
            raise ValueError(f"PoseNet needs at least 2 input frames, got {num_input_frames}")
        self.num_input_frames = num_input_frames
        self.output_scale = output_scale
        self.options = {"num_input_frames": num_input_frames, "output_scale": output_scale}

        net = resnet18(weights=None)  # never downloads; 3 * frames input channels
        net.conv1 = nn.Conv2d(3 * num_input_frames, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        # The classifier head (avgpool, fc) is dropped: nothing unused stays in the model.
        self.encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                     net.layer1, net.layer2, net.layer3, net.layer4)
        self.decoder = nn.Sequential(
            nn.Conv2d(512, 256, 1), nn.ReLU(),             # squeeze
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 6, 1),                          # axis-angle (3) + translation (3)
        )

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expected = 3 * self.num_input_frames
        if frames.ndim != 4 or frames.shape[1] != expected:
            raise ValueError(f"PoseNet expects [B,{expected},H,W] (RGB frames stacked on the "
                             f"channel axis, values in [0,1]); got {tuple(frames.shape)}")
        out = self.decoder(self.encoder((frames - 0.45) / 0.225)).mean(dim=(2, 3))
        out = self.output_scale * out.view(-1, 1, 6)  # small initial motions (monodepth2)
        return out[..., :3], out[..., 3:]
