"""Write synthetic drives to disk: a KITTI-raw-like folder with split files (bags: see
`lsmdepth_ros.bags.synthetic_bag`).

KITTI-like folder (read back with training's `synthetic_folder_dataset` / `KittiRawDataset`)::

    OUT/synthetic/calib_cam_to_cam.txt                       exact K as P_rect_02, S_rect_02 = size
    OUT/synthetic/synthetic_drive_0000_sync/image_02/data/0000000000.png
    OUT/synthetic/synthetic_drive_0000_sync/proj_depth/groundtruth/image_02/0000000000.png
                                                            uint16 metres*256, 0 = sky (KITTI style)
    OUT/synthetic/synthetic_drive_0000_sync/poses.txt       T_world_cam per frame (3x4, KITTI odometry)
    OUT/splits/synthetic/{train,val,test}_files.txt         "synthetic/synthetic_drive_0000_sync 5 l"
    OUT/intrinsics.yaml                                     the same K for FolderSequenceDataset users
    OUT/synthetic.json                                      how it was generated (seed, options)

Sequences go to train / val / test whole (no frame of a test drive is seen in training): the last
`test` sequences are the test split, the ones before the validation split. Train and val list
frames with both neighbours; test lists every frame.

"""
from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lsmdepth_ros.atomic_files import atomic_write_bytes, atomic_write_text
from lsmdepth_ros.metrics import encode_depth_png
from lsmdepth_ros.synthetic.drive import SyntheticDrive, SyntheticOptions, drive_seed

DATE = "synthetic"
SPLIT_NAME = "synthetic"


def drive_folder(sequence: int) -> str:
    return f"{DATE}/{DATE}_drive_{sequence:04d}_sync"


@dataclass(frozen=True)
class SplitSizes:
    train: list[int]
    val: list[int]
    test: list[int]


def split_sequences(num_sequences: int, val_fraction: float = 0.1,
                    test_fraction: float = 0.1) -> SplitSizes:
    """Whole sequences per split: at least one val and one test sequence from 3 sequences on."""
    n = int(num_sequences)
    n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
    n_val = max(1, round(n * val_fraction)) if n >= 3 else 0
    n_train = n - n_test - n_val
    seqs = list(range(n))
    return SplitSizes(seqs[:n_train], seqs[n_train:n_train + n_val], seqs[n_train + n_val:])


def _calib_text(K: np.ndarray, width: int, height: int) -> str:
    P = np.zeros((3, 4))
    P[:, :3] = K
    fmt = " ".join
    return (
        "calib_time: synthetic (lsmdepth_ros)\n"
        f"S_02: {width:.6e} {height:.6e}\n"
        f"K_02: {fmt(f'{v:.12e}' for v in K.ravel())}\n"
        f"D_02: {fmt(['0.000000e+00'] * 5)}\n"
        f"R_rect_00: {fmt(f'{v:.6e}' for v in np.eye(3).ravel())}\n"
        f"S_rect_02: {width:.6e} {height:.6e}\n"
        f"P_rect_02: {fmt(f'{v:.12e}' for v in P.ravel())}\n"
    )


def _intrinsics_yaml(K: np.ndarray, width: int, height: int) -> str:
    return (f"# pinhole intrinsics of every image in this folder (pixels)\n"
            f"width: {width}\nheight: {height}\n"
            f"fx: {K[0, 0]!r}\nfy: {K[1, 1]!r}\ncx: {K[0, 2]!r}\ncy: {K[1, 2]!r}\n")


def _write_sequence(root: str, sequence: int, seed: int, options: SyntheticOptions,
                    image_ext: str) -> int:
    import cv2

    drive = SyntheticDrive(drive_seed(seed, sequence), options)
    folder = Path(root) / drive_folder(sequence)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_ext == ".jpg" else []
    for frame in drive:
        ok, img = cv2.imencode(image_ext, frame.rgb[:, :, ::-1], params)
        ok2, dep = cv2.imencode(".png", encode_depth_png(frame.depth))
        if not (ok and ok2):
            raise RuntimeError(f"OpenCV could not encode frame {frame.index}")
        name = f"{frame.index:010d}"
        atomic_write_bytes(folder / "image_02" / "data" / f"{name}{image_ext}", img.tobytes())
        atomic_write_bytes(folder / "proj_depth" / "groundtruth" / "image_02" / f"{name}.png",
                           dep.tobytes())
    lines = "\n".join(" ".join(f"{v:.9e}" for v in T[:3, :].ravel()) for T in drive.poses)
    atomic_write_text(folder / "poses.txt", lines + "\n")
    return len(drive)


def write_kitti_layout(root: str | Path, num_sequences: int = 4, seed: int = 0,
                       options: SyntheticOptions | None = None, image_ext: str = ".png",
                       val_fraction: float = 0.1, test_fraction: float = 0.1,
                       workers: int = 1, progress=None) -> SplitSizes:
    """Render `num_sequences` drives into a KITTI-raw-like folder (see the module docstring).

    `progress(done, total)` is called after each sequence. Returns the sequence split.
    """
    if image_ext not in (".png", ".jpg"):
        raise ValueError(f"image_ext must be '.png' or '.jpg', got {image_ext!r}")
    if num_sequences < 1:
        raise ValueError(f"num_sequences must be >= 1, got {num_sequences}")
    options = options or SyntheticOptions()
    root = Path(root)
    K, w, h = options.K, options.width, options.height
    atomic_write_text(root / DATE / "calib_cam_to_cam.txt", _calib_text(K, w, h))
    atomic_write_text(root / "intrinsics.yaml", _intrinsics_yaml(K, w, h))

    jobs = [(str(root), k, seed, options, image_ext) for k in range(num_sequences)]
    done = 0
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_write_sequence_job, jobs):
                done += 1
                if progress:
                    progress(done, num_sequences)
    else:
        for job in jobs:
            _write_sequence_job(job)
            done += 1
            if progress:
                progress(done, num_sequences)

    split = split_sequences(num_sequences, val_fraction, test_fraction)
    n = options.frames
    for name, seqs in (("train", split.train), ("val", split.val), ("test", split.test)):
        frames = range(n) if name == "test" else range(1, n - 1)
        lines = [f"{drive_folder(s)} {f} l" for s in seqs for f in frames]
        atomic_write_text(root / "splits" / SPLIT_NAME / f"{name}_files.txt",
                          "\n".join(lines) + ("\n" if lines else ""))
    meta = {"generator": "lsmdepth_ros synthetic", "seed": seed, "num_sequences": num_sequences,
            "drive_seeds": [drive_seed(seed, k) for k in range(num_sequences)],
            "options": asdict(options), "split": asdict(split), "image_ext": image_ext}
    atomic_write_text(root / "synthetic.json", json.dumps(meta, indent=2) + "\n")
    return split


def _write_sequence_job(job) -> int:
    return _write_sequence(*job)
