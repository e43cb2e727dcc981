"""rosbag2 files through `rosbags` (no rclpy): the one reader and the one writer of the package.

Storage: mcap (default) or sqlite3; ROS 1 .bag files are read too (datasets such as TUM RGB-D
ship them). Messages are rosbags' dataclasses from a ROS 2 Kilted
typestore (wire-compatible with Humble .. Kilted for the messages used here); `bags.messages`
builds and reads them. Every failure a user can cause (missing file or topic, truncated or
unreadable bag, unknown message type, a folder without bags) raises `BagError` (a ValueError)
whose one-line message says what was wrong, what was expected and what to do; the CLI prints it
and exits 2.

    with BagWriter("out_bag") as bag:
        bag.write("/camera/image_raw", stamp_ns, numpy_to_image(rgb, "rgb8", stamp_ns, "cam"))
    for m in read_messages("out_bag", ["/camera/image_raw"]):
        rgb = image_to_rgb(m.msg)
"""
from __future__ import annotations

import contextlib
import importlib
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

DEFAULT_STORE = "ros2_kilted"
STORAGES = ("mcap", "sqlite3")
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD = "sensor_msgs/msg/PointCloud2"


class BagError(ValueError):
    """A bag, topic or message that cannot be used, with what to do about it."""


# ----------------------------------------------------------------------------------------------
# typestore

@lru_cache(maxsize=4)
def get_typestore(store: str = DEFAULT_STORE):
    """The rosbags typestore for a ROS distribution name such as "ros2_kilted" or "ros2_humble"."""
    from rosbags.typesys import Stores
    from rosbags.typesys import get_typestore as _get

    try:
        return _get(Stores(store))
    except ValueError as exc:
        names = ", ".join(s.value for s in Stores if s.value.startswith("ros2"))
        raise BagError(f"unknown typestore {store!r}; choose one of {names}") from exc


# ----------------------------------------------------------------------------------------------
# writing

class BagWriter:
    """Write a rosbag2 bag (mcap or sqlite3); topics are added on their first message.

    The bag is written to a temporary directory beside `path` and moved into place on a clean
    close, so a crash never leaves a half-written bag under the final name.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", typestore=None,
                 overwrite: bool = False):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f"{self.path} already exists; choose another output or remove it")
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.typestore = typestore or get_typestore()
        # write into a hidden sibling folder; the bag inside keeps its final name, so the storage
        # file is called <name>.mcap as rosbag2 names it
        self._tmp_parent = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._tmp_parent.mkdir()
        self._tmp = self._tmp_parent / self.path.name
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._tmp, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}

    def connection(self, topic: str, msgtype: str, definition: dict | None = None,
                   latched: bool = False):
        """The bag's connection of `topic`; `definition` (msgdef, rihs01) describes a type
        that the typestore lacks. `latched`: the topic is published transient-local (as
        /tf_static is), recorded in the bag's offered QoS so that replay publishes it so too."""
        conn = self._connections.get(topic)
        if conn is None:
            qos = {"offered_qos_profiles": [latched_qos()]} if latched else {}
            if definition:
                conn = self._writer.add_connection(topic, msgtype, **definition, **qos)
            elif msgtype not in self.typestore.types:
                raise BagError(f"unknown message type {msgtype} for {topic}: not in the "
                               f"typestore; register its definition first")
            else:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                   **qos)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already holds {conn.msgtype}, cannot add {msgtype}")
        return conn

    def write(self, topic: str, stamp_ns: int, msg, latched: bool = False) -> None:
        """Serialise and write a rosbags message object (`latched`: see `connection`)."""
        msgtype = msg.__msgtype__
        conn = self.connection(topic, msgtype, latched=latched)
        self._writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Write already-serialised CDR bytes (no re-encoding)."""
        self._writer.write(self.connection(topic, msgtype), int(stamp_ns), data)

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        self._tmp.rename(self.path)
        self._tmp_parent.rmdir()

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None
                shutil.rmtree(self._tmp_parent, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def latched_qos():
    """The offered QoS rosbag2 records for a latched topic (tf2's static broadcaster: reliable,
    transient-local, keep-last 1), as a rosbags `Qos`."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)  # rosbag2's "infinite" duration
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=never, lifespan=never,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
               avoid_ros_namespace_conventions=False)


def write_bag(path: str | Path, messages: Iterable[tuple[str, int, Any]], storage: str = "mcap",
              store=None) -> Path:
    """Write (topic, stamp_ns, rosbags message) tuples to a new bag."""
    with BagWriter(path, storage=storage, typestore=store) as writer:
        for topic, stamp, msg in messages:
            writer.write(topic, stamp, msg)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# reading

