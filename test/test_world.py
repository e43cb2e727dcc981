"""The domain-randomised world: exact depth per scene kind (against an independent float64 ray
cast), determinism per seed, camera randomisation inside the stated ranges, sensor effects that
leave depth untouched, and the data set's use of it."""
from dataclasses import replace

import numpy as np
import pytest

from lsmdepth_ros.synthetic.world import (
    INDOOR_SCENES,
    LAYOUTS,
    WorldDrive,
    WorldOptions,
)

W, H = 160, 48


def _options(kind, **kw):
    return WorldOptions(width=W, height=H, frames=8, scenes=(kind,), **kw)


def _independent_depth(scene, pose, K, u, v, far):
    """Nearest hit along pixel (u, v)'s ray, float64, one box at a time (no shared code)."""
    d_cam = np.array([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], 1.0])
    d = pose[:3, :3] @ d_cam
    o = pose[:3, 3]
    best = np.inf
    candidates = []
    if d[1] > 0:
        candidates.append(-o[1] / d[1])                    # ground y = 0
    if scene.ceiling is not None and d[1] < 0:
        candidates.append((-scene.ceiling - o[1]) / d[1])  # ceiling y = -height
    for lo, hi in zip(scene.bmin, scene.bmax):
        t0, t1 = -np.inf, np.inf
        for k in range(3):
            if abs(d[k]) < 1e-12:
                if not lo[k] <= o[k] <= hi[k]:
                    t0, t1 = np.inf, -np.inf
                continue
            a, b = (lo[k] - o[k]) / d[k], (hi[k] - o[k]) / d[k]
            t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 <= t1:
            candidates.append(t0)
    for t in candidates:
        if 0.05 < t < best:
            best = t
    return best if best < far else np.nan


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_rendered_depth_is_the_exact_ray_cast_of_the_scene(kind):
    drive = WorldDrive(11, _options(kind))
    frame = drive.render(5)
    rng = np.random.default_rng(0)
    us, vs = rng.integers(0, W, 60), rng.integers(0, H, 60)
    agree = 0
    for u, v in zip(us, vs):
        ref = _independent_depth(drive.scene, frame.pose, frame.K, u, v, drive.options.far)
        got = frame.depth[v, u]
        if (np.isnan(ref) and np.isnan(got)) or abs(got - ref) <= 1e-4 * ref:
            agree += 1
    # float32 vs float64 may disagree only on a ray grazing a box edge
    assert agree >= 58, f"{kind}: {agree}/60 pixels agree with the independent ray cast"
    assert np.nanmin(frame.depth) > 0.05


def test_indoor_scenes_are_closed_and_have_a_ceiling():
    for kind in INDOOR_SCENES:
        drive = WorldDrive(4, _options(kind))
        assert drive.kind == kind and drive.scene.ceiling is not None
        assert np.isfinite(drive.render(3).depth).all(), kind   # walls everywhere: no sky
    for seed in range(30):   # nor through an opening at a grazing angle, looking ahead or aside
        for look in (0.0, 1.0):
            opts = WorldOptions(width=W, height=H, frames=2, scenes=INDOOR_SCENES,
                                look_around_prob=look)
            assert np.isfinite(WorldDrive(seed, opts).render(0).depth).all(), (seed, look)
    outdoor = WorldDrive(4, _options("street"))
    assert outdoor.scene.ceiling is None


def test_same_seed_same_drive_other_seed_other_drive():
    opts = WorldOptions(width=W, height=H, frames=6)
    a, b, c = WorldDrive(21, opts), WorldDrive(21, opts), WorldDrive(22, opts)
    fa, fb, fc = a.render(4), b.render(4), c.render(4)
    assert np.array_equal(fa.rgb, fb.rgb)
    assert np.array_equal(fa.depth, fb.depth, equal_nan=True)
    assert np.array_equal(fa.pose, fb.pose) and np.array_equal(fa.K, fb.K)
    assert not np.array_equal(fa.rgb, fc.rgb)
    assert not np.array_equal(fa.pose, fc.pose)


def test_camera_randomisation_stays_inside_the_stated_ranges():
    opts = WorldOptions(width=W, height=H, frames=30)
    pitch, roll, height, hfov, aspect, kinds = [], [], [], [], [], set()
    travel, side = [], []
    for seed in range(60):
        drive = WorldDrive(seed, opts)
        kinds.add(drive.kind)
        R = drive.poses[:, :3, :3]
        # R = Ry(yaw) Rx(pitch) Rz(roll): row 1 is (cos p sin r, cos p cos r, -sin p)
        pitch += list(np.degrees(-np.arcsin(R[:, 1, 2])))
        # forward axis (column 2) = (cos p sin y, -sin p, cos p cos y)
        yaw = np.degrees(np.arctan2(R[:, 0, 2], R[:, 2, 2]))
        (side if np.abs(yaw).max() > 15 + 1e-9 else travel).append(yaw)
        roll += list(np.degrees(np.arctan2(R[:, 1, 0], R[:, 1, 1])))
        height += list(-drive.poses[:, 1, 3] - drive.scene.camera_support)
        K = drive.K
        hfov.append(np.degrees(2 * np.arctan(W / (2 * K[0, 0]))))
        aspect.append(K[1, 1] / K[0, 0] * W / H)
    pitch, roll, height = np.array(pitch), np.array(roll), np.array(height)
    assert np.all(np.abs(pitch) <= 10 + 1e-9) and np.all(np.abs(roll) <= 3 + 1e-9)
    assert np.all((height >= 0.2 - 1e-9) & (height <= 2.0 + 1e-9))
    assert np.all((np.array(hfov) >= 45 - 1e-9) & (np.array(hfov) <= 100 + 1e-9))
    assert np.all((np.array(aspect) >= 1.25 - 1e-9) & (np.array(aspect) <= 3.4 + 1e-9))
    # and it does vary: most of each range is used
    assert np.ptp(pitch) > 12 and np.ptp(roll) > 3.5 and np.ptp(height) > 1.3
    assert np.ptp(hfov) > 40 and kinds == set(LAYOUTS)
    # yaw: a drive looks along its path (+-15 deg) or to one side (20-90 deg) for all its frames
    for yaw in side:
        assert np.all((np.abs(yaw) >= 20 - 1e-9) & (np.abs(yaw) <= 90 + 1e-9))
        assert np.all(np.sign(yaw) == np.sign(yaw[0]))
    assert 0.15 < len(side) / 60 < 0.55          # look_around_prob 0.35
    assert {np.sign(y[0]) for y in side} == {-1.0, 1.0}
    assert np.ptp(np.concatenate(travel)) > 20


