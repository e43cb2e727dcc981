"""numpy <-> sensor_msgs conversions (no node, no DDS): layouts, padding, validation messages."""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointField
from std_msgs.msg import Header

from lsmdepth_ros.ros import messages as M


def _header():
    h = Header()
    h.frame_id = "camera_optical_frame"
    h.stamp.sec, h.stamp.nanosec = 1234, 5678
    return h


def _padded_image(arr: np.ndarray, encoding: str, pad: int) -> Image:
    """An Image whose rows carry `pad` extra bytes (as some drivers send)."""
    h, w = arr.shape[:2]
    row = arr.reshape(h, -1).view(np.uint8)
    data = np.zeros((h, row.shape[1] + pad), np.uint8)
    data[:, :row.shape[1]] = row
    msg = Image(height=h, width=w, encoding=encoding, step=row.shape[1] + pad)
    msg.data = M.byte_array(data)
    return msg


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgr8", 3), ("mono8", 1),
                                               ("rgba8", 4), ("bgra8", 4)])
def test_input_image_views_honour_step_padding(encoding, channels):
    rng = np.random.default_rng(0)
    shape = (5, 7, channels) if channels > 1 else (5, 7)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    view, enc = M.input_image_to_numpy(_padded_image(arr, encoding, pad=3))
    assert enc == encoding
    np.testing.assert_array_equal(view, arr)


def test_round_trip_and_big_endian_float():
    depth = np.array([[1.5, np.nan], [0.25, 80.0]], np.float32)
    msg = M.depth_to_image(depth, _header())
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("32FC1", 8, 0)
    assert isinstance(msg.data, array.array) and len(msg.data) == 16
    assert msg.header.frame_id == "camera_optical_frame" and msg.header.stamp.sec == 1234
    np.testing.assert_array_equal(M.image_to_numpy(msg), depth)   # NaN == NaN here
    big = Image(height=2, width=2, encoding="32FC1", step=8, is_bigendian=1)
    big.data = M.byte_array(depth.astype(">f4"))
    np.testing.assert_array_equal(M.image_to_numpy(big), depth)


@pytest.mark.parametrize("msg,kind,text", [
    (Image(height=4, width=4, encoding="nv21", step=4), "encoding", "not supported"),
    (Image(height=0, width=4, encoding="rgb8", step=12), "size", "empty"),
    (Image(height=4, width=4, encoding="rgb8", step=10), "step", "shorter than one row"),
    (Image(height=4, width=4, encoding="rgb8", step=12), "data", "truncated"),
])
def test_bad_images_raise_message_errors(msg, kind, text):
    if kind == "data":
        msg.data = M.byte_array(np.zeros(12 * 4 - 1, np.uint8))
    with pytest.raises(M.MessageError, match=text) as err:
        M.input_image_to_numpy(msg)
    assert err.value.kind == kind


def test_16UC1_and_32FC1_are_not_node_inputs():
    msg = M.numpy_to_image(np.zeros((2, 2), np.uint16), "16UC1")
    assert M.image_to_numpy(msg).dtype == np.uint16
    with pytest.raises(M.MessageError, match="rgb8"):
        M.input_image_to_numpy(msg)


def test_compressed_images_decode_and_garbage_is_reported():
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    _, png = cv2.imencode(".png", bgr)
    msg = CompressedImage(format="png")
    msg.data = M.byte_array(png)
    img, enc = M.compressed_to_numpy(msg)
    assert enc == "bgr8"
    np.testing.assert_array_equal(img, bgr)
    _, png = cv2.imencode(".png", bgr[..., 0])
    msg.data = M.byte_array(png)
    assert M.compressed_to_numpy(msg)[1] == "mono8"
    msg.data = M.byte_array(np.frombuffer(b"definitely not a png", np.uint8))
    with pytest.raises(M.MessageError, match="cannot decode"):
        M.compressed_to_numpy(msg)


