"""The networks a training step runs: depth, and pose when the motion is learnt."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from lsmdepth_ros import geometry


class DepthPoseNet(nn.Module):
    """Depth and pose networks behind one forward, so DDP sees one module call per step.

    `pose` is None when PoseNet is not trained (`TrainConfig.trains_pose_network`); the
    motion then comes from the batch (`known_poses`), or is not needed at all.
    """

    def __init__(self, depth: nn.Module, pose: nn.Module | None, source_ids: list[int]):
        super().__init__()
        self.depth, self.pose, self.source_ids = depth, pose, list(source_ids)

    def forward(self, target: torch.Tensor, sources: Mapping[int, torch.Tensor],
                known_poses: Mapping[int, torch.Tensor] | None = None):
        disps = self.depth(target)
        if self.pose is None:
            return disps, dict(known_poses or {})
        poses = {}
        for f in self.source_ids:
            # monodepth2: frames always in temporal order; invert the motion for past frames
            pair = (sources[f], target) if f < 0 else (target, sources[f])
            axisangle, translation = self.pose(torch.cat(pair, 1))
            poses[f] = geometry.transformation_from_parameters(axisangle, translation,
                                                               invert=f < 0)
        return disps, poses


def unused_parameters(net: DepthPoseNet, height: int, width: int) -> list[str]:
    """Names of parameters that get no gradient (probe: one eval-mode pass on a blank frame)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    image = torch.zeros(1, 3, height, width, device=device)
    eye = torch.eye(4, device=device)[None]
    disps, poses = net(image, {f: image for f in net.source_ids},
                       {f: eye for f in net.source_ids})
    total = sum(v.sum() for v in disps.values()) + sum(T.sum() for T in poses.values())
    total.backward()
    unused = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return unused


def autocast_dtype(amp: bool, cpu_amp: bool, device: torch.device) -> torch.dtype | None:
    """The forward pass's autocast type: float16 on CUDA with `amp`, bfloat16 on a CPU with
    `cpu_amp`, None (full precision) otherwise."""
    if device.type == "cuda" and amp:
        return torch.float16
    if device.type == "cpu" and cpu_amp:
        return torch.bfloat16
    return None


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """`torch.autocast` to `dtype` on the device's type (a no-op context for None)."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
