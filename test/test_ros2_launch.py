"""`ros2 launch lsmdepth_ros lsmdepth.launch.py ...` for real, on the colcon-style install:
the plain node with the defaults and with every argument, and the lifecycle variant.

The launch system: the real `ros2 launch` when ROS 2 is sourced, else the pure-Python copy in
../shared/ros-launch (its README says why and how); without either the tests skip, saying so.
Each test starts the launch in its own process group, talks to the node over DDS (own domain,
localhost), then sends SIGINT to the whole group, as a terminal's Ctrl-C does, and checks that
everything ends cleanly within 10 s.
"""
from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from bag_fixtures import random_checkpoint
from colcon_fixtures import PACKAGE, ROOT, colcon_install

LAUNCH_FILE = "lsmdepth.launch.py"
SHUTDOWN_LIMIT_S = 10.0    # what a user waits for after Ctrl-C
START_LIMIT_S = 180.0      # first depth: interpreter, torch and model start-up on a busy CPU
H, W = 96, 320
K = np.array([[220.0, 0.0, 161.3], [0.0, 215.0, 47.2], [0.0, 0.0, 1.0]])
FRAME = "camera_optical_frame"
# 1..101: the domain ids whose DDS ports stay below Linux's ephemeral port range.
DOMAIN = random.Random(os.getpid() ^ time.time_ns()).randint(1, 101)


def _shared_ros_launch() -> Path | None:
    """../shared/ros-launch beside this checkout, or beside the main checkout of a worktree."""
    roots = [ROOT]
    git = ROOT / ".git"
    if git.is_file():   # a worktree: "gitdir: MAIN/.git/worktrees/NAME"
        gitdir = Path(git.read_text().split("gitdir:", 1)[1].strip())
        roots.append(gitdir.parents[1].parent)
    for root in roots:
        folder = root.parent / "shared" / "ros-launch"
        if (folder / "ros2_launch.py").is_file():
            return folder
    return None


