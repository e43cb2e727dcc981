"""Thin helpers over `rosbags`: message <-> numpy conversions, and reading / writing rosbag2 bags.

No rclpy: works on any machine with `pip install rosbags`. Messages are rosbags' dataclasses
from a ROS 2 Kilted typestore (wire-compatible with Humble .. Kilted for the sensor_msgs used
here). Storage: mcap (default) or sqlite3. Every failure a user can cause (missing file or topic,
truncated or unreadable bag, unknown message type, bad array) raises `BagError` (a ValueError)
whose message says what was wrong and what to do.

    with BagWriter("out_bag") as bag:
        bag.write("/camera/image_raw", stamp_ns, numpy_to_image(rgb, "rgb8", stamp_ns, "cam"))
    for m in read_messages("out_bag", ["/camera/image_raw"]):
        rgb = image_to_numpy(m.msg)
"""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import numpy as np

DEFAULT_STORE = "ros2_kilted"
STORAGES = ("mcap", "sqlite3")


class BagError(ValueError):
    """A bag, topic or message that cannot be used, with what to do about it."""


# ----------------------------------------------------------------------------------------------
# typestore and time

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


def make_time(stamp_ns: int, store=None):
    ts = store or get_typestore()
    return ts.types["builtin_interfaces/msg/Time"](sec=int(stamp_ns) // 1_000_000_000,
                                                   nanosec=int(stamp_ns) % 1_000_000_000)


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(stamp_ns: int, frame_id: str, store=None):
    ts = store or get_typestore()
    return ts.types["std_msgs/msg/Header"](stamp=make_time(stamp_ns, ts), frame_id=str(frame_id))


# ----------------------------------------------------------------------------------------------
# sensor_msgs/Image

# encoding -> (dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4),
    "rgb16": (np.dtype(np.uint16), 3), "bgr16": (np.dtype(np.uint16), 3),
    "mono8": (np.dtype(np.uint8), 1), "mono16": (np.dtype(np.uint16), 1),
    "8UC1": (np.dtype(np.uint8), 1), "8UC3": (np.dtype(np.uint8), 3),
    "16UC1": (np.dtype(np.uint16), 1), "16SC1": (np.dtype(np.int16), 1),
    "32FC1": (np.dtype(np.float32), 1), "64FC1": (np.dtype(np.float64), 1),
}


