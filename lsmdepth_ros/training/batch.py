"""One step's inputs, taken from a collated monodepth2-format sample (`datasets.base`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """The tensors one step needs."""

    target: torch.Tensor                 # un-augmented, for the loss
    target_aug: torch.Tensor             # network input
    sources: dict[int, torch.Tensor]
    sources_aug: dict[int, torch.Tensor]
    K: torch.Tensor
    inv_K: torch.Tensor
    target_pyramid: dict[int, torch.Tensor]
    known_poses: dict[int, torch.Tensor] | None = None   # ("pose_gt", i) when the data has it
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # ground-truth depth, labels

    @classmethod
    def from_sample(cls, sample: Mapping, source_ids: list[int], num_scales: int,
                    device: torch.device) -> Batch:
        def get(key, fallback=None):
            if key in sample:
                return sample[key].to(device, non_blocking=True)
            if fallback is not None and fallback in sample:
                return sample[fallback].to(device, non_blocking=True)
            raise KeyError(f"training sample has no {key!r}; a data set must return the "
                           f"monodepth2 sample format (see training/datasets/base.py), "
                           f"got keys {sorted(map(str, sample))[:12]}")
        pyramid = {s: sample[("color", 0, s)].to(device) for s in range(num_scales)
                   if ("color", 0, s) in sample}
        return cls(target=get(("color", 0, 0)),
                   target_aug=get(("color_aug", 0, 0), ("color", 0, 0)),
                   sources={f: get(("color", f, 0)) for f in source_ids},
                   sources_aug={f: get(("color_aug", f, 0), ("color", f, 0)) for f in source_ids},
                   K=get(("K", 0)), inv_K=get(("inv_K", 0)), target_pyramid=pyramid,
                   known_poses={f: sample[("pose_gt", f)].to(device) for f in source_ids}
                   if all(("pose_gt", f) in sample for f in source_ids) else None,
                   extras={k: v for k, v in sample.items()
                           if isinstance(k, str) and isinstance(v, torch.Tensor)})
