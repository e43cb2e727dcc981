"""Bag tools: replay -> node -> record round trip, interrupted recording, offline evaluation
against independently computed metrics, LiDAR ground truth, and clear errors for bad bags."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from bag_fixtures import (
    K_SMALL,
    decoded,
    messages_equal,
    private_ros_env,
    random_checkpoint,
    restore_env,
    scene_depth,
    set_env,
    write_depth_bag,
)

from lsmdepth_ros.bags import bagfile
from lsmdepth_ros.bags import messages as bagmsg
from lsmdepth_ros.bags.bag_eval import BagEvalOptions, evaluate_bag, lidar_depth
from lsmdepth_ros.bags.bagfile import BagError
from lsmdepth_ros.bags.outputs import read_ply, write_ply
from lsmdepth_ros.bags.topic_streams import Frame, StampMatcher
from lsmdepth_ros.cli import main as cli_main

INPUT_TOPICS = ("/camera/image_raw", "/camera/camera_info", "/camera/depth_gt")


@pytest.fixture(scope="module")
def ros_env():
    old = set_env(private_ros_env())
    yield dict(os.environ)
    restore_env(old)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bags")


@pytest.fixture(scope="module")
def checkpoint(workdir) -> Path:
    return random_checkpoint(workdir / "random_lsmdepth.pt")


@pytest.fixture(scope="module")
def source_bag(workdir) -> Path:
    path = workdir / "source"
    write_depth_bag(path, frames=6)
    return path


# ----------------------------------------------------------------------------------------------
# live: replay and record

def _record_in_thread(out: Path, topics, **kwargs):
    """Record in a thread; result["stats"] is filled live (counts while recording)."""
    from lsmdepth_ros.bags.record import RecordOptions, RecordStats, record

    stop, ready = threading.Event(), threading.Event()
    result = {"stats": RecordStats(path=out)}

    def target():
        record(RecordOptions(out=out, topics=tuple(topics), **kwargs), stop, ready,
               result["stats"])

    thread = threading.Thread(target=target)
    thread.start()
    return stop, ready, thread, result


def test_replay_with_rate_offset_and_remap_delivers_recorded_messages(ros_env, workdir,
                                                                      source_bag):
    from lsmdepth_ros.bags.replay import ReplayOptions, replay

    out = workdir / "remapped"
    stop, ready, thread, _result = _record_in_thread(out, ["/remapped/image"])
    try:
        stats = replay(ReplayOptions(bag=source_bag, rate=4.0, start_offset=0.2,
                                     topics=("/camera/image_raw",),
                                     remap={"/camera/image_raw": "/remapped/image"},
                                     wait_for_subscribers=15.0))
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert ready.is_set()
    # start offset 0.2 s skips the first two of six frames (100 ms apart)
    assert stats.per_topic == {"/camera/image_raw": 4} and stats.all_acked
    source = decoded(source_bag, "/camera/image_raw")[2:]
    got = decoded(out, "/remapped/image")
    assert len(got) == 4 and all(messages_equal(a, b) for a, b in zip(source, got))
    # recorded timing at 4x: 300 ms of bag time -> ~75 ms of wall time (not 0, not 300)
    walls = [w for _, _, w in stats.publish_log]
    assert 50 <= (walls[-1] - walls[0]) / 1e6 <= 250, np.diff(walls) / 1e6


def test_replay_loops_until_stopped_and_publishes_bag_time_on_clock(ros_env, workdir,
                                                                   source_bag):
    from lsmdepth_ros.bags.replay import ReplayOptions, replay

    out = workdir / "clock"
    stop_rec, ready, thread, _ = _record_in_thread(out, ["/clock", "/camera/camera_info"])
    stop = threading.Event()
    try:
        # Six frames take 0.5 s at 1x, so 6 s of play must loop. The clock starts once the
        # recorder has subscribed (after replay created its publishers): on a loaded machine
        # discovery alone can take seconds.
        def stop_later():
            ready.wait(60)
            time.sleep(6.0)
            stop.set()

        timer = threading.Thread(target=stop_later, daemon=True)
        timer.start()
        stats = replay(ReplayOptions(bag=source_bag, loop=True, clock_hz=50.0,
                                     topics=("/camera/camera_info",), wait_for_subscribers=15.0),
                       stop=stop)
        time.sleep(0.3)
    finally:
        stop.set()
        stop_rec.set()
        thread.join(timeout=10)
    assert stats.interrupted and stats.per_topic["/camera/camera_info"] > 6
    infos = decoded(out, "/camera/camera_info")
    assert len(infos) == stats.per_topic["/camera/camera_info"]
    clocks = np.array([bagmsg.stamp_to_ns(m.clock) for m in decoded(out, "/clock")])
    # /clock carries bag time (1.0 .. 1.5 s here), at ~50 Hz between messages
    assert clocks.size > 30 and clocks.min() >= 1_000_000_000 and clocks.max() <= 1_500_000_000
    assert np.sum(np.diff(clocks) < 0) >= 1  # time jumps back when the bag loops


def test_replay_into_node_and_record_round_trip(ros_env, workdir, source_bag, checkpoint):
    """Replay the source bag into a live node while a recorder (a subprocess, as users run it)
    records the replayed inputs and the node's outputs."""
    from lsmdepth_ros.bags.demo import node_command, ros_environment
    from lsmdepth_ros.bags.processes import ManagedProcess

    env = ros_environment(int(ros_env["ROS_DOMAIN_ID"]))
    out = workdir / "round_trip"
    outputs = ("/depth", "/depth/camera_info", "/points", "/depth/colored")
    node = ManagedProcess("node", node_command(checkpoint), env, workdir / "node.log")
    recorder = ManagedProcess("recorder", [sys.executable, "-m", "lsmdepth_ros.cli", "bag",
                                           "record", str(out), "--topics", *INPUT_TOPICS,
                                           *outputs], env, workdir / "recorder.log")
    try:
        # returns once every output has been seen and the node has gone quiet: no fixed sleep,
        # so a slow first frame on a busy machine is waited for
        stats = _replay_when_ready(node, recorder, source_bag, outputs)
    finally:
        recorder_rc = recorder.stop(timeout=20)
        node_rc = node.stop(timeout=10)
    assert recorder_rc == 0, recorder.tail()
    assert node_rc == 0, node.tail()  # SIGINT stops the node cleanly
    assert stats.published == 18 and stats.all_acked
    for topic in INPUT_TOPICS:  # decoded messages equal, in order
        source, got = decoded(source_bag, topic), decoded(out, topic)
        assert len(got) == len(source) == 6, topic
        assert all(messages_equal(a, b) for a, b in zip(source, got)), topic
    in_stamps = {bagmsg.stamp_to_ns(m.header.stamp) for m in decoded(source_bag, INPUT_TOPICS[0])}
    depth = decoded(out, "/depth")
    assert len(depth) >= 1
    depth_stamps = [bagmsg.stamp_to_ns(m.header.stamp) for m in depth]
    assert set(depth_stamps) <= in_stamps  # outputs carry the input's header
    assert all(m.encoding == "32FC1" and m.header.frame_id == "camera_optical_frame"
               for m in depth)
    for topic in ("/depth/camera_info", "/points"):
        stamps = {bagmsg.stamp_to_ns(m.header.stamp) for m in decoded(out, topic)}
        assert stamps and stamps <= set(depth_stamps), topic


