"""The depth node as a separate process, talked to over real DDS (own domain, localhost only).

One node process (random-weights tiny checkpoint, 64x192 network, 1 CPU thread) serves most
tests, in file order: no camera_info yet -> outputs and geometry -> QoS -> live and typed
parameters -> bad inputs -> no backlog at twice the model's rate -> shutdown. Start-up failures
and the compressed / namespaced node use their own processes. Pairing, lazy subscription and
diagnostics are in test_node_inputs.py.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from node_harness import (
    FRAME,
    NET_H,
    NET_W,
    RELIABLE,
    H,
    Harness,
    K,
    M,
    W,
    camera_info,
    read_log,
    running_node,
    scene,
    start_node,
    tiny_checkpoint,
)
from rcl_interfaces.msg import ParameterType
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from lsmdepth_ros.ros.diagnostics import status_name


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def node(checkpoint, tmp_path_factory):
    # device:=cuda on a machine without CUDA also checks the fallback path; clip_min_depth:=0
    # (an integer for a floating-point parameter) must be accepted as 0.0.
    yield from running_node(checkpoint, tmp_path_factory, "device:=cuda", "clip_min_depth:=0")


def test_without_camera_info_depth_is_published_but_no_cloud(node):
    _, hx, log = node
    h = hx.send_until(["depth", "depth/colored"], info=None)
    time.sleep(0.5)
    assert hx.get("points", h) is None and hx.get("depth/camera_info", h) is None
    assert hx.wait(lambda: "no camera_info received" in read_log(log), 5), read_log(log)
    assert "CUDA was requested" in read_log(log) and "falling back to the CPU" in read_log(log)


def test_outputs_share_the_input_header_and_the_cloud_reprojects(node):
    _, hx, _ = node
    img = scene(1)
    h = hx.send_until(["depth", "depth/camera_info", "points", "depth/colored"], img=img)
    depth_msg, info, cloud, colored = (hx.get(t, h) for t in
                                       ("depth", "depth/camera_info", "points", "depth/colored"))
    for m in (depth_msg, info, cloud, colored):
        assert m.header.frame_id == FRAME and m.header.stamp == h.stamp
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height, depth_msg.step) == (
        "32FC1", W, H, 4 * W)
    assert depth_msg.is_bigendian == (sys.byteorder == "big")
    depth = M.image_to_numpy(depth_msg)
    assert np.isfinite(depth).mean() > 0.99 and np.nanmin(depth) > 0
    assert (colored.encoding, colored.width, colored.height) == ("bgr8", W, H)
    # camera_info at the input resolution: K as sent, P filled from K.
    assert (info.width, info.height) == (W, H)
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), K)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4))[:, :3], K)
    assert list(np.reshape(info.p, (3, 4))[:, 3]) == [0, 0, 0]
    # Cloud layout (depth_image_proc with colour) and geometry.
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, PointField.FLOAT32), ("y", 4, PointField.FLOAT32),
        ("z", 8, PointField.FLOAT32), ("rgb", 16, PointField.FLOAT32)]
    assert (cloud.point_step, cloud.row_step, cloud.height, cloud.width) == (32, 32 * W, H, W)
    assert cloud.is_dense is False
    xyz, rgb = M.cloud_to_numpy(cloud)
    finite = np.isfinite(xyz).all(-1)
    assert finite.sum() > 0.99 * H * W
    np.testing.assert_array_equal(np.isfinite(depth), finite)
    v, u = np.nonzero(finite)
    p = xyz[finite].astype(np.float64)
    assert np.abs(K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2] - u).max() < 1e-3
    assert np.abs(K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2] - v).max() < 1e-3
    np.testing.assert_array_equal(xyz[..., 2][finite], depth[finite])
    np.testing.assert_array_equal(rgb, img[..., ::-1])   # bgr8 input -> true colours


def test_reliable_publisher_and_best_effort_subscriber_interoperate(node):
    _, hx, _ = node
    # The node's input is sensor-data (best effort); every frame so far came from a reliable
    # publisher. Its reliable outputs must also reach a sensor-data subscriber.
    hx.subscribe("depth", Image, qos_profile_sensor_data, key="depth_best_effort")
    h = hx.send_until(["depth_best_effort"])
    assert hx.get("depth_best_effort", h).encoding == "32FC1"


def test_live_parameters_change_the_cloud_and_read_only_ones_are_refused(node):
    _, hx, _ = node
    h0 = hx.send_until(["depth"])
    median = float(np.nanmedian(M.image_to_numpy(hx.get("depth", h0))))
    results = hx.set_params(point_stride=2, cloud_rgb=False, clip_max_depth=median,
                            colormap="turbo")
    assert all(r.successful for r in results), [r.reason for r in results]
    h = hx.send_until(["depth", "points"])
    depth = M.image_to_numpy(hx.get("depth", h))
    assert 0.2 < np.isnan(depth).mean() < 0.8              # clipped at the old median
    assert np.nanmax(depth) <= median
    cloud = hx.get("points", h)
    assert (cloud.height, cloud.width, cloud.point_step) == (H // 2, W // 2, 16)
    assert [f.name for f in cloud.fields] == ["x", "y", "z"]
    xyz, _ = M.cloud_to_numpy(cloud)
    finite = np.isfinite(xyz).all(-1)
    np.testing.assert_array_equal(finite, np.isfinite(depth[::2, ::2]))
    r, c = np.nonzero(finite)
    p = xyz[finite].astype(np.float64)
    assert np.abs(K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2] - 2 * c).max() < 1e-3
    assert np.abs(K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2] - 2 * r).max() < 1e-3
    # Bad values and start-up-only parameters are refused with a reason.
    bad = hx.set_params(point_stride=0)
    assert not bad[0].successful and "point_stride" in bad[0].reason
    ro = hx.set_params(model_path="/elsewhere.pt")
    assert not ro[0].successful
    back = hx.set_params(point_stride=1, cloud_rgb=True, clip_max_depth=0.0)
    assert all(r.successful for r in back)


def test_parameters_are_typed_with_ranges_and_integers_become_doubles(node):
    _, hx, _ = node
    # Given as the integer 0 on the command line: declared and kept a double.
    got = hx.get_params("clip_min_depth", "point_stride", "max_range")
    assert got["clip_min_depth"].type == ParameterType.PARAMETER_DOUBLE
    assert got["clip_min_depth"].double_value == 0.0
    assert got["point_stride"].type == ParameterType.PARAMETER_INTEGER
    ok = hx.set_params(max_range=50)                       # `ros2 param set ... 50`
    assert ok[0].successful, ok[0].reason
    got = hx.get_params("max_range")["max_range"]
    assert (got.type, got.double_value) == (ParameterType.PARAMETER_DOUBLE, 50.0)
    described = hx.describe_params("point_stride", "max_range", "colormap", "model_path")
    stride, max_range = described["point_stride"], described["max_range"]
    assert not stride.dynamic_typing and stride.type == ParameterType.PARAMETER_INTEGER
    assert [(r.from_value, r.to_value, r.step) for r in stride.integer_range] == [(1, 64, 1)]
    assert [(r.from_value, r.to_value) for r in max_range.floating_point_range] == [
        (0.0, 10000.0)]
    assert described["colormap"].type == ParameterType.PARAMETER_STRING
    assert described["model_path"].read_only and not stride.read_only
    out_of_range = hx.set_params(point_stride=100)
    assert not out_of_range[0].successful
    wrong_type = hx.set_params(point_stride=2.5)
    assert not wrong_type[0].successful and "type" in wrong_type[0].reason.lower()
    assert hx.get_params("point_stride")["point_stride"].integer_value == 1
    assert hx.set_params(max_range=0.0)[0].successful


def _bad_image(kind: str) -> Image:
    good = M.numpy_to_image(scene(), "bgr8")
    if kind == "encoding":
        good.encoding = "nv21"
    elif kind == "size":
        good.width, good.height, good.step = 0, 0, 0
        good.data = M.byte_array(np.zeros(0, np.uint8))
    elif kind == "data":
        good.data = M.byte_array(np.zeros(good.step * good.height - 10, np.uint8))
    return good


@pytest.mark.parametrize("kind,log_text", [
    ("encoding", "image encoding 'nv21' is not supported"),
    ("size", "image is empty"),
    ("data", "the message is truncated"),
])
def test_bad_images_are_skipped_and_the_node_keeps_going(node, kind, log_text):
    proc, hx, log = node
    before = int(hx.fresh_diagnostics().get("bad_inputs", 0))
    sent = [hx.send(msg=_bad_image(kind)) for _ in range(3)]
    time.sleep(0.5)
    assert proc.poll() is None
    assert all(hx.get("depth", h) is None for h in sent)
    assert hx.wait(lambda: log_text in read_log(log), 5), read_log(log)[-2000:]
    hx.send_until(["depth", "points"])                     # still working
    assert hx.wait(lambda: int(hx.fresh_diagnostics().get("bad_inputs", 0)) > before, 5)


@pytest.mark.parametrize("kind,log_text", [
    ("zero_k", "no usable focal length"),
    ("nan_k", "no usable focal length"),
    ("size_mismatch", "camera_info on /camera_info is for 640x480 but the image is 320x96"),
])
def test_bad_camera_info_gives_depth_without_cloud(node, kind, log_text):
    proc, hx, log = node
    info = {"zero_k": lambda: camera_info(None, k=np.zeros((3, 3))),
            "nan_k": lambda: camera_info(None, k=np.full((3, 3), np.nan)),
            "size_mismatch": lambda: camera_info(None, width=640, height=480)}[kind]
    h = hx.send_until(["depth"], info=info())
    time.sleep(0.4)
    assert hx.get("points", h) is None and hx.get("depth/camera_info", h) is None
    assert hx.wait(lambda: log_text in read_log(log), 5), read_log(log)[-2000:]
    assert proc.poll() is None
    hx.send_until(["depth", "points"])                     # good camera_info: cloud again


def _fastest_inference_s(checkpoint) -> float:
    """The model's best time per frame on this CPU (1 thread, as the node): the node can never
    be faster, so publishing at twice 1 / this is at least twice the node's rate."""
    from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions

    est = DepthEstimator(EstimatorOptions(model_path=str(checkpoint), num_threads=1),
                         say=lambda s: None)
    torch_threads = torch.get_num_threads()
    try:
        times = [est.run(scene(), "bgr8").timings_ms["total"] for _ in range(6)]
    finally:
        torch.set_num_threads(torch_threads)
    return min(times) / 1e3


