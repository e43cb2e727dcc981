"""Fixtures shared by the test files.

`write_random_checkpoint` is the one way tests make a small LSMDepth checkpoint with random
(seeded) weights: the node, bag, inference, signal and evaluation tests all need one.
"""
from __future__ import annotations

from pathlib import Path

import pytest


def write_random_checkpoint(path: Path, height: int = 64, width: int = 128, *,
                            min_depth: float | None = None, max_depth: float | None = None,
                            decoder_gain: float = 1.0, seed: int = 0) -> Path:
    """Save a seeded, randomly initialised `lsmdepth` network at `path`.

    ``decoder_gain`` scales the decoder weights: random ones give a nearly flat disparity, and a
    gain of a few makes resizing and depth ranges visible in the output.
    """
    import torch

    from lsmdepth_ros.checkpoints import save_checkpoint
    from lsmdepth_ros.networks import build_depth_model

    torch.manual_seed(seed)
    model = build_depth_model("lsmdepth", height=height, width=width)
    if decoder_gain != 1.0:
        with torch.no_grad():
            for p in model.decoder.parameters():
                p.mul_(decoder_gain)
    depth_range = {k: v for k, v in (("min_depth", min_depth), ("max_depth", max_depth))
                   if v is not None}
    save_checkpoint(path, model, **depth_range)
    return Path(path)


@pytest.fixture(scope="session")
def random_checkpoint_factory(tmp_path_factory):
    """`make(name, **write_random_checkpoint options)` -> path, written once per session."""
    made: dict[tuple, Path] = {}

    def make(name: str = "tiny", **options) -> Path:
        key = (name, tuple(sorted(options.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp("checkpoints")
            made[key] = write_random_checkpoint(folder / f"{name}.pt", **options)
        return made[key]

    return make
