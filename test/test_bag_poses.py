"""Camera motion out of bags (odometry + TF, TF alone) against a known turning drive; bad input.

The bags are written with the rosbags writer: odometry at 50 Hz (or /tf at 30 Hz), images at
10 Hz with stamps that fall between odometry samples, a static base -> camera extrinsic (REP 103
optical frame, tilted down). The truth is the analytic pose at each image stamp.
"""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lsmdepth_ros.bags import bagfile
from lsmdepth_ros.bags import messages as bagmsg
from lsmdepth_ros.bags.bagfile import BagError
from lsmdepth_ros.training.datasets import RosbagSequenceDataset
from lsmdepth_ros.training.datasets.base import DEPTH_KEY, pose_key

CAM = "camera_optical_frame"
W, H = 32, 16
K = np.array([[20.0, 0, 16], [0, 20, 8], [0, 0, 1]])
IMAGE_T0, IMAGE_DT = 1_000_013_000, 100_000_000          # 10 Hz, 13 ms after the second
# optical (x right, y down, z forward) in a REP 103 body (x forward, y left, z up), tilted 5 deg
# down and offset from the base: a camera on a mast
R_BASE_OPTICAL = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
T_BASE_CAM = np.eye(4)
T_BASE_CAM[:3, :3] = Rotation.from_euler("y", 5, degrees=True).as_matrix() @ R_BASE_OPTICAL
T_BASE_CAM[:3, 3] = (0.3, -0.05, 1.2)


def base_pose(t_ns) -> np.ndarray:
    """T_odom_base of a robot driving a left-hand arc (1 m/s, 0.5 rad/s) that pitches a little."""
    t = (np.asarray(t_ns, np.float64) - 1e9) / 1e9
    yaw = 0.5 * t
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("zyx", [yaw, 0.03 * np.sin(2 * t), 0.0]).as_matrix()
    T[:3, 3] = (2.0 * np.sin(yaw), 2.0 * (1 - np.cos(yaw)), 0.05 * np.sin(t))
    return T


def image_stamps(n):
    return [IMAGE_T0 + i * IMAGE_DT for i in range(n)]


def write_drive(path, n_images=12, odom_hz=50.0, odom_span=None, tf_only=False,
                child="base_link", static=True, odom_stamps=None, extra=()):
    """A bag of images, camera_info, and odometry (or /tf) of the arc above."""
    store = bagfile.get_typestore()
    stamps = image_stamps(n_images)
    lo, hi = odom_span or (stamps[0] - 50_000_000, stamps[-1] + 50_000_000)
    if odom_stamps is None:
        odom_stamps = np.arange(lo, hi, 1e9 / odom_hz).astype(np.int64) + 3_000_000
    rng = np.random.default_rng(0)
    msgs = []
    if static:
        # two static hops, base_link -> camera_link -> optical frame, as a URDF gives
        T_link = np.eye(4)
        T_link[:3, 3] = (0.3, -0.05, 1.2)
        msgs.append(("/tf_static", 0, bagmsg.make_tf_message(
            [(T_link, 0, "base_link", "camera_link"),
             (np.linalg.inv(T_link) @ T_BASE_CAM, 0, "camera_link", CAM)], store)))
    for s in odom_stamps:
        if tf_only:
            msgs.append(("/tf", int(s), bagmsg.make_tf_message(
                [(base_pose(s), int(s), "odom", child)], store)))
        else:
            msgs.append(("/odom", int(s), bagmsg.make_odometry(base_pose(s), int(s), "odom",
                                                              child, store)))
    for s in stamps:
        msgs.append(("/camera/image_raw", s, bagmsg.numpy_to_image(
            rng.integers(0, 255, (H, W, 3), dtype=np.uint8), "rgb8", s, CAM, store)))
        msgs.append(("/camera/camera_info", s, bagmsg.make_camera_info(K, W, H, s, CAM, store)))
    msgs += list(extra)
    msgs.sort(key=lambda m: m[1])
    return bagfile.write_bag(path, msgs)


def true_relative(i, offset):
    cam = [base_pose(s) @ T_BASE_CAM for s in image_stamps(40)]
    return np.linalg.inv(cam[i + offset]) @ cam[i]


def assert_pose_close(T, T_true):
    assert np.linalg.norm(T[:3, 3] - T_true[:3, 3]) < 0.01   # 1 cm
    angle = Rotation.from_matrix(T[:3, :3] @ T_true[:3, :3].T).magnitude()
    assert np.degrees(angle) < 0.1


def dataset(path, **kw):
    kw.setdefault("odometry_topic", "/odom")
    return RosbagSequenceDataset(path, height=16, width=32, num_scales=1, **kw)


