"""Held-out evaluation: the Eigen metrics (`lsmdepth_ros.metrics`) of a depth network on any
data set whose samples carry ground-truth depth; used by the trainer and `lsmdepth evaluate`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from lsmdepth_ros.metrics import (
    EvalOptions,
    EvalSummary,
    evaluate_depth_pair,
    summarize,
)
from lsmdepth_ros.training.datasets.base import DEPTH_KEY

if TYPE_CHECKING:
    from lsmdepth_ros.training.config import TrainConfig

DEFAULT_OPTIONS = EvalOptions()  # frozen: safe as a shared default


def with_depth(dataset: Dataset | None) -> Dataset | None:
    """The held-out set when its samples carry ground-truth depth (`provides_depth`, or for a
    data set that does not say, a look at its first sample); else None."""
    if dataset is None or len(dataset) == 0:
        return None
    provides = getattr(dataset, "provides_depth", None)
    if provides is None:
        provides = DEPTH_KEY in dataset[0]
    return dataset if provides else None


def why_no_metrics(dataset: Dataset | None, data_kind: str) -> str | None:
    """Why a run gets no held-out depth metrics (None when it does), in one sentence."""
    if with_depth(dataset) is not None:
        return None
    why = ("no held-out data set" if dataset is None
           else "the held-out samples carry no ground-truth depth")
    return (f"no held-out depth metrics for this run ({why}; data_kind {data_kind!r}: see "
            "datasets/registry.py for its held-out options)")


def evaluation_options(config: TrainConfig):
    crop = config.eval_crop
    if crop == "auto":
        crop = "garg" if config.data_kind == "kitti" else "none"
    return EvalOptions(max_depth=config.eval_max_depth, crop=None if crop == "none" else crop)


def evaluate_model_on(depth_model: nn.Module, dataset: Dataset, config: TrainConfig,
                      device: torch.device, max_samples: int | None = None):
    """`evaluate_model` on up to `max_samples` frames spread evenly over `dataset`."""
    from torch.utils.data import Subset

    if max_samples and max_samples < len(dataset):
        # sequences are contiguous: spread the frames over all of them, deterministically
        indices = np.linspace(0, len(dataset) - 1, max_samples).round().astype(int)
        dataset = Subset(dataset, sorted(set(indices.tolist())))
    was_training = depth_model.training
    try:
        return evaluate_model(depth_model, dataset, evaluation_options(config),
                              min_depth=config.min_depth, max_depth=config.max_depth,
                              device=str(device))
    finally:
        depth_model.train(was_training)


def predict_depth_batches(model, images, min_depth: float, max_depth: float):
    """Network on [B, 3, H, W] RGB in [0, 1] -> metric depth [B, H, W] numpy (before scaling)."""
    import torch

    from lsmdepth_ros.geometry import disp_to_depth

    with torch.inference_mode():
        disp = model(images)[("disp", 0)]
    _, depth = disp_to_depth(disp, min_depth, max_depth)
    return depth[:, 0].float().cpu().numpy()


def evaluate_model(model, dataset, options: EvalOptions = DEFAULT_OPTIONS, *, min_depth: float,
                   max_depth: float, batch_size: int = 4, device: str = "cpu",
                   num_workers: int = 0, max_images: int | None = None,
                   progress: bool = False) -> EvalSummary:
    """Eigen-protocol evaluation of a depth network on a data set built with load_depth=True.

    `dataset` yields monodepth2 samples (("color", 0, 0) at the network's input size and
    "depth_gt" at the ground truth's native size); min/max_depth map the sigmoid disparity to
    depth (the checkpoint's range, not the evaluation's).
    """
    from torch.utils.data import DataLoader, Subset

    if max_images is not None:
        dataset = Subset(dataset, range(min(max_images, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate_images_and_depth)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="evaluating", unit="batch")
    model = model.to(device).eval()
    results = []
    for images, depths in loader:
        preds = predict_depth_batches(model, images.to(device), min_depth, max_depth)
        for gt, pred in zip(depths, preds):
            results.append(evaluate_depth_pair(gt, pred, options))
    return summarize(results, options)


def _collate_images_and_depth(samples):
    import torch

    if DEPTH_KEY not in samples[0]:
        raise ValueError(f"the data set yields no '{DEPTH_KEY}': build it with load_depth=True")
    images = torch.stack([s[("color", 0, 0)] for s in samples])
    depths = [s[DEPTH_KEY][0].numpy() for s in samples]  # native sizes may differ
    return images, depths
