"""Streams of decoded frames out of a bag (one topic, or images with their camera_info), and
pairing them by header stamp.

A frame is (header stamp ns, bag time ns, payload). The streams decode with rosbags (no ROS
graph) and turn messages into numpy through `bags.messages`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsmdepth_ros.bags.bagfile import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD,
    BagError,
    BagMessage,
    bag_topics,
    read_messages,
    topic_type,
)
from lsmdepth_ros.bags.messages import (
    CameraModel,
    camera_info_to_numpy,
    camera_model,
    cloud_to_xyz,
    compressed_to_rgb,
    image_to_numpy,
    image_to_rgb,
    stamp_to_ns,
)


@dataclass
class Frame:
    stamp: int          # header stamp, ns
    bag_time: int       # when it was recorded, ns
    data: Any


def iter_frames(path, topic: str, expected_type: str, convert: Callable, role: str
                ) -> Iterator[Frame]:
    """Decoded frames of one topic; each call reads the bag with its own reader."""
    topic_type(path, topic, expected_type, role)
    for m in read_messages(path, [topic]):
        try:
            data = convert(m.msg)
        except ValueError as exc:
            raise BagError(f"{role} {topic}: {exc}") from exc
        yield Frame(stamp_to_ns(m.msg.header.stamp), m.stamp_ns, data)


def image_frames(path, topic: str, role: str = "image topic") -> Iterator[Frame]:
    """Frames whose data is (array, encoding)."""
    return iter_frames(path, topic, IMAGE, lambda m: (image_to_numpy(m), m.encoding), role)


def cloud_frames(path, topic: str) -> Iterator[Frame]:
    """Frames whose data is an [N, 3] float64 array of finite x, y, z."""
    return iter_frames(path, topic, POINT_CLOUD, cloud_to_xyz, "LiDAR topic")


def camera_infos(path, topic: str, image_topic: str) -> list[Frame]:
    """Every camera_info on `topic` (data: (K 3x3, width, height)); a clear error if none."""
    present = set(bag_topics(path))
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


@dataclass
class CameraFrame:
    """An image with the camera model that applies to it (and an optional extra image)."""

    stamp_ns: int       # header stamp of the image
    image: np.ndarray   # RGB uint8 [H, W, 3] (or the raw array for non-colour encodings)
    camera: CameraModel
    frame_id: str


def iter_camera_frames(path: str | Path, image_topic: str, camera_info_topic: str,
                       store=None, rgb: bool = True) -> Iterator[CameraFrame]:
    """Images paired with the latest camera_info received before (or with) them.

    Images seen before any camera_info wait for the first one (up to 100 images); a bag whose
    image topic never gets a camera_info raises BagError.
    """
    camera = None
    pending: list[BagMessage] = []
    for m in read_messages(path, [image_topic, camera_info_topic], store):
        if m.topic == camera_info_topic:
            camera = _camera_model(m.msg, camera_info_topic)
            for p in pending:
                yield _camera_frame(p, camera, rgb)
            pending.clear()
        elif camera is None:
            pending.append(m)
            if len(pending) > 100:
                raise BagError(f"100 images on {image_topic} but no message on "
                               f"{camera_info_topic}: is that the right camera_info topic?")
        else:
            yield _camera_frame(m, camera, rgb)
    if pending:
        raise BagError(f"{len(pending)} images on {image_topic} but no camera_info on "
                       f"{camera_info_topic}; record the camera_info topic too")


def _camera_frame(m: BagMessage, camera: CameraModel, rgb: bool) -> CameraFrame:
    try:
        if m.msgtype.endswith("CompressedImage"):
            image = compressed_to_rgb(m.msg)
        else:
            image = image_to_rgb(m.msg) if rgb else image_to_numpy(m.msg).copy()
    except ValueError as exc:
        raise BagError(f"image topic {m.topic}: {exc}") from exc
    return CameraFrame(stamp_to_ns(m.msg.header.stamp), image, camera, m.msg.header.frame_id)


def _camera_model(msg, topic: str) -> CameraModel:
    try:
        return camera_model(msg)
    except ValueError as exc:
        raise BagError(f"camera_info topic {topic}: {exc}") from exc
