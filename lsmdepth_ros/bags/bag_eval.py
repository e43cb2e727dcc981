"""`lsmdepth bag eval`: depth on a bag against ground truth, offline and deterministic.

Predictions come from running the DepthEstimator over the bag's images, or (`pred_topic`) from
a depth topic the node published and someone recorded, so the live path is judged by the same
numbers. Ground truth is a depth image topic (REP 118) or a LiDAR PointCloud2 projected into the
camera through camera_info and a lidar -> camera-optical extrinsic. Pairs are matched by header
stamp. The metrics are the Eigen protocol of `lsmdepth_ros.metrics`.

Outputs (in `out_dir`): frames.csv (one row per frame), summary.json, metrics_over_time.png and
error_map_<n>.png (image | predicted depth | ground truth | error).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lsmdepth_ros.atomic_files import atomic_write_text
from lsmdepth_ros.bags.bagfile import IMAGE, POINT_CLOUD, BagError, topic_type
from lsmdepth_ros.bags.messages import depth_to_metres
from lsmdepth_ros.bags.topic_streams import (
    Frame,
    StampMatcher,
    camera_infos,
    cloud_frames,
    default_camera_info_topic,
    image_frames,
    latest_at,
)

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


@dataclass
class BagEvalOptions:
    bag: Path
    out_dir: Path
    model: str = ""                        # checkpoint / .onnx; empty: the shipped weights
    image_topic: str = "/camera/image_raw"
    camera_info_topic: str = ""            # empty: beside the image topic
    gt_topic: str = "/camera/depth_gt"     # ground-truth depth image topic ...
    lidar_topic: str = ""                  # ... or a LiDAR cloud (then gt_topic is ignored)
    extrinsic: tuple[float, ...] = tuple(np.eye(4).ravel())  # 4x4 lidar -> camera optical
    pred_topic: str = ""                   # evaluate this recorded depth topic, no network
    gt_bag: Path | None = None             # ground truth (and camera) from another bag
    median_scaling: bool = True
    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: str | None = None                # "garg" for KITTI-shaped images
    sync_tolerance: float = 0.02           # seconds between matched header stamps
    max_frames: int = 0                    # 0: all
    error_maps: int = 3                    # error-map figures to draw (evenly spaced frames)
    backend: str = "auto"

    def __post_init__(self) -> None:
        self.bag, self.out_dir = Path(self.bag), Path(self.out_dir)
        self.gt_bag = None if self.gt_bag is None else Path(self.gt_bag)
        if len(self.extrinsic) != 16:
            raise ValueError(f"the extrinsic must be 16 numbers (a row-major 4x4 lidar -> camera "
                             f"optical transform), got {len(self.extrinsic)}")
        self.camera_info_topic = self.camera_info_topic or default_camera_info_topic(
            self.image_topic)

    @property
    def protocol(self):
        from lsmdepth_ros.metrics import EvalOptions

        return EvalOptions(min_depth=self.min_depth, max_depth=self.max_depth, crop=self.crop,
                           median_scaling=self.median_scaling)


@dataclass
class FrameRow:
    frame: int
    stamp_ns: int
    valid_pixels: int
    scale: float
    metrics: dict[str, float] | None


@dataclass
class BagEvalResult:
    rows: list[FrameRow]
    summary: dict
    files: dict[str, Path] = field(default_factory=dict)

    def report(self) -> str:
        m = self.summary["metrics"]
        lines = ["".join(f"{k:>10}" for k in METRICS), "".join(f"{m[k]:>10.3f}" for k in METRICS),
                 (f"frames: {self.summary['frames_evaluated']} evaluated, "
                  f"{self.summary['frames_without_ground_truth']} without ground truth")]
        lines += [f"{name}: {path}" for name, path in self.files.items()]
        return "\n".join(lines)


def evaluate_bag(options: BagEvalOptions) -> BagEvalResult:
    """Evaluate; raises BagError for a bag that cannot be evaluated as asked."""
    from lsmdepth_ros.metrics import evaluate_depth_pair

    gt_bag = options.gt_bag or options.bag
    _check_topics(options, gt_bag)  # before loading a model or reading any frame
    protocol = options.protocol
    picks = _PickFrames(options.error_maps)
    rows: list[FrameRow] = []
    infos = None
    if not options.pred_topic or options.lidar_topic:
        infos = camera_infos(gt_bag, options.camera_info_topic, options.image_topic)
    gt_matcher = StampMatcher(_ground_truth(gt_bag, options, infos),
                              int(options.sync_tolerance * 1e9))
    images = None
    if options.pred_topic:  # the recorded outputs hold no camera images: look in the gt bag
        images = _optional_images(gt_bag, options.image_topic, options.sync_tolerance)
    for index, pred_frame in enumerate(_predictions(options.bag, options, infos)):
        if options.max_frames and index >= options.max_frames:
            break
        gt = gt_matcher.find(pred_frame.stamp)
        if gt is None:
            rows.append(FrameRow(index, pred_frame.stamp, 0, float("nan"), None))
            continue
        result = evaluate_depth_pair(gt.data, pred_frame.data["depth"], protocol)
        rows.append(FrameRow(index, pred_frame.stamp, result.valid_pixels, result.ratio,
                             result.metrics))
        image = pred_frame.data.get("image")
        if image is None and images is not None:
            found = images.find(pred_frame.stamp)
            image = None if found is None else found.data
        picks.offer(index, image, pred_frame.data["depth"], gt.data, result.ratio)
    if not rows:
        raise BagError(f"no frames to evaluate in {options.bag} (empty topic?)")
    summary = _summary(rows, options)
    return BagEvalResult(rows, summary, _write_outputs(rows, summary, picks, options))


def _check_topics(options: BagEvalOptions, gt_bag: Path) -> None:
    if options.pred_topic:
        topic_type(options.bag, options.pred_topic, IMAGE, "depth topic")
    else:
        topic_type(options.bag, options.image_topic, IMAGE, "image topic")
    if options.lidar_topic:
        topic_type(gt_bag, options.lidar_topic, POINT_CLOUD, "LiDAR topic")
    else:
        topic_type(gt_bag, options.gt_topic, IMAGE, "ground-truth topic")


def _predictions(path, options: BagEvalOptions, infos):
    """Frames whose data is {"depth": metres [h, w], "image": RGB uint8 or None}."""
    if options.pred_topic:
        for frame in image_frames(path, options.pred_topic, "depth topic"):
            array, encoding = frame.data
            try:
                depth = depth_to_metres(array, encoding)
            except ValueError as exc:
                raise BagError(f"depth topic {options.pred_topic}: {exc}") from exc
            yield Frame(frame.stamp, frame.bag_time, {"depth": depth, "image": None})
        return
    from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions, image_to_rgb

    estimator = DepthEstimator(EstimatorOptions(model_path=options.model, backend=options.backend,
                                                device="cpu", fp16=False))
    for frame in image_frames(path, options.image_topic):
        array, encoding = frame.data
        K, width, height = latest_at(infos, frame.stamp).data
        if (width, height) != (array.shape[1], array.shape[0]):
            raise BagError(f"camera_info on {options.camera_info_topic} is {width}x{height} but "
                           f"the image at stamp {frame.stamp} is {array.shape[1]}x"
                           f"{array.shape[0]}; they must describe the same camera")
        try:
            depth = estimator.estimate(array, encoding, K)
            rgb = image_to_rgb(array, encoding)
        except ValueError as exc:
            raise BagError(f"image topic {options.image_topic}: {exc}") from exc
        yield Frame(frame.stamp, frame.bag_time, {"depth": depth, "image": rgb})


def _ground_truth(path, options: BagEvalOptions, infos):
    """Frames whose data is ground-truth depth in metres (NaN invalid)."""
    if options.lidar_topic:
        T = np.asarray(options.extrinsic, dtype=np.float64).reshape(4, 4)
        for frame in cloud_frames(path, options.lidar_topic):
            K, width, height = latest_at(infos, frame.stamp).data
            yield Frame(frame.stamp, frame.bag_time, lidar_depth(frame.data, T, K, width, height))
        return
    for frame in image_frames(path, options.gt_topic, "ground-truth topic"):
        array, encoding = frame.data
        try:
            yield Frame(frame.stamp, frame.bag_time, depth_to_metres(array, encoding))
        except ValueError as exc:
            raise BagError(f"ground-truth topic {options.gt_topic}: {exc}") from exc


def _optional_images(path, topic: str, tolerance: float) -> StampMatcher | None:
    """Camera images for the error-map figures, when the bag has them."""
    from lsmdepth_ros.bags import bagfile

    if topic not in bagfile.bag_topics(path):
        return None
    from lsmdepth_ros.inference import image_to_rgb

    def rgb_frames():
        for frame in image_frames(path, topic):
            array, encoding = frame.data
            try:
                yield Frame(frame.stamp, frame.bag_time, image_to_rgb(array, encoding))
            except ValueError:
                return

    return StampMatcher(rgb_frames(), int(tolerance * 1e9))


def lidar_depth(points: np.ndarray, T_cam_lidar: np.ndarray, K: np.ndarray, width: int,
                height: int) -> np.ndarray:
    """Sparse depth image [height, width] (NaN empty) from LiDAR points [N, 3].

    Points are moved into the camera's optical frame, those in front of it projected through K
    (`geometry.project_points`) to the nearest pixel centre; the nearest return wins a pixel.
    """
    from lsmdepth_ros.geometry import project_points, sparse_depth_image

    cam = points @ T_cam_lidar[:3, :3].T + T_cam_lidar[:3, 3]
    cam = cam[cam[:, 2] > 1e-3]
    uv = np.round(project_points(cam, K))
    return sparse_depth_image(uv[:, 0], uv[:, 1], cam[:, 2], height, width)


def _summary(rows: list[FrameRow], options: BagEvalOptions) -> dict:
    good = [r for r in rows if r.metrics is not None]
    if not good:
        raise BagError(f"none of the {len(rows)} frames had matching ground truth with valid "
                       f"pixels in ({options.min_depth}, {options.max_depth}) m (stamps within "
                       f"{options.sync_tolerance} s); check the topics, the stamps and the units")
    ratios = np.array([r.scale for r in good])
    return {
        "bag": str(options.bag),
        "ground_truth": str(options.gt_bag or options.bag),
        "prediction": (f"topic {options.pred_topic}" if options.pred_topic
                       else f"model {options.model or 'default'} on {options.image_topic}"),
        "reference": (f"lidar {options.lidar_topic}" if options.lidar_topic
                      else f"depth {options.gt_topic}"),
        "metrics": {k: float(np.mean([r.metrics[k] for r in good])) for k in METRICS},
        "frames_evaluated": len(good),
        "frames_without_ground_truth": len(rows) - len(good),
        "scale_ratio_median": float(np.median(ratios)),
        "scale_ratio_std": float(np.std(ratios / np.median(ratios))),
        "protocol": asdict(options.protocol),
    }


class _PickFrames:
    """Keeps the few frames drawn as error maps: evenly spaced by frame index (powers of two
    apart until the count is known, so no second pass over the bag is needed)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.kept: dict[int, tuple] = {}

    def offer(self, index: int, image, depth, gt, scale: float) -> None:
        if self.count <= 0:
            return
        self.kept[index] = (image, depth, gt, scale)
        if len(self.kept) > 2 * self.count:  # thin out: keep every other one
            for i in sorted(self.kept)[1::2]:
                del self.kept[i]

    def chosen(self) -> list[tuple[int, tuple]]:
        keys = sorted(self.kept)
        if len(keys) <= self.count:
            return [(k, self.kept[k]) for k in keys]
        idx = np.linspace(0, len(keys) - 1, self.count).round().astype(int)
        return [(keys[i], self.kept[keys[i]]) for i in idx]


