"""Opening bags and naming what is wrong with them.

Every failure a user can cause with a bag (missing file, truncated storage, topic not in the
bag, message type not installed, images without camera_info) becomes a `BagError` whose one-line
message says what was wrong, what was expected and what to do. The CLI prints it and exits 2.
"""
from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from lsmdepth_ros.bagio import BagError  # one error type for every bag problem

__all__ = ["BagError", "iter_raw", "open_bag", "ros_message_class", "stamp_ns", "topic_type"]

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD = "sensor_msgs/msg/PointCloud2"


@contextlib.contextmanager
def open_bag(path: str | Path) -> Iterator:
    """Open a rosbag2 bag (a directory with metadata.yaml, or a bare .mcap / .db3 file)."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}: expected a rosbag2 directory (with metadata.yaml) "
                       "or a .mcap / .db3 file; check the path")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for a damaged bag
        raise BagError(f"cannot open bag {path}: {_one_line(exc)}. Expected a complete rosbag2 bag "
                       "(mcap or sqlite3); if the recording was cut off, record it again") from exc
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def iter_raw(reader, connections: Iterable, start: int | None = None,
             stop: int | None = None) -> Iterator[tuple[object, int, bytes]]:
    """`reader.messages(...)`, with a damaged or truncated storage file reported as a BagError."""
    iterator = reader.messages(connections=list(connections), start=start, stop=stop)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise BagError(f"bag {reader.path} is truncated or corrupt ({_one_line(exc)}); the "
                           "messages before the damage cannot be trusted either: record it again")\
                from exc
        yield item


def topic_type(path: str | Path, topic: str, expected_type: str | None = None,
               role: str = "topic") -> str:
    """The message type of `topic` in the bag at `path`, checked against `expected_type`."""
    from lsmdepth_ros import bagio

    topics = bagio.bag_topics(path)
    if topic not in topics:
        present = ", ".join(sorted(topics)) or "none"
        raise BagError(f"{role} {topic} is not in bag {path} (topics present: {present}); "
                       "pass the right topic name")
    msgtype = normalise_msgtype(topics[topic].msgtype)
    if expected_type is not None and msgtype != expected_type:
        raise BagError(f"{role} {topic} in bag {path} has message type {msgtype}, expected "
                       f"{expected_type}; pass a topic of that type")
    return msgtype


def normalise_msgtype(msgtype: str) -> str:
    """'sensor_msgs/Image' (ROS 1 style) -> 'sensor_msgs/msg/Image'."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return msgtype


def ros_message_class(msgtype: str, topic: str = "?"):
    """Import the rclpy message class for 'pkg/msg/Name' (the type must be installed)."""
    parts = normalise_msgtype(msgtype).split("/")
    if len(parts) != 3 or not all(parts):
        raise BagError(f"topic {topic} has malformed message type {msgtype!r}; expected "
                       "'package/msg/Name'")
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise BagError(f"topic {topic} has message type {msgtype}, which is not installed in this "
                       f"Python environment; install the ROS package {package!r} or leave the "
                       "topic out (--topics)") from exc


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."
