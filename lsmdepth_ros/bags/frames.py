"""Streams of decoded frames out of a bag, and pairing them by header stamp.

A frame is (header stamp ns, bag time ns, payload). The streams decode with rosbags (no ROS
graph) and turn messages into numpy through `lsmdepth_ros.bagio`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsmdepth_ros import bagio
from lsmdepth_ros.bags.common import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD,
    BagError,
    stamp_ns,
    topic_type,
)
from lsmdepth_ros.bags.convert import camera_info_to_numpy, cloud_to_xyz, image_to_numpy


@dataclass
class Frame:
    stamp: int          # header stamp, ns
    bag_time: int       # when it was recorded, ns
    data: Any


def iter_frames(path, topic: str, expected_type: str, convert: Callable, role: str
                ) -> Iterator[Frame]:
    """Decoded frames of one topic; each call reads the bag with its own reader."""
    topic_type(path, topic, expected_type, role)
    for m in bagio.read_messages(path, [topic]):
        try:
            data = convert(m.msg)
        except ValueError as exc:
            raise BagError(f"{role} {topic}: {exc}") from exc
        yield Frame(stamp_ns(m.msg.header), m.stamp_ns, data)


def image_frames(path, topic: str, role: str = "image topic") -> Iterator[Frame]:
    """Frames whose data is (array, encoding)."""
    return iter_frames(path, topic, IMAGE, image_to_numpy, role)


def cloud_frames(path, topic: str) -> Iterator[Frame]:
    """Frames whose data is an [N, 3] float64 array of finite x, y, z."""
    return iter_frames(path, topic, POINT_CLOUD, cloud_to_xyz, "LiDAR topic")


def camera_infos(path, topic: str, image_topic: str) -> list[Frame]:
    """Every camera_info on `topic` (data: (K 3x3, width, height)); a clear error if none."""
    present = set(bagio.bag_topics(path))
    if topic not in present:
        raise BagError(f"images on {image_topic} have no camera_info: {topic} is not in bag "
                       f"{path} (topics present: {', '.join(sorted(present))}); record "
                       "the camera_info topic with the images, or name it with --camera-info-topic")
    infos = sorted(iter_frames(path, topic, CAMERA_INFO, camera_info_to_numpy,
                               "camera_info topic"), key=lambda f: f.stamp)
    if not infos:
        raise BagError(f"images on {image_topic} have no camera_info: {topic} holds no messages in "
                       f"bag {path}; record the camera_info topic with the images")
    return infos


def default_camera_info_topic(image_topic: str) -> str:
    """image_transport's convention: camera_info lives beside the image topic."""
    namespace = image_topic.rsplit("/", 1)[0]
    return f"{namespace}/camera_info"


class StampMatcher:
    """Pairs queries with the frame of a stream whose header stamp is nearest (within a
    tolerance). Both sides are expected in (roughly) increasing stamp order, as recorded; the
    stream is read lazily and only a window of it is held in memory."""

    def __init__(self, frames: Iterator[Frame], tolerance_ns: int) -> None:
        self._frames = frames
        self._tolerance = int(tolerance_ns)
        self._buffer: list[Frame] = []
        self._last_read: int | None = None
        self._done = False

    def find(self, stamp: int) -> Frame | None:
        while not self._done and (self._last_read is None
                                  or self._last_read <= stamp + self._tolerance):
            frame = next(self._frames, None)
            if frame is None:
                self._done = True
            else:
                self._buffer.append(frame)
                self._last_read = frame.stamp
        best = min(self._buffer, key=lambda f: abs(f.stamp - stamp), default=None)
        self._buffer = [f for f in self._buffer if f.stamp >= stamp - self._tolerance]
        if best is None or abs(best.stamp - stamp) > self._tolerance:
            return None
        return best


def latest_at(infos: list[Frame], stamp: int) -> Frame:
    """The camera_info in effect at `stamp`: exact stamp if present, else the latest before it,
    else the first."""
    stamps = np.array([f.stamp for f in infos])
    i = int(np.searchsorted(stamps, stamp, side="right")) - 1
    return infos[max(i, 0)]
