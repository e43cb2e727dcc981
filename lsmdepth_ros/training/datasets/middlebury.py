"""Real-image check: Middlebury 2014 "motorcycle" as shipped inside the scikit-image wheel.

scikit-image ships the left image and its ground-truth disparity at a quarter of the original
resolution (741x500): `skimage/data/motorcycle_left.png` and `motorcycle_disp.npz` (+inf where
the disparity is unknown). Depth follows Middlebury's calibration, scaled to that resolution:

    Z = B * f / (d + doffs)    f = 994.978 px, doffs = 31.086 px, B = 0.193001 m

Nothing is downloaded: the files are read from the installed package (a clear error says what to
install if they are missing).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StereoCalibration:
    """What turns a disparity (pixels) into depth (metres): Z = baseline * f / (d + doffs)."""

    focal_px: float
    doffs_px: float
    baseline_m: float


#: Middlebury 2014 Motorcycle (calib.txt: f = 3979.911, doffs = 124.343, baseline = 193.001 mm),
#: at the quarter resolution scikit-image ships (f and doffs divided by 4).
MOTORCYCLE = StereoCalibration(focal_px=994.978, doffs_px=31.086, baseline_m=0.193001)


def stereo_disparity_to_depth(disparity: np.ndarray, calib: StereoCalibration) -> np.ndarray:
    """Depth [m] float32 from a stereo disparity map [px]; non-finite or <= -doffs -> NaN."""
    d = np.asarray(disparity, np.float64)
    denom = d + calib.doffs_px
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = calib.baseline_m * calib.focal_px / denom
    depth[~np.isfinite(d) | ~(denom > 0)] = np.nan
    return depth.astype(np.float32)


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def load_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [500, 741, 3], depth float32 [500, 741] metres, NaN = unknown)."""
    import cv2

    folder = skimage_data_dir()
    image_path, disp_path = folder / "motorcycle_left.png", folder / "motorcycle_disp.npz"
    for path in (image_path, disp_path):
        if not path.is_file():
            raise ValueError(f"{path} is missing: the Middlebury motorcycle files ship inside the "
                             f"scikit-image wheel (pip install scikit-image, see requirements.txt)")
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {image_path}")
    with np.load(disp_path, allow_pickle=False) as npz:
        disparity = npz[npz.files[0]]
    if disparity.shape != bgr.shape[:2]:
        raise ValueError(f"{disp_path} has shape {disparity.shape}, the image {bgr.shape[:2]}")
    return np.ascontiguousarray(bgr[:, :, ::-1]), stereo_disparity_to_depth(disparity, MOTORCYCLE)


class ImageDepthPairs:
    """In-memory evaluation pairs in the format `evaluate_model` reads (as ImageDepthFolder):
    {("color", 0, 0): [3, height, width] RGB in [0, 1], "depth_gt": [1, h, w] metres, 0 invalid}.
    """

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], height: int, width: int):
        if not pairs:
            raise ValueError("no image + depth pairs to evaluate")
        self.pairs, self.height, self.width = pairs, int(height), int(width)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        import cv2
        import torch

        rgb, depth = self.pairs[index]
        rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        depth = np.nan_to_num(depth, nan=0.0, posinf=0.0).astype(np.float32)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
        return {("color", 0, 0): image, "depth_gt": torch.from_numpy(depth)[None]}


def middlebury_dataset(height: int, width: int) -> ImageDepthPairs:
    """The motorcycle frame at the network's input size (the evaluator resizes back)."""
    return ImageDepthPairs([load_motorcycle()], height, width)
