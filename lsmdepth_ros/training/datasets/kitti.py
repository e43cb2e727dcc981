"""KITTI raw in monodepth2's folder layout, with its split files.

Layout (under `data_path`)::

    2011_09_26/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png   (or .jpg; image_03 = right)
    2011_09_26/2011_09_26_drive_0001_sync/velodyne_points/data/0000000000.bin
    2011_09_26/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000005.png  (optional)
    2011_09_26/2011_09_26_drive_0001_sync/poses.txt    (optional, written for synthetic data)

Split files (e.g. monodepth2's splits/eigen_zhou/train_files.txt) hold one line per target
frame: ``<date>/<drive> <frame_index> <l|r>``; the neighbours frame_index + frame_ids must exist.

Intrinsics: "kitti" uses monodepth2's fixed normalised K (0.58, 1.92, 0.5, 0.5) times the image
size of each scale, exactly as monodepth2 does; "calib" reads P_rect_0X and S_rect_0X from the
date folder's calib_cam_to_cam.txt and rescales with `geometry.scale_intrinsics`.
Depth ("depth_gt", native KITTI resolution): "png" = annotated depth PNGs (uint16 / 256),
"velodyne" = projected scans (camera z as monodepth2's KITTI data set; vel_depth=True gives the
scanner's forward distance as its export_gt_depth.py does for the Eigen split), "auto" = png
if present.
`poses.txt` (optional; 12 numbers per line, row-major 3x4 T_world_cam of image_02, KITTI
odometry style) gives ("pose_gt", i) for left-camera items.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.geometry import (
    KITTI_K_NORMALIZED,
    normalized_to_pixel_intrinsics,
    scale_intrinsics,
)
from lsmdepth_ros.metrics import read_depth_png
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import Item, MonoDataset
from lsmdepth_ros.training.datasets.kitti_velodyne import (
    generate_depth_map,
    read_calib_file,
)

SIDE_TO_CAMERA = {"l": 2, "r": 3, "2": 2, "3": 3}


def read_split_file(path: str | Path) -> list[str]:
    """Non-empty lines of a split file."""
    try:
        return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read split file {path}: {exc}. Expected a text file with "
                         f"lines '<date>/<drive> <frame_index> <l|r>'") from exc


def parse_split_line(line: str) -> tuple[str, int, str]:
    parts = line.split()
    if len(parts) not in (2, 3) or not parts[1].lstrip("-").isdigit():
        raise ValueError(f"bad split line {line!r}: expected '<folder> <frame_index> <l|r>'")
    side = parts[2] if len(parts) == 3 else "l"
    if side not in SIDE_TO_CAMERA:
        raise ValueError(f"bad side {side!r} in split line {line!r}: expected l, r, 2 or 3")
    return parts[0], int(parts[1]), side


def read_poses_file(path: str | Path) -> np.ndarray:
    """KITTI odometry poses (12 numbers per line) -> [N, 4, 4]."""
    values = np.loadtxt(path, ndmin=2)
    if values.shape[1] != 12:
        raise ValueError(f"{path}: expected 12 numbers per line (3x4 pose), got {values.shape[1]}")
    poses = np.tile(np.eye(4), (values.shape[0], 1, 1))
    poses[:, :3, :] = values.reshape(-1, 3, 4)
    return poses


class KittiRawDataset(MonoDataset):
    """KITTI raw (or a KITTI-like synthetic folder) read through split-file lines."""

    def __init__(self, data_path: str | Path, filenames: list[str] | str | Path,
                 height: int = 192, width: int = 640, frame_ids: tuple[int, ...] = (0, -1, 1),
                 num_scales: int = 4, is_train: bool = False, load_depth: bool = False,
                 img_ext: str = "auto", intrinsics: str | np.ndarray = "kitti",
                 depth_source: str = "auto", vel_depth: bool = False,
                 augment: AugmentOptions | None = None):
        self.data_path = Path(data_path)
        if not self.data_path.is_dir():
            raise ValueError(f"KITTI data path {self.data_path} is not a directory; pass the "
                             f"folder that holds the <date> folders (e.g. kitti_data/)")
        lines = read_split_file(filenames) if isinstance(filenames, (str, Path)) else filenames
        items = []
        for line in lines:
            folder, index, side = parse_split_line(line)
            items.append(Item(f"{folder} {side}", index))
        if not items:
            raise ValueError(f"split {filenames} lists no frames")
        if img_ext not in ("auto", ".png", ".jpg"):
            raise ValueError(f"img_ext must be 'auto', '.png' or '.jpg', got {img_ext!r}")
        if depth_source not in ("auto", "png", "velodyne"):
            raise ValueError(f"depth_source must be 'auto', 'png' or 'velodyne', got "
                             f"{depth_source!r}")
        self.img_ext = img_ext
        self.depth_source = depth_source
        self.vel_depth = bool(vel_depth)
        if isinstance(intrinsics, str) and intrinsics not in ("kitti", "calib"):
            raise ValueError(f"intrinsics must be 'kitti', 'calib' or a normalised 3x3 K, got "
                             f"{intrinsics!r}")
        self._intrinsics_mode = intrinsics
        self._calib_cache: dict = {}
        self._pose_cache: dict = {}
        super().__init__(items, height, width, frame_ids, num_scales, is_train, load_depth,
                         augment)

    # -- paths --------------------------------------------------------------------------------
    @staticmethod
    def _split(sequence: str) -> tuple[str, int]:
        folder, side = sequence.rsplit(" ", 1)
        return folder, SIDE_TO_CAMERA[side]

    def image_path(self, sequence: str, frame_index: int) -> Path:
        folder, cam = self._split(sequence)
        base = self.data_path / folder / f"image_0{cam}" / "data" / f"{frame_index:010d}"
        if self.img_ext == "auto":
            for ext in (".png", ".jpg"):
                if base.with_suffix(ext).exists():
                    return base.with_suffix(ext)
            return base.with_suffix(".png")
        return base.with_suffix(self.img_ext)

    # -- MonoDataset -------------------------------------------------------------------------
    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        import cv2

        path = self.image_path(sequence, frame_index)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"missing or unreadable image {path} (frame {frame_index} of "
                             f"{sequence}); check data_path, the image extension (monodepth2 "
                             f"converts KITTI to .jpg) and that neighbours of split frames exist")
        return bgr[:, :, ::-1]

    def _calib(self, folder: str, cam: int) -> tuple[np.ndarray, tuple[int, int]]:
        date = folder.split("/")[0]
        key = (date, cam)
        if key not in self._calib_cache:
            calib = read_calib_file(self.data_path / date / "calib_cam_to_cam.txt")
            try:
                P = calib[f"P_rect_0{cam}"].reshape(3, 4)
                size = tuple(int(v) for v in calib[f"S_rect_0{cam}"])
            except KeyError as exc:
                raise ValueError(f"{self.data_path / date / 'calib_cam_to_cam.txt'} lacks "
                                 f"{exc}; use intrinsics='kitti' or fix the file") from exc
            self._calib_cache[key] = (P[:, :3].copy(), size)
        return self._calib_cache[key]

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        mode = self._intrinsics_mode
        if isinstance(mode, str) and mode == "calib":
            folder, cam = self._split(sequence)
            K, size = self._calib(folder, cam)
            return scale_intrinsics(K, size, (width, height))
        K_norm = KITTI_K_NORMALIZED if isinstance(mode, str) else np.asarray(mode, np.float64)
        return normalized_to_pixel_intrinsics(K_norm, width, height)

    def depth_png_path(self, sequence: str, frame_index: int) -> Path:
        folder, cam = self._split(sequence)
        return (self.data_path / folder / "proj_depth" / "groundtruth" / f"image_0{cam}"
                / f"{frame_index:010d}.png")

    def load_depth_gt(self, sequence: str, frame_index: int) -> np.ndarray:
        folder, cam = self._split(sequence)
        png = self.depth_png_path(sequence, frame_index)
        if self.depth_source == "png" or (self.depth_source == "auto" and png.exists()):
            return read_depth_png(png)
        velo = self.data_path / folder / "velodyne_points" / "data" / f"{frame_index:010d}.bin"
        if not velo.exists():
            raise ValueError(f"no ground truth for frame {frame_index} of {folder}: neither "
                             f"{png} nor {velo} exists")
        return generate_depth_map(self.data_path / folder.split("/")[0], velo, cam, self.vel_depth)

    def relative_pose(self, sequence: str, frame_index: int, offset: int) -> np.ndarray | None:
        folder, cam = self._split(sequence)
        if cam != 2:
            return None
        if folder not in self._pose_cache:
            path = self.data_path / folder / "poses.txt"
            self._pose_cache[folder] = read_poses_file(path) if path.exists() else None
        poses = self._pose_cache[folder]
        if poses is None:
            return None
        return np.linalg.inv(poses[frame_index + offset]) @ poses[frame_index]


def synthetic_folder_dataset(root: str | Path, split: str = "train", split_name: str = "synthetic",
                             **kwargs) -> KittiRawDataset:
    """A folder written by `write_kitti_layout` / `lsmdepth synth --kind kitti` as a data set.

    Uses the folder's calibration (exact synthetic intrinsics), its depth PNGs and poses.
    kwargs go to KittiRawDataset (height, width, frame_ids, is_train, load_depth, ...).
    """
    root = Path(root)
    split_file = root / "splits" / split_name / f"{split}_files.txt"
    if not split_file.exists():
        raise ValueError(f"{split_file} does not exist: is {root} a folder written by "
                         f"`lsmdepth synth --kind kitti`? (splits: train, val, test)")
    kwargs.setdefault("intrinsics", "calib")
    kwargs.setdefault("depth_source", "png")
    return KittiRawDataset(root, split_file, **kwargs)
