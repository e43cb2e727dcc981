"""Cost of synthetic training frames: rendering on the fly vs reading a written folder.

    python -m lsmdepth_ros.benchmarks.synthetic [--frames 20]

Prints CPU milliseconds per frame (process time, so other load on the machine counts less) for
rendering at 640x192 (target: about 50 ms) and 1242x375, split into geometry (ray casting)
and shading, next to decoding the same frame's PNG image + depth PNG (what
`synthetic_folder_dataset` does per frame), and their ratio.
"""
from __future__ import annotations

import argparse
import time


def _cpu_ms(fn, repeats: int) -> float:
    fn(0)  # warm caches (textures, ray grids)
    start = time.process_time()
    for i in range(repeats):
        fn(i)
    return (time.process_time() - start) / repeats * 1000.0


def measure(width: int, height: int, n: int) -> dict[str, float]:
    """CPU ms per frame: full render, geometry only, PNG image + depth decode."""
    import cv2

    from lsmdepth_ros.metrics import encode_depth_png
    from lsmdepth_ros.synthetic import SyntheticDrive, SyntheticOptions, render

    drive = SyntheticDrive(0, SyntheticOptions(width=width, height=height, frames=3 * n + 1))
    full = _cpu_ms(lambda i: drive.render(3 * i), n)
    geometry = _cpu_ms(lambda i: render(drive.scene, drive.poses[3 * i], drive.K, width, height,
                                        shade=False), n)
    frame = drive.render(0)
    png = cv2.imencode(".png", frame.rgb[:, :, ::-1])[1]
    dpng = cv2.imencode(".png", encode_depth_png(frame.depth))[1]
    decode = _cpu_ms(lambda i: (cv2.imdecode(png, cv2.IMREAD_COLOR),
                                cv2.imdecode(dpng, cv2.IMREAD_UNCHANGED)), n)
    return {"render": full, "geometry": geometry, "shading": full - geometry, "read": decode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args(argv)
    for width, height in ((640, 192), (1242, 375)):
        r = measure(width, height, args.frames)
        print(f"{width}x{height}: render {r['render']:6.1f} ms/frame (geometry "
              f"{r['geometry']:5.1f}, shading {r['shading']:5.1f}); PNG read {r['read']:5.2f} ms; "
              f"render / read = {r['render'] / max(r['read'], 1e-9):5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
