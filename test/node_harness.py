"""Shared by the node tests: the node as a separate process, a test-side participant that
publishes camera frames and collects every output by stamp (own domain, localhost only), and a
tiny random-weights checkpoint (64x192 network)."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from lsmdepth_ros.resources import params_file_path
from lsmdepth_ros.ros.transport import large_data_env, use_large_data_transport

DOMAIN = random.Random(os.getpid() ^ int(time.time())).randint(1, 100)
# Before any participant exists in this process: localhost discovery and the large-SHM profile.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
use_large_data_transport()

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from lsmdepth_ros.ros import messages as M
from lsmdepth_ros.ros.diagnostics import diagnostics_values

H, W = 96, 320                    # camera images
NET_H, NET_W = 64, 192            # network input
K = np.array([[220.0, 0.0, 161.3], [0.0, 215.0, 47.2], [0.0, 0.0, 1.0]])
FRAME = "camera_optical_frame"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def node_env() -> dict:
    env = large_data_env()
    env.update(ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               RCUTILS_LOGGING_BUFFERED_STREAM="0", PYTHONUNBUFFERED="1")
    return env


def start_node(log_path: Path, *params: str, remaps: tuple[str, ...] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lsmdepth_ros.ros.node", "--ros-args",
           "--params-file", str(params_file_path())]
    for p in params:
        cmd += ["-p", p]
    for r in remaps:
        cmd += ["-r", r]
    with open(log_path, "w") as log:   # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, env=node_env(), stdout=log, stderr=subprocess.STDOUT)


def scene(seed=0) -> np.ndarray:
    """A textured road-like picture: smooth colour gradients plus blobs (bgr8)."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([u / W * 255, v / H * 255, np.full_like(u, 90)], -1)
    img += rng.normal(0, 25, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def camera_info(header, width=W, height=H, k=K) -> CameraInfo:
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.header = header
    info.k = [float(x) for x in np.asarray(k).reshape(-1)]
    info.d = [0.0] * 5
    info.r = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    return info   # P left all zero on purpose: the node must fill it


class Harness:
    """Test-side participant: publishes camera frames, collects every output by stamp."""

    def __init__(self):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=DOMAIN)
        self.node = rclpy.create_node("node_tester", context=self.ctx)
        self.lock = threading.Lock()
        self.msgs: dict[str, list] = defaultdict(list)
        self.arrival: dict[str, list] = defaultdict(list)
        self.pub_image = self.node.create_publisher(Image, "image", RELIABLE)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", RELIABLE)
        self.subs = {}
        for topic, kind in (("depth", Image), ("depth/camera_info", CameraInfo),
                            ("points", PointCloud2), ("depth/colored", Image)):
            self.subscribe(topic, kind, RELIABLE)
        self.subscribe("/diagnostics", DiagnosticArray, 10)
        self.param_client = self.node.create_client(SetParameters, "/depth_node/set_parameters")
        self.get_client = self.node.create_client(GetParameters, "/depth_node/get_parameters")
        self.describe_client = self.node.create_client(DescribeParameters,
                                                       "/depth_node/describe_parameters")
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.seq = 0

    def subscribe(self, topic, kind, qos, key=None):
        key = key or topic

        def store(msg):
            with self.lock:
                self.msgs[key].append(msg)
                self.arrival[key].append(time.time())
        self.subs[key] = self.node.create_subscription(kind, topic, store, qos)

    def unsubscribe_outputs(self):
        for key in [k for k in self.subs if k != "/diagnostics"]:
            self.node.destroy_subscription(self.subs.pop(key))

    def header(self):
        self.seq += 1   # in the last digits of the stamp: unique even within one microsecond
        h = Header(frame_id=FRAME)
        now = time.time()
        h.stamp.sec = int(now)
        h.stamp.nanosec = int((now % 1) * 1e6) * 1000 + self.seq % 1000
        return h

    def send(self, img=None, encoding="bgr8", info=True, msg=None):
        msg = msg or M.numpy_to_image(scene() if img is None else img, encoding)
        msg.header = self.header()
        if info is True:
            self.pub_info.publish(camera_info(msg.header))
        elif info is not None:
            info.header = msg.header
            self.pub_info.publish(info)
        self.pub_image.publish(msg)
        return msg.header

    def get(self, topic, header):
        with self.lock:
            for m in self.msgs[topic]:
                if m.header.stamp == header.stamp:
                    return m
        return None

    def wait(self, predicate, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def send_until(self, topics, timeout=30.0, period=0.3, **kw):
        """Send frames until one of them came back on every topic; returns its header."""
        end = time.time() + timeout
        sent = []
        while time.time() < end:
            sent.append(self.send(**kw))
            if self.wait(lambda: any(all(self.get(t, h) for t in topics) for h in sent), period):
                return next(h for h in sent if all(self.get(t, h) for t in topics))
        raise AssertionError(f"no frame came back on {topics} within {timeout}s")

    def diagnostics(self) -> dict:
        with self.lock:
            last = self.msgs["/diagnostics"][-1] if self.msgs["/diagnostics"] else None
        return diagnostics_values(last) if last else {}

    def fresh_diagnostics(self, timeout=5.0) -> dict:
        with self.lock:
            n = len(self.msgs["/diagnostics"])
        assert self.wait(lambda: len(self.msgs["/diagnostics"]) > n, timeout)
        return self.diagnostics()

    def set_params(self, **values):
        assert self.param_client.wait_for_service(timeout_sec=10)
        req = SetParameters.Request(parameters=[Parameter(k.replace("__", "."), value=v)
                                                .to_parameter_msg() for k, v in values.items()])
        fut = self.param_client.call_async(req)
        assert self.wait(fut.done, 10)
        return fut.result().results

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=10)
        fut = client.call_async(request)
        assert self.wait(fut.done, 10)
        return fut.result()

    def get_params(self, *names):
        """name -> rcl_interfaces ParameterValue (with its type)."""
        values = self.call(self.get_client, GetParameters.Request(names=list(names))).values
        return dict(zip(names, values))

    def describe_params(self, *names):
        return dict(zip(names, self.call(self.describe_client, DescribeParameters.Request(
            names=list(names))).descriptors))

    def close(self):
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def tiny_checkpoint(tmp_path_factory) -> Path:
    from conftest import write_random_checkpoint

    # random decoder weights: widen the (nearly flat) disparity
    return write_random_checkpoint(tmp_path_factory.mktemp("node") / "tiny.pt", NET_H, NET_W,
                                   min_depth=0.1, max_depth=80.0, decoder_gain=4.0)


def running_node(checkpoint, tmp_path_factory, *params: str):
    """(process, harness, log) of a node ready for frames; for module fixtures (a generator)."""
    log = tmp_path_factory.mktemp("node_log") / "depth_node.log"
    proc = start_node(log, f"model_path:={checkpoint}", "num_threads:=1",
                      "warning_period:=0.5", "diagnostics_period:=0.5", *params)
    harness = Harness()
    try:
        ok = harness.wait(lambda: proc.poll() is not None or
                          harness.node.count_publishers("/depth") > 0, 60)
        assert ok and proc.poll() is None, f"node did not start:\n{log.read_text()}"
        # The node subscribes to its inputs once an output has a subscriber (the harness's).
        harness.wait(lambda: harness.pub_image.get_subscription_count() > 0 and
                     harness.pub_info.get_subscription_count() > 0, 20)
        yield proc, harness, log
    finally:
        harness.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