def test_twice_the_model_rate_builds_no_backlog(node, checkpoint):
    """Counts and order only, no time bound, so it holds on a loaded machine: frames sent at
    twice the model's best rate are partly dropped (a queue would process them all, later and
    later), what is published comes out in stamp order, and every received frame is accounted
    for as processed or dropped."""
    _, hx, _ = node
    best_s = _fastest_inference_s(checkpoint)
    hx.send_until(["depth"])
    diag = hx.fresh_diagnostics()
    rate = min(2.0 / best_s, 100.0)                         # twice what the model can do
    before = {k: int(diag[k]) for k in ("frames_dropped", "frames_received", "frames_processed")}
    with hx.lock:
        first_output = len(hx.msgs["depth"])
    sent = []
    t0 = time.time()
    while time.time() < t0 + 4.0:
        sent.append(hx.send())
        time.sleep(max(0.0, t0 + len(sent) / rate - time.time()))
    stamps = [(h.stamp.sec, h.stamp.nanosec) for h in sent]
    # Settled: every frame the node received is accounted for (it works through at most the
    # frame in inference and the one in the mailbox).
    def settled(d):
        return int(d["frames_received"]) == sum(int(d[k]) for k in (
            "frames_processed", "frames_dropped", "bad_inputs", "frames_skipped_no_subscribers",
            "frames_failed"))
    diag = hx.fresh_diagnostics()
    deadline = time.time() + 60
    while not settled(diag) and time.time() < deadline:
        diag = hx.fresh_diagnostics()
    assert settled(diag), diag
    with hx.lock:
        outputs = [(m.header.stamp.sec, m.header.stamp.nanosec)
                   for m in hx.msgs["depth"][first_output:]]
    ours = [s for s in outputs if s in set(stamps)]
    assert len(ours) >= 5
    assert len(ours) < 0.8 * len(sent)                     # frames were dropped, not queued
    assert ours == sorted(ours) and len(set(ours)) == len(ours)   # newest wins, never older
    delta = {k: int(diag[k]) - v for k, v in before.items()}
    # Most frames reach the callback; on a loaded CPU a few are overwritten in the best-effort
    # subscription's keep-last history before the executor runs (the node cannot see those).
    assert delta["frames_received"] >= 0.5 * len(sent)
    assert delta["frames_dropped"] >= 0.2 * delta["frames_received"], diag
    assert diag["backend"] == "torch" and diag["device"].startswith("cpu")


