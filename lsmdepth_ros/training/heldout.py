"""Held-out depth metrics while training: on any held-out set whose samples carry depth."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from lsmdepth_ros.training.datasets.base import DEPTH_KEY

if TYPE_CHECKING:
    from lsmdepth_ros.training.config import TrainConfig


def with_depth(dataset: Dataset | None) -> Dataset | None:
    """The held-out set when its samples carry ground-truth depth (`provides_depth`, or for a
    data set that does not say, a look at its first sample); else None."""
    if dataset is None or len(dataset) == 0:
        return None
    provides = getattr(dataset, "provides_depth", None)
    if provides is None:
        provides = DEPTH_KEY in dataset[0]
    return dataset if provides else None


def evaluation_options(config: TrainConfig):
    from lsmdepth_ros.training.evaluate import EvalOptions

    crop = config.eval_crop
    if crop == "auto":
        crop = "garg" if config.data_kind == "kitti" else "none"
    return EvalOptions(max_depth=config.eval_max_depth, crop=None if crop == "none" else crop)


def evaluate_model_on(depth_model: nn.Module, dataset: Dataset, config: TrainConfig,
                      device: torch.device, max_samples: int | None = None):
    """`evaluate.evaluate_model` on up to `max_samples` frames spread evenly over `dataset`."""
    from torch.utils.data import Subset

    from lsmdepth_ros.training.evaluate import evaluate_model

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
