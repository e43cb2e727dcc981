"""Camera poses out of a bag: odometry (nav_msgs/Odometry) and the TF tree (/tf_static, /tf).

A robot records its own motion; with it, a monocular depth network learns metric depth. The
camera pose at an image's header stamp is

    odometry:   T_odom_cam(t) = T_odom_base(t) * T_base_cam(t)
                (T_odom_base interpolated from the odometry: linear position, slerp rotation;
                T_base_cam the TF chain from the odometry's child_frame_id to the image's frame)
    TF only:    T_pose_cam(t) = the TF chain from `pose_frame` (e.g. odom) to the image's frame

Transforms follow tf2: a TransformStamped with parent P and child C is T_P_C (it maps points in
C to P). Dynamic edges (/tf) are interpolated like the odometry and never extrapolated: a stamp
outside an edge's recorded span (or in a gap longer than `max_gap_ns`) has no pose. Frame ids are
compared without a leading '/' (ROS 1 bags).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lsmdepth_ros.bags.bagfile import BagError, bag_topics, read_messages
from lsmdepth_ros.bags.messages import stamp_to_ns

TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
DEFAULT_MAX_GAP_NS = 500_000_000   # poses further apart than this are not interpolated


def frame_name(frame_id: str) -> str:
    return str(frame_id).lstrip("/")


def pose_matrix(translation, quaternion_xyzw) -> np.ndarray:
    """4x4 T from a translation (x, y, z) and a unit quaternion (x, y, z, w)."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(np.asarray(quaternion_xyzw, np.float64)).as_matrix()
    T[:3, 3] = np.asarray(translation, np.float64)
    return T


