"""Bag files and rosbags messages: conversions, rosbag2 round trips (mcap and sqlite3), bad bags."""
import sqlite3

import numpy as np
import pytest

from lsmdepth_ros.bags import bagfile, topic_streams
from lsmdepth_ros.bags import messages as bagmsg
from lsmdepth_ros.bags.bagfile import BagError
from lsmdepth_ros.bags.messages import MessageError


@pytest.mark.parametrize("encoding,dtype,shape", [
    ("rgb8", np.uint8, (5, 7, 3)), ("bgra8", np.uint8, (5, 7, 4)), ("mono8", np.uint8, (5, 7)),
    ("16UC1", np.uint16, (5, 7)), ("32FC1", np.float32, (5, 7)), ("64FC1", np.float64, (3, 2)),
])
def test_image_roundtrip(encoding, dtype, shape):
    rng = np.random.default_rng(0)
    arr = (rng.random(shape) * 200).astype(dtype)
    if dtype == np.float32:
        arr[0, 0] = np.nan
    msg = bagmsg.numpy_to_image(arr, encoding, 1_500_000_123, "cam")
    assert (msg.height, msg.width, msg.encoding) == (shape[0], shape[1], encoding)
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    assert bagmsg.stamp_to_ns(msg.header.stamp) == 1_500_000_123 and msg.header.frame_id == "cam"
    back = bagmsg.image_to_numpy(msg)
    assert back.dtype == dtype and np.array_equal(back, arr, equal_nan=True)


def test_image_with_row_padding_and_big_endian():
    arr = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    msg = bagmsg.numpy_to_image(arr, "16UC1")
    rows = arr.astype(">u2").view(np.uint8).reshape(3, 8)
    padded = np.concatenate([rows, np.full((3, 4), 255, np.uint8)], axis=1)  # step 12
    msg.data, msg.step, msg.is_bigendian = padded.ravel(), 12, 1
    assert np.array_equal(bagmsg.image_to_numpy(msg), arr)
    msg.data = msg.data[:20]
    with pytest.raises(MessageError, match="truncated"):
        bagmsg.image_to_numpy(msg)