def _replay_when_ready(node, recorder, bag, outputs, quiet_s: float = 1.0):
    """Replay once the node and the recorder are subscribed; return after a probe has seen every
    output topic and no new depth for `quiet_s` (the node has finished its last frame)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from lsmdepth_ros.bags.replay import ReplayOptions, replay

    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("probe", context=context)
    seen = {t: 0 for t in outputs}
    last_depth = [time.monotonic()]

    def on_output(_msg, topic):
        seen[topic] += 1
        if topic == "/depth":
            last_depth[0] = time.monotonic()

    kinds = {"/depth/camera_info": CameraInfo, "/points": PointCloud2}
    for topic in outputs:   # best effort: matches reliable and best-effort publishers alike
        probe.create_subscription(kinds.get(topic, Image), topic,
                                  lambda m, t=topic: on_output(m, t), qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            node.check_alive()
            recorder.check_alive()
            subs = {t: {i.node_name for i in probe.get_subscriptions_info_by_topic(t)}
                    for t in ("/camera/image_raw", *outputs)}
            # The recorder subscribes to the inputs once their publishers exist: replay()
            # creates them, then waits for a subscriber on each before playing.
            if "depth_node" in subs.pop("/camera/image_raw") and all(
                    "lsmdepth_bag_record" in names for names in subs.values()):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"node / recorder not ready:\n{node.tail()}\n{recorder.tail()}")
        # both the node and the recorder must have matched every input publisher: with one,
        # the node could miss the first camera_info and pair nothing
        stats = replay(ReplayOptions(bag=bag, wait_for_subscribers=30.0, min_subscribers={
            "/camera/image_raw": 2, "/camera/camera_info": 2}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                all(seen.values()) and time.monotonic() - last_depth[0] > quiet_s):
            node.check_alive()
            time.sleep(0.05)
        assert all(seen.values()), f"outputs never seen: {seen}\n{node.tail()}"
        time.sleep(0.3)   # the recorder got the last messages when the probe did; let it write
        return stats
    finally:
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()
        context.try_shutdown()


@pytest.mark.parametrize("sig,storage", [(signal.SIGINT, "mcap"), (signal.SIGTERM, "sqlite3")])
def test_recording_interrupted_mid_stream_is_readable_and_complete(ros_env, workdir, sig,
                                                                   storage):
    import rclpy
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String

    out = workdir / f"interrupted_{storage}"
    proc = subprocess.Popen([sys.executable, "-m", "lsmdepth_ros.cli", "bag", "record", str(out),
                             "--topics", "/chatter", "--storage", storage],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("talker", context=context)
    pub = node.create_publisher(String, "/chatter", QoSProfile(depth=100))
    sent = 0
    try:
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "recorder never subscribed"
            time.sleep(0.05)
        time.sleep(0.3)
        signal_at, stop_at = time.monotonic() + 1.0, None
        while proc.poll() is None:
            now = time.monotonic()
            if stop_at is None and now >= signal_at:
                proc.send_signal(sig)  # mid-stream: we keep publishing until it exits
                stop_at = now + 15.0
            if stop_at is not None and now > stop_at:
                break
            pub.publish(String(data=str(sent)))
            sent += 1
            time.sleep(0.01)
        rc = proc.wait(timeout=20)
    finally:
        node.destroy_node()
        context.try_shutdown()
        if proc.poll() is None:
            proc.kill()
    log = proc.stdout.read().decode()
    assert rc == 0, log
    values = [int(m.data) for m in decoded(out, "/chatter")]
    assert len(values) > 20, log
    # nothing lost: from the first recorded message on, every one up to the stop is in the bag
    assert values == list(range(values[0], values[0] + len(values)))
    assert f"/chatter: {len(values)}" in log


# ----------------------------------------------------------------------------------------------
# offline evaluation

def _expected_metrics(gt: np.ndarray, pred: np.ndarray, median: bool) -> dict:
    """The Eigen metrics written out here independently of the package."""
    valid = np.isfinite(gt) & (gt > 1e-3) & (gt < 80) & np.isfinite(pred)
    g, p = gt[valid].astype(np.float64), pred[valid].astype(np.float64)
    if median:
        p = p * np.median(g) / np.median(p)
    p = np.clip(p, 1e-3, 80)
    thresh = np.maximum(g / p, p / g)
    return {"abs_rel": np.mean(np.abs(g - p) / g), "sq_rel": np.mean((g - p) ** 2 / g),
            "rmse": np.sqrt(np.mean((g - p) ** 2)),
            "rmse_log": np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
            "a1": np.mean(thresh < 1.25), "a2": np.mean(thresh < 1.25 ** 2),
            "a3": np.mean(thresh < 1.25 ** 3)}


def _perturb(gt, i):
    """A known, non-uniform error: a ramp from x0.7 to x1.5 across the columns, per frame."""
    ramp = np.linspace(0.7, 1.5, gt.shape[1], dtype=np.float32)[None, :]
    return gt * ramp * (1.0 + 0.05 * i)


@pytest.mark.parametrize("median", [False, True])
def test_eval_of_recorded_depth_matches_independent_metrics(workdir, median):
    gt_bag, pred_bag = workdir / f"gt_{median}", workdir / f"pred_{median}"
    gts = write_depth_bag(gt_bag, frames=4)
    # the node-output bag: only the depth topic, one extra frame whose stamp has no ground truth
    write_depth_bag(pred_bag, frames=4, pred_factor=_perturb, with_info=False, with_gt=False,
                    extra_pred_stamp=9_000_000_000)
    out = workdir / f"eval_{median}"
    rc = cli_main(["bag", "eval", str(pred_bag), "--pred-topic", "/depth", "--gt-bag",
                   str(gt_bag), "--out", str(out), "--error-maps", "2"]
                  + ([] if median else ["--no-median-scaling"]))
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert len(rows) == 5 and rows[-1]["abs_rel"] == ""  # the unmatched frame
    assert summary["frames_evaluated"] == 4 and summary["frames_without_ground_truth"] == 1
    per_frame = [_expected_metrics(gt, _perturb(gt, i), median)
                 for i, gt in enumerate(gts.values())]
    for i, row in enumerate(rows[:4]):
        for key, value in per_frame[i].items():
            assert float(row[key]) == pytest.approx(value, rel=1e-5, abs=1e-6), (i, key)
    for key in per_frame[0]:
        assert summary["metrics"][key] == pytest.approx(np.mean([m[key] for m in per_frame]),
                                                        rel=1e-6)
    for name in ("metrics_over_time.png", "error_map_0.png", "error_map_1.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_with_the_network_is_deterministic_and_matches_the_estimator(workdir, source_bag,
                                                                         checkpoint):
    from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions

    options = {"bag": source_bag, "model": str(checkpoint), "error_maps": 1, "max_frames": 3}
    first = evaluate_bag(BagEvalOptions(out_dir=workdir / "net_a", **options))
    second = evaluate_bag(BagEvalOptions(out_dir=workdir / "net_b", **options))
    assert (workdir / "net_a" / "frames.csv").read_text() == \
        (workdir / "net_b" / "frames.csv").read_text()
    assert len(first.rows) == 3 and first.summary == second.summary
    estimator = DepthEstimator(EstimatorOptions(model_path=str(checkpoint), device="cpu"))
    images = [bagmsg.image_to_numpy(m) for m in decoded(source_bag, "/camera/image_raw")[:3]]
    gts = [bagmsg.image_to_numpy(m) for m in decoded(source_bag, "/camera/depth_gt")[:3]]
    for row, image, gt in zip(first.rows, images, gts):
        expected = _expected_metrics(gt, estimator.estimate(image, "rgb8", K_SMALL), True)
        for key, value in expected.items():
            assert row.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_lidar_ground_truth_projects_through_camera_info_and_extrinsic(workdir):
    """A LiDAR cloud made from the true depth, expressed in a rotated + shifted LiDAR frame,
    evaluated against a prediction of exactly 1.1 x the truth: AbsRel 0.1, all within 1.25."""
    from lsmdepth_ros.geometry import depth_to_points

    store = bagfile.get_typestore()
    # lidar -> camera optical: LiDAR x forward, y left, z up (REP 103), 0.3 m above the camera
    R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    T_cam_lidar = np.eye(4)
    T_cam_lidar[:3, :3], T_cam_lidar[:3, 3] = R, [0.0, 0.3, 0.0]
    T_lidar_cam = np.linalg.inv(T_cam_lidar)
    bag = workdir / "lidar"
    gts = {}
    with bagfile.BagWriter(bag) as writer:
        for i, stamp in enumerate((1_000_000_000, 1_100_000_000)):
            gt = scene_depth(shift=i)
            gts[stamp] = gt
            pts = depth_to_points(gt, K_SMALL)[::3, ::2].reshape(-1, 3)  # a sparse scan
            pts = pts[np.isfinite(pts).all(axis=1)]
            lidar = pts @ T_lidar_cam[:3, :3].T + T_lidar_cam[:3, 3]
            writer.write("/camera/camera_info", stamp,
                         bagmsg.make_camera_info(K_SMALL, 64, 32, stamp, "cam", store))
            writer.write("/lidar/points", stamp + 3_000_000,  # LiDAR stamps 3 ms off
                         bagmsg.numpy_to_pointcloud2(lidar, stamp_ns=stamp + 3_000_000,
                                                    frame_id="lidar", store=store))
            writer.write("/depth", stamp, bagmsg.numpy_to_image(gt * 1.1, "32FC1", stamp, "cam",
                                                               store))
    extrinsic = workdir / "extrinsic.txt"
    extrinsic.write_text("\n".join(" ".join(f"{v:.9f}" for v in row) for row in T_cam_lidar))
    out = workdir / "lidar_eval"
    rc = cli_main(["bag", "eval", str(bag), "--pred-topic", "/depth", "--lidar-topic",
                   "/lidar/points", "--extrinsic", str(extrinsic), "--no-median-scaling",
                   "--out", str(out), "--error-maps", "1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_evaluated"] == 2
    assert summary["metrics"]["abs_rel"] == pytest.approx(0.1, rel=1e-4)
    assert summary["metrics"]["a1"] == 1.0
    expected_pixels = int(np.isfinite(gts[1_000_000_000][::3, ::2]).sum())
    rows = list(csv.DictReader((out / "frames.csv").open()))
    assert int(rows[0]["valid_pixels"]) == expected_pixels
    # the projection itself: every point lands on its own pixel with its own depth
    pts = depth_to_points(gts[1_000_000_000], K_SMALL)
    lidar = pts.reshape(-1, 3) @ T_lidar_cam[:3, :3].T + T_lidar_cam[:3, 3]
    sparse = lidar_depth(lidar[np.isfinite(lidar).all(axis=1)], T_cam_lidar, K_SMALL, 64, 32)
    np.testing.assert_allclose(sparse, gts[1_000_000_000], rtol=1e-5, equal_nan=True)


def test_stamp_matcher_pairs_within_tolerance_only():
    frames = iter([Frame(s, s, s) for s in (0, 100, 200, 300)])
    matcher = StampMatcher(frames, tolerance_ns=10)
    assert matcher.find(5).data == 0
    assert matcher.find(150) is None
    assert matcher.find(195).data == 200
    assert matcher.find(309).data == 300
    assert matcher.find(400) is None


def test_ply_round_trip_keeps_finite_points_and_colours(tmp_path):
    points = np.array([[1, 2, 3], [np.nan, 0, 0], [4, 5, 6]], np.float32)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    assert write_ply(tmp_path / "c.ply", points, colors) == 2
    ply = read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(np.stack([ply["x"], ply["y"], ply["z"]], 1), points[[0, 2]])
    np.testing.assert_array_equal(np.stack([ply["red"], ply["green"], ply["blue"]], 1),
                                  colors[[0, 2]])


# ----------------------------------------------------------------------------------------------
# bad bags: exit code 2 and one clear line, no traceback

def _bad(argv, capsys) -> str:
    rc = cli_main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_missing_bag_is_a_clear_error(workdir, capsys):
    err = _bad(["bag", "eval", str(workdir / "nope"), "--pred-topic", "/depth"], capsys)
    assert "does not exist" in err or "no bag" in err


def test_truncated_bag_is_a_clear_error(workdir, source_bag, capsys):
    import shutil

    bag = workdir / "truncated"
    shutil.copytree(source_bag, bag)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    err = _bad(["bag", "eval", str(bag), "--pred-topic", "/camera/depth_gt"], capsys)
    assert "truncated" in err or "corrupt" in err or "cannot open" in err
    err = _bad(["bag", "replay", str(bag)], capsys)
    assert "truncated" in err or "corrupt" in err or "cannot open" in err


def test_missing_topic_is_a_clear_error(source_bag, workdir, capsys):
    err = _bad(["bag", "eval", str(source_bag), "--pred-topic", "/depth", "--out",
                str(workdir / "x")], capsys)
    assert "/depth" in err and "/camera/image_raw" in err  # names what is there
    err = _bad(["bag", "replay", str(source_bag), "--topics", "/nope"], capsys)
    assert "/nope" in err


def test_unknown_message_type_is_a_clear_error(workdir, capsys):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)  # a private store: the shared one stays clean
    store.register(get_types_from_msg("int32 value", "acme_msgs/msg/Widget"))
    bag = workdir / "unknown_type"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/camera/image_raw", "acme_msgs/msg/Widget", typestore=store)
        msg = store.types["acme_msgs/msg/Widget"](value=3)
        writer.write(conn, 1, store.serialize_cdr(msg, "acme_msgs/msg/Widget"))
    err = _bad(["bag", "replay", str(bag)], capsys)
    assert "acme_msgs/msg/Widget" in err and "not installed" in err
    err = _bad(["bag", "eval", str(bag), "--pred-topic", "/camera/image_raw"], capsys)
    assert "acme_msgs/msg/Widget" in err and "sensor_msgs/msg/Image" in err


def test_images_without_camera_info_is_a_clear_error(workdir, checkpoint, capsys):
    bag = workdir / "no_info"
    write_depth_bag(bag, frames=2, with_info=False)
    err = _bad(["bag", "eval", str(bag), "--model", str(checkpoint), "--out",
                str(workdir / "y")], capsys)
    assert "camera_info" in err and "/camera/image_raw" in err


def test_evaluate_bag_raises_bag_error_for_wrong_topic_type(source_bag, workdir):
    with pytest.raises(BagError, match="expected sensor_msgs/msg/PointCloud2"):
        evaluate_bag(BagEvalOptions(bag=source_bag, out_dir=workdir / "z",
                                    pred_topic="/camera/depth_gt",
                                    lidar_topic="/camera/image_raw"))


def test_latched_topic_keeps_transient_local_through_record_and_replay(ros_env, workdir):
    """/tf_static is published once, transient-local, before anyone listens: the recorder must
    still get it, the bag must say it was latched, and replay must publish it latched again."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from lsmdepth_ros.bags.replay import ReplayOptions, _qos

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("latched_publisher", context=context)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(String, "/latched_test", latched)
    plain = node.create_publisher(String, "/volatile_test", 10)
    msg = String()
    msg.data = "static"
    pub.publish(msg)  # before the recorder exists: only a transient-local reader can get it
    out = workdir / "latched"
    stop, ready, thread, result = _record_in_thread(out, ["/latched_test", "/volatile_test"])
    try:
        assert ready.wait(30), "recorder never subscribed"
        # the stored sample arrives once the subscription matches: wait for it, however slow
        deadline = time.monotonic() + 30
        while result["stats"].per_topic["/latched_test"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
        node.destroy_publisher(plain)
        node.destroy_node()
        context.try_shutdown()
    assert [m.data for m in decoded(out, "/latched_test")] == ["static"]
    with bagfile.open_bag(out) as reader:
        by_topic = {c.topic: c for c in reader.connections}
    profiles = by_topic["/latched_test"].ext.offered_qos_profiles
    assert [q.durability.name for q in profiles] == ["TRANSIENT_LOCAL"]
    assert not by_topic["/volatile_test"].ext.offered_qos_profiles
    options = ReplayOptions(bag=out)
    assert _qos(options, [by_topic["/latched_test"]]).durability == \
        DurabilityPolicy.TRANSIENT_LOCAL
    assert _qos(options, [by_topic["/volatile_test"]]).durability == DurabilityPolicy.VOLATILE


def test_synthetic_bag_offers_tf_static_latched(workdir):
    from lsmdepth_ros.bags.synthetic_bag import write_synthetic_bag
    from lsmdepth_ros.synthetic import SyntheticOptions

    path = write_synthetic_bag(workdir / "latched_synthetic",
                               options=SyntheticOptions(frames=3, width=64, height=32))
    with bagfile.open_bag(path) as reader:
        qos = {c.topic: [q.durability.name for q in c.ext.offered_qos_profiles]
               for c in reader.connections}
    assert qos["/tf_static"] == ["TRANSIENT_LOCAL"]
    assert all(not v for t, v in qos.items() if t != "/tf_static"), qos


def test_replay_waits_for_the_subscriber_count_asked_per_topic():
    from lsmdepth_ros.bags.replay import ReplayOptions, _wait_for_subscribers

    class FakePublisher:
        def __init__(self, counts):
            self.counts = iter(counts)

        def get_subscription_count(self):
            return next(self.counts, 2)

    # /a reaches 2 subscribers on its 4th look; /b needs only the default 1
    pubs = {"/a": FakePublisher([0, 1, 1, 2]), "/b": FakePublisher([1] * 50)}
    start = time.monotonic()
    _wait_for_subscribers(pubs, 60.0, threading.Event(), {"/a": 2}, settle=0.0)
    assert time.monotonic() - start < 30.0              # returned on the count, not the timeout
    assert next(pubs["/a"].counts, None) is None      # it kept looking until /a had two
    with pytest.raises(ValueError, match="min_subscribers must be >= 1"):
        ReplayOptions(bag=Path("x"), min_subscribers={"/a": 0})