def launch_system() -> tuple[list[str], list[Path]]:
    """The command that does `ros2 launch`, and what it needs on PYTHONPATH (or skip, why)."""
    if shutil.which("ros2") and importlib.util.find_spec("launch_ros"):
        return ["ros2", "launch"], []
    folder = _shared_ros_launch()
    if folder is None:
        pytest.skip("no ROS 2 sourced (`ros2`, launch_ros) and no ../shared/ros-launch: "
                    "nothing can run a launch file on this machine")
    missing = [m for m in ("osrf_pycommon", "lark", "yaml") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"../shared/ros-launch needs {missing}: pip install -r requirements.txt")
    return [sys.executable, str(folder / "ros2_launch.py")], [folder]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    return colcon_install(tmp_path_factory.mktemp("colcon"))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class LaunchRun:
    """`ros2 launch` in its own session (process group) with its output in a file."""

    def __init__(self, installed, args: list[str], log: Path):
        command, paths = launch_system()
        env = installed.environment(*paths)
        env.update(ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   RCUTILS_LOGGING_BUFFERED_STREAM="0", PYTHONUNBUFFERED="1",
                   OMP_NUM_THREADS="1")
        self.log_path = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([*command, PACKAGE, LAUNCH_FILE, *args], env=env,
                                         cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ctrl_c(self) -> tuple[int | None, float]:
        """SIGINT to the launch and every node, as a terminal's Ctrl-C; (exit code, seconds
        until the last process of the group was gone)."""
        start = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(SHUTDOWN_LIMIT_S + 5)
        except subprocess.TimeoutExpired:
            pass
        while _group_alive(self.proc.pid) and time.monotonic() - start < SHUTDOWN_LIMIT_S + 5:
            time.sleep(0.05)
        return self.proc.poll(), time.monotonic() - start

    def kill(self) -> None:
        if _group_alive(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class Camera:
    """Test-side participant: publishes image + camera_info, collects the node's outputs."""

    def __init__(self, image_topic: str, info_topic: str, out_ns: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=DOMAIN)
        self.node = rclpy.create_node("launch_tester", context=self.ctx)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.node.create_publisher(Image, image_topic, reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, info_topic, reliable)
        self.lock = threading.Lock()
        self.received: dict[str, list] = {"depth": [], "depth/camera_info": []}
        for topic, kind in (("depth", Image), ("depth/camera_info", CameraInfo)):
            self.node.create_subscription(kind, f"{out_ns}/{topic}",
                                          lambda m, t=topic: self._store(t, m), reliable)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.sent: dict[tuple[int, int], None] = {}

    def _store(self, topic, msg):
        with self.lock:
            self.received[topic].append(msg)

    def send(self) -> None:
        from sensor_msgs.msg import CameraInfo
        from std_msgs.msg import Header

        from lsmdepth_ros.ros.messages import numpy_to_image

        now = time.time_ns()
        header = Header(frame_id=FRAME)
        header.stamp.sec, header.stamp.nanosec = divmod(now, 1_000_000_000)
        v, u = np.mgrid[0:H, 0:W]
        img = np.stack([u * 255 // W, v * 255 // H, np.full_like(u, 90)], -1).astype(np.uint8)
        info = CameraInfo(header=header, width=W, height=H, distortion_model="plumb_bob",
                          k=K.reshape(-1).tolist(), d=[0.0] * 5,
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
        self.sent[(header.stamp.sec, header.stamp.nanosec)] = None
        self.pub_info.publish(info)
        self.pub_image.publish(numpy_to_image(img, "bgr8", header))

    def depth_pair(self, run: LaunchRun, timeout: float = START_LIMIT_S):
        """Send frames until a depth image and its camera_info come back for one sent stamp."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert run.proc.poll() is None, f"launch ended early:\n{run.log()}"
            self.send()
            time.sleep(0.3)
            with self.lock:
                infos = {(m.header.stamp.sec, m.header.stamp.nanosec): m
                         for m in self.received["depth/camera_info"]}
                for depth in self.received["depth"]:
                    key = (depth.header.stamp.sec, depth.header.stamp.nanosec)
                    if key in self.sent and key in infos:
                        return depth, infos[key]
        with self.lock:   # what the test saw of the graph: discovery vs. processing
            got = {topic: len(msgs) for topic, msgs in self.received.items()}
        graph = {topic: (self.node.count_publishers(topic), self.node.count_subscribers(topic))
                 for topic in (self.pub_image.topic_name, self.pub_info.topic_name)}
        pytest.fail(f"no depth within {timeout:.0f} s: sent {len(self.sent)} frames, received "
                    f"{got}, (publishers, subscribers) per input topic {graph}:\n{run.log()}")

    def call(self, kind, service: str, request, timeout: float = 60.0):
        client = self.node.create_client(kind, service)
        try:
            assert client.wait_for_service(timeout_sec=20), f"no service {service}"
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert future.done(), f"{service} timed out"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def parameters(self, node: str, names: list[str]) -> dict:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        reply = self.call(GetParameters, f"{node}/get_parameters",
                          GetParameters.Request(names=names))
        return dict(zip(names, map(parameter_value_to_python, reply.values)))

    def lifecycle_state(self, node: str) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def transition(self, node: str, transition_id: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{node}/change_state", request).success

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def _node_environment(run: LaunchRun) -> dict[str, str]:
    """The environment the launch gave the depth node (its pid is in launch's log)."""
    line = next(ln for ln in run.log().splitlines()
                if "depth_node" in ln and "process started with pid" in ln)
    pid = int(line.rsplit("[", 1)[1].split("]")[0])
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def _depth_array(msg) -> np.ndarray:
    assert msg.encoding == "32FC1"
    return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)


def _assert_clean_shutdown(run: LaunchRun, executable: str = "depth_node") -> None:
    code, seconds = run.ctrl_c()
    log = run.log()
    assert seconds <= SHUTDOWN_LIMIT_S, f"still running {seconds:.1f} s after Ctrl-C:\n{log}"
    assert "Traceback" not in log, log
    assert "process has died" not in log, log
    finished = [ln for ln in log.splitlines() if "process has finished cleanly" in ln]
    assert any(f"[{executable}-" in ln for ln in finished), log
    assert code == 0, f"launch exit code {code}:\n{log}"


def test_defaults_run_the_shipped_model_on_the_default_topics_and_ctrl_c_is_clean(
        installed, tmp_path):
    launch_system()
    run = LaunchRun(installed, [], tmp_path / "launch.log")
    camera = None
    try:
        camera = Camera("/camera/image_raw", "/camera/camera_info", "")
        depth, info = camera.depth_pair(run)
        values = _depth_array(depth)
        assert values.shape == (H, W) and (info.width, info.height) == (W, H)
        assert depth.header.frame_id == FRAME and np.isfinite(values).mean() > 0.5
        assert np.nanmin(values) > 0
        params = camera.parameters("/depth_node", ["use_sim_time", "model_path"])
        assert params == {"use_sim_time": False, "model_path": ""}
        # The installed node loaded the shipped weights through the ament share folder.
        model = installed.share / "models" / "lsmdepth_synthetic.pt"
        assert f"from {model}" in run.log()
        profile = str(installed.share / "config" / "fastdds_profile.xml")
        assert _node_environment(run)["FASTDDS_DEFAULT_PROFILES_FILE"] == profile
        _assert_clean_shutdown(run)
    finally:
        if camera is not None:
            camera.close()
        run.kill()


def test_every_argument_namespace_remaps_params_file_model_path_sim_time_profile(installed,
                                                                                  tmp_path):
    launch_system()
    net_h, net_w = 64, 128
    model = random_checkpoint(tmp_path / "tiny.pt", net_h, net_w)
    params = yaml.safe_load((ROOT / "config" / "lsmdepth.yaml").read_text())
    values = params["/**"]["ros__parameters"]
    values.update(output_resolution="network", publish_points=False, colormap="jet",
                  model_path="/does/not/exist.pt")   # model_path:= must win over the file
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    profile = tmp_path / "my_profile.xml"
    shutil.copy(ROOT / "config" / "fastdds_profile.xml", profile)
    args = ["namespace:=front", "image:=/cam/image_rect", "camera_info:=/cam/camera_info",
            f"params_file:={params_file}", f"model_path:={model}", "use_sim_time:=true",
            f"fastdds_profile:={profile}"]
    run = LaunchRun(installed, args, tmp_path / "launch.log")
    camera = None
    try:
        camera = Camera("/cam/image_rect", "/cam/camera_info", "/front")
        depth, info = camera.depth_pair(run)
        # params_file: depth at the network's size, camera_info scaled to it.
        assert (depth.width, depth.height) == (info.width, info.height) == (net_w, net_h)
        k = np.array(info.k).reshape(3, 3)
        np.testing.assert_allclose(k[0, 0], K[0, 0] * net_w / W, rtol=1e-6)
        np.testing.assert_allclose(k[1, 1], K[1, 1] * net_h / H, rtol=1e-6)
        assert camera.node.count_publishers("/front/depth") == 1
        assert camera.node.count_publishers("/front/points") == 0   # publish_points: false
        got = camera.parameters("/front/depth_node", ["use_sim_time", "model_path", "colormap"])
        assert got == {"use_sim_time": True, "model_path": str(model), "colormap": "jet"}
        assert _node_environment(run)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)
        _assert_clean_shutdown(run)
    finally:
        if camera is not None:
            camera.close()
        run.kill()


def test_lifecycle_node_waits_for_configure_and_activate_then_ctrl_c_is_clean(installed,
                                                                              tmp_path):
    launch_system()
    from lifecycle_msgs.msg import Transition

    model = random_checkpoint(tmp_path / "tiny.pt", 64, 128)
    args = ["lifecycle:=true", "namespace:=front", f"model_path:={model}"]
    run = LaunchRun(installed, args, tmp_path / "launch.log")
    camera = None
    try:
        camera = Camera("/camera/image_raw", "/camera/camera_info", "/front")
        assert camera.lifecycle_state("/front/depth_node") == "unconfigured"
        for _ in range(3):   # unconfigured: no depth however many frames come
            camera.send()
            time.sleep(0.3)
        assert camera.node.count_publishers("/front/depth") == 0
        assert camera.transition("/front/depth_node", Transition.TRANSITION_CONFIGURE)
        assert camera.lifecycle_state("/front/depth_node") == "inactive"
        assert camera.transition("/front/depth_node", Transition.TRANSITION_ACTIVATE)
        assert camera.lifecycle_state("/front/depth_node") == "active"
        depth, info = camera.depth_pair(run)
        assert (depth.width, depth.height) == (info.width, info.height) == (W, H)
        assert np.isfinite(_depth_array(depth)).mean() > 0.5
        _assert_clean_shutdown(run, "depth_lifecycle_node")
    finally:
        if camera is not None:
            camera.close()
        run.kill()
