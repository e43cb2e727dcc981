"""Samples -> batch: torch's `default_collate` plus ground truth of differing native sizes."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def collate_samples(samples: list[Mapping]) -> dict:
    """`default_collate`, except that per-pixel ground truth (`base.DEPTH_KEY`, labels) of
    differing native sizes (KITTI drives are 1242x375 or 1241x376 ...) is resized to the first
    sample's size with nearest-neighbour sampling (sparse LiDAR points stay measured values)."""
    from torch.utils.data import default_collate

    first = samples[0]
    ragged = [k for k, v in first.items() if isinstance(k, str) and isinstance(v, torch.Tensor)
              and v.ndim == 3 and any(s[k].shape != v.shape for s in samples)]
    if not ragged:
        return default_collate(samples)
    batch = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    for k in ragged:
        size = first[k].shape[-2:]
        batch[k] = torch.stack([
            v if v.shape[-2:] == size else
            F.interpolate(v[None].float(), size=size, mode="nearest")[0].to(v.dtype)
            for v in (s[k] for s in samples)])
    return batch
