"""rosbag2 recordings as training data: a robot's own drives, with its own motion.

Each bag is read once at construction (mcap or sqlite3; raw or compressed images). Frames are kept
in memory as lossless PNG bytes (`stride` keeps every n-th image and `max_frames` caps the count
for long bags). A bag is cut into sequences wherever the image stream has a gap longer than
`max_gap_factor` times the median frame period, the camera model changes, or an image has no
pose, so neighbours are always consecutive frames. Distorted cameras are rectified to their
projection matrix (as image_proc does), unless the images are rectified already (`rectified`;
by default, when the topic's name starts with image_rect, as image_proc names its outputs): then
P describes them and nothing is remapped.

Camera motion (`relative_pose`, the ("pose_gt", i) sample keys used by `pose_source: dataset`)
comes from `odometry_topic` (nav_msgs/Odometry + the TF chain from its child_frame_id to the
image's frame) or, without odometry, from TF alone (`pose_frame`, e.g. "odom"); see
`lsmdepth_ros.bags.camera_poses`. Images without a pose are left out and counted (`dropped`,
reported once as a warning). Targets whose motion to any source frame is below
`min_translation` metres are left out too: a standing robot teaches nothing, and odometry noise
dominates small motions. With ``load_depth=True``, ground-truth depth (``"depth_gt"``) comes
from `gt_topic` (REP 118 32FC1 metres or 16UC1 millimetres), paired by header stamp.
"""
from __future__ import annotations

import logging
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np

from lsmdepth_ros.bags.bagfile import BagError, expand_bag_paths, read_messages
from lsmdepth_ros.bags.topic_streams import iter_camera_frames
from lsmdepth_ros.geometry import scale_intrinsics
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import Item, MonoDataset, sequence_items
from lsmdepth_ros.training.datasets.folder import Rectifier

log = logging.getLogger(__name__)


class RosbagSequenceDataset(MonoDataset):
    """Image + camera_info topics of one or more bags, in the monodepth2 sample format.

    `bags`: a bag, a folder of bags, a glob, or a list / comma-separated string of those.
    """

    def __init__(self, bags: str | Path | list, image_topic: str = "/camera/image_raw",
                 camera_info_topic: str = "/camera/camera_info", height: int = 192,
                 width: int = 640, frame_ids: tuple[int, ...] = (0, -1, 1), num_scales: int = 4,
                 is_train: bool = False, stride: int = 1, max_frames: int | None = None,
                 max_gap_factor: float = 3.0, augment: AugmentOptions | None = None,
                 odometry_topic: str | None = None, pose_frame: str | None = None,
                 min_translation: float = 0.01, max_pose_gap: float = 0.5,
                 gt_topic: str | None = None, gt_tolerance: float = 0.005,
                 load_depth: bool = False, rectified: bool | None = None):
        from lsmdepth_ros.bags.camera_poses import camera_poses

        if load_depth and not gt_topic:
            raise BagError("ground-truth depth was asked for (held-out metrics or supervision) "
                           "but no gt_topic names its topic: set data_options gt_topic, e.g. "
                           "/camera/depth_gt")
        bag_list = expand_bag_paths(bags)
        if rectified is None:   # image_proc's names: image_rect, image_rect_color
            rectified = image_topic.rstrip("/").rsplit("/", 1)[-1].startswith("image_rect")
        self.frames: dict[str, list[bytes]] = {}
        self.cameras: dict[str, Rectifier] = {}
        self.poses: dict[str, np.ndarray] = {}
        self.depths: dict[str, list[bytes | None]] = {}
        self.depth_shapes: dict[str, tuple[int, int]] = {}
        self.dropped: dict[str, int] = {}
        self.has_poses = odometry_topic is not None or pose_frame is not None
        for bag in bag_list:
            stamps, images, cams, frame_ids_ = _read_images(
                bag, image_topic, camera_info_topic, stride, max_frames)
            keep = np.ones(len(stamps), bool)
            poses = None
            if self.has_poses and stamps:
                poses, missing, _ = camera_poses(bag, frame_ids_, np.asarray(stamps),
                                                 odometry_topic, pose_frame,
                                                 int(max_pose_gap * 1e9))
                for reason, mask in missing.items():
                    self._drop(reason, int(mask.sum()))
                    keep &= ~mask
            depths = (_read_depths(bag, gt_topic, stamps, gt_tolerance, self)
                      if gt_topic and load_depth else None)
            for start, end in _segments(stamps, cams, keep, max_gap_factor):
                key = f"{bag}#{sum(k.startswith(f'{bag}#') for k in self.frames)}"
                self.frames[key] = images[start:end]
                self.cameras[key] = Rectifier(cams[start], rectified)
                if poses is not None:
                    self.poses[key] = poses[start:end]
                if depths is not None:
                    self.depths[key] = depths[start:end]
        frame_ids = tuple(frame_ids)
        items = sequence_items({k: len(v) for k, v in self.frames.items()}, frame_ids)
        if self.has_poses and min_translation > 0:
            moving = [it for it in items if self._moves(it, frame_ids, min_translation)]
            self._drop(f"moving less than min_translation = {min_translation} m (targets)",
                       len(items) - len(moving))
            items = moving
        if self.dropped:
            log.warning("%s: left out %s", ", ".join(map(str, bag_list)),
                        "; ".join(f"{n} images {why}" for why, n in self.dropped.items()))
        if not items:
            raise BagError(f"no usable image sequence on {image_topic} in "
                           f"{[str(b) for b in bag_list]}: need more than "
                           f"{max(frame_ids) - min(frame_ids)} consecutive images with "
                           f"camera_info on {camera_info_topic}"
                           + (f" and a pose (left out: {self.dropped})" if self.dropped else ""))
        super().__init__(items, height, width, frame_ids, num_scales, is_train, load_depth,
                         augment)

    def _drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def _moves(self, item: Item, frame_ids: tuple[int, ...], min_translation: float) -> bool:
        return all(np.linalg.norm(self.relative_pose(item.sequence, item.frame_index, i)[:3, 3])
                   >= min_translation for i in frame_ids if i != 0)

    def load_rgb(self, sequence: str, frame_index: int) -> np.ndarray:
        import cv2

        bgr = cv2.imdecode(np.frombuffer(self.frames[sequence][frame_index], np.uint8),
                           cv2.IMREAD_COLOR)
        return self.cameras[sequence](bgr[:, :, ::-1])

    def intrinsics(self, sequence: str, width: int, height: int) -> np.ndarray:
        cam = self.cameras[sequence]
        return scale_intrinsics(cam.K, cam.size, (width, height))

    def relative_pose(self, sequence: str, frame_index: int, offset: int) -> np.ndarray | None:
        """T mapping points of camera `frame_index` into camera `frame_index + offset`."""
        if not self.has_poses:
            return None
        poses = self.poses[sequence]
        return np.linalg.inv(poses[frame_index + offset]) @ poses[frame_index]

    def load_depth_gt(self, sequence: str, frame_index: int) -> np.ndarray | None:
        if sequence not in self.depths:
            return None
        packed = self.depths[sequence][frame_index]
        if packed is None:
            raise BagError(f"frame {frame_index} of {sequence} has no ground-truth depth within "
                           "gt_tolerance of its stamp; raise gt_tolerance or record the depth")
        h, w = self.depth_shapes[sequence.rsplit("#", 1)[0]]
        depth = np.frombuffer(zlib.decompress(packed), np.float32).reshape(h, w)
        maps = self.cameras[sequence].maps
        if maps is None or depth.shape[::-1] != self.cameras[sequence].size:
            return depth
        import cv2

        # depth of a distorted camera: rectified like its image, without mixing depths
        return cv2.remap(depth, maps[0], maps[1], cv2.INTER_NEAREST)


