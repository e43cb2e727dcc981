"""Small bags and helpers shared by test_bags.py and test_demo.py."""
from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np

from lsmdepth_ros.bags import bagfile
from lsmdepth_ros.bags import messages as bagmsg

FRAME_ID = "camera_optical_frame"
K_SMALL = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 15.5], [0.0, 0.0, 1.0]])


def private_ros_env() -> dict[str, str]:
    """A private ROS domain on localhost for this test module (set in os.environ by fixtures)."""
    return {"ROS_DOMAIN_ID": str(random.randint(1, 200)),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def set_env(values: dict[str, str]) -> dict[str, str | None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def random_checkpoint(path: Path, height: int = 64, width: int = 128) -> Path:
    """A randomly initialised LSMDepth checkpoint (deterministic seed), small and fast."""
    from conftest import write_random_checkpoint

    return write_random_checkpoint(path, height, width)


def scene_depth(h: int = 32, w: int = 64, shift: int = 0) -> np.ndarray:
    """A smooth depth image in metres (a tilted plane with a box), NaN in a 'sky' strip."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = 4.0 + 30.0 * (1.0 - v / h) + 0.05 * ((u + shift) % w)
    depth[h // 3: h // 2, w // 4: w // 2] = 6.0 + 0.1 * shift
    depth[: h // 8] = np.nan
    return depth.astype(np.float32)


def write_depth_bag(path: Path, frames: int = 4, *, pred_factor=None, with_info: bool = True,
                    with_gt: bool = True, extra_pred_stamp: int | None = None,
                    storage: str = "mcap", dt_ns: int = 100_000_000) -> dict[int, np.ndarray]:
    """A bag with /camera/image_raw (rgb8), /camera/camera_info, /camera/depth_gt (32FC1) and,
    when `pred_factor(gt, i)` is given, a /depth topic holding that 'prediction'. Returns the gt
    depth by stamp."""
    store = bagfile.get_typestore()
    h, w = 32, 64
    gts = {}
    with bagfile.BagWriter(path, storage=storage) as bag:
        for i in range(frames):
            stamp = 1_000_000_000 + i * dt_ns
            gt = scene_depth(h, w, shift=i)
            gts[stamp] = gt
            rgb = np.clip(np.nan_to_num(gt, nan=0.0) * 6, 0, 255).astype(np.uint8)
            bag.write("/camera/image_raw", stamp, bagmsg.numpy_to_image(
                np.repeat(rgb[..., None], 3, axis=2), "rgb8", stamp, FRAME_ID, store))
            if with_info:
                bag.write("/camera/camera_info", stamp,
                          bagmsg.make_camera_info(K_SMALL, w, h, stamp, FRAME_ID, store))
            if with_gt:
                bag.write("/camera/depth_gt", stamp,
                          bagmsg.numpy_to_image(gt, "32FC1", stamp, FRAME_ID, store))
            if pred_factor is not None:
                bag.write("/depth", stamp, bagmsg.numpy_to_image(
                    pred_factor(gt, i).astype(np.float32), "32FC1", stamp, FRAME_ID, store))
        if extra_pred_stamp is not None and pred_factor is not None:
            bag.write("/depth", extra_pred_stamp, bagmsg.numpy_to_image(
                np.ones((h, w), np.float32), "32FC1", extra_pred_stamp, FRAME_ID, store))
    return gts


def messages_equal(a, b) -> bool:
    """Deep equality of decoded rosbags messages (numpy arrays compared element-wise)."""
    if dataclasses.is_dataclass(a):
        # each reader decodes with its own typestore: compare type names, not classes
        return type(a).__name__ == type(b).__name__ and all(
            messages_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(messages_equal(x, y) for x, y in zip(a, b))
    return a == b


def decoded(path: Path, topic: str) -> list:
    return [m.msg for m in bagfile.read_messages(path, [topic])]
