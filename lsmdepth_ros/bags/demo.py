"""`lsmdepth demo`: the node live on a sample drive, recorded, then judged against ground truth.

1. a small sample bag of the synthetic drive (rendered once, cached);
2. the depth node (a subprocess, the shipped weights) and a recorder (a subprocess,
   `lsmdepth bag record`) on a private ROS domain, localhost only, with the Fast DDS profile;
3. the bag's image + camera_info replayed into the node with the recorded timing;
4. the recorder and the node stopped cleanly (SIGINT, then wait; killed only on a timeout);
5. offline: the recorded depth evaluated against the bag's ground truth, depth PNGs, a PLY
   of one cloud, and a latency / drop-rate report, all in one output folder.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lsmdepth_ros.atomic_files import atomic_write_text
from lsmdepth_ros.bags.bagfile import BagError
from lsmdepth_ros.bags.demo_report import DemoError, write_report
from lsmdepth_ros.bags.messages import stamp_to_ns
from lsmdepth_ros.bags.processes import ManagedProcess
from lsmdepth_ros.bags.synthetic_bag import (  # the sample bag's topics
    CAMERA_INFO_TOPIC,
    IMAGE_TOPIC,
)
from lsmdepth_ros.bags.synthetic_bag import DEPTH_TOPIC as GT_TOPIC
from lsmdepth_ros.ros.transport import use_large_data_transport

OUTPUT_TOPICS = ("/depth", "/depth/camera_info", "/points", "/depth/colored", "/diagnostics")
NODE_NAME = "depth_node"
RECORDER_NODE = "lsmdepth_bag_record"
SAMPLE_SEED = 7  # a drive the default weights were not trained on


@dataclass
class DemoOptions:
    out_dir: Path = Path("lsmdepth_demo")
    frames: int = 50
    width: int = 640
    height: int = 192
    model: str = ""                  # empty: the shipped default weights
    rate: float = 1.0                # replay speed factor
    cache_dir: Path | None = None    # sample bags; default ~/.cache/lsmdepth_ros
    domain_id: int | None = None     # default: a random private domain
    startup_timeout: float = 120.0   # seconds for the node to load its model and connect
    drain_timeout: float = 10.0      # seconds to wait for the last outputs after the replay

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.frames < 2:
            raise ValueError(f"the demo needs at least 2 frames, got {self.frames}")
        if self.cache_dir is None:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            self.cache_dir = Path(base) / "lsmdepth_ros"
        self.cache_dir = Path(self.cache_dir)


QUICK = {"frames": 12, "width": 320, "height": 96}


def sample_bag(options: DemoOptions) -> Path:
    """The cached sample drive bag (rendered on first use; atomic, so a crash leaves none)."""
    from lsmdepth_ros.bags.synthetic_bag import write_synthetic_bag
    from lsmdepth_ros.synthetic import SyntheticOptions

    path = options.cache_dir / (f"sample_drive_s{SAMPLE_SEED}_{options.frames}f_"
                                f"{options.width}x{options.height}")
    if (path / "metadata.yaml").is_file():
        return path
    print(f"rendering the sample drive ({options.frames} frames, {options.width}x"
          f"{options.height}) into {path} ...", flush=True)
    write_synthetic_bag(path, seed=SAMPLE_SEED, overwrite=True,
                        options=SyntheticOptions(width=options.width, height=options.height,
                                                 frames=options.frames))
    return path


def ros_environment(domain_id: int | None) -> dict:
    """Environment for the demo's ROS processes: private domain, localhost, and the node's own
    large-data transport policy (ros.transport: the profile variable this Fast DDS reads, the
    user's configuration kept)."""
    from lsmdepth_ros.ros.transport import large_data_env

    env = large_data_env()
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.randint(1, 200))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the discovery range
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_command(model: Path) -> list[str]:
    from lsmdepth_ros.resources import params_file_path

    cmd = [sys.executable, "-m", "lsmdepth_ros.ros.node", "--ros-args"]
    if params_file_path().is_file():
        cmd += ["--params-file", str(params_file_path())]
    return cmd + ["-p", f"model_path:={model}", "-r", f"image:={IMAGE_TOPIC}",
                  "-r", f"camera_info:={CAMERA_INFO_TOPIC}"]