def _read_images(bag, image_topic, camera_info_topic, stride, max_frames):
    import cv2

    stamps, images, cams, frame_ids = [], [], [], []
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
        frame_ids.append(frame.frame_id)
    return stamps, images, cams, frame_ids


def _read_depths(bag, topic: str, stamps: list[int], tolerance: float, dataset
                 ) -> list[bytes | None]:
    """Ground-truth depth (metres, float32, zlib) of each image: the nearest header stamp."""
    from lsmdepth_ros.bags.messages import depth_to_metres, image_to_numpy, stamp_to_ns

    found: dict[int, bytes] = {}
    shape = None
    for m in read_messages(bag, [topic]):
        try:
            depth = depth_to_metres(image_to_numpy(m.msg), m.msg.encoding)
        except ValueError as exc:
            raise BagError(f"gt_topic {topic} in {bag}: {exc}") from exc
        if shape not in (None, depth.shape):
            raise BagError(f"gt_topic {topic} in {bag} changes size ({shape} -> {depth.shape})")
        shape = depth.shape
        found[stamp_to_ns(m.msg.header.stamp)] = zlib.compress(depth.tobytes(), 1)
    if shape is None:
        raise BagError(f"gt_topic {topic} in {bag} holds no messages")
    dataset.depth_shapes[str(bag)] = shape
    known = np.array(sorted(found), np.int64)
    out: list[bytes | None] = []
    for stamp in stamps:
        i = int(np.argmin(np.abs(known - stamp)))
        out.append(found[int(known[i])] if abs(int(known[i]) - stamp) <= tolerance * 1e9 else None)
    dataset._drop(f"without {topic} within {tolerance} s (kept, no depth)",
                  sum(d is None for d in out))
    return out


def _segments(stamps: list[int], cams: list, keep: np.ndarray,
              max_gap_factor: float) -> list[tuple[int, int]]:
    """[start, end) ranges of kept frames without time gaps or camera changes."""
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
        if gap or changed or dt[i - 1] <= 0 or keep[i] != keep[i - 1]:
            cuts.append(i)
    cuts.append(len(stamps))
    return [(a, b) for a, b in pairwise(cuts) if keep[a]]