def test_a_side_looking_camera_sees_a_corridor_nearer_than_one_looking_down_it():
    # the same corridors with their cameras turned to a wall: the point of the look-around drives
    ratios = []
    for seed in range(6):
        ahead = WorldDrive(seed, replace(_options("corridor"), look_around_prob=0.0))
        aside = WorldDrive(seed, replace(_options("corridor"), look_around_prob=1.0))
        assert np.array_equal(ahead.K, aside.K) and ahead.camera.height == aside.camera.height
        ratios.append(np.nanmedian(aside.render(0).depth) / np.nanmedian(ahead.render(0).depth))
    assert np.median(ratios) < 0.7, ratios


def test_sensor_effects_change_the_image_not_the_depth():
    raw = WorldDrive(8, WorldOptions(width=W, height=H, frames=4, sensor_effects=False))
    cam = WorldDrive(8, WorldOptions(width=W, height=H, frames=4, sensor_effects=True))
    f_raw, f_cam = raw.render(2), cam.render(2)
    assert np.array_equal(f_raw.depth, f_cam.depth, equal_nan=True)
    assert np.array_equal(f_raw.pose, f_cam.pose)
    assert not np.array_equal(f_raw.rgb, f_cam.rgb)
    colour_raw, _ = raw.render_scene(2)
    colour_cam, _ = cam.render_scene(2)
    assert np.array_equal(colour_raw, colour_cam)   # effects are applied after the scene


def test_sensor_effects_match_their_definitions():
    from lsmdepth_ros.synthetic.sensor import NO_EFFECTS, apply_sensor

    grey = np.full((20, 30, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    plain = apply_sensor(grey, NO_EFFECTS, rng)
    assert np.all(plain == 128)
    gain = apply_sensor(grey, NO_EFFECTS.__class__(**{**NO_EFFECTS.__dict__, "exposure": 1.5}),
                        rng)
    assert np.all(gain == 191)     # round(0.75 * 255)
    vig = apply_sensor(grey, NO_EFFECTS.__class__(**{**NO_EFFECTS.__dict__,
                                                     "vignetting": 0.4}), rng)
    assert vig[10, 15, 0] > vig[0, 0, 0] and vig[0, 0, 0] == round(0.5 * 0.6 * 255)


def test_random_world_data_set_serves_the_drives_frames():
    from lsmdepth_ros.geometry import scale_intrinsics
    from lsmdepth_ros.training.datasets import SyntheticDataset

    ds = SyntheticDataset(3, 5, H, W, seed=4, frame_ids=(0,), num_scales=2, load_depth=True,
                          world="random", world_options={"scenes": ["room", "street"]})
    sample = ds[7]                        # sequence 1, frame 2
    drive = ds.drives["0001"]
    frame = drive.render(2)
    assert drive.kind in ("room", "street")
    depth = np.nan_to_num(frame.depth, nan=0.0)
    assert np.allclose(sample["depth_gt"][0].numpy(), depth)
    K1 = scale_intrinsics(drive.K, (W, H), (W // 2, H // 2))
    assert np.allclose(sample[("K", 1)][:3, :3].numpy(), K1, atol=1e-4)
    with pytest.raises(ValueError, match="world must be"):
        SyntheticDataset(1, 3, H, W, world="moon")
    with pytest.raises(ValueError, match="scenes"):
        WorldOptions(scenes=("beach",))


def test_evaluate_command_on_held_out_indoor_world_drives(tmp_path):
    import json

    import torch

    from lsmdepth_ros.checkpoints import load_checkpoint, save_checkpoint
    from lsmdepth_ros.cli import main
    from lsmdepth_ros.metrics import EvalOptions
    from lsmdepth_ros.networks import build_depth_model
    from lsmdepth_ros.training.datasets import SyntheticDataset
    from lsmdepth_ros.training.heldout import evaluate_model

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, build_depth_model("lsmdepth", height=64, width=128), min_depth=0.1,
                    max_depth=100.0)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(ckpt), "--data", "synthetic", "--world", "random", "--scenes",
                 "room,corridor", "--sequences", "2", "--frames", "2", "--seed", "5",
                 "--output", str(out), "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    model, info = load_checkpoint(ckpt)
    ds = SyntheticDataset(2, 2, 64, 128, seed=5, frame_ids=(0,), num_scales=1, load_depth=True,
                          world="random", world_options={"scenes": ["room", "corridor"]})
    assert {ds.drives[k].kind for k in ("0000", "0001")} <= {"room", "corridor"}
    direct = evaluate_model(model, ds, EvalOptions(crop=None), min_depth=info.min_depth,
                            max_depth=info.max_depth)
    assert report["num_images"] == 4
    assert report["metrics"]["abs_rel"] == pytest.approx(direct.metrics["abs_rel"], rel=1e-6)