def image_to_numpy(msg) -> np.ndarray:
    """sensor_msgs/Image -> array [H, W] or [H, W, C] (a copy; row padding and endianness handled)."""
    enc = msg.encoding
    if enc not in IMAGE_ENCODINGS:
        raise BagError(f"unsupported image encoding {enc!r}; supported: "
                       f"{', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[enc]
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < row or data.size < step * (h - 1) + row:
        raise BagError(f"image message is inconsistent: {w}x{h} {enc} needs step >= {row} and "
                       f"{step * (h - 1) + row} bytes, got step {step} and {data.size} bytes")
    if data.size < step * h:  # last row without padding
        data = np.concatenate([data, np.zeros(step * h - data.size, np.uint8)])
    rows = data[: step * h].reshape(h, step)[:, :row]
    arr = np.ascontiguousarray(rows).view(dtype).reshape(h, w, channels)
    arr = arr.astype(dtype.newbyteorder("="), copy=False)
    return arr[:, :, 0] if channels == 1 else arr


def image_to_rgb(msg) -> np.ndarray:
    """Any colour or mono 8-bit image message -> uint8 RGB [H, W, 3]."""
    arr = image_to_numpy(msg)
    enc = msg.encoding
    if enc in ("rgb8", "8UC3"):
        return arr
    if enc == "bgr8":
        return arr[:, :, ::-1].copy()
    if enc == "rgba8":
        return arr[:, :, :3].copy()
    if enc == "bgra8":
        return arr[:, :, 2::-1].copy()
    if enc in ("mono8", "8UC1"):
        return np.repeat(arr[:, :, None], 3, axis=2)
    raise BagError(f"cannot use a {enc!r} image as a colour camera image; expected rgb8, bgr8, "
                   f"rgba8, bgra8 or mono8")


def numpy_to_image(array: np.ndarray, encoding: str, stamp_ns: int = 0, frame_id: str = "",
                   store=None):
    """Array [H, W] or [H, W, C] -> sensor_msgs/Image (little-endian, no row padding)."""
    ts = store or get_typestore()
    if encoding not in IMAGE_ENCODINGS:
        raise BagError(f"unsupported image encoding {encoding!r}; supported: "
                       f"{', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    arr = np.asarray(array)
    shape_ok = arr.ndim == 2 and channels == 1 or arr.ndim == 3 and arr.shape[2] == channels
    if not shape_ok or arr.dtype != dtype:
        raise BagError(f"{encoding} needs a {dtype} array of shape [H, W"
                       f"{'' if channels == 1 else f', {channels}'}], got {arr.dtype} "
                       f"{arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    h, w = arr.shape[:2]
    return ts.types["sensor_msgs/msg/Image"](
        header=make_header(stamp_ns, frame_id, ts), height=h, width=w, encoding=encoding,
        is_bigendian=0, step=w * channels * dtype.itemsize,
        data=np.frombuffer(arr.tobytes(), np.uint8))


def compressed_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> uint8 RGB [H, W, 3]."""
    import cv2

    img = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BagError(f"cannot decode compressed image (format {msg.format!r})")
    return img[:, :, ::-1].copy()


# ----------------------------------------------------------------------------------------------
# sensor_msgs/CameraInfo

@dataclass(frozen=True)
class CameraModel:
    """The numbers of a CameraInfo message as arrays."""

    width: int
    height: int
    K: np.ndarray   # 3x3
    D: np.ndarray   # distortion coefficients
    R: np.ndarray   # 3x3 rectification
    P: np.ndarray   # 3x4 projection
    distortion_model: str

    @property
    def is_distorted(self) -> bool:
        return bool(np.any(self.D != 0))


def make_camera_info(K, width: int, height: int, stamp_ns: int = 0, frame_id: str = "",
                     store=None, D=None, P=None, distortion_model: str = "plumb_bob"):
    """CameraInfo with K, R = I, P = [K | 0] (unless given) and D zeros (unless given)."""
    ts = store or get_typestore()
    K = np.asarray(K, np.float64).reshape(3, 3)
    if P is None:
        P = np.zeros((3, 4))
        P[:, :3] = K
    D = np.zeros(5) if D is None else np.asarray(D, np.float64).ravel()
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                       do_rectify=False)
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=make_header(stamp_ns, frame_id, ts), height=int(height), width=int(width),
        distortion_model=distortion_model, d=D, k=K.ravel().copy(), r=np.eye(3).ravel(),
        p=np.asarray(P, np.float64).reshape(3, 4).ravel().copy(), binning_x=0, binning_y=0,
        roi=roi)


def camera_model(msg) -> CameraModel:
    K = np.asarray(msg.k, np.float64).reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BagError(f"camera_info has an uncalibrated K (fx={K[0, 0]}, fy={K[1, 1]}); "
                       f"calibrate the camera first (camera_calibration) and record again")
    return CameraModel(int(msg.width), int(msg.height), K, np.asarray(msg.d, np.float64).copy(),
                       np.asarray(msg.r, np.float64).reshape(3, 3),
                       np.asarray(msg.p, np.float64).reshape(3, 4), str(msg.distortion_model))


# ----------------------------------------------------------------------------------------------
# sensor_msgs/PointCloud2

_FIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
                 7: np.float32, 8: np.float64}


def numpy_to_pointcloud2(points: np.ndarray, rgb: np.ndarray | None = None, stamp_ns: int = 0,
                         frame_id: str = "", store=None):
    """xyz [N, 3] or organised [H, W, 3] (NaN = invalid) + optional uint8 rgb -> PointCloud2.

    Fields x, y, z float32 and, with colours, rgb packed as float32 (PCL / depth_image_proc).
    """
    ts = store or get_typestore()
    pts = np.asarray(points, np.float32)
    if pts.shape[-1] != 3 or pts.ndim not in (2, 3):
        raise BagError(f"points must be [N, 3] or [H, W, 3], got {pts.shape}")
    height, width = (pts.shape[0], pts.shape[1]) if pts.ndim == 3 else (1, pts.shape[0])
    names = ["x", "y", "z"] + (["rgb"] if rgb is not None else [])
    rec = np.zeros((height, width), dtype=[(n, "<f4") for n in names])
    rec["x"], rec["y"], rec["z"] = (pts[..., k].reshape(height, width) for k in range(3))
    if rgb is not None:
        c = np.asarray(rgb, np.uint8).reshape(height, width, 3).astype(np.uint32)
        packed = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
        rec["rgb"] = packed.view(np.float32)
    PointField = ts.types["sensor_msgs/msg/PointField"]
    fields = [PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(names)]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=make_header(stamp_ns, frame_id, ts), height=height, width=width, fields=fields,
        is_bigendian=False, point_step=4 * len(names), row_step=4 * len(names) * width,
        data=np.frombuffer(rec.tobytes(), np.uint8), is_dense=bool(np.isfinite(pts).all()))


def pointcloud2_to_numpy(msg, fields: Iterable[str] = ("x", "y", "z")) -> np.ndarray:
    """PointCloud2 -> float32 [N, len(fields)] (organised clouds flattened row by row)."""
    by_name = {f.name: f for f in msg.fields}
    fields = list(fields)
    missing = [f for f in fields if f not in by_name]
    if missing:
        raise BagError(f"point cloud lacks fields {missing}; it has {list(by_name)}")
    order = ">" if msg.is_bigendian else "<"
    n = int(msg.height) * int(msg.width)
    step = int(msg.point_step)
    data = np.asarray(msg.data, np.uint8)
    if data.size < n * step:
        raise BagError(f"point cloud data is truncated: {n} points x {step} bytes need "
                       f"{n * step} bytes, got {data.size}")
    rows = data[: n * step].reshape(n, step) if msg.row_step == msg.width * step else np.stack(
        [data[r * msg.row_step: r * msg.row_step + msg.width * step].reshape(-1, step)
         for r in range(msg.height)]).reshape(n, step)
    out = np.empty((n, len(fields)), np.float32)
    for k, name in enumerate(fields):
        f = by_name[name]
        if f.datatype not in _FIELD_DTYPES:
            raise BagError(f"point field {name!r} has unknown datatype {f.datatype}")
        dt = np.dtype(_FIELD_DTYPES[f.datatype]).newbyteorder(order)
        raw = np.ascontiguousarray(rows[:, f.offset: f.offset + dt.itemsize])
        out[:, k] = raw.view(dt)[:, 0]
    return out


# ----------------------------------------------------------------------------------------------
# nav_msgs/Odometry and tf2_msgs/TFMessage (poses as 4x4 matrices)

def _pose_parts(T, ts):
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, np.float64)
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    return (ts.types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z),
                                                     w=float(w)), T[:3, 3])


def make_odometry(T_frame_child, stamp_ns: int, frame_id: str, child_frame_id: str, store=None):
    """nav_msgs/Odometry holding the pose T_frame_child (zero twist, zero covariance)."""
    ts = store or get_typestore()
    q, t = _pose_parts(T_frame_child, ts)
    pose = ts.types["geometry_msgs/msg/Pose"](
        position=ts.types["geometry_msgs/msg/Point"](x=t[0], y=t[1], z=t[2]), orientation=q)
    vec = ts.types["geometry_msgs/msg/Vector3"]
    twist = ts.types["geometry_msgs/msg/Twist"](linear=vec(x=0.0, y=0.0, z=0.0),
                                                angular=vec(x=0.0, y=0.0, z=0.0))
    return ts.types["nav_msgs/msg/Odometry"](
        header=make_header(stamp_ns, frame_id, ts), child_frame_id=child_frame_id,
        pose=ts.types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=ts.types["geometry_msgs/msg/TwistWithCovariance"](twist=twist,
                                                                 covariance=np.zeros(36)))


def make_tf_message(transforms, store=None):
    """tf2_msgs/TFMessage of (T_parent_child, stamp_ns, parent, child) tuples."""
    ts = store or get_typestore()
    vec = ts.types["geometry_msgs/msg/Vector3"]
    out = []
    for T, stamp_ns, parent, child in transforms:
        q, t = _pose_parts(T, ts)
        out.append(ts.types["geometry_msgs/msg/TransformStamped"](
            header=make_header(stamp_ns, parent, ts), child_frame_id=child,
            transform=ts.types["geometry_msgs/msg/Transform"](
                translation=vec(x=t[0], y=t[1], z=t[2]), rotation=q)))
    return ts.types["tf2_msgs/msg/TFMessage"](transforms=out)


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

    def connection(self, topic: str, msgtype: str):
        conn = self._connections.get(topic)
        if conn is None:
            if msgtype not in self.typestore.types:
                raise BagError(f"unknown message type {msgtype} for {topic}: not in the "
                               f"typestore; register its definition first")
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already holds {conn.msgtype}, cannot add {msgtype}")
        return conn

    def write(self, topic: str, stamp_ns: int, msg) -> None:
        """Serialise and write a rosbags message object."""
        msgtype = msg.__msgtype__
        conn = self.connection(topic, msgtype)
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
        raise BagError(f"bag {path} does not exist")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent  # a rosbag2 bag is the folder with metadata.yaml
    reader = AnyReader([path], default_typestore=store or get_typestore())
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several types for bad files
        raise BagError(f"cannot open bag {path}: {exc}. Expected a rosbag2 folder (metadata.yaml "
                       f"+ .mcap/.db3); if recording was interrupted, the file may be truncated "
                       f"(re-index it with `ros2 bag reindex`)") from exc
    return reader


def bag_topics(path: str | Path, store=None) -> dict[str, TopicInfo]:
    """Topics of a bag with their message type and message count."""
    reader = _open_reader(path, store)
    try:
        out: dict[str, TopicInfo] = {}
        for c in reader.connections:
            prev = out.get(c.topic)
            out[c.topic] = TopicInfo(c.msgtype, c.msgcount + (prev.count if prev else 0))
        return out
    finally:
        reader.close()


def read_messages(path: str | Path, topics: Iterable[str] | None = None, store=None,
                  decode: bool = True) -> Iterator[BagMessage]:
    """Messages of the given topics (all if None) in log-time order, decoded by rosbags."""
    reader = _open_reader(path, store)
    try:
        available = {c.topic: c.msgtype for c in reader.connections}
        wanted = list(available) if topics is None else list(topics)
        missing = [t for t in wanted if t not in available]
        if missing:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(available.items())) or "none"
            raise BagError(f"bag {path} has no topic {', '.join(missing)}; its topics: {listing}")
        conns = [c for c in reader.connections if c.topic in wanted]
        try:
            for conn, stamp, raw in reader.messages(connections=conns):
                msg = None
                if decode:
                    try:
                        msg = reader.deserialize(raw, conn.msgtype)
                    except KeyError as exc:
                        raise BagError(f"unknown message type {conn.msgtype} on {conn.topic}: the "
                                       f"bag carries no definition and the {DEFAULT_STORE} "
                                       f"typestore lacks it") from exc
                yield BagMessage(conn.topic, conn.msgtype, int(stamp), msg, bytes(raw))
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"error while reading {path}: {exc}. The bag may be truncated or "
                           f"corrupt") from exc
    finally:
        reader.close()


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
            camera = camera_model(m.msg)
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
    if m.msgtype.endswith("CompressedImage"):
        image = compressed_to_rgb(m.msg)
    else:
        image = image_to_rgb(m.msg) if rgb else image_to_numpy(m.msg)
    return CameraFrame(stamp_to_ns(m.msg.header.stamp), image, camera, m.msg.header.frame_id)


def _is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or \
        (path.is_file() and path.suffix in (".mcap", ".db3"))


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
            inside = sorted({p.parent for p in match.rglob("metadata.yaml")
                             if not any(part.startswith(".")
                                        for part in p.relative_to(match).parts)})
            if not inside:
                raise BagError(f"{match} holds no rosbag2 bag: no metadata.yaml in it or in its "
                               "sub-folders; give a bag folder, a folder of bags or a glob")
            bags.extend(inside)
    return list(dict.fromkeys(bags))