def run_demo(options: DemoOptions) -> dict:
    """Run the whole demo; returns the summary written to <out_dir>/demo_summary.json."""
    from lsmdepth_ros.inference import resolve_model_path

    use_large_data_transport()
    t_start = time.monotonic()
    model = resolve_model_path(options.model).resolve()
    if not model.exists():
        raise DemoError(f"no weights at {model}: the default model is trained by `lsmdepth "
                        "train` (see models/README) and shipped in models/; pass --model "
                        "CHECKPOINT to use another one")
    out = options.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    recorded = out / "recorded_outputs"
    for stale in (recorded, out / "eval", out / "depth_png"):
        shutil.rmtree(stale, ignore_errors=True)
    bag = sample_bag(options)

    env = ros_environment(options.domain_id)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        if name in env:
            os.environ[name] = env[name]
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    print(f"starting the depth node ({model.name}) and the recorder on ROS domain "
          f"{env['ROS_DOMAIN_ID']} ...", flush=True)
    node = ManagedProcess("depth node", node_command(model), env, logs / "node.log")
    recorder = ManagedProcess(
        "recorder", [sys.executable, "-m", "lsmdepth_ros.cli", "bag", "record", str(recorded),
                     "--topics", *OUTPUT_TOPICS], env, logs / "recorder.log")
    try:
        replay_stats, seen = _drive(bag, node, recorder, options)
    finally:
        recorder_rc = recorder.stop(timeout=20.0)
        node_rc = node.stop(timeout=10.0)
    t_live = time.monotonic() - t_start
    if recorder_rc != 0 or not (recorded / "metadata.yaml").is_file():
        raise DemoError(f"the recorder did not finish cleanly (exit {recorder_rc}); see "
                        f"{recorder.log_path}:\n{recorder.tail()}")
    summary = write_report(out, bag, recorded, replay_stats, seen,
                           (IMAGE_TOPIC, CAMERA_INFO_TOPIC, GT_TOPIC))
    summary.update({
        "model": str(model), "sample_bag": str(bag), "recorded_bag": str(recorded),
        "node_exit_code": node_rc, "recorder_exit_code": recorder_rc,
        "ros_domain_id": int(env["ROS_DOMAIN_ID"]), "options": _jsonable(asdict(options)),
        "live_seconds": round(t_live, 1), "total_seconds": round(time.monotonic() - t_start, 1),
    })
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _drive(bag: Path, node: ManagedProcess, recorder: ManagedProcess, options: DemoOptions):
    """Wait for the node and the recorder, replay, wait for the last outputs."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import CameraInfo

    from lsmdepth_ros.bags.replay import ReplayOptions, replay

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    monitor = rclpy.create_node("lsmdepth_demo_monitor", context=context)
    seen: dict[int, int] = {}  # output header stamp -> wall ns when it arrived here
    last_diagnostics = [0]  # wall ns of the newest /diagnostics
    monitor.create_subscription(CameraInfo, "/depth/camera_info",
                                lambda m: seen.setdefault(stamp_to_ns(m.header.stamp), time.time_ns()), 50)
    monitor.create_subscription(DiagnosticArray, "/diagnostics",
                                lambda m: last_diagnostics.__setitem__(0, time.time_ns()), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(monitor)
    spinning = threading.Event()
    spinning.set()
    spinner = threading.Thread(target=lambda: _spin(executor, spinning), daemon=True)
    spinner.start()
    try:
        _wait_ready(monitor, node, recorder, options.startup_timeout)
        print(f"replaying {bag.name} into the node ...", flush=True)
        stats = replay(ReplayOptions(bag=bag, topics=(IMAGE_TOPIC, CAMERA_INFO_TOPIC),
                                     rate=options.rate, wait_for_subscribers=10.0))
        last = _last_image_stamp(bag)
        deadline = time.monotonic() + options.drain_timeout
        count = -1
        while time.monotonic() < deadline and last not in seen:
            if len(seen) != count:  # still producing: keep waiting
                count, deadline = len(seen), max(deadline, time.monotonic() + 2.0)
            node.check_alive()
            time.sleep(0.05)
        # One more /diagnostics after the last output, so the recorded report counts every frame.
        done_ns, deadline = time.time_ns(), time.monotonic() + 3.0
        while last_diagnostics[0] <= done_ns and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the recorder take the last messages
        return stats, dict(seen)
    finally:
        spinning.clear()
        spinner.join(timeout=2.0)
        executor.shutdown(timeout_sec=1.0)
        monitor.destroy_node()
        context.try_shutdown()


def _spin(executor, running: threading.Event) -> None:
    while running.is_set():
        executor.spin_once(timeout_sec=0.05)


def _wait_ready(monitor, node: ManagedProcess, recorder: ManagedProcess, timeout: float) -> None:
    """Until the node listens to the camera and the recorder to every output topic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node.check_alive()
        recorder.check_alive()
        node_ready = any(i.node_name == NODE_NAME
                         for i in monitor.get_subscriptions_info_by_topic(IMAGE_TOPIC))
        recording = all(any(i.node_name == RECORDER_NODE
                            for i in monitor.get_subscriptions_info_by_topic(topic))
                        for topic in OUTPUT_TOPICS)
        if node_ready and recording:
            return
        time.sleep(0.1)
    raise DemoError(f"the depth node / recorder were not ready after {timeout:.0f} s; see "
                    f"{node.log_path}:\n{node.tail()}")


def _last_image_stamp(bag: Path) -> int:
    from lsmdepth_ros.bags import bagfile

    last = None
    for m in bagfile.read_messages(bag, [IMAGE_TOPIC]):
        last = stamp_to_ns(m.msg.header.stamp)
    if last is None:
        raise BagError(f"sample bag {bag} has no images; delete it to render it again")
    return last


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value
