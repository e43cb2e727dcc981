"""The node's inputs: camera_info paired by stamp, subscriptions only while someone listens,
and /diagnostics in diagnostic_updater's conventions (one node process, tests in file order).
The pairing rules themselves are unit-tested in test_camera_info_pairing.py."""
from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from node_harness import (
    FRAME,
    RELIABLE,
    K,
    M,
    camera_info,
    read_log,
    running_node,
    scene,
    tiny_checkpoint,
)
from sensor_msgs.msg import Image

from lsmdepth_ros.ros.diagnostics import status_name


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    yield from running_node(tiny_checkpoint(tmp_path_factory), tmp_path_factory,
                            "camera_info_timeout:=1.0")


def _k_of(info) -> float:
    return float(np.reshape(info.k, (3, 3))[0, 0])


def test_camera_info_arriving_after_its_image_is_paired_by_stamp(node):
    _, hx, _ = node
    hx.send_until(["depth", "depth/camera_info"])
    headers = []
    for i in range(4):   # each image's own camera_info, 0.3 s late, with its own focal length
        msg = M.numpy_to_image(scene(i), "bgr8")
        msg.header = hx.header()
        hx.pub_image.publish(msg)
        time.sleep(0.3)
        hx.pub_info.publish(camera_info(msg.header, k=K * [[1 + 0.1 * i], [1 + 0.1 * i], [1]]))
        headers.append(msg.header)
    assert hx.wait(lambda: hx.get("depth/camera_info", headers[-1]) is not None, 10)
    for i, h in enumerate(headers):
        info = hx.get("depth/camera_info", h)
        if info is not None:   # a frame may be dropped (newest wins), never mismatched
            assert _k_of(info) == pytest.approx(K[0, 0] * (1 + 0.1 * i))


def test_images_without_their_camera_info_give_depth_only_and_are_counted(node):
    _, hx, log = node
    before = int(hx.fresh_diagnostics()["images_unpaired"])
    hx.pub_info.publish(camera_info(hx.header()))   # a camera_info of no image
    msg = M.numpy_to_image(scene(), "bgr8")
    msg.header = hx.header()              # and an image whose camera_info never comes
    hx.pub_image.publish(msg)
    assert hx.wait(lambda: hx.get("depth", msg.header) is not None, 10)
    assert hx.get("depth/camera_info", msg.header) is None
    assert hx.get("points", msg.header) is None
    assert hx.wait(lambda: "no camera_info with the image's stamp" in read_log(log), 5)
    assert hx.wait(lambda: int(hx.fresh_diagnostics()["images_unpaired"]) > before, 5)


def test_a_camera_info_of_another_frame_is_reported(node):
    _, hx, log = node
    info = camera_info(None)
    h = hx.send_until(["depth/camera_info"], info=info, img=None)
    assert hx.get("depth/camera_info", h).header.frame_id == FRAME
    other = hx.header()
    other.frame_id = "another_camera_optical_frame"
    msg = M.numpy_to_image(scene(), "bgr8")
    msg.header = hx.header()
    other.stamp = msg.header.stamp
    hx.pub_info.publish(camera_info(other))
    hx.pub_image.publish(msg)
    assert hx.wait(lambda: "camera_info frame_id 'another_camera_optical_frame' differs" in
                   read_log(log), 10), read_log(log)[-2000:]
    assert hx.wait(lambda: int(hx.fresh_diagnostics()["camera_info_frame_id_mismatches"]) > 0, 5)
    out = hx.get("depth/camera_info", msg.header)
    assert out is None or out.header.frame_id == FRAME    # outputs keep the image's frame


def _status(hx) -> DiagnosticStatus:
    n = len(hx.msgs["/diagnostics"])
    assert hx.wait(lambda: len(hx.msgs["/diagnostics"]) > n, 5)
    return hx.msgs["/diagnostics"][-1].status[0]