def _info(w=640, h=480, K=(500.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 1), P=None):
    info = CameraInfo(width=w, height=h)
    info.k = list(map(float, K))
    info.p = list(map(float, P)) if P is not None else [0.0] * 12
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    return info


def test_camera_matrix_validation():
    np.testing.assert_array_equal(M.camera_matrix(_info()),
                                  [[500, 0, 319.5], [0, 510, 239.5], [0, 0, 1]])
    with pytest.raises(M.MessageError, match="focal length"):
        M.camera_matrix(_info(K=[0.0] * 9))
    with pytest.raises(M.MessageError, match="focal length"):
        M.camera_matrix(_info(K=(np.nan, 0, 1, 0, 1, 1, 0, 0, 1)))
    with pytest.raises(M.MessageError, match="size 0x0"):
        M.camera_matrix(_info(w=0, h=0))


def test_camera_info_for_scaled_depth_fills_P():
    info = _info()                          # P all zero, as some drivers publish
    out = M.camera_info_for(info, (192, 192), _header())
    assert (out.width, out.height) == (192, 192)
    assert out.header.frame_id == "camera_optical_frame" and out.header.stamp.nanosec == 5678
    sx, sy = 192 / 640, 192 / 480
    scaled = [[500 * sx, 0, (319.5 + 0.5) * sx - 0.5], [0, 510 * sy, (239.5 + 0.5) * sy - 0.5],
              [0, 0, 1]]   # pixel centres scale: (c + 0.5) * s - 0.5
    np.testing.assert_allclose(np.reshape(out.k, (3, 3)), scaled)
    np.testing.assert_allclose(np.reshape(out.p, (3, 4)), np.hstack([scaled, np.zeros((3, 1))]))
    assert out.distortion_model == "plumb_bob"
    # A filled P (stereo right camera: Tx != 0) keeps its own values, scaled.
    info = _info(P=(480.0, 0, 320.0, -48.0, 0, 490.0, 240.0, 0, 0, 0, 1, 0))
    P = np.reshape(M.camera_info_for(info, (320, 240)).p, (3, 4))
    np.testing.assert_allclose(P[0], [240.0, 0, 159.75, -24.0])
    same = M.camera_info_for(info, (640, 480))
    assert list(same.p) == list(info.p) and list(same.k) == list(info.k)


def test_image_camera_matrix_reads_P_like_depth_image_proc():
    # a calibrated camera with distortion: the rectified image's camera (P) differs from K
    info = _info(P=(480.0, 0, 322.0, 0, 0, 485.0, 236.0, 0, 0, 0, 1, 0))
    np.testing.assert_array_equal(M.image_camera_matrix(info),
                                  [[480, 0, 322], [0, 485, 236], [0, 0, 1]])
    np.testing.assert_array_equal(M.image_camera_matrix(info, "camera_matrix"),
                                  M.camera_matrix(info))
    # P unset (all zero): K
    np.testing.assert_array_equal(M.image_camera_matrix(_info()), M.camera_matrix(_info()))
    with pytest.raises(M.MessageError, match="focal length"):   # K is validated either way
        M.image_camera_matrix(_info(K=[0.0] * 9, P=(480.0, 0, 322.0, 0, 0, 485.0, 236.0, 0,
                                                    0, 0, 1, 0)))


