"""`lsmdepth bag replay|record|eval`: rosbag2 tools that need no `ros2` CLI."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "replay, record and evaluate rosbag2 bags (mcap or sqlite3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("replay", help="publish a bag's topics live with the recorded timing",
                       description="Publish the recorded bytes (no re-encoding) on the recorded "
                                   "schedule; waits for reliable subscribers' acknowledgements.")
    p.add_argument("bag", type=Path, help="bag directory or .mcap/.db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S",
                   help="start this many seconds into the bag")
    p.add_argument("--loop", action="store_true", help="play again from the start when done")
    p.add_argument("--topics", nargs="+", default=(), metavar="TOPIC",
                   help="replay only these topics (default: all)")
    p.add_argument("--remap", nargs="+", default=(), metavar="FROM:=TO",
                   help="publish bag topic FROM on topic TO")
    p.add_argument("--clock", type=float, default=0.0, metavar="HZ",
                   help="publish /clock with the bag time at this rate (for use_sim_time)")
    p.add_argument("--reliability", choices=("auto", "reliable", "best_effort"), default="auto",
                   help="publisher reliability (auto: as recorded, else reliable)")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                   help="before playing, wait up to S seconds for every topic to have a subscriber")
    p.add_argument("--min-subscribers", type=int, default=1, metavar="N",
                   help="with --wait-for-subscribers: wait for N subscribers per topic (e.g. 2: "
                        "a node and a recorder), so no one misses the first messages")
    p.add_argument("--ack-timeout", type=float, default=10.0, metavar="S",
                   help="wait up to S seconds for reliable subscribers to acknowledge at the end")

    p = sub.add_parser("record", help="record live topics (raw bytes) into a new bag",
                       description="Record until Ctrl-C / SIGTERM (or --duration); the bag is "
                                   "closed properly on interrupt.")
    p.add_argument("out", type=Path, help="output bag directory (must not exist)")
    p.add_argument("--topics", nargs="+", required=True, metavar="TOPIC", help="topics to record")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")

    p = sub.add_parser("eval", help="evaluate depth on a bag against ground truth (offline)",
                       description="Run the depth network over a bag's images (or take the node's "
                                   "recorded `depth` topic with --pred-topic) and compare with a "
                                   "ground-truth depth topic or a LiDAR cloud, using the Eigen "
                                   "metrics. Writes frames.csv, summary.json and PNG plots.")
    from lsmdepth_ros.bags.bag_eval import add_eval_arguments

    add_eval_arguments(p)


def run(args: argparse.Namespace) -> int:
    from lsmdepth_ros.bags.bagfile import BagError

    action = {"replay": _replay, "record": _record, "eval": _eval}[args.bag_command]
    try:
        return action(args)
    except (BagError, ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        print(f"lsmdepth bag {args.bag_command}: error: {exc}", file=sys.stderr)
        return 2


def _stop_on_signals():
    """An event set by SIGINT / SIGTERM, so the action finishes cleanly instead of dying."""
    import signal
    import threading

    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _replay(args) -> int:
    from lsmdepth_ros.bags.replay import ReplayOptions, replay

    remap = {}
    for item in args.remap:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"--remap expects FROM:=TO, got {item!r}")
        remap[src] = dst
    options = ReplayOptions(bag=args.bag, rate=args.rate, start_offset=args.start_offset,
                            loop=args.loop, topics=tuple(args.topics), remap=remap,
                            clock_hz=args.clock, reliability=args.reliability,
                            wait_for_subscribers=args.wait_for_subscribers,
                            min_subscribers=args.min_subscribers, ack_timeout=args.ack_timeout)
    stats = replay(options, stop=_stop_on_signals())
    counts = ", ".join(f"{t}: {n}" for t, n in stats.per_topic.items())
    print(f"replayed {stats.published} messages in {stats.duration_s:.1f} s ({counts})"
          + ("; interrupted" if stats.interrupted else "")
          + ("" if stats.all_acked else "; not every reliable subscriber acknowledged in time"))
    return 0


def _record(args) -> int:
    from lsmdepth_ros.bags.record import RecordOptions, check_output, record

    options = RecordOptions(out=args.out, topics=tuple(args.topics), storage=args.storage,
                            duration=args.duration)
    check_output(options.out)
    stop = _stop_on_signals()
    print(f"recording {', '.join(options.topics)} into {options.out} (Ctrl-C to stop)",
          flush=True)
    stats = record(options, stop=stop)
    missing = [t for t in options.topics if t not in stats.subscribed]
    counts = ", ".join(f"{t}: {n}" for t, n in stats.per_topic.items())
    print(f"recorded {stats.recorded} messages into {stats.path} ({counts})"
          + (f"; never seen: {', '.join(missing)}" if missing else ""), flush=True)
    return 0


def _eval(args) -> int:
    from lsmdepth_ros.bags.bag_eval import evaluate_bag, options_from_args

    result = evaluate_bag(options_from_args(args))
    print(result.report())
    return 0
