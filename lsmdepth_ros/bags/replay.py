"""Replay a bag live: the recorded bytes, on the recorded schedule.

Messages are published as the serialized CDR bytes stored in the bag (rclpy's
`Publisher.publish(bytes)` hands them to `rmw_publish_serialized_message`), so nothing is decoded
or re-encoded on the way: what subscribers receive is exactly what was recorded.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsmdepth_ros.bags.bagfile import BagError, iter_raw, open_bag, ros_message_class
from lsmdepth_ros.ros.conversions import ns_to_stamp
from lsmdepth_ros.ros.transport import use_large_data_transport

RELIABILITIES = ("auto", "reliable", "best_effort")


@dataclass
class ReplayOptions:
    bag: Path
    rate: float = 1.0                  # 2.0 plays twice as fast as recorded
    start_offset: float = 0.0          # seconds into the bag to start from
    loop: bool = False
    topics: tuple[str, ...] = ()       # empty: every topic in the bag
    remap: dict[str, str] = field(default_factory=dict)  # bag topic -> published topic
    clock_hz: float = 0.0              # publish /clock (bag time) at this rate; 0: off
    reliability: str = "auto"          # auto: as recorded when known, else reliable
    queue_depth: int = 100
    wait_for_subscribers: float = 0.0  # wait up to this long for every topic to have a subscriber
    # ... this many per topic (e.g. 2: the node and a recorder), or {bag topic: count} (1 else)
    min_subscribers: int | dict = 1
    ack_timeout: float = 10.0          # seconds to wait for reliable subscribers' acknowledgements
    node_name: str = "lsmdepth_bag_replay"

    def __post_init__(self) -> None:
        self.bag = Path(self.bag)
        if not self.rate > 0:
            raise ValueError(f"replay rate must be > 0, got {self.rate}")
        if self.start_offset < 0:
            raise ValueError(f"start offset must be >= 0 s, got {self.start_offset}")
        if self.reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {RELIABILITIES}, got {self.reliability!r}")
        counts = (self.min_subscribers.values() if isinstance(self.min_subscribers, dict)
                  else [self.min_subscribers])
        if any(int(c) < 1 for c in counts):
            raise ValueError(f"min_subscribers must be >= 1, got {self.min_subscribers}")


@dataclass
class ReplayStats:
    per_topic: dict[str, int]
    # (bag topic, bag timestamp ns, wall-clock ns when published), in publishing order
    publish_log: list[tuple[str, int, int]]
    all_acked: bool
    duration_s: float
    interrupted: bool = False

    @property
    def published(self) -> int:
        return sum(self.per_topic.values())


def replay(options: ReplayOptions, stop: threading.Event | None = None) -> ReplayStats:
    """Publish the bag's messages live; returns when done (or when `stop` is set)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    use_large_data_transport()
    stop = stop or threading.Event()
    with open_bag(options.bag) as reader:
        if getattr(reader, "is2", True) is False:   # rosbags' AnyReader: a ROS 1 bag
            raise BagError(f"{options.bag} is a ROS 1 bag: replay publishes the recorded ROS 2 "
                           "bytes as they are. Convert it first: rosbags-convert --src "
                           f"{options.bag} --dst {Path(options.bag).with_suffix('')}_ros2")
        connections = _selected_connections(reader, options.topics)
        classes = {c.topic: ros_message_class(c.msgtype, c.topic) for c in connections}
        context = rclpy.Context()
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node(options.node_name, context=context)
        try:
            publishers = {
                topic: node.create_publisher(cls, options.remap.get(topic, topic),
                                             _qos(options, [c for c in connections
                                                            if c.topic == topic]))
                for topic, cls in classes.items()
            }
            clock = _ClockPublisher(node, options.clock_hz) if options.clock_hz > 0 else None
            _wait_for_subscribers(publishers, options.wait_for_subscribers, stop,
                                  options.min_subscribers)
            stats = _publish_loop(reader, connections, publishers, clock, options, stop)
            deadline = time.monotonic() + options.ack_timeout
            from rclpy.duration import Duration
            stats.all_acked = all(
                p.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))
                for p in publishers.values())
            return stats
        finally:
            node.destroy_node()
            context.try_shutdown()