@pytest.mark.parametrize("tf_only", [False, True])
def test_camera_motion_matches_the_known_turning_drive(tmp_path, tf_only):
    bag = write_drive(tmp_path / "drive", odom_hz=30.0 if tf_only else 50.0, tf_only=tf_only)
    ds = dataset(bag, **({"odometry_topic": None, "pose_frame": "odom"} if tf_only else {}))
    assert len(ds.poses) == 1 and not ds.dropped
    seq = next(iter(ds.poses))
    turned = 0.0
    for item in ds.items:
        for offset in (-1, 1):
            T = ds.relative_pose(seq, item.frame_index, offset)
            assert_pose_close(T, true_relative(item.frame_index, offset))
            turned = max(turned, Rotation.from_matrix(T[:3, :3]).magnitude())
    assert np.degrees(turned) > 2.0   # the check covers rotation, not only translation
    # the sample carries the same T (monodepth2's pose_gt convention, as the synthetic data)
    sample = ds[0]
    assert np.allclose(sample[pose_key(1)].numpy(), ds.relative_pose(seq, 1, 1), atol=1e-5)


def test_images_outside_the_odometry_are_left_out_and_counted(tmp_path, caplog):
    stamps = image_stamps(12)
    bag = write_drive(tmp_path / "drive", odom_span=(stamps[2] - 5_000_000, stamps[-1] - 1))
    with caplog.at_level("WARNING"):
        ds = dataset(bag)
    assert list(ds.dropped.values()) == [3]            # images 0, 1 before and 11 after
    assert "outside the time span of /odom" in caplog.text and "3 images" in caplog.text
    seq = next(iter(ds.poses))
    assert len(ds.frames[seq]) == 9
    # the kept frames keep their own poses: frame 0 of the sequence is image 2 of the bag
    T = ds.relative_pose(seq, 0, 1)
    cam = [base_pose(s) @ T_BASE_CAM for s in stamps]
    assert_pose_close(T, np.linalg.inv(cam[3]) @ cam[2])


def test_standing_robot_pairs_are_rejected(tmp_path):
    stamps = image_stamps(12)
    odom = np.arange(stamps[0] - 50_000_000, stamps[-1] + 50_000_000, 20_000_000)
    store = bagfile.get_typestore()
    # the robot stands still until image 5, then drives the arc
    still = base_pose(stamps[5])
    path = write_drive(tmp_path / "d", odom_stamps=[], extra=[
        ("/odom", int(s), bagmsg.make_odometry(still if s <= stamps[5] else base_pose(s), int(s),
                                              "odom", "base_link", store)) for s in odom])
    ds = dataset(path, min_translation=0.05)
    assert [it.frame_index for it in ds.items] == list(range(6, 11))
    assert sum(ds.dropped.values()) == 5
    assert len(dataset(path, min_translation=0.0).items) == 10


def test_odometry_frame_that_does_not_reach_the_camera_is_an_error(tmp_path):
    bag = write_drive(tmp_path / "d", child="base_footprint")
    with pytest.raises(BagError, match="'base_footprint' does not connect to camera frame "
                                       f"'{CAM}'.*base_link -> camera_link"):
        dataset(bag)


def test_bag_without_tf_static_names_it(tmp_path):
    bag = write_drive(tmp_path / "d", static=False)
    with pytest.raises(BagError, match="base_link.*camera_optical_frame.*no /tf_static topic"):
        dataset(bag)


def test_odometry_stamps_going_backwards_is_an_error(tmp_path):
    stamps = image_stamps(12)
    odom = list(range(stamps[0] - 50_000_000, stamps[-1] + 50_000_000, 20_000_000))
    header = list(odom)
    header[20], header[21] = header[21], header[20]   # received in order, stamped out of order
    store = bagfile.get_typestore()
    bag = write_drive(tmp_path / "d", odom_stamps=[], extra=[
        ("/odom", t, bagmsg.make_odometry(base_pose(h), h, "odom", "base_link", store))
        for t, h in zip(odom, header)])
    with pytest.raises(BagError, match="/odom.*go backwards at message 21"):
        dataset(bag)


def test_odometry_and_pose_frame_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="exactly one of odometry_topic"):
        dataset(write_drive(tmp_path / "d"), pose_frame="odom")


def test_ground_truth_depth_from_gt_topic(tmp_path):
    store = bagfile.get_typestore()
    depths = {s: np.full((H, W), 1.0 + i, np.float32) for i, s in enumerate(image_stamps(12))}
    for d in depths.values():
        d[0, 0] = np.nan
    bag = write_drive(tmp_path / "d", extra=[
        ("/camera/depth_gt", s, bagmsg.numpy_to_image(d, "32FC1", s, CAM, store))
        for s, d in depths.items()])
    ds = dataset(bag, gt_topic="/camera/depth_gt", load_depth=True)
    assert ds.provides_depth
    sample = ds[3]   # item 3: frame index 4
    gt = sample[DEPTH_KEY].numpy()[0]
    assert gt.shape == (H, W) and gt[0, 0] == 0.0 and np.all(gt.ravel()[1:] == 5.0)
    assert DEPTH_KEY not in dataset(bag, gt_topic="/camera/depth_gt")[3]
    with pytest.raises(BagError, match="no gt_topic"):
        dataset(bag, load_depth=True)


