"""Data sets: sample format, augmentation conventions, KITTI layout round trip, folders and bags."""
import cv2
import numpy as np
import pytest
import torch

from lsmdepth_ros.bags.synthetic_bag import write_synthetic_bag
from lsmdepth_ros.geometry import scale_intrinsics
from lsmdepth_ros.synthetic.writer import split_sequences, write_kitti_layout
from lsmdepth_ros.training.datasets import (
    FolderSequenceDataset,
    KittiRawDataset,
    RosbagSequenceDataset,
    SyntheticDataset,
    SyntheticOptions,
    synthetic_folder_dataset,
)
from lsmdepth_ros.training.datasets.augment import AugmentOptions

W, H = 128, 64
SEED = 11


@pytest.fixture(scope="module")
def synth():
    return SyntheticDataset(num_sequences=3, frames_per_sequence=6, height=H, width=W, seed=SEED)


@pytest.fixture(scope="module")
def kitti_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_kitti")
    split = write_kitti_layout(root, num_sequences=3, seed=SEED,
                               options=SyntheticOptions(width=W, height=H, frames=6))
    return root, split


def test_sample_keys_shapes_and_intrinsics(synth):
    state = torch.random.get_rng_state()
    s = synth[0]
    assert torch.equal(state, torch.random.get_rng_state())  # evaluation draws no randomness
    assert len(synth) == 3 * 4  # frames with both neighbours
    for i in (0, -1, 1):
        for scale in range(4):
            img = s[("color", i, scale)]
            assert img.shape == (3, H >> scale, W >> scale) and img.dtype == torch.float32
            assert 0 <= img.min() and img.max() <= 1
            assert s[("color_aug", i, scale)] is img  # no augmentation outside training
    K0 = s[("K", 0)].double().numpy()
    np.testing.assert_allclose(K0[:3, :3], [[0.58 * W, 0, 0.5 * W], [0, 1.92 * H, 0.5 * H],
                                            [0, 0, 1]], rtol=1e-6)
    for scale in range(4):
        K = s[("K", scale)].double().numpy()
        np.testing.assert_allclose(K[:3, :3], scale_intrinsics(K0[:3, :3], (W, H),
                                                               (W >> scale, H >> scale)), rtol=1e-6)
        np.testing.assert_allclose(s[("inv_K", scale)].double().numpy() @ K, np.eye(4), atol=1e-5)
    assert s["depth_gt"].shape == (1, H, W) and (s["depth_gt"] >= 0).all()
    assert s[("pose_gt", 1)].shape == (4, 4)
    # the sky is invalid (0), and the scale-0 colour image is the rendered frame itself
    frame = synth.frame("0000", 1)
    np.testing.assert_array_equal(s["depth_gt"][0].numpy() == 0, np.isnan(frame.depth))
    np.testing.assert_allclose(s[("color", 0, 0)].permute(1, 2, 0).numpy() * 255, frame.rgb,
                               atol=1e-3)
    batch = next(iter(torch.utils.data.DataLoader(synth, batch_size=2)))
    assert batch[("color", 0, 0)].shape == (2, 3, H, W) and batch[("K", 1)].shape == (2, 4, 4)


def test_training_flip_mirrors_images_depth_and_principal_point(synth):
    train = SyntheticDataset(num_sequences=3, frames_per_sequence=6, height=H, width=W, seed=SEED,
                             is_train=True, augment=AugmentOptions(color_prob=0.0, flip_prob=1.0))
    plain, flipped = synth[2], train[2]
    assert flipped["flipped"] is True
    np.testing.assert_array_equal(flipped[("color", -1, 1)].numpy(),
                                  plain[("color", -1, 1)].flip(-1).numpy())
    np.testing.assert_array_equal(flipped["depth_gt"].numpy(), plain["depth_gt"].flip(-1).numpy())
    for scale in range(4):
        w = W >> scale
        assert flipped[("K", scale)][0, 2] == pytest.approx(w - 1 - plain[("K", scale)][0, 2])
        assert flipped[("K", scale)][1, 2] == plain[("K", scale)][1, 2]
    F = torch.diag(torch.tensor([-1.0, 1, 1, 1]))
    torch.testing.assert_close(flipped[("pose_gt", 1)], F @ plain[("pose_gt", 1)] @ F)


