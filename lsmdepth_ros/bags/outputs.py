"""Files people open: colour-mapped depth PNGs and PLY point clouds (all written atomically)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.atomic_files import atomic_path, atomic_write_bytes


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB (or single-channel) uint8 image as PNG."""
    import cv2

    rgb = np.asarray(rgb)
    bgr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    return atomic_write_bytes(path, encoded.tobytes())


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> int:
    """Binary little-endian PLY of the finite points [N, 3] (any leading shape), with optional
    uint8 RGB colours of the same leading shape. Returns the number of vertices written."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    keep = np.isfinite(points).all(axis=1)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if colors.shape[0] != points.shape[0]:
            raise ValueError(f"{colors.shape[0]} colours for {points.shape[0]} points")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(int(keep.sum()), dtype=fields)
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[keep, i]
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertices[channel] = colors[keep, i]
    kinds = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment lsmdepth_ros point cloud",
              f"element vertex {vertices.size}"]
    header += [f"property {kinds[kind]} {name}" for name, kind in fields]
    header.append("end_header")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vertices.tobytes())
    return int(vertices.size)


def read_ply(path: str | Path) -> np.ndarray:
    """Read back a PLY written by `write_ply` (structured array); for tests and quick checks."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    if lines[:2] != ["ply", "format binary_little_endian 1.0"]:
        raise ValueError(f"{path}: not a binary little-endian PLY")
    kinds = {"float": "<f4", "uchar": "u1"}
    fields = [(ln.split()[2], kinds[ln.split()[1]]) for ln in lines if ln.startswith("property ")]
    count = next(int(ln.split()[2]) for ln in lines if ln.startswith("element vertex"))
    return np.frombuffer(data[end:], dtype=fields, count=count)