def test_diagnostics_one_status_named_after_the_node_with_frequency_and_timestamp(node):
    _, hx, _ = node
    hx.send_until(["depth"])
    status = _status(hx)
    assert status.name == status_name("/depth_node") == "/depth_node: depth estimation"
    assert status.hardware_id == "/image"
    assert len(hx.msgs["/diagnostics"][-1].status) == 1
    # Frequency status: an output rate far above what arrives is too low.
    assert hx.set_params(min_output_rate=500)[0].successful
    for _ in range(5):
        hx.send()
        time.sleep(0.1)
    assert hx.wait(lambda: "below the expected 500 Hz" in _status(hx).message, 5)
    assert _status(hx).level == DiagnosticStatus.WARN
    assert hx.set_params(min_output_rate=0.0)[0].successful
    # Timestamp status: a stamp a minute old is an error (max_stamp_delay 5 s by default).
    old = M.numpy_to_image(scene(), "bgr8")
    old.header = hx.header()
    old.header.stamp.sec -= 60
    hx.pub_info.publish(camera_info(old.header))
    hx.pub_image.publish(old)
    assert hx.wait(lambda: _status(hx).level == DiagnosticStatus.ERROR, 5)
    values = {kv.key: kv.value for kv in hx.msgs["/diagnostics"][-1].status[0].values}
    assert "in the past" in hx.msgs["/diagnostics"][-1].status[0].message
    assert {"frames_dropped", "images_unpaired", "latency_ms_p90", "input_rate_hz",
            "output_rate_hz", "expected_max_stamp_delay"} <= set(values)


def test_rectified_camera_uses_P_and_yuv_input_is_converted(node):
    """A calibrated camera with distortion: its image_rect is described by P, not K (as
    depth_image_proc reads it); the cloud reprojects with P and depth/camera_info keeps both.
    The image comes as a UVC webcam sends it (yuv422_yuy2) and gives the same depth as bgr8."""
    _, hx, _ = node
    P = np.array([[0.9 * K[0, 0], 0, K[0, 2] + 3.0, 0], [0, 0.92 * K[1, 1], K[1, 2] - 2.0, 0],
                  [0, 0, 1, 0]])
    info = camera_info(None)
    info.d = [-0.3, 0.1, 0.001, -0.002, 0.0]
    info.p = [float(x) for x in P.reshape(-1)]
    img = scene(3)
    img[:, 1::2] = img[:, 0::2]        # pixel pairs share chroma in 4:2:2: exact round trip
    yuv = M.numpy_to_image(_yuy2(img), "yuv422_yuy2")
    h = hx.send_until(["depth", "depth/camera_info", "points"], msg=yuv, info=info)
    sent = hx.get("depth/camera_info", h)
    np.testing.assert_array_equal(np.reshape(sent.k, (3, 3)), K)
    np.testing.assert_array_equal(np.reshape(sent.p, (3, 4)), P)
    xyz, rgb = M.cloud_to_numpy(hx.get("points", h))
    finite = np.isfinite(xyz).all(-1)
    v, u = np.nonzero(finite)
    p = xyz[finite].astype(np.float64)
    assert np.abs(P[0, 0] * p[:, 0] / p[:, 2] + P[0, 2] - u).max() < 1e-3
    assert np.abs(P[1, 1] * p[:, 1] / p[:, 2] + P[1, 2] - v).max() < 1e-3
    assert np.abs(rgb.astype(int) - img[..., ::-1]).max() <= 4   # YUV -> the true colours
    h2 = hx.send_until(["depth"], img=img, info=info)
    np.testing.assert_allclose(M.image_to_numpy(hx.get("depth", h2)),
                               M.image_to_numpy(hx.get("depth", h)), rtol=0.03)


def _yuy2(bgr: np.ndarray) -> np.ndarray:
    """bgr8 -> packed YUYV (Y0 U Y1 V per pixel pair), studio-swing BT.601."""
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    packed = np.stack([y[:, 0::2], u[:, 0::2], y[:, 1::2], v[:, 0::2]], -1)
    h, w = bgr.shape[:2]
    return np.clip(np.round(packed), 0, 255).astype(np.uint8).reshape(h, w, 2)


def test_inputs_are_subscribed_only_while_an_output_has_a_subscriber(node):
    _, hx, _ = node
    hx.unsubscribe_outputs()
    # The node drops its image and camera_info subscriptions: no DDS traffic while idle.
    assert hx.wait(lambda: hx.pub_image.get_subscription_count() == 0 and
                   hx.pub_info.get_subscription_count() == 0, 10)
    assert hx.wait(lambda: hx.diagnostics().get("inputs_subscribed") == "false", 5)
    assert "idle" in _status(hx).message
    before = hx.fresh_diagnostics()
    for _ in range(5):
        hx.send()
        time.sleep(0.1)
    after = hx.fresh_diagnostics()
    assert int(after["frames_received"]) == int(before["frames_received"])
    # Someone listens again: the node subscribes again and depth flows.
    hx.subscribe("depth", Image, RELIABLE)
    assert hx.wait(lambda: hx.pub_image.get_subscription_count() > 0, 10)
    hx.send_until(["depth"])


