"""rosbag2 recordings (image + camera_info topics) as training data: a robot's own drives.

Each bag is read once at construction (via `lsmdepth_ros.bagio`, mcap or sqlite3; raw or
compressed images). Frames are kept in memory as lossless PNG bytes (`stride` keeps every n-th
image and `max_frames` caps the count for long bags). A bag is cut into sequences wherever the
image stream has a gap longer than `max_gap_factor` times the median frame period or the camera
model changes, so neighbours are always consecutive frames. Distorted cameras are rectified to
their projection matrix (as image_proc does).
"""
from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np

from lsmdepth_ros.bagio import BagError, iter_camera_frames
from lsmdepth_ros.geometry import scale_intrinsics
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import MonoDataset, sequence_items
from lsmdepth_ros.training.datasets.folder import Rectifier


class RosbagSequenceDataset(MonoDataset):
    """Image + camera_info topics of one or more bags, in the monodepth2 sample format."""

    def __init__(self, bags: str | Path | list, image_topic: str = "/camera/image_raw",
                 camera_info_topic: str = "/camera/camera_info", height: int = 192,
                 width: int = 640, frame_ids: tuple[int, ...] = (0, -1, 1), num_scales: int = 4,
                 is_train: bool = False, stride: int = 1, max_frames: int | None = None,
                 max_gap_factor: float = 3.0, augment: AugmentOptions | None = None):
        import cv2

        bag_list = [bags] if isinstance(bags, (str, Path)) else list(bags)
        self.frames: dict[str, list[bytes]] = {}
        self.cameras: dict[str, Rectifier] = {}
        for bag in bag_list:
            stamps, images, cams = [], [], []
            for k, frame in enumerate(iter_camera_frames(bag, image_topic, camera_info_topic)):
                if k % max(1, int(stride)):
                    continue
                if max_frames is not None and len(images) >= max_frames:
                    break
                if frame.image.ndim != 3:
                    raise BagError(f"{image_topic} in {bag} is not a colour image")
                ok, png = cv2.imencode(".png", frame.image[:, :, ::-1])
                if not ok:
                    raise BagError(f"cannot encode an image of {bag}")
                stamps.append(frame.stamp_ns)
                images.append(png.tobytes())
                cams.append(frame.camera)
            for start, end in _segments(stamps, cams, max_gap_factor):
                key = f"{bag}#{len([k for k in self.frames if k.startswith(f'{bag}#')])}"
                self.frames[key] = images[start:end]
                self.cameras[key] = Rectifier(cams[start])
        items = sequence_items({k: len(v) for k, v in self.frames.items()}, tuple(frame_ids))
        if not items:
            raise BagError(f"no usable image sequence on {image_topic} in {bag_list}: need more "
                           f"than {max(frame_ids) - min(frame_ids)} consecutive images with "
                           f"camera_info on {camera_info_topic}")
        super().__init__(items, height, width, frame_ids, num_scales, is_train, False, augment)

    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        import cv2

        bgr = cv2.imdecode(np.frombuffer(self.frames[sequence][frame_index], np.uint8),
                           cv2.IMREAD_COLOR)
        return self.cameras[sequence](bgr[:, :, ::-1])

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        cam = self.cameras[sequence]
        return scale_intrinsics(cam.K, cam.size, (width, height))


def _segments(stamps: list[int], cams: list, max_gap_factor: float) -> list[tuple[int, int]]:
    """[start, end) ranges without time gaps or camera changes."""
    if not stamps:
        return []
    dt = np.diff(np.asarray(stamps, np.int64))
    period = float(np.median(dt)) if dt.size else 0.0
    cuts = [0]
    for i in range(1, len(stamps)):
        gap = period > 0 and dt[i - 1] > max_gap_factor * period
        changed = not (np.array_equal(cams[i].K, cams[i - 1].K)
                       and np.array_equal(cams[i].D, cams[i - 1].D)
                       and cams[i].width == cams[i - 1].width)
        if gap or changed or dt[i - 1] <= 0:
            cuts.append(i)
    cuts.append(len(stamps))
    return list(pairwise(cuts))