@pytest.mark.parametrize("with_rgb", [False, True])
def test_point_cloud_layout_matches_depth_image_proc(with_rgb):
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(3, 4, 3)).astype(np.float32)
    pts[1, 2] = np.nan
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8) if with_rgb else None
    msg = M.points_to_cloud(pts, _header(), rgb)
    step = 32 if with_rgb else 16
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (3, 4, step, 4 * step)
    assert msg.is_dense is False and msg.is_bigendian is False
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == (
        [("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1),
         ("z", 8, PointField.FLOAT32, 1)] + ([("rgb", 16, PointField.FLOAT32, 1)] if with_rgb
                                               else []))
    assert len(msg.data) == 3 * 4 * step
    raw = np.frombuffer(msg.data, np.uint8).reshape(3, 4, step)
    np.testing.assert_array_equal(raw[..., :12].copy().view(np.float32), pts)  # NaN == NaN
    xyz, back_rgb = M.cloud_to_numpy(msg)
    np.testing.assert_array_equal(xyz, pts)
    if with_rgb:
        np.testing.assert_array_equal(back_rgb, rgb)
        word = int(raw[0, 0, 16:20].copy().view("<u4")[0])
        r, g, b = (int(c) for c in rgb[0, 0])
        assert word == (r << 16) | (g << 8) | b
    else:
        assert back_rgb is None


def test_pack_rgb_bits():
    packed = M.pack_rgb(np.array([[255, 128, 1]], np.uint8))
    assert packed.dtype == np.float32 and int(packed.view(np.uint32)[0]) == 0xFF8001


@pytest.mark.parametrize("stride,max_range", [(1, None), (3, 2.0)])
def test_depth_to_cloud_equals_points_to_cloud_of_geometry_points(stride, max_range):
    from lsmdepth_ros.geometry import depth_to_points

    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 4.0, (12, 20)).astype(np.float32)
    depth[2, 3] = np.nan
    depth[5, 5] = 0.0
    K = np.array([[30.0, 0, 9.5], [0, 31.0, 5.5], [0, 0, 1]])
    rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)[::stride, ::stride]
    fast = M.depth_to_cloud(depth, K, _header(), rgb, stride, max_range)
    slow = M.points_to_cloud(depth_to_points(depth, K, stride, max_range), _header(), rgb)
    assert bytes(fast.data) == bytes(slow.data)
    assert (fast.height, fast.width) == depth[::stride, ::stride].shape
    assert fast.fields == slow.fields and fast.point_step == 32
    xyz, back = M.cloud_to_numpy(fast)
    assert np.isnan(xyz[depth[::stride, ::stride] != depth[::stride, ::stride]]).all()
    np.testing.assert_array_equal(back, rgb)


def test_cloud_builder_refills_one_buffer_per_shape():
    rng = np.random.default_rng(4)
    K = np.array([[30.0, 0, 9.5], [0, 31.0, 5.5], [0, 0, 1]])
    builder = M.CloudBuilder()
    first = None
    for i in range(3):
        depth = rng.uniform(0.5, 4.0, (12, 20)).astype(np.float32)
        rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
        msg = builder.build(depth, K, _header(), rgb)
        assert bytes(msg.data) == bytes(M.depth_to_cloud(depth, K, _header(), rgb).data)
        first = first or msg
        assert msg is first                              # same message, refilled
    other = builder.build(depth, K, _header(), None, stride=2)
    assert other is not first and (other.height, other.width, other.point_step) == (6, 10, 16)


def test_one_conversion_layer_reads_rclpy_and_rosbags_messages_alike():
    from lsmdepth_ros.bags import messages as bagmsg

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)
    depth = rng.random((6, 10)).astype(np.float32)
    for arr, enc in ((rgb, "rgb8"), (depth, "32FC1")):
        a = M.image_to_numpy(M.numpy_to_image(arr, enc))
        b = bagmsg.image_to_numpy(bagmsg.numpy_to_image(arr, enc))
        assert np.array_equal(a, arr) and np.array_equal(b, arr)
    pts = rng.normal(size=(6, 10, 3)).astype(np.float32)
    rclpy_cloud = M.points_to_cloud(pts, rgb=rgb)
    bag_cloud = bagmsg.numpy_to_pointcloud2(pts, rgb)
    assert bytes(rclpy_cloud.data) == bytes(bag_cloud.data)   # the same depth_image_proc layout
    assert [(f.name, f.offset) for f in rclpy_cloud.fields] == \
        [(f.name, f.offset) for f in bag_cloud.fields]
    for cloud in (rclpy_cloud, bag_cloud):
        xyz, colours = M.cloud_to_numpy(cloud)
        assert np.array_equal(xyz, pts) and np.array_equal(colours, rgb)