def _write_outputs(rows, summary, picks: _PickFrames, options: BagEvalOptions) -> dict[str, Path]:
    from lsmdepth_ros.bags.plots import plot_error_map, plot_metrics_over_time

    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame", "stamp_ns", "valid_pixels", "scale", *METRICS])
    for r in rows:
        values = [f"{r.metrics[k]:.6f}" if r.metrics else "" for k in METRICS]
        writer.writerow([r.frame, r.stamp_ns, r.valid_pixels,
                         f"{r.scale:.6f}" if r.metrics else "", *values])
    files = {"frames_csv": atomic_write_text(out / "frames.csv", buf.getvalue()),
             "summary_json": atomic_write_text(out / "summary.json",
                                               json.dumps(summary, indent=2) + "\n")}
    files["metrics_plot"] = plot_metrics_over_time(rows, out / "metrics_over_time.png")
    scaled = options.median_scaling
    for n, (index, (image, depth, gt, scale)) in enumerate(picks.chosen()):
        files[f"error_map_{n}"] = plot_error_map(
            image, depth * (scale if scaled else 1.0), gt, out / f"error_map_{n}.png",
            title=f"frame {index}" + (f" (median-scaled x{scale:.3f})" if scaled else ""),
            max_depth=options.max_depth)
    return files