def _selected_connections(reader, topics: tuple[str, ...]) -> list:
    present = {c.topic for c in reader.connections}
    missing = [t for t in topics if t not in present]
    bag = ", ".join(map(str, reader.paths))
    if missing:
        raise BagError(f"topic(s) {', '.join(missing)} not in bag {bag} (topics present: "
                       f"{', '.join(sorted(present)) or 'none'}); pass topics that it has")
    connections = [c for c in reader.connections if not topics or c.topic in topics]
    if not connections:
        raise BagError(f"bag {bag} has no topics to replay")
    return connections


def _qos(options: ReplayOptions, connections: list):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.RELIABLE
    durability = DurabilityPolicy.VOLATILE
    recorded = [q for c in connections for q in getattr(c.ext, "offered_qos_profiles", [])]
    recorded_best_effort = bool(recorded) and all(q.reliability.name == "BEST_EFFORT"
                                                  for q in recorded)
    if options.reliability == "best_effort" or (options.reliability == "auto"
                                                 and recorded_best_effort):
        reliability = ReliabilityPolicy.BEST_EFFORT
    if recorded and all(q.durability.name == "TRANSIENT_LOCAL" for q in recorded):
        durability = DurabilityPolicy.TRANSIENT_LOCAL  # /tf_static and friends
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=options.queue_depth,
                      reliability=reliability, durability=durability)


def _wait_for_subscribers(publishers: dict, timeout: float, stop: threading.Event,
                          count: int | dict = 1, settle: float = 0.3) -> None:
    need = {t: int(count.get(t, 1) if isinstance(count, dict) else count) for t in publishers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if all(p.get_subscription_count() >= need[t] for t, p in publishers.items()):
            # The publisher has matched the subscriber; give the subscriber a moment to match
            # the publisher too, or a best-effort reader can miss the first message.
            stop.wait(settle)
            return
        time.sleep(0.02)


class _ClockPublisher:
    """Publishes rosgraph_msgs/Clock with the bag time, at a fixed wall rate."""

    def __init__(self, node, hz: float) -> None:
        from rclpy.qos import QoSProfile
        from rosgraph_msgs.msg import Clock

        self._msg = Clock()
        self._pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.period = 1.0 / hz
        self._next = 0.0

    def maybe_publish(self, bag_time_ns: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._next:
            self._msg.clock.sec, self._msg.clock.nanosec = ns_to_stamp(bag_time_ns)
            self._pub.publish(self._msg)
            self._next = now + self.period


def _publish_loop(reader, connections, publishers, clock, options: ReplayOptions,
                  stop: threading.Event) -> ReplayStats:
    start_ns = reader.start_time + int(options.start_offset * 1e9)
    per_topic = {topic: 0 for topic in publishers}
    log: list[tuple[str, int, int]] = []
    t0 = time.monotonic()
    interrupted = False
    while True:
        loop_t0 = time.monotonic()
        for connection, timestamp, rawdata in iter_raw(reader, connections, start=start_ns):
            target = loop_t0 + (timestamp - start_ns) / 1e9 / options.rate
            if not _sleep_until(target, clock, start_ns, loop_t0, options.rate, stop):
                interrupted = True
                break
            if clock is not None:
                clock.maybe_publish(timestamp, force=True)
            publishers[connection.topic].publish(bytes(rawdata))
            log.append((connection.topic, timestamp, time.time_ns()))
            per_topic[connection.topic] += 1
        if interrupted or not options.loop or stop.is_set():
            break
        if not log:
            break  # nothing after the start offset: looping would spin forever
    return ReplayStats(per_topic=per_topic, publish_log=log, all_acked=False,
                       duration_s=time.monotonic() - t0, interrupted=interrupted or stop.is_set())


def _sleep_until(target: float, clock, start_ns: int, loop_t0: float, rate: float,
                 stop: threading.Event) -> bool:
    """Sleep until monotonic `target`, publishing /clock meanwhile; False when stopped."""
    while True:
        if stop.is_set():
            return False
        now = time.monotonic()
        if now >= target:
            return True
        step = target - now
        if clock is not None:
            clock.maybe_publish(start_ns + int((now - loop_t0) * rate * 1e9))
            step = min(step, clock.period)
        stop.wait(min(step, 0.05))
