"""Calibration images for `lsmdepth export --int8 --calibration DATA`.

DATA is one of:
  synthetic[:SEED]   frames of the procedural drive (seed 0 by default; the held-out data of the
                     benchmarks uses other seeds), rendered at the network's input size;
  a folder           its .png / .jpg / .jpeg / .bmp images, in name order;
  a rosbag2 bag      its folder, or the .mcap / .db3 file: the images of --calibration-topic,
                     or of its only sensor_msgs Image / CompressedImage topic.
Calibrate on images like the ones the robot will see: activation ranges come from them.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class CalibrationError(ValueError):
    """The calibration source does not exist or holds no usable images."""


def _is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".mcap", ".db3")
    return (path / "metadata.yaml").is_file()


def _synthetic(seed: int, size: tuple[int, int], frames: int) -> Iterator[np.ndarray]:
    from ..synthetic.drive import SyntheticDrive, SyntheticOptions

    drive = SyntheticDrive(seed=seed, options=SyntheticOptions(frames=frames, width=size[0],
                                                               height=size[1]))
    for frame in drive:
        yield frame.rgb


def _folder(folder: Path, frames: int) -> Iterator[np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"calibration folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} "
                               "images")
    step = max(len(files) // frames, 1)  # spread over the whole folder, not its first frames
    for path in files[::step][:frames]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CalibrationError(f"cannot read calibration image {path}")
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _bag(path: Path, topic: str, frames: int) -> Iterator[np.ndarray]:
    from ..bags.bagfile import bag_topics, read_messages
    from ..bags.messages import compressed_to_rgb, image_to_rgb

    topics = bag_topics(path)
    if not topic:
        images = sorted(t for t, info in topics.items() if info.msgtype in IMAGE_TYPES)
        if len(images) != 1:
            listing = ", ".join(images) or "none"
            raise CalibrationError(f"bag {path} has {len(images)} image topics ({listing}); "
                                   "name one with --calibration-topic")
        topic = images[0]
    count = topics[topic].count if topic in topics else 0
    step = max(count // frames, 1)
    taken = 0
    for i, m in enumerate(read_messages(path, [topic])):
        if i % step or taken >= frames:
            continue
        taken += 1
        yield compressed_to_rgb(m.msg) if m.msgtype.endswith("CompressedImage") else \
            image_to_rgb(m.msg)


def calibration_images(source: str, size: tuple[int, int], frames: int = 64,
                       topic: str = "") -> Iterator[np.ndarray]:
    """RGB uint8 images (any size) from `source`; `size` = (width, height) for synthetic."""
    if frames < 1:
        raise CalibrationError(f"--calibration-frames must be >= 1, got {frames}")
    if source == "synthetic" or source.startswith("synthetic:"):
        seed_text = source.partition(":")[2] or "0"
        try:
            seed = int(seed_text)
        except ValueError:
            raise CalibrationError(f"synthetic calibration seed must be an integer, got "
                                   f"{seed_text!r} (e.g. synthetic:3)") from None
        return _synthetic(seed, size, frames)
    path = Path(source).expanduser()
    if not path.exists():
        raise CalibrationError(f"calibration source {path} does not exist; expected "
                               "'synthetic[:SEED]', an image folder or a rosbag2 bag")
    if _is_bag(path):
        return _bag(path, topic, frames)
    if path.is_dir():
        return _folder(path, frames)
    raise CalibrationError(f"calibration source {path} is neither an image folder nor a bag "
                           "(.mcap/.db3 or a folder with metadata.yaml)")