# ----------------------------------------------------------------------------------------------
# CLI plumbing (kept here so `lsmdepth bag eval` and the demo share one set of options)

def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    d = BagEvalOptions(bag=Path("."), out_dir=Path("."))
    p.add_argument("bag", type=Path, help="bag with the images (or with the recorded depth topic)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: <bag>_eval beside the bag)")
    p.add_argument("--model", default="", help="checkpoint or .onnx (default: shipped weights)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"))
    p.add_argument("--image-topic", default=d.image_topic)
    p.add_argument("--camera-info-topic", default="",
                   help="default: camera_info beside the image topic")
    p.add_argument("--gt-topic", default=d.gt_topic, help="ground-truth depth image topic")
    p.add_argument("--lidar-topic", default="",
                   help="use this PointCloud2 topic as ground truth instead of --gt-topic")
    p.add_argument("--extrinsic", default="", metavar="FILE|16 NUMBERS",
                   help="4x4 lidar -> camera optical transform: a text/YAML/JSON file with 16 "
                        "numbers, or 16 comma/space-separated numbers (default: identity)")
    p.add_argument("--pred-topic", default="",
                   help="evaluate this recorded depth topic (the node's output) instead of "
                        "running the network")
    p.add_argument("--gt-bag", type=Path, default=None,
                   help="take ground truth, camera_info and images from this bag (e.g. the bag "
                        "that was replayed into the node)")
    p.add_argument("--no-median-scaling", action="store_true",
                   help="evaluate metric depth as is (default: per-frame median scaling)")
    p.add_argument("--min-depth", type=float, default=d.min_depth)
    p.add_argument("--max-depth", type=float, default=d.max_depth)
    p.add_argument("--crop", choices=("none", "garg", "eigen"), default="none")
    p.add_argument("--sync-tolerance", type=float, default=d.sync_tolerance, metavar="S")
    p.add_argument("--max-frames", type=int, default=0)
    p.add_argument("--error-maps", type=int, default=d.error_maps, metavar="N")


