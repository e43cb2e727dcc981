"""Torch data set of synthetic drives rendered on the fly (the world is lsmdepth_ros.synthetic).

`world="drive"`: the classic street drive (`SyntheticDrive`, one KITTI-like camera);
`world="random"`: the domain-randomised world (`WorldDrive`: outdoor and indoor scenes, a random
camera, light and sensor per drive; `world_options` holds extra `WorldOptions` fields).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import numpy as np

from lsmdepth_ros.geometry import scale_intrinsics
from lsmdepth_ros.synthetic import (
    Frame,
    SyntheticDrive,
    SyntheticOptions,
    drive_seed,
    relative_pose,
)
from lsmdepth_ros.synthetic.world import WorldDrive, WorldOptions
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import MonoDataset, sequence_items


class SyntheticDataset(MonoDataset):
    """Synthetic drives rendered on the fly, in the monodepth2 sample format (see base.py).

    Sequence k is `SyntheticDrive(drive_seed(seed, k), options)`, rendered at the data set's
    (width, height), so the images need no resizing at scale 0. Rendered frames are kept in an
    LRU cache of `cache_frames` frames per process (neighbouring samples share frames; the last
    frame is always kept, so a sample renders its image and depth once).
    Ground-truth depth ("depth_gt") and relative poses (("pose_gt", i)) are exact.

    To train from files instead, write a folder with `write_kitti_layout` (or `lsmdepth synth`)
    and read it with `kitti.synthetic_folder_dataset`.
    """

    def __init__(self, num_sequences: int = 4, frames_per_sequence: int = 100,
                 height: int = 192, width: int = 640, seed: int = 0,
                 frame_ids: tuple[int, ...] = (0, -1, 1), num_scales: int = 4,
                 is_train: bool = False, load_depth: bool = True,
                 augment: AugmentOptions | None = None, cache_frames: int = 256,
                 options: SyntheticOptions | None = None, world: str = "drive",
                 world_options: dict | None = None):
        self.seed = int(seed)
        names = [f"{k:04d}" for k in range(int(num_sequences))]
        if world == "drive":
            base = options or SyntheticOptions()
            self.options = replace(base, width=int(width), height=int(height),
                                   frames=int(frames_per_sequence))
            self.drives = {name: SyntheticDrive(drive_seed(seed, k), self.options)
                           for k, name in enumerate(names)}
        elif world == "random":
            extra = dict(world_options or {})
            self.options = WorldOptions(width=int(width), height=int(height),
                                        frames=int(frames_per_sequence), **extra)
            self.drives = _LazyWorldDrives(names, self.seed, self.options)
        else:
            raise ValueError(f"world must be 'drive' (the classic street drive) or 'random' "
                             f"(the domain-randomised world), got {world!r}")
        items = sequence_items({k: self.options.frames for k in names}, tuple(frame_ids))
        super().__init__(items, height, width, frame_ids, num_scales, is_train, load_depth,
                         augment)
        self._cache: OrderedDict = OrderedDict()
        self._cache_frames = int(cache_frames)

    def frame(self, sequence: str, frame_index: int) -> Frame:
        key = (sequence, frame_index)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        frame = self.drives[sequence].render(frame_index)
        # At least the last frame is kept whatever cache_frames says: a sample reads its image
        # and then its depth, and rendering the frame twice doubled the data loader's CPU time.
        self._cache[key] = frame
        while len(self._cache) > max(self._cache_frames, 1):
                self._cache.popitem(last=False)
        return frame

    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        return self.frame(sequence, frame_index).rgb

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        # images of coarser scales are area-downsampled renders: pixel-centre scaling is exact
        return scale_intrinsics(self.drives[sequence].K,
                                (self.options.width, self.options.height), (width, height))

    def load_depth_gt(self, sequence: str, frame_index: int) -> np.ndarray:
        return self.frame(sequence, frame_index).depth

    def relative_pose(self, sequence: str, frame_index: int, offset: int) -> np.ndarray:
        poses = self.drives[sequence].poses
        return relative_pose(poses[frame_index], poses[frame_index + offset])


class _LazyWorldDrives:
    """sequence name -> WorldDrive, built on first use (thousands of drives cost nothing until
    rendered); the most recent `keep` are kept (a drive is cheap to rebuild: same seed)."""

    def __init__(self, names: list[str], seed: int, options: WorldOptions, keep: int = 256):
        self.seeds = {name: drive_seed(seed, k) for k, name in enumerate(names)}
        self.options, self.keep = options, keep
        self._built: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, name: str) -> WorldDrive:
        drive = self._built.get(name)
        if drive is None:
            drive = WorldDrive(self.seeds[name], self.options)
            self._built[name] = drive
            while len(self._built) > self.keep:
                self._built.popitem(last=False)
        else:
            self._built.move_to_end(name)
        return drive