def test_sigint_stops_the_node_promptly_while_busy(node):
    proc, hx, log = node
    hx.send_until(["depth"])
    for _ in range(5):
        hx.send()
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    rc = proc.wait(timeout=15)
    assert rc == 0, read_log(log)[-2000:]
    assert time.time() - t0 < 10   # generous: the teardown waits for at most one inference
    assert "Traceback" not in read_log(log), read_log(log)


@pytest.mark.parametrize("content,expected", [
    (None, "does not exist"),
    (b"\x00\x01 this is not a checkpoint", "cannot load the depth model"),
])
def test_missing_or_corrupt_model_exits_non_zero_with_a_clear_message(tmp_path, content,
                                                                      expected):
    model = tmp_path / "model.pt"
    if content is not None:
        model.write_bytes(content)
    proc = start_node(tmp_path / "log.txt", f"model_path:={model}")
    rc = proc.wait(timeout=60)
    text = (tmp_path / "log.txt").read_text()
    assert rc == 2, text
    assert expected in text and str(model) in text


def test_compressed_remapped_input_at_network_resolution(checkpoint, tmp_path):
    """A second node: jpeg/png input on a remapped topic, depth kept at the network size."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from lsmdepth_ros.geometry import scale_intrinsics

    log = tmp_path / "log.txt"
    proc = start_node(log, f"model_path:={checkpoint}", "num_threads:=1",
                      "image_transport:=compressed", "output_resolution:=network",
                      "publish_colored:=false", "cloud_rgb:=false",
                      remaps=("image:=/cam/image_raw", "camera_info:=/cam/camera_info",
                              "__ns:=/front"))
    hx = Harness()
    try:
        for topic, kind in (("/front/depth", Image), ("/front/depth/camera_info", CameraInfo),
                            ("/front/points", PointCloud2)):
            hx.subscribe(topic, kind, RELIABLE, key=topic.removeprefix("/front/"))
        pub = hx.node.create_publisher(CompressedImage, "/cam/image_raw/compressed", RELIABLE)
        pub_info = hx.node.create_publisher(CameraInfo, "/cam/camera_info", RELIABLE)
        assert hx.wait(lambda: pub.get_subscription_count() > 0 or proc.poll() is not None, 60)
        assert proc.poll() is None, read_log(log)
        _, png = cv2.imencode(".png", scene(2))
        deadline, header = time.time() + 30, None
        while time.time() < deadline:
            msg = CompressedImage(format="png")
            msg.data = M.byte_array(png)
            msg.header = hx.header()
            pub_info.publish(camera_info(msg.header))
            pub.publish(msg)
            if hx.wait(lambda h=msg.header: hx.get("points", h) and hx.get("depth", h)
                       and hx.get("depth/camera_info", h), 0.4):
                header = msg.header
                break
        assert header is not None, read_log(log)
        depth = M.image_to_numpy(hx.get("depth", header))
        info = hx.get("depth/camera_info", header)
        assert depth.shape == (NET_H, NET_W) and (info.width, info.height) == (NET_W, NET_H)
        K_net = scale_intrinsics(K, (W, H), (NET_W, NET_H))
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), K_net, rtol=1e-12)
        np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], K_net, rtol=1e-12)
        cloud = hx.get("points", header)
        assert cloud.point_step == 16 and (cloud.height, cloud.width) == (NET_H, NET_W)
        xyz, _ = M.cloud_to_numpy(cloud)
        finite = np.isfinite(xyz).all(-1)
        v, u = np.nonzero(finite)
        p = xyz[finite].astype(np.float64)
        assert np.abs(K_net[0, 0] * p[:, 0] / p[:, 2] + K_net[0, 2] - u).max() < 1e-3
        assert np.abs(K_net[1, 1] * p[:, 1] / p[:, 2] + K_net[1, 2] - v).max() < 1e-3
        np.testing.assert_array_equal(xyz[..., 2][finite], depth[finite])
        # diagnostic_updater's naming: the fully qualified node name, the input as hardware.
        assert hx.wait(lambda: any(s.name == status_name("/front/depth_node")
                                   for m in hx.msgs["/diagnostics"] for s in m.status), 10)
        status = next(s for m in hx.msgs["/diagnostics"] for s in m.status
                      if s.name == "/front/depth_node: depth estimation")
        assert status.hardware_id == "/cam/image_raw/compressed"
    finally:
        hx.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