def test_colour_jitter_is_one_draw_per_sample_and_reproducible():
    aug = AugmentOptions(color_prob=1.0, flip_prob=0.0)
    ds = SyntheticDataset(num_sequences=1, frames_per_sequence=4, height=H, width=W, seed=SEED,
                          is_train=True, augment=aug)
    torch.manual_seed(3)
    a = ds[0]
    torch.manual_seed(3)
    b = ds[0]
    torch.testing.assert_close(a[("color_aug", 0, 0)], b[("color_aug", 0, 0)])
    diff = (a[("color_aug", 0, 0)] - a[("color", 0, 0)]).abs().mean()
    assert diff > 1e-3  # jittered
    # the loss images stay un-jittered
    rgb = torch.from_numpy(ds.frame("0000", 1).rgb).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(a[("color", 0, 0)], rgb)
    # the same jitter for every frame: the same brightness factor maps frame -1 and frame 0 alike
    # (check through a brightness-only jitter, where the map is a per-sample scalar)
    bright = SyntheticDataset(num_sequences=1, frames_per_sequence=4, height=H, width=W,
                              seed=SEED, is_train=True,
                              augment=AugmentOptions(0.5, 0.0, 0.0, 0.0, 1.0, 0.0))
    s = bright[0]
    ratios = []
    for i in (0, -1, 1):
        c, ca = s[("color", i, 0)], s[("color_aug", i, 0)]
        ok = (c > 0.05) & (ca < 0.99)
        ratios.append(float((ca[ok] / c[ok]).median()))
    assert max(ratios) - min(ratios) < 1e-3 and abs(ratios[0] - 1) > 1e-3


def test_kitti_layout_is_written_and_read_back(kitti_folder, synth):
    root, split = kitti_folder
    assert split == split_sequences(3)
    assert (split.train, split.val, split.test) == ([0], [1], [2])
    assert (root / "synthetic" / "calib_cam_to_cam.txt").exists()
    img = root / "synthetic" / "synthetic_drive_0000_sync" / "image_02" / "data" / "0000000003.png"
    assert cv2.imread(str(img)).shape == (H, W, 3)
    lines = (root / "splits" / "synthetic" / "train_files.txt").read_text().split("\n")
    assert lines[0] == "synthetic/synthetic_drive_0000_sync 1 l" and lines[-2].endswith(" 4 l")
    test_lines = (root / "splits" / "synthetic" / "test_files.txt").read_text().split()
    assert len(test_lines) == 6 * 3 and "synthetic/synthetic_drive_0002_sync" in test_lines

    ds = synthetic_folder_dataset(root, "train", height=H, width=W, load_depth=True)
    assert len(ds) == 4
    for index in (0, 3):
        a, b = ds[index], synth[index]  # sequence 0 of the same seed
        for key in [("color", 0, 0), ("color", -1, 2), ("color", 1, 3), ("K", 0), ("K", 2),
                    ("inv_K", 1)]:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a[("pose_gt", 1)], b[("pose_gt", 1)], rtol=0, atol=1e-6)
        # depth PNG quantisation: 1/256 m
        assert (a["depth_gt"] - b["depth_gt"]).abs().max() <= 0.5 / 256 + 1e-4
        assert torch.equal(a["depth_gt"] == 0, b["depth_gt"] == 0)
    test = synthetic_folder_dataset(root, "test", height=H, width=W, frame_ids=(0,),
                                    load_depth=True)
    assert len(test) == 6
    with pytest.raises(ValueError, match="lsmdepth synth"):
        synthetic_folder_dataset(root, "nope")