def test_data_path_takes_a_folder_of_bags_a_glob_and_a_list(tmp_path):
    for k in range(2):
        write_drive(tmp_path / "bags" / f"drive_{k}")
    one = str(tmp_path / "bags" / "drive_0")
    for spec, count in ((tmp_path / "bags", 2), (str(tmp_path / "bags" / "drive_*"), 2),
                        ([one, tmp_path / "bags" / "drive_1"], 2), (f"{one}, {one}", 1),
                        (one, 1)):
        assert len(bagfile.expand_bag_paths(spec)) == count
    assert len(dataset(tmp_path / "bags").poses) == 2
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(BagError, match="holds no bag: no rosbag2 metadata.yaml and no ROS 1 .bag"):
        dataset(tmp_path / "empty")
    with pytest.raises(BagError, match="no file matches"):
        bagfile.expand_bag_paths(str(tmp_path / "nothing_*"))


def test_synthetic_bag_odometry_gives_the_rendered_camera_motion(tmp_path):
    from lsmdepth_ros.bags.synthetic_bag import ODOM_PERIOD_NS, write_synthetic_bag
    from lsmdepth_ros.synthetic import (
        SyntheticDrive,
        SyntheticOptions,
        drive_seed,
        relative_pose,
    )

    options = SyntheticOptions(width=64, height=32, frames=25)
    bag = write_synthetic_bag(tmp_path / "drive", seed=3, options=options, with_depth=False)
    topics = bagfile.bag_topics(bag)
    assert topics["/tf_static"].count == 1 and topics["/odom"].count > 2 * options.frames
    odom = [bagmsg.stamp_to_ns(m.msg.header.stamp) for m in bagfile.read_messages(bag, ["/odom"])]
    images = {bagmsg.stamp_to_ns(m.msg.header.stamp)
              for m in bagfile.read_messages(bag, ["/camera/image_raw"])}
    assert set(np.diff(odom[:-1])) == {ODOM_PERIOD_NS} and len(images & set(odom)) <= 3
    ds = RosbagSequenceDataset(bag, height=32, width=64, num_scales=1, odometry_topic="/odom")
    assert not ds.dropped and len(ds) == options.frames - 2
    poses = SyntheticDrive(drive_seed(3, 0), options).poses
    seq = next(iter(ds.poses))
    for item in ds.items:
        for offset in (-1, 1):
            assert_pose_close(ds.relative_pose(seq, item.frame_index, offset),
                              relative_pose(poses[item.frame_index],
                                            poses[item.frame_index + offset]))


def test_training_config_builds_bag_sets_with_poses_and_held_out_depth(tmp_path):
    from lsmdepth_ros.bags.synthetic_bag import write_synthetic_bag
    from lsmdepth_ros.synthetic import SyntheticDrive, SyntheticOptions, drive_seed
    from lsmdepth_ros.training.config import TrainConfig
    from lsmdepth_ros.training.datasets.registry import build_datasets

    options = SyntheticOptions(width=128, height=64, frames=6)
    for k in range(2):
        write_synthetic_bag(tmp_path / "drives" / f"drive_{k}", seed=0, sequence=k,
                            options=options, with_depth=False)
    write_synthetic_bag(tmp_path / "held_out", seed=1, options=options)
    config = TrainConfig(data_kind="bag", data_path=str(tmp_path / "drives"), height=64,
                         width=128, pose_source="dataset",
                         data_options={"odometry_topic": "/odom", "val_path":
                                       str(tmp_path / "held_out"), "gt_topic": "/camera/depth_gt"})
    train, val = build_datasets(config, num_scales=1)
    assert len(train) == 2 * 4 and pose_key(1) in train[0] and DEPTH_KEY not in train[0]
    assert val.provides_depth and len(val) == 6
    truth = SyntheticDrive(drive_seed(1, 0), options).render(2).depth
    np.testing.assert_array_equal(val[2][DEPTH_KEY][0].numpy(), np.nan_to_num(truth, nan=0.0))
    config.data_options = {"val_path": str(tmp_path / "held_out")}
    with pytest.raises(ValueError, match="gt_topic"):
        build_datasets(config, num_scales=1)


def test_a_ros1_copy_of_a_bag_gives_the_same_poses_and_images(tmp_path):
    """Public datasets ship ROS 1 bags: the same drive converted to ROS 1 (rosbags-convert, as a
    user would) trains with the same images, camera and odometry poses."""
    import subprocess
    import sys
    from pathlib import Path

    write_drive(tmp_path / "drive")
    ros1 = tmp_path / "drive.bag"
    convert = Path(sys.executable).parent / "rosbags-convert"
    subprocess.run([str(convert), "--src", str(tmp_path / "drive"), "--dst", str(ros1)],
                   check=True, capture_output=True)
    a, b = dataset(tmp_path / "drive"), dataset(ros1)
    assert len(a) == len(b) > 0
    (ka, pa), (kb, pb) = next(iter(a.poses.items())), next(iter(b.poses.items()))
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(a.load_rgb(ka, 0), b.load_rgb(kb, 0))
    np.testing.assert_array_equal(a.intrinsics(ka, 64, 32), b.intrinsics(kb, 64, 32))