def parse_extrinsic(text: str) -> tuple[float, ...]:
    if not text:
        return tuple(np.eye(4).ravel())
    path = Path(text)
    source = path.read_text() if path.is_file() else text
    numbers = []
    for token in source.replace(",", " ").replace("[", " ").replace("]", " ").split():
        try:
            numbers.append(float(token))
        except ValueError:
            continue  # YAML keys and the like
    if len(numbers) != 16:
        raise ValueError(f"--extrinsic needs 16 numbers (row-major 4x4 lidar -> camera optical), "
                         f"found {len(numbers)} in {text!r}")
    T = np.array(numbers).reshape(4, 4)
    if not np.allclose(T[3], [0, 0, 0, 1]) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3),
                                                              atol=1e-4):
        raise ValueError("--extrinsic is not a rigid transform (rotation not orthonormal or last "
                         "row not 0 0 0 1)")
    return tuple(numbers)


def options_from_args(args: argparse.Namespace) -> BagEvalOptions:
    out = args.out or args.bag.with_name(args.bag.name.rstrip("/") + "_eval")
    return BagEvalOptions(
        bag=args.bag, out_dir=out, model=args.model, backend=args.backend,
        image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
        gt_topic=args.gt_topic, lidar_topic=args.lidar_topic,
        extrinsic=parse_extrinsic(args.extrinsic), pred_topic=args.pred_topic, gt_bag=args.gt_bag,
        median_scaling=not args.no_median_scaling, min_depth=args.min_depth,
        max_depth=args.max_depth, crop=None if args.crop == "none" else args.crop,
        sync_tolerance=args.sync_tolerance, max_frames=args.max_frames,
        error_maps=args.error_maps)