def test_kitti_raw_conventions_jpg_and_velodyne(tmp_path):
    drive = tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        cv2.imwrite(str(drive / "image_02" / "data" / f"{k:010d}.jpg"),
                    rng.integers(0, 255, (75, 248, 3), dtype=np.uint8))
    # calibration with identity velodyne -> camera, so a point (x, y, z) lands at P @ (x, y, z)
    calib = tmp_path / "2011_09_26"
    (calib / "calib_cam_to_cam.txt").write_text(
        "calib_time: x\nS_rect_02: 248 75\nR_rect_00: 1 0 0 0 1 0 0 0 1\n"
        "P_rect_02: 100 0 124 0 0 100 37 0 0 0 1 0\n")
    (calib / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    # (x, y, z) = (1, 0.5, 10): u = (100 + 1240)/10 = 134 -> 133; v = (50 + 370)/10 = 42 -> 41
    np.array([[1.0, 0.5, 10.0, 1.0]], np.float32).tofile(drive / "velodyne_points" / "data" /
                                                         "0000000001.bin")
    ds = KittiRawDataset(tmp_path, ["2011_09_26/2011_09_26_drive_0001_sync 1 l"], height=64,
                         width=128, load_depth=True)
    s = ds[0]
    # monodepth2's K: normalised KITTI K times each scale's size
    for scale in range(4):
        w, h = 128 >> scale, 64 >> scale
        np.testing.assert_allclose(s[("K", scale)][:3, :3].numpy(),
                                   [[0.58 * w, 0, 0.5 * w], [0, 1.92 * h, 0.5 * h], [0, 0, 1]],
                                   rtol=1e-6)
    depth = s["depth_gt"][0].numpy()
    assert depth.shape == (75, 248) and np.count_nonzero(depth) == 1
    assert depth[41, 133] == pytest.approx(10.0)
    assert ("pose_gt", 1) not in s  # no poses for real KITTI
    calib_ds = KittiRawDataset(tmp_path, ["2011_09_26/2011_09_26_drive_0001_sync 1 l"],
                               height=64, width=128, intrinsics="calib")
    np.testing.assert_allclose(calib_ds[0][("K", 0)][:3, :3].numpy(),
                               scale_intrinsics([[100, 0, 124], [0, 100, 37], [0, 0, 1]],
                                                (248, 75), (128, 64)), rtol=1e-6)
    missing = KittiRawDataset(tmp_path, ["2011_09_26/2011_09_26_drive_0001_sync 2 l"],
                              height=64, width=128)
    with pytest.raises(ValueError, match="missing or unreadable image"):
        missing[0]
    with pytest.raises(ValueError, match="bad split line"):
        KittiRawDataset(tmp_path, ["just_a_folder"], height=64, width=128)


def test_folder_sequences_with_intrinsics_yaml(tmp_path, synth):
    for seq in ("a", "b"):
        (tmp_path / seq).mkdir()
        for k in range(4):
            cv2.imwrite(str(tmp_path / seq / f"{k:06d}.png"),
                        synth.frame("0001", k).rgb[:, :, ::-1])
    (tmp_path / "intrinsics.yaml").write_text(
        f"width: {W}\nheight: {H}\nfx: {0.58 * W}\nfy: {1.92 * H}\ncx: {0.5 * W}\ncy: {0.5 * H}\n")
    ds = FolderSequenceDataset(tmp_path, height=H, width=W)
    assert len(ds) == 2 * 2
    ref = synth[4]  # sequence 0001, frame 1
    s = ds[0]
    for key in [("color", 0, 0), ("color", 1, 2), ("K", 0), ("K", 3)]:
        torch.testing.assert_close(s[key], ref[key], rtol=1e-5, atol=1e-5)
    # a distorted camera is rectified to its projection matrix
    (tmp_path / "b" / "intrinsics.yaml").write_text(
        "image_width: 128\nimage_height: 64\ndistortion_model: plumb_bob\n"
        "camera_matrix: {rows: 3, cols: 3, data: [70, 0, 64, 0, 70, 32, 0, 0, 1]}\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [-0.2, 0.05, 0, 0, 0]}\n"
        "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
        "projection_matrix: {rows: 3, cols: 4, data: [60, 0, 64, 0, 0, 60, 32, 0, 0, 0, 1, 0]}\n")
    ds = FolderSequenceDataset(tmp_path, height=H, width=W)
    s = ds[3]  # sequence b
    np.testing.assert_allclose(s[("K", 0)][:3, :3].numpy(), [[60, 0, 64], [0, 60, 32], [0, 0, 1]])
    raw = torch.from_numpy(synth.frame("0001", 2).rgb).permute(2, 0, 1).float() / 255
    assert (s[("color", 0, 0)] - raw).abs().mean() > 0.01  # remapped
    (tmp_path / "intrinsics.yaml").unlink()
    (tmp_path / "b" / "intrinsics.yaml").unlink()
    with pytest.raises(ValueError, match="no intrinsics"):
        FolderSequenceDataset(tmp_path, height=H, width=W)


def test_rosbag_sequences_match_the_rendered_drive(tmp_path, synth):
    bag = write_synthetic_bag(tmp_path / "drive", seed=SEED, sequence=1,
                              options=SyntheticOptions(width=W, height=H, frames=6))
    ds = RosbagSequenceDataset(bag, "/camera/image_raw", "/camera/camera_info", height=H, width=W)
    assert len(ds) == 4
    a, b = ds[1], synth[5]  # sequence 1, target frame 2
    for key in [("color", 0, 0), ("color", -1, 1), ("K", 0), ("K", 2)]:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)
    from lsmdepth_ros.bags.bagfile import BagError

    with pytest.raises(BagError, match="no topic /cam/info"):
        RosbagSequenceDataset(bag, "/camera/image_raw", "/cam/info", height=H, width=W)