def test_colour_conversions_and_bad_arrays():
    rgb = np.random.default_rng(1).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    bgr = bagmsg.numpy_to_image(rgb[:, :, ::-1].copy(), "bgr8")
    assert np.array_equal(bagmsg.image_to_rgb(bgr), rgb)
    mono = bagmsg.numpy_to_image(rgb[:, :, 0].copy(), "mono8")
    assert np.array_equal(bagmsg.image_to_rgb(mono), np.repeat(rgb[:, :, :1], 3, axis=2))
    with pytest.raises(MessageError, match="rgb8 needs a uint8"):
        bagmsg.numpy_to_image(rgb.astype(np.float32), "rgb8")
    with pytest.raises(MessageError, match="unsupported image encoding"):
        bagmsg.numpy_to_image(rgb, "nv21")
    with pytest.raises(MessageError, match=r"yuv422 needs a uint8 array of shape \[H, W, 2\]"):
        bagmsg.numpy_to_image(rgb, "yuv422")
    with pytest.raises(MessageError, match="'32FC1' is not supported; expected one of rgb8"):
        bagmsg.image_to_rgb(bagmsg.numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"))


def test_camera_info_fields():
    K = np.array([[371.2, 0, 320.0], [0, 368.6, 96.0], [0, 0, 1]])
    msg = bagmsg.make_camera_info(K, 640, 192, 42, "camera_optical_frame")
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    assert np.array_equal(np.reshape(msg.p, (3, 4)), np.hstack([K, np.zeros((3, 1))]))
    cam = bagmsg.camera_model(msg)
    assert np.array_equal(cam.K, K) and (cam.width, cam.height) == (640, 192)
    assert not cam.is_distorted and np.array_equal(cam.R, np.eye(3))
    with pytest.raises(MessageError, match="no usable focal length"):
        bagmsg.camera_model(bagmsg.make_camera_info(np.zeros((3, 3)), 640, 192))


def test_pointcloud2_roundtrip_organised_with_colour():
    pts = np.random.default_rng(2).normal(size=(3, 4, 3)).astype(np.float32)
    pts[1, 2] = np.nan
    rgb = np.random.default_rng(3).integers(0, 255, (3, 4, 3), dtype=np.uint8)
    msg = bagmsg.numpy_to_pointcloud2(pts, rgb, 7, "cam")
    # the node's layout (depth_image_proc): rgb at byte 16, 32-byte points
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (3, 4, 32, 128)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.is_dense is False
    xyz = bagmsg.cloud_to_numpy(msg)
    assert np.array_equal(xyz, pts.reshape(-1, 3), equal_nan=True)
    packed = bagmsg.cloud_to_numpy(msg, ["rgb"])[:, 0].view(np.uint32)
    assert np.array_equal((packed >> 16) & 255, rgb[..., 0].ravel())
    assert np.array_equal(packed & 255, rgb[..., 2].ravel())
    with pytest.raises(MessageError, match="lacks fields"):
        bagmsg.cloud_to_numpy(msg, ["intensity"])
    flat = bagmsg.numpy_to_pointcloud2(np.ones((5, 3), np.float32))
    assert (flat.height, flat.width, flat.is_dense) == (1, 5, True)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_roundtrip(tmp_path, storage):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    depths = [rng.random((6, 8)).astype(np.float32) for _ in range(3)]
    K = np.array([[5.0, 0, 4], [0, 5, 3], [0, 0, 1]])
    path = tmp_path / "bag"
    with bagfile.BagWriter(path, storage=storage) as w:
        for i in range(3):
            stamp = 100 + i * 100_000_000
            w.write("/camera/image_raw", stamp, bagmsg.numpy_to_image(images[i], "rgb8", stamp, "c"))
            w.write("/camera/camera_info", stamp, bagmsg.make_camera_info(K, 8, 6, stamp, "c"))
            w.write("/camera/depth_gt", stamp, bagmsg.numpy_to_image(depths[i], "32FC1", stamp, "c"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]  # no temporary left behind
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert (path / f"bag{suffix}").exists() and (path / "metadata.yaml").exists()
    topics = bagfile.bag_topics(path)
    assert topics["/camera/image_raw"] == bagfile.TopicInfo("sensor_msgs/msg/Image", 3)
    assert topics["/camera/camera_info"].msgtype == "sensor_msgs/msg/CameraInfo"
    got = [bagmsg.image_to_numpy(m.msg) for m in bagfile.read_messages(path, ["/camera/depth_gt"])]
    assert all(np.array_equal(a, b) for a, b in zip(got, depths)) and len(got) == 3
    frames = list(topic_streams.iter_camera_frames(path, "/camera/image_raw", "/camera/camera_info"))
    assert [f.stamp_ns for f in frames] == [100 + i * 100_000_000 for i in range(3)]
    assert all(np.array_equal(f.image, im) for f, im in zip(frames, images))
    assert np.array_equal(frames[0].camera.K, K) and frames[0].frame_id == "c"
    raw = next(bagfile.read_messages(path, ["/camera/image_raw"], decode=False))
    assert raw.msg is None and isinstance(raw.raw, bytes) and len(raw.raw) > 6 * 8 * 3
    with pytest.raises(BagError, match="already exists"):
        bagfile.BagWriter(path, storage=storage)


def test_writer_aborts_cleanly_on_error(tmp_path):
    with pytest.raises(RuntimeError), bagfile.BagWriter(tmp_path / "bag") as w:
        w.write("/a", 1, bagmsg.numpy_to_image(np.zeros((2, 2), np.uint8), "mono8"))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_bag_and_missing_topic(tmp_path):
    with pytest.raises(BagError, match="no bag at .*nope"):
        bagfile.bag_topics(tmp_path / "nope")
    path = bagfile.write_bag(tmp_path / "b", [("/x", 1, bagmsg.numpy_to_image(
        np.zeros((2, 2), np.uint8), "mono8"))])
    with pytest.raises(BagError, match=r"no topic /y; its topics: /x \(sensor_msgs/msg/Image\)"):
        list(bagfile.read_messages(path, ["/y"]))


def test_images_without_camera_info_are_reported(tmp_path):
    img = bagmsg.numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8")
    info = bagmsg.make_camera_info(np.eye(3), 2, 2)
    # images recorded before the first camera_info are paired with it
    path = bagfile.write_bag(tmp_path / "b", [("/img", i, img) for i in range(3)]
                           + [("/info", 5, info)])
    assert len(list(topic_streams.iter_camera_frames(path, "/img", "/info"))) == 3
    # a camera_info topic that never got a message
    with bagfile.BagWriter(tmp_path / "b2") as w:
        w.connection("/info", "sensor_msgs/msg/CameraInfo")
        for i in range(3):
            w.write("/img", i, img)
    with pytest.raises(BagError, match="3 images on /img but no camera_info on /info"):
        list(topic_streams.iter_camera_frames(tmp_path / "b2", "/img", "/info"))
    with pytest.raises(BagError, match="no topic /info2"):
        list(topic_streams.iter_camera_frames(path, "/img", "/info2"))


def test_truncated_bag_is_reported(tmp_path):
    rng = np.random.default_rng(5)
    path = bagfile.write_bag(tmp_path / "b", [
        ("/img", i, bagmsg.numpy_to_image(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                                         "rgb8")) for i in range(20)])
    data = (path / "b.mcap").read_bytes()
    (path / "b.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="truncated|cannot open"):
        list(bagfile.read_messages(path, ["/img"]))
    (path / "b.mcap").write_bytes(b"")
    with pytest.raises(BagError):
        list(bagfile.read_messages(path))


def test_unknown_message_type_is_reported(tmp_path):
    from rosbags.typesys import get_types_from_msg

    store = bagfile.get_typestore()
    with pytest.raises(BagError, match="unknown message type my_pkg/msg/Custom"), \
            bagfile.BagWriter(tmp_path / "a") as w:
        w.write_raw("/x", "my_pkg/msg/Custom", 1, b"\x00\x01\x00\x00\x03\x00\x00\x00")
    # a bag written with a custom type, whose stored definition is then lost (old recorders)
    from rosbags.typesys import Stores, get_typestore

    custom = get_typestore(Stores.ROS2_KILTED)
    custom.register(get_types_from_msg("int32 value", "my_pkg/msg/Custom"))
    msg = custom.types["my_pkg/msg/Custom"](value=3)
    path = tmp_path / "b"
    with bagfile.BagWriter(path, storage="sqlite3", typestore=custom) as w:
        w.write("/x", 1, msg)
    assert [m.msg.value for m in bagfile.read_messages(path)] == [3]  # definition in the bag
    db = sqlite3.connect(path / "b.db3")
    db.execute("DELETE FROM message_definitions")
    db.commit()
    db.close()
    assert "my_pkg/msg/Custom" not in store.types
    with pytest.raises(BagError, match="my_pkg/msg/Custom"):
        list(bagfile.read_messages(path))
    with pytest.raises(BagError, match="unknown typestore"):
        bagfile.get_typestore("ros2_nonexistent")


def _write_ros1_bag(path, frames, K, P, D):
    """A ROS 1 bag as TUM RGB-D and other datasets ship them: sensor_msgs/Image + CameraInfo
    (whose matrices ROS 1 spells D, K, R, P) with their definitions, written by rosbags."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    T = ts.types
    with Writer(path) as writer:
        image_conn = writer.add_connection("/camera/rgb/image_color", "sensor_msgs/msg/Image",
                                           typestore=ts)
        info_conn = writer.add_connection("/camera/rgb/camera_info",
                                          "sensor_msgs/msg/CameraInfo", typestore=ts)
        for i, rgb in enumerate(frames):
            stamp = 1_000_000_000 + i * 100_000_000
            header = T["std_msgs/msg/Header"](
                seq=i, stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9,
                                                               nanosec=stamp % 10**9),
                frame_id="cam")
            image = T["sensor_msgs/msg/Image"](header=header, height=rgb.shape[0],
                                               width=rgb.shape[1], encoding="rgb8",
                                               is_bigendian=0, step=rgb.shape[1] * 3,
                                               data=rgb.reshape(-1).copy())
            roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                        width=0, do_rectify=False)
            info = T["sensor_msgs/msg/CameraInfo"](
                header=header, height=rgb.shape[0], width=rgb.shape[1],
                distortion_model="plumb_bob", D=np.asarray(D, np.float64),
                K=K.reshape(-1).copy(), R=np.eye(3).reshape(-1), P=P.reshape(-1).copy(),
                binning_x=0, binning_y=0, roi=roi)
            writer.write(info_conn, stamp, ts.serialize_ros1(info, info_conn.msgtype))
            writer.write(image_conn, stamp, ts.serialize_ros1(image, image_conn.msgtype))


def test_ros1_bags_are_read_like_rosbag2_ones(tmp_path):
    from lsmdepth_ros.training.datasets import RosbagSequenceDataset

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (24, 32, 3)).astype(np.uint8) for _ in range(4)]
    K = np.array([[40.0, 0, 15.5], [0, 41.0, 11.5], [0, 0, 1]])
    P = np.array([[38.0, 0, 16.0, 0], [0, 39.0, 12.0, 0], [0, 0, 1, 0]])
    bag = tmp_path / "drives" / "tum_like.bag"
    bag.parent.mkdir()
    _write_ros1_bag(bag, frames, K, P, D=[0.1, -0.05, 0, 0, 0])
    topics = bagfile.bag_topics(bag)
    assert topics["/camera/rgb/image_color"].count == 4
    assert bagfile.expand_bag_paths(tmp_path / "drives") == [bag]   # found in a folder too
    seen = list(topic_streams.iter_camera_frames(bag, "/camera/rgb/image_color",
                                                 "/camera/rgb/camera_info"))
    assert [np.array_equal(f.image, rgb) for f, rgb in zip(seen, frames)] == [True] * 4
    assert np.array_equal(seen[0].camera.K, K) and np.array_equal(seen[0].camera.P, P)
    assert seen[0].stamp_ns == 1_000_000_000
    infos = topic_streams.camera_infos(bag, "/camera/rgb/camera_info", "/camera/rgb/image_color")
    np.testing.assert_array_equal(infos[0].data[0], P[:, :3])   # the image's camera, as the node
    ds = RosbagSequenceDataset(bag, "/camera/rgb/image_color", "/camera/rgb/camera_info",
                               height=24, width=32, frame_ids=(0,), rectified=True)
    assert len(ds) == 4
    np.testing.assert_array_equal(ds.load_rgb(next(iter(ds.frames)), 2), frames[2])


def test_replaying_a_ros1_bag_says_how_to_convert_it(tmp_path):
    from lsmdepth_ros.bags.replay import ReplayOptions, replay

    bag = tmp_path / "old.bag"
    _write_ros1_bag(bag, [np.zeros((4, 4, 3), np.uint8)], np.eye(3), np.eye(3, 4), [0.0] * 5)
    with pytest.raises(BagError, match="ROS 1 bag.*rosbags-convert --src"):
        replay(ReplayOptions(bag=bag))