class PoseSeries:
    """Poses T_parent_child sampled at increasing stamps; interpolated in between."""

    def __init__(self, stamps: np.ndarray, translations: np.ndarray, quaternions: np.ndarray,
                 max_gap_ns: int = DEFAULT_MAX_GAP_NS):
        from scipy.spatial.transform import Rotation

        self.stamps = np.asarray(stamps, np.int64)
        self.translations = np.asarray(translations, np.float64).reshape(-1, 3)
        self.rotations = Rotation.from_quat(np.asarray(quaternions, np.float64).reshape(-1, 4))
        self.max_gap_ns = int(max_gap_ns)

    def __len__(self) -> int:
        return len(self.stamps)

    def at(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T [M, 4, 4], ok [M]): poses at `stamps`; ok is False outside the span or in a gap."""
        from scipy.spatial.transform import Rotation

        t = np.asarray(stamps, np.int64)
        out = np.tile(np.eye(4), (t.size, 1, 1))
        if len(self) == 1:
            ok = t == self.stamps[0]
            out[:, :3, :3] = self.rotations.as_matrix()[0]
            out[:, :3, 3] = self.translations[0]
            return out, ok
        i = np.clip(np.searchsorted(self.stamps, t, side="right") - 1, 0, len(self) - 2)
        t0, t1 = self.stamps[i], self.stamps[i + 1]
        ok = (t >= self.stamps[0]) & (t <= self.stamps[-1]) & (t1 - t0 <= self.max_gap_ns)
        alpha = np.clip((t - t0) / np.maximum(t1 - t0, 1), 0.0, 1.0)[:, None]
        r0, r1 = self.rotations[i], self.rotations[i + 1]
        # slerp: rotate from r0 along the shortest arc towards r1 by the fraction alpha
        rot = r0 * Rotation.from_rotvec(alpha * (r0.inv() * r1).as_rotvec())
        out[:, :3, :3] = rot.as_matrix()
        out[:, :3, 3] = (1 - alpha) * self.translations[i] + alpha * self.translations[i + 1]
        return out, ok


@dataclass
class _Samples:
    stamps: list
    translations: list
    quaternions: list

    def append(self, stamp: int, t, q) -> None:
        self.stamps.append(stamp)
        self.translations.append((t.x, t.y, t.z))
        self.quaternions.append((q.x, q.y, q.z, q.w))


class TransformTree:
    """The TF tree of a bag: each child frame has one parent, via a static or a dynamic edge."""

    def __init__(self, static: dict[str, tuple[str, np.ndarray]],
                 dynamic: dict[str, tuple[str, PoseSeries]], has_static_topic: bool):
        self.static = static
        self.dynamic = dynamic
        self.has_static_topic = has_static_topic

    def parent(self, frame: str) -> str | None:
        edge = self.static.get(frame) or self.dynamic.get(frame)
        return edge[0] if edge else None

    def _ancestors(self, frame: str) -> list[str]:
        chain = [frame]
        while (p := self.parent(chain[-1])) is not None and p not in chain:
            chain.append(p)
        return chain

    def connects(self, target: str, source: str) -> bool:
        return bool(set(self._ancestors(target)) & set(self._ancestors(source)))

    def _to_ancestor(self, frame: str, ancestor: str, stamps: np.ndarray):
        """T_ancestor_frame at every stamp and where it is known."""
        T = np.tile(np.eye(4), (stamps.size, 1, 1))
        ok = np.ones(stamps.size, bool)
        while frame != ancestor:
            if frame in self.static:
                parent, edge = self.static[frame]
                T = edge @ T
            else:
                parent, series = self.dynamic[frame]
                edge, known = series.at(stamps)
                T = edge @ T
                ok &= known
            frame = parent
        return T, ok

    def lookup(self, target: str, source: str, stamps: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """(T_target_source [M, 4, 4], ok [M]) at `stamps`; BagError when the frames never
        connect."""
        stamps = np.asarray(stamps, np.int64)
        up_source = self._ancestors(source)
        common = next((f for f in self._ancestors(target) if f in up_source), None)
        if common is None:
            raise BagError(self.describe_missing(target, source))
        T_c_t, ok_t = self._to_ancestor(target, common, stamps)
        T_c_s, ok_s = self._to_ancestor(source, common, stamps)
        return np.linalg.inv(T_c_t) @ T_c_s, ok_t & ok_s

    def describe_missing(self, target: str, source: str) -> str:
        edges = [f"{p} -> {c}" for c, (p, _) in sorted(self.static.items())]
        dyn = [f"{p} -> {c}" for c, (p, _) in sorted(self.dynamic.items())]
        text = (f"no TF chain from '{target}' to '{source}': {TF_STATIC_TOPIC} holds "
                f"{', '.join(edges) or 'nothing'}; {TF_TOPIC} holds {', '.join(dyn) or 'nothing'}")
        if not self.has_static_topic:
            text += f". The bag has no {TF_STATIC_TOPIC} topic: record it (ros2 bag record " \
                    f"{TF_STATIC_TOPIC}, which needs transient-local QoS) with the images"
        else:
            text += (f". Publish the missing link (robot_state_publisher or `ros2 run tf2_ros "
                     f"static_transform_publisher ... {target} {source}`) and record again")
        return text


def read_transform_tree(bag, max_gap_ns: int = DEFAULT_MAX_GAP_NS) -> TransformTree:
    """Every edge on /tf_static and /tf of a bag (dynamic edges sorted by stamp, as tf2 does)."""
    topics = bag_topics(bag)
    present = [t for t in (TF_STATIC_TOPIC, TF_TOPIC) if t in topics]
    static: dict[str, tuple[str, np.ndarray]] = {}
    samples: dict[str, tuple[str, _Samples]] = {}
    for m in read_messages(bag, present) if present else ():
        for tf in m.msg.transforms:
            parent, child = frame_name(tf.header.frame_id), frame_name(tf.child_frame_id)
            if m.topic == TF_STATIC_TOPIC:
                r, q = tf.transform.translation, tf.transform.rotation
                static[child] = (parent, pose_matrix((r.x, r.y, r.z), (q.x, q.y, q.z, q.w)))
                continue
            known = samples.setdefault(child, (parent, _Samples([], [], [])))
            if known[0] != parent:
                raise BagError(f"{TF_TOPIC} in {bag} gives frame '{child}' two parents, "
                               f"'{known[0]}' and '{parent}'; a TF tree needs one parent per frame")
            known[1].append(stamp_to_ns(tf.header.stamp), tf.transform.translation,
                            tf.transform.rotation)
    dynamic = {}
    for child, (parent, s) in samples.items():
        if child in static and static[child][0] != parent:
            raise BagError(f"frame '{child}' has parent '{static[child][0]}' on "
                           f"{TF_STATIC_TOPIC} and '{parent}' on {TF_TOPIC} in {bag}")
        stamps = np.asarray(s.stamps, np.int64)
        order = np.argsort(stamps, kind="stable")
        # one sample per stamp (the last received), sorted: tf2's buffer does the same
        keep = np.r_[stamps[order][1:] != stamps[order][:-1], True]
        order = order[keep]
        dynamic[child] = (parent, PoseSeries(stamps[order], np.asarray(s.translations)[order],
                                             np.asarray(s.quaternions)[order], max_gap_ns))
    return TransformTree(static, dynamic, TF_STATIC_TOPIC in topics)


@dataclass(frozen=True)
class Odometry:
    frame: str          # header.frame_id (e.g. odom)
    child: str          # child_frame_id (e.g. base_link)
    series: PoseSeries  # T_frame_child


def read_odometry(bag, topic: str, max_gap_ns: int = DEFAULT_MAX_GAP_NS) -> Odometry:
    """nav_msgs/Odometry poses of `topic`; BagError for an empty topic, changing frames or
    stamps that go backwards (a reset odometry or a wrong clock: poses across it are wrong)."""
    stamps, frames = [], set()
    s = _Samples([], [], [])
    for m in read_messages(bag, [topic]):
        if not hasattr(m.msg, "child_frame_id") or not hasattr(m.msg, "pose"):
            raise BagError(f"odometry topic {topic} in {bag} carries {m.msgtype}, expected "
                           "nav_msgs/msg/Odometry")
        stamp = stamp_to_ns(m.msg.header.stamp)
        if stamps and stamp < stamps[-1]:
            raise BagError(f"odometry {topic} in {bag}: header stamps go backwards at message "
                           f"{len(stamps)} ({stamps[-1]} -> {stamp} ns); poses across a reset "
                           "odometry or a jumping clock would be wrong. Cut the bag at the reset "
                           "(ros2 bag convert with start/end times) or fix the publisher's clock")
        frames.add((frame_name(m.msg.header.frame_id), frame_name(m.msg.child_frame_id)))
        if stamps and stamp == stamps[-1]:
            continue   # a repeated message adds nothing to interpolate
        stamps.append(stamp)
        pose = m.msg.pose.pose
        s.append(stamp, pose.position, pose.orientation)
    if not stamps:
        raise BagError(f"odometry topic {topic} in {bag} holds no messages")
    if len(frames) > 1:
        raise BagError(f"odometry {topic} in {bag} changes frames ({sorted(frames)}); expected "
                       "one header.frame_id and one child_frame_id")
    (frame, child), = frames
    return Odometry(frame, child, PoseSeries(np.asarray(stamps), np.asarray(s.translations),
                                             np.asarray(s.quaternions), max_gap_ns))


def camera_poses(bag, camera_frames: Iterable[str], stamps: np.ndarray,
                 odometry_topic: str | None = None, pose_frame: str | None = None,
                 max_gap_ns: int = DEFAULT_MAX_GAP_NS
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """(T_world_cam [M, 4, 4], missing, world frame) of images with these frame ids and stamps.

    `missing` maps a reason ("outside the odometry", "TF not covering the stamp") to a mask
    [M] of the images without a pose for that reason. A camera
    frame that never connects to the odometry's child frame (or to `pose_frame`) is a BagError
    naming both frames and what the bag's TF tree holds: never a silent identity pose.
    """
    if (odometry_topic is None) == (pose_frame is None):
        raise ValueError("give exactly one of odometry_topic (poses from nav_msgs/Odometry + TF) "
                         "and pose_frame (poses from TF alone, e.g. 'odom')")
    frames = np.asarray([frame_name(f) for f in camera_frames])
    stamps = np.asarray(stamps, np.int64)
    if any(f == "" for f in frames):
        raise BagError(f"images in {bag} have an empty header.frame_id: the camera cannot be "
                       "found in TF; set the camera driver's frame_id (its optical frame)")
    tree = read_transform_tree(bag, max_gap_ns)
    poses = np.tile(np.eye(4), (stamps.size, 1, 1))
    outside = np.zeros(stamps.size, bool)
    no_tf = np.zeros(stamps.size, bool)
    if odometry_topic is not None:
        odom = read_odometry(bag, odometry_topic, max_gap_ns)
        base, world = odom.child, odom.frame
        poses[:], known = odom.series.at(stamps)
        outside = ~known
    else:
        base = world = frame_name(pose_frame)
    for cam in np.unique(frames):
        sel = frames == cam
        if cam == base:
            continue
        if not tree.connects(base, cam):
            role = "odometry child frame" if odometry_topic else "pose_frame"
            raise BagError(f"{role} '{base}' does not connect to camera frame '{cam}' in {bag}: "
                           + tree.describe_missing(base, cam))
        T, known = tree.lookup(base, cam, stamps[sel])
        poses[sel] = poses[sel] @ T
        no_tf[sel] = ~known
    missing = {f"outside the time span of {odometry_topic} (or in a gap of it)": outside,
               f"{TF_TOPIC} does not cover the image stamp": no_tf & ~outside}
    return poses, missing, world
