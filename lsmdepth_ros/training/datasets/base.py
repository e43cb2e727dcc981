"""The sample format shared by every training data set (monodepth2's, so its recipes carry over).

A sample is a dict with tuple keys (the same style as the networks' ("disp", scale) outputs);
build them with the helpers below rather than by hand:

=================================  ========================================================
key                                value
=================================  ========================================================
``("color", i, s)``                float32 [3, H/2^s, W/2^s] RGB in [0, 1], frame offset i
``("color_aug", i, s)``            same, colour-jittered when training (else the same tensor)
``("K", s)`` / ``("inv_K", s)``    float32 [4, 4] pixel intrinsics at scale s and inverse
``"depth_gt"``                     float32 [1, h, w] metres at the data's native size, 0 =
                                   invalid (monodepth2's convention); only with load_depth
``("pose_gt", i)``                 float32 [4, 4] T mapping frame-0 camera points into frame
                                   i's camera (monodepth2's T); only where poses are known
``"index"``                        int, the item index; ``"flipped"``: bool
=================================  ========================================================

i runs over `frame_ids` (default (0, -1, 1)), s over range(num_scales) (default 4). Images of
every scale are resized from the native image with area interpolation (anti-aliased, as
monodepth2's PIL resize). Intrinsics per scale come from the data set's `intrinsics(...)`,
which follows KITTI's normalised convention for normalised intrinsics and
`geometry.scale_intrinsics` for pixel intrinsics.

Conventions every data set follows (the trainer, the dataset registry and `lsmdepth evaluate`
rely on them; nothing is special-cased per data set):

- Ground-truth depth travels under `DEPTH_KEY` (defined here only). A data set that can have
  depth takes ``load_depth: bool = False`` in its constructor and implements `load_depth_gt`;
  with ``load_depth=True`` every sample carries `DEPTH_KEY`, and when the data holds no depth
  for the chosen options (a bag without a ground-truth topic, ...) the constructor raises
  ValueError naming the option to set. `provides_depth` says whether samples carry it: the
  trainer computes held-out metrics on any held-out set that provides depth.
- Options: every keyword argument of a data set's typed ``__init__`` other than the common ones
  (`COMMON_ARGS`: size, frames, scales, training flag, depth flag, augmentation) is a
  ``data_options`` key of training configs, checked against its annotation before anything is
  built. A new option is a new typed keyword argument; nothing else needs registering.
- Sample randomness (flip, colour jitter) is drawn from torch's global RNG inside
  ``__getitem__``; the trainer seeds it per sample from (seed, epoch, index), so a sample is the
  same whichever process or DataLoader worker loads it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lsmdepth_ros.training.datasets.augment import (
    AugmentOptions,
    ColorAugment,
    flip_intrinsics,
    flip_pose,
)


def color_key(frame_id: int, scale: int = 0, augmented: bool = False) -> tuple:
    return ("color_aug" if augmented else "color", frame_id, scale)


def K_key(scale: int = 0, inverse: bool = False) -> tuple:
    return ("inv_K" if inverse else "K", scale)


def pose_key(frame_id: int) -> tuple:
    return ("pose_gt", frame_id)


DEPTH_KEY = "depth_gt"

# constructor arguments the trainer / evaluator set themselves (never data_options keys)
COMMON_ARGS = ("height", "width", "frame_ids", "num_scales", "is_train", "load_depth", "augment")


@dataclass(frozen=True)
class Item:
    """One training target: a frame of a sequence (the neighbours are frame_index + offsets)."""

    sequence: str
    frame_index: int


class MonoDataset(Dataset):
    """Base class: subclasses say how to load a frame, its intrinsics, depth and poses."""

    def __init__(self, items: list[Item], height: int, width: int,
                 frame_ids: tuple[int, ...] = (0, -1, 1), num_scales: int = 4,
                 is_train: bool = False, load_depth: bool = False,
                 augment: AugmentOptions | None = None):
        if height % (2 ** (num_scales - 1)) or width % (2 ** (num_scales - 1)):
            raise ValueError(f"height and width ({height}x{width}) must be divisible by "
                             f"2^(num_scales-1) = {2 ** (num_scales - 1)}; pick e.g. 192x640")
        if 0 not in frame_ids:
            raise ValueError(f"frame_ids must contain 0 (the target frame), got {frame_ids}")
        self.items = list(items)
        self.height, self.width = int(height), int(width)
        self.frame_ids = tuple(int(i) for i in frame_ids)
        self.num_scales = int(num_scales)
        self.is_train = bool(is_train)
        self.load_depth = bool(load_depth)
        self.augment = augment or AugmentOptions()

    @property
    def provides_depth(self) -> bool:
        """Whether samples carry `DEPTH_KEY` (ground-truth depth in metres)."""
        return self.load_depth

    # -- to implement ----------------------------------------------------------------------
    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        """uint8 [h, w, 3] RGB at the native size."""
        raise NotImplementedError

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        """3x3 pixel intrinsics of this sequence's images resized to (width, height)."""
        raise NotImplementedError

    def load_depth_gt(self, sequence: str, frame_index: int) -> np.ndarray | None:
        """float32 [h, w] metres, NaN or 0 = invalid; None if the data set has no depth."""
        return None

    def relative_pose(self, sequence: str, frame_index: int, offset: int) -> np.ndarray | None:
        """4x4 T mapping camera points of frame_index into frame_index + offset, or None."""
        return None

    # -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        flip, jitter = False, None
        if self.is_train:  # evaluation samples draw nothing from torch's RNG
            # one generator per sample, drawn from torch's RNG (seeded per DataLoader worker)
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ())))
            flip = rng.random() < self.augment.flip_prob
            jitter = ColorAugment(self.augment, rng)
        sample: dict = {"index": index, "flipped": flip}

        for i in self.frame_ids:
            rgb = self.load_rgb(item.sequence, item.frame_index + i)
            if flip:
                rgb = rgb[:, ::-1]
            for s in range(self.num_scales):
                img = _to_tensor(_resize(rgb, self.width >> s, self.height >> s))
                sample[color_key(i, s)] = img
                sample[color_key(i, s, augmented=True)] = jitter(img) if jitter else img

        for s in range(self.num_scales):
            w, h = self.width >> s, self.height >> s
            K = self.intrinsics(item.sequence, w, h)
            if flip:
                K = flip_intrinsics(K, w)
            K4 = np.eye(4)
            K4[:3, :3] = K
            sample[K_key(s)] = torch.from_numpy(K4.astype(np.float32))
            sample[K_key(s, inverse=True)] = torch.from_numpy(np.linalg.inv(K4).astype(np.float32))

        if self.load_depth:
            depth = self.load_depth_gt(item.sequence, item.frame_index)
            if depth is None:
                raise ValueError(f"{type(self).__name__} has no ground-truth depth for "
                                 f"{item}; construct it with load_depth=False")
            depth = np.nan_to_num(np.asarray(depth, np.float32), nan=0.0, posinf=0.0)
            if flip:
                depth = depth[:, ::-1]
            sample[DEPTH_KEY] = torch.from_numpy(np.ascontiguousarray(depth))[None]

        for i in self.frame_ids:
            if i == 0:
                continue
            T = self.relative_pose(item.sequence, item.frame_index, i)
            if T is None:
                break
            if flip:
                T = flip_pose(T)
            sample[pose_key(i)] = torch.from_numpy(np.asarray(T, np.float32))
        return sample


def sequence_items(lengths: dict[str, int], frame_ids: tuple[int, ...]) -> list[Item]:
    """Every frame of every sequence whose neighbours (frame_ids offsets) all exist."""
    lo, hi = min(frame_ids), max(frame_ids)
    return [Item(seq, f) for seq, n in lengths.items() for f in range(max(0, -lo), n - max(0, hi))]


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrink = width < rgb.shape[1] or height < rgb.shape[0]
    return cv2.resize(np.ascontiguousarray(rgb), (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)