@dataclass(frozen=True)
class TopicInfo:
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    stamp_ns: int   # the bag's receive (log) time
    msg: Any        # decoded rosbags message (None when decode=False)
    raw: bytes      # serialised CDR bytes


def _open_reader(path: str | Path, store=None):
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}: expected a rosbag2 directory (with metadata.yaml), "
                       "a .mcap / .db3 file or a ROS 1 .bag file; check the path")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent  # a rosbag2 bag is the folder with metadata.yaml
    # a ROS 1 .bag file is opened as it is: it carries its own message definitions
    reader = AnyReader([path], default_typestore=store or get_typestore())
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several types for bad files
        raise BagError(f"cannot open bag {path}: {exc}. Expected a rosbag2 folder (metadata.yaml "
                       f"+ .mcap/.db3); if recording was interrupted, the file may be truncated "
                       f"(re-index it with `ros2 bag reindex`)") from exc
    return reader


@contextlib.contextmanager
def open_bag(path: str | Path, store=None) -> Iterator:
    """An open rosbags AnyReader of the bag at `path` (a bag folder or its .mcap / .db3)."""
    reader = _open_reader(path, store)
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def bag_topics(path: str | Path, store=None) -> dict[str, TopicInfo]:
    """Topics of a bag with their message type and message count."""
    with open_bag(path, store) as reader:
        out: dict[str, TopicInfo] = {}
        for c in reader.connections:
            prev = out.get(c.topic)
            out[c.topic] = TopicInfo(c.msgtype, c.msgcount + (prev.count if prev else 0))
        return out


def read_messages(path: str | Path, topics: Iterable[str] | None = None, store=None,
                  decode: bool = True) -> Iterator[BagMessage]:
    """Messages of the given topics (all if None) in log-time order, decoded by rosbags."""
    with open_bag(path, store) as reader:
        available = {c.topic: c.msgtype for c in reader.connections}
        wanted = list(available) if topics is None else list(topics)
        missing = [t for t in wanted if t not in available]
        if missing:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(available.items())) or "none"
            raise BagError(f"bag {path} has no topic {', '.join(missing)}; its topics: {listing}")
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, stamp, raw in iter_raw(reader, conns):
            msg = None
            if decode:
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except KeyError as exc:
                    raise BagError(f"unknown message type {conn.msgtype} on {conn.topic}: the "
                                   f"bag carries no definition and the {DEFAULT_STORE} "
                                   "typestore lacks it") from exc
                except Exception as exc:
                    raise BagError(f"cannot decode a {conn.msgtype} message on {conn.topic} of "
                                   f"{path} ({_one_line(exc)}); the bag may be corrupt") from exc
            yield BagMessage(conn.topic, conn.msgtype, int(stamp), msg, bytes(raw))


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
            where = ", ".join(map(str, reader.paths))
            raise BagError(f"bag {where} is truncated or corrupt ({_one_line(exc)}); the "
                           "messages before the damage cannot be trusted either: record it "
                           "again") from exc
        yield item


# ----------------------------------------------------------------------------------------------
# what a bag holds

def topic_type(path: str | Path, topic: str, expected_type: str | None = None,
               role: str = "topic") -> str:
    """The message type of `topic` in the bag at `path`, checked against `expected_type`."""
    topics = bag_topics(path)
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


def _is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or \
        (path.is_file() and path.suffix in (".mcap", ".db3", ".bag"))


def expand_bag_paths(spec) -> list[Path]:
    """The bags named by `spec`: a bag, a folder of bags, a glob, or a list (or comma-separated
    string) of those. A folder that is not itself a bag contributes the bags below it (sorted).
    """
    import glob

    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    names = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if not names:
        raise BagError("no bag given: data_path names a bag, a folder of bags, a glob or a list")
    bags: list[Path] = []
    for name in names:
        matches = sorted(glob.glob(name)) if glob.has_magic(name) else [name]
        if not matches:
            raise BagError(f"no file matches the bag pattern {name!r}")
        for match in map(Path, matches):
            if not match.exists():
                raise BagError(f"bag {match} does not exist")
            if _is_bag(match):
                bags.append(match)
                continue
            # hidden folders hold half-written bags (BagWriter's temporary) and are skipped
            found = [p.parent for p in match.rglob("metadata.yaml")] + list(match.rglob("*.bag"))
            inside = sorted({p for p in found if not any(
                part.startswith(".") for part in p.relative_to(match).parts)})
            if not inside:
                raise BagError(f"{match} holds no bag: no rosbag2 metadata.yaml and no ROS 1 .bag "
                               "in it or in its sub-folders; give a bag folder, a folder of bags "
                               "or a glob")
            bags.extend(inside)
    return list(dict.fromkeys(bags))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."
