"""Folders of image sequences with an intrinsics YAML: the simplest way to train on your own data.

Layout::

    ROOT/intrinsics.yaml          camera of every sequence (a sequence folder may have its own)
    ROOT/<sequence>/000000.png    frames sorted by file name (.png, .jpg, .jpeg)
    (or the images directly in ROOT: one sequence)

intrinsics.yaml is either flat pixel intrinsics at the images' size::

    width: 1280
    height: 720
    fx: 900.0
    fy: 900.0
    cx: 640.0
    cy: 360.0
    distortion_model: plumb_bob   # optional, with
    D: [k1, k2, p1, p2, k3]       # optional

or the YAML written by ROS camera_calibration (image_width, image_height, camera_matrix,
distortion_model, distortion_coefficients, rectification_matrix, projection_matrix). Distorted
images are rectified (plumb_bob / rational_polynomial with OpenCV, equidistant with cv2.fisheye)
to the projection matrix's intrinsics, as image_proc's rectify node does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.bags.messages import CameraModel
from lsmdepth_ros.geometry import scale_intrinsics
from lsmdepth_ros.metrics import KITTI_PNG_SCALE
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import DEPTH_KEY, MonoDataset, sequence_items

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".npy", ".png", ".tif", ".tiff")


def load_intrinsics_yaml(path: str | Path) -> CameraModel:
    """Flat or ROS camera_calibration YAML -> CameraModel (see the module docstring)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read intrinsics YAML {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping (fx, fy, cx, cy, width, height)")  # noqa: TRY004
    try:
        if "camera_matrix" in data:
            K = np.array(data["camera_matrix"]["data"], np.float64).reshape(3, 3)
            w, h = int(data["image_width"]), int(data["image_height"])
            D = np.array(data.get("distortion_coefficients", {}).get("data", []), np.float64)
            R = np.array(data.get("rectification_matrix", {}).get("data", np.eye(3).ravel()),
                         np.float64).reshape(3, 3)
            P = data.get("projection_matrix", {}).get("data")
            model = str(data.get("distortion_model", "plumb_bob"))
        else:
            K = np.array([[data["fx"], 0, data["cx"]], [0, data["fy"], data["cy"]], [0, 0, 1]],
                         np.float64)
            w, h = int(data["width"]), int(data["height"])
            D = np.array(data.get("D", []), np.float64)
            R, P = np.eye(3), None
            model = str(data.get("distortion_model", "plumb_bob"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: missing or malformed intrinsics ({exc}); expected fx, fy, cx, "
                         f"cy, width, height (pixels) or a ROS camera_calibration YAML") from exc
    if P is None:
        P = np.hstack([K, np.zeros((3, 1))])
    P = np.array(P, np.float64).reshape(3, 4)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or w <= 0 or h <= 0:
        raise ValueError(f"{path}: fx, fy, width and height must be positive")
    return CameraModel(w, h, K, D, R, P, model)


class Rectifier:
    """Undistorts images of a camera (identity when D is all zero); `K` is the output camera.

    `rectified`: the images are rectified already (image_proc's image_rect, whose camera_info
    is the raw camera's, D included): no remapping, and `K` is P's (K when P is unset).
    """

    def __init__(self, camera: CameraModel, rectified: bool = False):
        self.size = (camera.width, camera.height)
        self.maps = None
        P = camera.P[:, :3]
        if rectified:
            self.K = P.copy() if P[0, 0] > 0 and P[1, 1] > 0 else camera.K.copy()
            return
        if not camera.is_distorted:
            self.K = camera.K.copy()
            return
        import cv2

        self.K = P.copy() if P[0, 0] > 0 else camera.K.copy()
        if camera.distortion_model in ("plumb_bob", "rational_polynomial"):
            self.maps = cv2.initUndistortRectifyMap(camera.K, camera.D, camera.R, self.K,
                                                    self.size, cv2.CV_32FC1)
        elif camera.distortion_model == "equidistant":
            self.maps = cv2.fisheye.initUndistortRectifyMap(camera.K, camera.D[:4], camera.R,
                                                            self.K, self.size, cv2.CV_32FC1)
        else:
            raise ValueError(f"distortion model {camera.distortion_model!r} is not supported; "
                             f"use plumb_bob, rational_polynomial or equidistant, or rectify the "
                             f"images first")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.shape[1] != self.size[0] or image.shape[0] != self.size[1]:
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but its intrinsics are "
                             f"for {self.size[0]}x{self.size[1]}; fix the intrinsics size")
        if self.maps is None:
            return image
        import cv2

        return cv2.remap(image, self.maps[0], self.maps[1], cv2.INTER_LINEAR)


class FolderSequenceDataset(MonoDataset):
    """Sub-folders of ordered frames (or one folder) + intrinsics YAML, monodepth2 samples."""

    def __init__(self, root: str | Path, height: int = 192, width: int = 640,
                 frame_ids: tuple[int, ...] = (0, -1, 1), num_scales: int = 4,
                 is_train: bool = False, intrinsics: str | Path | None = None, stride: int = 1,
                 augment: AugmentOptions | None = None):
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root} is not a folder of image sequences")
        folders = [root] + sorted(p for p in root.iterdir() if p.is_dir())
        self.frames: dict[str, list[Path]] = {}
        self.cameras: dict[str, Rectifier] = {}
        default_yaml = Path(intrinsics) if intrinsics else root / "intrinsics.yaml"
        for folder in folders:
            images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            images = images[::max(1, int(stride))]
            if len(images) < 1:
                continue
            own = folder / "intrinsics.yaml"
            yaml_path = own if own.exists() and not intrinsics else default_yaml
            if not yaml_path.exists():
                raise ValueError(f"no intrinsics for {folder}: expected {yaml_path} (fx, fy, cx, "
                                 f"cy, width, height) or pass intrinsics=PATH")
            key = str(folder.relative_to(root)) if folder != root else "."
            self.frames[key] = images
            self.cameras[key] = Rectifier(load_intrinsics_yaml(yaml_path))
        items = sequence_items({k: len(v) for k, v in self.frames.items()}, tuple(frame_ids))
        if not items:
            raise ValueError(f"no usable frames under {root}: each sequence needs more than "
                             f"{max(frame_ids) - min(frame_ids)} images ({IMAGE_SUFFIXES})")
        super().__init__(items, height, width, frame_ids, num_scales, is_train, False, augment)

    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        import cv2

        path = self.frames[sequence][frame_index]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        return self.cameras[sequence](bgr[:, :, ::-1])

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        cam = self.cameras[sequence]
        return scale_intrinsics(cam.K, cam.size, (width, height))


