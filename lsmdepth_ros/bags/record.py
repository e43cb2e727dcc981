"""Record live topics into a rosbag2 bag, as raw CDR bytes (nothing decoded on the way).

Topics are subscribed as soon as they appear in the graph, with a QoS the publishers can serve
(reliable only when every publisher is reliable, as rosbag2 does). Stopping (Ctrl-C, SIGTERM, a
duration, or the caller's `stop` event) drains what has already arrived and closes the bag, so
an interrupted recording is a complete, readable bag. The bag is written by `bagfile.BagWriter`
into a hidden folder beside the output and moved into place when closed: a killed recorder never
leaves a half-written bag under the final name (its storage file stays in the hidden folder).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsmdepth_ros.bags.bagfile import (
    BagError,
    BagWriter,
    normalise_msgtype,
    ros_message_class,
)
from lsmdepth_ros.ros.transport import use_large_data_transport

STORAGES = ("mcap", "sqlite3")


@dataclass
class RecordOptions:
    out: Path
    topics: tuple[str, ...]
    storage: str = "mcap"
    duration: float | None = None      # stop after this many seconds; None: until stopped
    discovery_period: float = 0.2      # how often to look for the topics not yet subscribed
    queue_depth: int = 100
    node_name: str = "lsmdepth_bag_record"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if not self.topics:
            raise ValueError("give at least one topic to record")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {self.storage!r}")


@dataclass
class RecordStats:
    path: Path
    per_topic: dict[str, int] = field(default_factory=dict)
    subscribed: dict[str, str] = field(default_factory=dict)  # topic -> msgtype

    @property
    def recorded(self) -> int:
        return sum(self.per_topic.values())


def record(options: RecordOptions, stop: threading.Event | None = None,
           ready: threading.Event | None = None,
           stats: RecordStats | None = None) -> RecordStats:
    """Record until `stop` is set (or the duration passes). `ready` is set once all topics are
    subscribed. `stats`, when given, is filled live (another thread may watch the counts)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    use_large_data_transport()
    stop = stop or threading.Event()
    check_output(options.out)
    writer = BagWriter(options.out, storage=options.storage)
    stats = stats if stats is not None else RecordStats(path=options.out)
    stats.path, stats.per_topic = options.out, {t: 0 for t in options.topics}
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(options.node_name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    store = writer.typestore
    subscriptions = []
    try:
        deadline = None if options.duration is None else time.monotonic() + options.duration
        next_discovery = 0.0
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if len(stats.subscribed) < len(options.topics) and time.monotonic() >= next_discovery:
                subscriptions += _subscribe_new(node, writer, store, options, stats)
                next_discovery = time.monotonic() + options.discovery_period
                if ready is not None and len(stats.subscribed) == len(options.topics):
                    ready.set()
            executor.spin_once(timeout_sec=0.05)
        _drain(executor)
    finally:
        try:
            for sub in subscriptions:
                node.destroy_subscription(sub)
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            context.try_shutdown()
        finally:
            writer.close()  # writes the footer and metadata.yaml: the bag is readable
    return stats


def check_output(out: Path) -> None:
    if out.exists():
        raise BagError(f"{out} exists already; choose a new output path (a bag is never "
                       "overwritten)")


def _drain(executor, budget_s: float = 0.5) -> None:
    """Run the callbacks of messages that already arrived, so stopping loses none of them."""
    end = time.monotonic() + budget_s
    while time.monotonic() < end:
        before = time.monotonic()
        executor.spin_once(timeout_sec=0.02)
        if time.monotonic() - before >= 0.019:  # waited the full timeout: nothing was pending
            return


def _subscribe_new(node, writer, store, options: RecordOptions, stats: RecordStats) -> list:
    from rclpy.qos import DurabilityPolicy
    known = dict(node.get_topic_names_and_types())
    new = []
    for topic in options.topics:
        if topic in stats.subscribed or topic not in known:
            continue
        infos = node.get_publishers_info_by_topic(topic)
        if not infos:
            continue
        msgtype = normalise_msgtype(known[topic][0])
        cls = ros_message_class(msgtype, topic)
        qos = _subscription_qos(infos, options.queue_depth)
        writer.connection(topic, msgtype, _definition(store, msgtype, topic),
                          latched=qos.durability == DurabilityPolicy.TRANSIENT_LOCAL)

        def on_message(data: bytes, topic=topic, msgtype=msgtype) -> None:
            writer.write_raw(topic, msgtype, node.get_clock().now().nanoseconds, data)
            stats.per_topic[topic] += 1

        new.append(node.create_subscription(cls, topic, on_message, qos, raw=True))
        stats.subscribed[topic] = msgtype
    return new


def _definition(store, msgtype: str, topic: str) -> dict:
    """Message definition + RIHS01 hash for the bag's metadata, from rosbags or the .msg file."""
    if msgtype not in store.fielddefs:
        from ament_index_python.packages import get_package_share_directory
        from rosbags.typesys import get_types_from_msg

        package, _, name = msgtype.split("/")
        try:
            text = (Path(get_package_share_directory(package)) / "msg" / f"{name}.msg").read_text()
            store.register(get_types_from_msg(text, msgtype))
        except Exception as exc:
            raise BagError(f"cannot find the definition of {msgtype} (topic {topic}) to record it; "
                           "install its ROS package") from exc
    try:
        msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
        return {"msgdef": msgdef, "rihs01": store.hash_rihs01(msgtype)}
    except Exception as exc:
        raise BagError(f"cannot describe {msgtype} (topic {topic}): {exc}") from exc


def _subscription_qos(publisher_infos, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    profiles = [info.qos_profile for info in publisher_infos]
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
