"""Per-frame cost of the depth node's work, measured side by side at 640x192.

    python -m lsmdepth_ros.benchmarks.node [--model PATH] [--frames 10000] [--network-frames 10]

Prints: network time; everything else the node does per frame (pre-processing, disparity ->
depth, scale, depth / camera_info / cloud / colour messages) and its ratio to the network
(targets: <= 5 ms and <= 10 %); the point-cloud build alone (target <= 2 ms); the same with the
camera_height scale policy; and resident memory after 100 vs after `--frames` frames of the
non-network path (target: flat). No DDS: message objects are built but not published.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 640, 192


def rss_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _model_path(arg: str | None, workdir: Path) -> Path:
    if arg:
        return Path(arg)
    # The shipped weights run at 192x64; the targets are stated at 640x192, so time a
    # randomly initialised lsmdepth at that size (the cost does not depend on the weights).
    import torch

    from lsmdepth_ros.checkpoints import save_checkpoint
    from lsmdepth_ros.networks import build_depth_model

    torch.manual_seed(0)   # same architecture and cost as trained weights
    path = workdir / "lsmdepth_random_640x192.pt"
    save_checkpoint(path, build_depth_model("lsmdepth", height=HEIGHT, width=WIDTH))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint or .onnx (default: a randomly initialised "
                        "lsmdepth at 640x192)")
    parser.add_argument("--frames", type=int, default=10_000,
                        help="frames of the non-network path for the memory check")
    parser.add_argument("--network-frames", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from lsmdepth_ros.inference import (
        DepthEstimator,
        EstimatorOptions,
        image_to_rgb,
    )
    from lsmdepth_ros.ros import messages as rosmsg
    from lsmdepth_ros.scale import ScaleOptions
    from lsmdepth_ros.visualisation import colorize_depth

    with tempfile.TemporaryDirectory() as tmp:
        path = _model_path(args.model, Path(tmp))
        est = DepthEstimator(EstimatorOptions(model_path=str(path), num_threads=args.threads),
                             say=lambda s: None)
        if est.network_size != (WIDTH, HEIGHT):
            print(f"note: the model's input is {est.network_size}, not {WIDTH}x{HEIGHT}")
        ground = DepthEstimator(EstimatorOptions(
            model_path=str(path), num_threads=args.threads,
            scale=ScaleOptions(policy="camera_height")), say=lambda s: None)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    K = np.array([[0.58 * WIDTH, 0, WIDTH / 2 - 0.5], [0, 1.92 * HEIGHT, HEIGHT / 2 - 0.5],
                  [0, 0, 1]])
    info = CameraInfo(width=WIDTH, height=HEIGHT)
    info.k = [float(x) for x in K.reshape(-1)]
    header = Header(frame_id="camera_optical_frame")

    # 1. The network alone.
    _, batch = est.preprocess(image, "rgb8")
    est.network_output(batch)                                  # warm-up
    network_ms = _median_ms(lambda: est.network_output(batch), args.network_frames)
    disp = est.network_output(batch)

    # 2. Everything else, with the network replaced by its recorded output.
    def postprocess_only(estimator):
        real = estimator.network_output
        estimator.network_output = lambda b: disp
        try:
            return estimator.run(image, "rgb8", K)
        finally:
            estimator.network_output = real

    clouds = rosmsg.CloudBuilder()   # as the node: one cloud buffer per camera model

    def node_frame(estimator=est):
        result = postprocess_only(estimator)
        rosmsg.depth_to_image(result.depth, header)
        rosmsg.camera_info_for(info, (WIDTH, HEIGHT), header)
        clouds.build(result.depth, result.K, header, image_to_rgb(image, "rgb8"))
        rosmsg.numpy_to_image(colorize_depth(result.depth), "bgr8", header)
        return result

    result = node_frame()
    for _ in range(20):
        node_frame()
    other_ms = _median_ms(node_frame, 200)
    ground_ms = _median_ms(lambda: node_frame(ground), 100)

    # 3. The point cloud alone (rays cached per camera model, colour packed).
    rgb = image_to_rgb(image, "rgb8")
    cloud_ms = _median_ms(lambda: clouds.build(result.depth, result.K, header, rgb), 200)
    xyz_clouds = rosmsg.CloudBuilder()
    cloud_xyz_ms = _median_ms(lambda: xyz_clouds.build(result.depth, result.K, header), 200)

    # 4. Memory of the non-network path: after 100 frames vs after --frames frames.
    gc.collect()
    for _ in range(100):
        node_frame()
    gc.collect()
    rss_100 = rss_mb()
    for _ in range(max(args.frames - 100, 0)):
        node_frame()
    gc.collect()
    rss_n = rss_mb()

    report = {
        "resolution": f"{WIDTH}x{HEIGHT}", "backend": est.backend, "device": est.device,
        "model": str(path), "network_ms": network_ms, "everything_else_ms": other_ms,
        "everything_else_over_network": other_ms / network_ms,
        "everything_else_camera_height_ms": ground_ms, "cloud_ms": cloud_ms,
        "cloud_xyz_only_ms": cloud_xyz_ms, "rss_mb_after_100": rss_100,
        f"rss_mb_after_{args.frames}": rss_n, "rss_growth_mb": rss_n - rss_100,
    }
    print(f"lsmdepth node benchmark at {WIDTH}x{HEIGHT} ({est.backend}, {est.device})")
    print(f"  network                         {network_ms:9.2f} ms / frame")
    print(f"  everything else                 {other_ms:9.2f} ms / frame   "
          f"= {100 * other_ms / network_ms:5.1f} % of the network  (target <= 5 ms, <= 10 %)")
    print(f"  everything else, camera_height  {ground_ms:9.2f} ms / frame   "
          f"= {100 * ground_ms / network_ms:5.1f} % of the network")
    print(f"  point cloud (xyz + rgb)         {cloud_ms:9.2f} ms / frame   (target <= 2 ms)")
    print(f"  point cloud (xyz only)          {cloud_xyz_ms:9.2f} ms / frame")
    print(f"  memory after 100 frames         {rss_100:9.1f} MB")
    print(f"  memory after {args.frames:<6d} frames      {rss_n:9.1f} MB   "
          f"(growth {rss_n - rss_100:+.1f} MB, target: flat)")
    if args.json:
        from lsmdepth_ros.atomic_files import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