class ImageDepthFolder:
    """Evaluation pairs: images in one folder, ground-truth depth in another, matched by stem.

    Depth files are .npy (float metres, NaN or 0 invalid), single-channel float TIFF
    (metres) or uint16 PNGs (metres * `png_scale`: 256 KITTI, 1000 millimetres, 5000 TUM RGB-D).
    Yields {("color", 0, 0): [3, height, width] RGB in [0, 1], "depth_gt": [1, h, w]}.
    """

    provides_depth = True

    def __init__(self, images: str | Path, depths: str | Path, height: int, width: int,
                 png_scale: float = KITTI_PNG_SCALE):
        images, depths = Path(images), Path(depths)
        for folder in (images, depths):
            if not folder.is_dir():
                raise ValueError(f"{folder} is not a folder")
        if not png_scale > 0:
            raise ValueError(f"png_scale must be > 0 (PNG units per metre), got {png_scale}")
        self.png_scale = float(png_scale)
        depth_files = {p.stem: p for p in depths.iterdir() if p.suffix.lower() in DEPTH_SUFFIXES}
        self.pairs = []
        for img in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            if img.stem not in depth_files:
                raise ValueError(f"no ground truth for {img.name} in {depths} (expected "
                                 f"{img.stem} with one of {', '.join(DEPTH_SUFFIXES)})")
            self.pairs.append((img, depth_files[img.stem]))
        if not self.pairs:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
        self.height, self.width = int(height), int(width)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        import cv2
        import torch

        from lsmdepth_ros.metrics import read_depth_png

        img_path, depth_path = self.pairs[index]
        bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {img_path}")
        rgb = cv2.resize(bgr[:, :, ::-1], (self.width, self.height), interpolation=cv2.INTER_AREA)
        suffix = depth_path.suffix.lower()
        if suffix == ".npy":
            depth = np.load(depth_path, allow_pickle=False).astype(np.float32)
        elif suffix == ".png":
            depth = read_depth_png(depth_path, self.png_scale)
        else:   # float TIFF in metres
            depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
            if depth is None or depth.dtype.kind != "f":
                raise ValueError(f"{depth_path}: expected a float depth image in metres, got "
                                 f"{None if depth is None else depth.dtype}")
            depth = depth.astype(np.float32)
        if depth.ndim != 2:
            raise ValueError(f"{depth_path}: expected a 2-D depth map, got shape {depth.shape}")
        depth = np.nan_to_num(depth, nan=0.0, posinf=0.0)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
        return {("color", 0, 0): image, DEPTH_KEY: torch.from_numpy(depth)[None]}