@pytest.mark.parametrize("world", ["drive", "random"])
def test_a_sample_renders_its_frame_once_even_without_a_cache(world, monkeypatch):
    ds = SyntheticDataset(num_sequences=2, frames_per_sequence=3, height=H, width=W, seed=SEED,
                          frame_ids=(0,), load_depth=True, cache_frames=0, world=world)
    calls = []
    drive = ds.drives[ds.items[0].sequence]
    render = type(drive).render
    monkeypatch.setattr(type(drive), "render",
                        lambda self, i: calls.append(i) or render(self, i))
    sample = ds[0]
    assert len(calls) == 1
    # the depth is the rendered frame's (same call), and a later sample renders again
    expected = render(drive, calls[0]).depth
    got = sample["depth_gt"][0].numpy()
    assert np.array_equal(got[expected > 0], expected[expected > 0])
    ds[1]
    assert len(calls) == 2


@pytest.mark.parametrize("topic,rectified,remapped", [
    ("/camera/image_raw", None, True),         # raw: undistorted to P
    ("/camera/image_rect", None, False),       # image_proc's output: rectified already
    ("/camera/image_rect_color", None, False),
    ("/camera/image_rect", False, True),       # the option overrides the name
    ("/camera/image_raw", True, False),
])
def test_bag_images_are_rectified_once(tmp_path, topic, rectified, remapped):
    """A calibrated camera's camera_info describes the raw image (D) and the rectified one (P):
    raw images are undistorted to P, images already rectified are left alone, and either way
    the sample's K is P's."""
    from lsmdepth_ros.bags.bagfile import write_bag
    from lsmdepth_ros.bags.messages import make_camera_info, numpy_to_image

    K = np.array([[100.0, 0, 63.5], [0, 100.0, 31.5], [0, 0, 1]])
    P = np.array([[90.0, 0, 64.0, 0], [0, 92.0, 30.0, 0], [0, 0, 1, 0]])
    D = [-0.25, 0.06, 0.0, 0.0, 0.0]
    rng = np.random.default_rng(0)
    images = [cv2.GaussianBlur(rng.integers(0, 256, (64, 128, 3)).astype(np.uint8), (5, 5), 2)
              for _ in range(3)]
    messages = []
    for i, img in enumerate(images):
        stamp = (i + 1) * 100_000_000
        messages.append((topic, stamp, numpy_to_image(img, "rgb8", stamp, "cam")))
        messages.append(("/camera/camera_info", stamp,
                         make_camera_info(K, 128, 64, stamp, "cam", D=D, P=P)))
    bag = write_bag(tmp_path / "bag", messages)
    ds = RosbagSequenceDataset(bag, topic, "/camera/camera_info", height=64, width=128,
                               frame_ids=(0,), rectified=rectified)
    got = ds.load_rgb(next(iter(ds.frames)), 1)
    expected = images[1]
    if remapped:
        maps = cv2.initUndistortRectifyMap(K, np.array(D), np.eye(3), P[:, :3], (128, 64),
                                           cv2.CV_32FC1)
        expected = cv2.remap(images[1], *maps, cv2.INTER_LINEAR)
        assert np.abs(expected.astype(int) - images[1]).mean() > 5   # the remap matters here
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(ds.intrinsics(next(iter(ds.frames)), 128, 64), P[:, :3])


def test_grayscale_augmentation_greys_whole_samples_as_a_mono_camera_would():
    from lsmdepth_ros.training.config import TrainConfig

    def dataset(p):
        return SyntheticDataset(num_sequences=1, frames_per_sequence=12, height=H, width=W,
                                seed=SEED, frame_ids=(0, -1, 1), num_scales=1, is_train=True,
                                augment=AugmentOptions(color_prob=0.0, flip_prob=0.0,
                                                       grayscale_prob=p))
    torch.manual_seed(0)
    sample = dataset(1.0)[3]
    for i in (0, -1, 1):
        rgb, aug = sample[("color", i, 0)], sample[("color_aug", i, 0)]
        assert torch.equal(aug[0], aug[1]) and torch.equal(aug[1], aug[2])
        luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        torch.testing.assert_close(aug[0], luma, atol=1e-6, rtol=0)
        assert not torch.equal(rgb[0], rgb[1])   # the photometric loss still sees colour
    torch.manual_seed(0)
    ds = dataset(0.5)
    grey = []
    for k in range(len(ds)):
        s = ds[k]
        flags = [bool(torch.equal(s[("color_aug", i, 0)][0], s[("color_aug", i, 0)][2]))
                 for i in (0, -1, 1)]
        assert len(set(flags)) == 1   # one decision per sample
        grey.append(flags[0])
    assert 0 < sum(grey) < len(grey)
    torch.manual_seed(0)
    plain = dataset(0.0)[3]
    assert not torch.equal(plain[("color_aug", 0, 0)][0], plain[("color_aug", 0, 0)][1])
    with pytest.raises(ValueError, match="grayscale_prob must be in"):
        TrainConfig(grayscale_prob=1.5).validate()
